"""Scheduled work of the notify domain."""

from __future__ import annotations

from datetime import timedelta

from vern.core.config import Settings
from vern.core.db import Database
from vern.core.worker import Job
from vern.notify.service import deliver_pending


def _deliver(database: Database, _settings: Settings) -> int:
    return deliver_pending(database)


JOBS = [Job("notify.deliver", timedelta(minutes=1), _deliver)]
