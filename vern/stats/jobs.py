"""Scheduled work of the statistics domain: raw events, visits and salts expire."""

from __future__ import annotations

from datetime import timedelta

from vern.core.config import Settings, stats_settings
from vern.core.db import Database
from vern.core.worker import Job
from vern.stats.ingest import ingestor_for, purge


def _purge(database: Database, _settings: Settings) -> dict[str, int]:
    """Raw events and visits older than ``VERN_STATS_RAW_DAYS``; salts older than 48 hours."""
    return purge(database, ingestor_for(database).salts, stats_settings())


JOBS = [Job("stats.purge", timedelta(hours=1), _purge)]
