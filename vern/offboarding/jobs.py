"""Scheduled work of the offboarding domain: deletions due, in bounded steps."""

from __future__ import annotations

from datetime import timedelta

from vern.core.config import Settings
from vern.core.db import Database
from vern.core.worker import Job
from vern.offboarding import service


def _work(database: Database, settings: Settings) -> dict[str, int]:
    """Every offboarding in deletion (started by staff) is taken 200 steps further a run."""
    done = 0
    for offboarding_id in service.due(database):
        if service.is_deleting(database, offboarding_id) and service.run_deletion(
                database, settings, offboarding_id, max_steps=200):
            done += 1
    return {"finished": done}


JOBS = [Job("offboarding.work", timedelta(minutes=5), _work, lease=timedelta(minutes=30))]
