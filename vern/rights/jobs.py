"""Periodic work of the rights domain: run approved requests (and take over ones whose runner
died), and remind admins and privacy officers of deadlines."""

from __future__ import annotations

from datetime import timedelta

from vern.core.config import Settings
from vern.core.db import Database
from vern.core.worker import Job
from vern.rights import external, service


def _run_requests(database: Database, _settings: Settings) -> object:
    return len(service.run_pending(database))


def _remind(database: Database, _settings: Settings) -> object:

    sent = service.send_reminders(database)
    data_map = service.published_map_or_none(database)
    if data_map is not None and external.needed(data_map):
        sent += external.remind_tasks(database, data_map)
        sent += external.send_notices(database, data_map)
    return sent


JOBS = [
    Job("rights.run", timedelta(seconds=30), _run_requests, lease=timedelta(minutes=30)),
    Job("rights.remind", timedelta(hours=1), _remind),
]
