"""Scheduled work of the notify domain."""

from __future__ import annotations

from datetime import timedelta

from vern.config import Settings
from vern.db import Database
from vern.notify.service import deliver_pending
from vern.worker import Job


def _deliver(database: Database, _settings: Settings) -> int:
    return deliver_pending(database)


JOBS = [Job("notify.deliver", timedelta(minutes=1), _deliver)]
