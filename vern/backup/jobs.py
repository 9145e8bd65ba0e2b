"""Scheduled work of the backup domain: the nightly backup (and its key backup)."""

from __future__ import annotations

import logging
from datetime import timedelta

from vern.backup import service
from vern.core.config import Settings, backup_settings
from vern.core.db import Database
from vern.core.worker import Job

log = logging.getLogger("vern.backup")


def _nightly(database: Database, settings: Settings) -> dict[str, int]:
    """One backup a day (full on the weekly day, else differential on PostgreSQL). A failure
    is recorded as evidence and shown in the console; the job reports it and runs again."""

    if service.engine_kind(database) == "postgresql" and backup_settings().pg_data is None:
        log.warning("no backup taken: VERN_BACKUP_PG_DATA is not set (see docs/backup.md)")
        return {"skipped": 1}
    run = service.run_backup(database, settings)
    return {"size_bytes": run.size_bytes, "copies": run.copies}


JOBS = [Job("backup.nightly", timedelta(hours=24), _nightly, lease=timedelta(hours=3))]
