"""Scheduled work of the vendor registry: record the closing of Art. 28(2) objection windows and
tell the vendor's responsible staff (once per window)."""

from __future__ import annotations

from datetime import timedelta

from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.core.worker import Job
from vern.vendor import service


def close_windows(database: Database, _settings: Settings | None = None) -> int:
    with database.transaction(Scope.system("vendor: close objection windows")) as session:
        return len(service.close_windows(session))


JOBS = [Job("vendor.close_windows", timedelta(minutes=15), close_windows)]
