"""The clocks' warnings: raised by the worker, each once.

Every warning is its own transaction: the warning's row (with a unique key), its mails in the
outbox and its timeline entry commit together or not at all. A worker that stops half-way has
committed some warnings and none of the rest; the next run finds exactly the rest.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from vern.core.config import Settings
from vern.core.db import Database, Scope, utcnow
from vern.core.worker import Job
from vern.incidents import service
from vern.incidents.models import ClockWarning
from vern.notify.service import deliver_pending

log = logging.getLogger("vern.incidents")


def raise_warnings(database: Database, *, base_url: str = "", now: datetime | None = None,
                   limit: int | None = None) -> int:
    """Raise every warning that is due and not yet raised; at most ``limit``. Returns how many
    were raised now."""
    now = now or utcnow()
    with database.transaction(Scope.system("incidents: clocks to warn about")) as session:
        due = service.due_warnings(session, now)
    raised = 0
    for item in due[:limit] if limit is not None else due:
        try:
            with database.transaction(Scope.system("incidents: raise a clock warning")) as session:
                service.raise_warning(session, item, now=now, base_url=base_url)
            raised += 1
        except IntegrityError:
            if not _raised(database, item.key):
                raise  # not another worker's warning: a real failure, tried again next run
            log.info("warning %s was raised by another worker", item.key)
    return raised


def _raised(database: Database, key: str) -> bool:
    from sqlalchemy import select


    with database.transaction(Scope.system("incidents: was the warning raised")) as session:
        return session.scalar(select(ClockWarning.id).where(ClockWarning.key == key)) is not None


def _warn(database: Database, settings: Settings) -> int:

    raised = raise_warnings(database, base_url=settings.base_url)
    if raised:
        deliver_pending(database)
    return raised


JOBS = [Job("incidents.warn", timedelta(minutes=1), _warn)]
