"""Scheduled work of internal control: remind task owners of due and overdue control tasks, and
shred the names of supplier staff whose access has ended."""

from __future__ import annotations

from datetime import timedelta

from vern.control import service
from vern.core.config import Settings
from vern.core.db import Database
from vern.core.worker import Job


def _remind(database: Database, settings: Settings) -> int:
    return service.send_reminders(database, base_url=settings.base_url)


def _shred(database: Database, settings: Settings) -> int:
    return service.shred_ended_names(database)


JOBS = [Job("control.remind", timedelta(hours=1), _remind),
        Job("control.shred_ended_names", timedelta(hours=1), _shred)]
