"""Scheduled work of the records domain: announce a published privacy statement that was not
announced yet (a process that stopped between publishing and announcing)."""

from __future__ import annotations

from datetime import timedelta

from vern.core.config import Settings
from vern.core.db import Database
from vern.core.worker import Job
from vern.records import documents


def _announce(database: Database, _settings: Settings) -> int:
    return documents.announce_pending(database)


JOBS = [Job("records.announce", timedelta(minutes=5), _announce)]
