"""Scheduled work of the audit domain: seal records written in other transactions and sign
checkpoints, raise alerts, expire records past retention."""

from __future__ import annotations

from datetime import timedelta

from vern.audit import alerts, retention, service
from vern.core.config import Settings
from vern.core.db import Database
from vern.core.worker import Job


def _seal(database: Database, settings: Settings) -> object:
    return service.seal_now(database, settings, checkpoint=False)


def _alerts(database: Database, settings: Settings) -> object:
    return len(alerts.scan(database, settings))


def _retention(database: Database, settings: Settings) -> object:
    return retention.expire(database, settings).records


JOBS = [
    Job("audit.seal", timedelta(seconds=30), _seal),
    Job("audit.alerts", timedelta(minutes=1), _alerts),
    Job("audit.retention", timedelta(hours=6), _retention),
]
