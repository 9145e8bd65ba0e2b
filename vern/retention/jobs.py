"""Scheduled work of the retention domain: apply every rule, in bounded batches."""

from __future__ import annotations

from datetime import timedelta

from vern.core.config import Settings
from vern.core.db import Database
from vern.core.errors import Conflict
from vern.core.worker import Job
from vern.retention import service


def _enforce(database: Database, settings: Settings) -> object:
    try:
        run = service.run(database, settings, trigger="schedule")
    except Conflict:  # another process's run is alive; it finishes the work
        return {"skipped": "a run is under way"}
    return {rule: c.get("done", 0) for rule, c in (run.counts or {}).items()}


JOBS = [Job("retention.enforce", timedelta(hours=6), _enforce, lease=timedelta(minutes=30))]
