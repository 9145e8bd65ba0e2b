"""The one runner for scheduled work: deadlines, retention, roll-ups, outbox delivery.

Each domain lists its periodic jobs in ``vern/<domain>/jobs.py`` as ``JOBS = [Job(...)]``. A job
runs when its interval has passed since its last start; the claim is a row in ``worker_jobs``
updated with a compare-and-set, so several workers against one database never run the same job at
the same time, and a worker that died releases its claim when the lease runs out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, String, Text, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.config import Settings
from vern.core.db import Base, Database, Scope, UTCDateTime, utcnow
from vern.core.discover import domain_modules
from vern.core.quarantine import storable

log = logging.getLogger("vern.core.worker")


class WorkerJob(Base):
    __tablename__ = "worker_jobs"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    run: Callable[[Database, Settings], object]
    lease: timedelta = timedelta(minutes=10)


def discover_jobs() -> list[Job]:
    return [job for module in domain_modules("jobs") for job in getattr(module, "JOBS", [])]


def _claim(database: Database, job: Job) -> bool:
    now = utcnow()
    with database.transaction(Scope.system("worker claim")) as session:
        if session.get(WorkerJob, job.name) is None:
            session.add(WorkerJob(name=job.name, runs=0))
            session.flush()
        due = now - job.every
        result = session.execute(
            update(WorkerJob)
            .where(
                WorkerJob.name == job.name,
                or_(WorkerJob.lease_until.is_(None), WorkerJob.lease_until < now),
                or_(WorkerJob.last_started_at.is_(None), WorkerJob.last_started_at <= due),
            )
            .values(last_started_at=now, lease_until=now + job.lease)
        )
        return bool(getattr(result, "rowcount", 0))


def _finish(database: Database, job: Job, error: str | None) -> None:
    with database.transaction(Scope.system("worker finish")) as session:
        row = session.get(WorkerJob, job.name)
        if row is not None:
            row.last_finished_at = utcnow()
            row.lease_until = None
            row.runs += 1
            row.last_error = error


def run_due(database: Database, settings: Settings, jobs: list[Job] | None = None) -> list[str]:
    """Run every job that is due once; returns the names that ran. One job's failure - its own,
    or the database's while claiming or finishing it - never stops the others; the error is
    kept on the job's row as storable text (``vern.core.quarantine.storable``)."""
    ran: list[str] = []
    for job in jobs if jobs is not None else discover_jobs():
        try:
            if not _claim(database, job):
                continue
        except Exception:
            log.exception("job %s could not be claimed", job.name)
            continue
        error = None
        try:
            job.run(database, settings)
        except Exception as exc:
            error = storable(f"{type(exc).__name__}: {exc}")[:2000]
            log.exception("job %s failed", job.name)
        try:
            _finish(database, job, error)
        except Exception:
            # The claim runs out with its lease; the job is tried again then.
            log.exception("job %s ran but its end could not be recorded", job.name)
        ran.append(job.name)
    return ran


def run_forever(database: Database, settings: Settings, *, tick: float = 5.0,
                max_ticks: int | None = None) -> None:
    ticks = 0
    while max_ticks is None or ticks < max_ticks:
        try:
            run_due(database, settings)
        except Exception:  # the job list itself, or the database at the start of a round
            log.exception("worker round failed; tried again at the next tick")
        ticks += 1
        time.sleep(tick)


def status(database: Database) -> list[WorkerJob]:
    with database.transaction(Scope.system("worker status")) as session:
        rows = list(session.scalars(select(WorkerJob).order_by(WorkerJob.name)))
        session.expunge_all()
        return rows
