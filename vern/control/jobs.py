"""Scheduled work of internal control: remind task owners of due and overdue control tasks."""

from __future__ import annotations

from datetime import timedelta

from vern.control import service
from vern.core.config import Settings
from vern.core.db import Database
from vern.core.worker import Job


def _remind(database: Database, settings: Settings) -> int:
    return service.send_reminders(database, base_url=settings.base_url)


JOBS = [Job("control.remind", timedelta(hours=1), _remind)]
