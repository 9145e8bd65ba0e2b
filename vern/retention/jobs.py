"""Scheduled work of the retention domain: apply every rule, in bounded batches."""

from __future__ import annotations

from datetime import timedelta

from vern.config import Settings
from vern.db import Database
from vern.errors import Conflict
from vern.retention import service
from vern.worker import Job


def _enforce(database: Database, settings: Settings) -> object:
    try:
        run = service.run(database, settings, trigger="schedule")
    except Conflict:  # another process's run is alive; it finishes the work
        return {"skipped": "a run is under way"}
    return {rule: c.get("done", 0) for rule, c in (run.counts or {}).items()}


JOBS = [Job("retention.enforce", timedelta(hours=6), _enforce, lease=timedelta(minutes=30))]
