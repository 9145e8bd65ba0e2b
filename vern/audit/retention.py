"""Retention: records older than ``VERN_AUDIT_RETENTION_DAYS`` (default 365) are removed, always a
whole prefix of the tree up to a signed checkpoint. That checkpoint keeps the frontier (the roots
of the subtrees before it), so verification and proofs start from it and the rest of the trail
stays verifiable. Log files from before that checkpoint's day and the month keys of anonymous
callers from before the cut-off are removed too, and so are the background writers' quarantined
records (``write_quarantine``, ``quarantine-*.jsonl``) from before the cut-off."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update

from vern.audit.canonical import datetime_to_us, us_to_datetime
from vern.audit.logfile import FILE_PREFIX
from vern.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from vern.audit.request_records import QUARANTINE_PREFIX
from vern.core.config import Settings
from vern.core.crypto import DataKey, keyring
from vern.core.db import Database, Scope, utcnow
from vern.core.quarantine import purge_quarantine


@dataclass
class Expired:
    boundary: int
    records: int
    files: int
    keys: int
    quarantined: int = 0  # quarantined records (rows and file lines' files) removed


def expire(database: Database, settings: Settings, *, now: datetime | None = None,
           chunk: int = 50_000) -> Expired:
    """Remove what is past retention (idempotent and resumable: the boundary is set first)."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.audit_retention_days)
    cutoff_us = datetime_to_us(cutoff)
    with database.engine.begin() as conn:
        head = conn.execute(select(AuditHead).where(AuditHead.id == 1)).first()
        if head is None:
            return Expired(0, 0, 0, 0, _expire_quarantine(database, settings, cutoff))
        cp = conn.execute(
            select(AuditCheckpoint.tree_size, AuditCheckpoint.ts)
            .where(AuditCheckpoint.ts < cutoff_us, AuditCheckpoint.frontier.is_not(None))
            .order_by(AuditCheckpoint.tree_size.desc()).limit(1)
        ).first()
        boundary = head.retained_from
        if cp is not None and cp.tree_size > boundary:
            boundary = cp.tree_size
            conn.execute(update(AuditHead).where(AuditHead.id == 1)
                         .values(retained_from=boundary))
    removed = 0
    while True:
        with database.engine.begin() as conn:
            low = conn.scalar(select(AuditEvent.seq).where(AuditEvent.seq < boundary)
                              .order_by(AuditEvent.seq).limit(1))
            if low is None:
                break
            result = conn.execute(delete(AuditEvent).where(
                AuditEvent.seq >= low, AuditEvent.seq < min(boundary, low + chunk)))
            removed += result.rowcount or 0
    files = 0
    if cp is not None:
        files = _remove_files(Path(settings.audit_log_dir),
                              us_to_datetime(cp.ts).strftime("%Y-%m-%d"))
    keys = 0
    last_month = cutoff.strftime("%Y-%m")
    with database.transaction(Scope.system("audit retention keys")) as session:
        for key_id, ref in session.execute(
            select(DataKey.id, DataKey.subject_ref).where(
                DataKey.subject_ref.like("audit-anon:%"), DataKey.destroyed_at.is_(None))
        ):
            if str(ref).removeprefix("audit-anon:") < last_month:
                keyring().shred(session, key_id)
                keys += 1
    return Expired(boundary, removed, files, keys,
                   _expire_quarantine(database, settings, cutoff))


def _remove_files(directory: Path, first_day: str) -> int:
    files = 0
    for path in directory.glob(f"{FILE_PREFIX}*.jsonl"):
        if path.stem.removeprefix(FILE_PREFIX) < first_day:
            path.unlink(missing_ok=True)
            files += 1
    return files


def expire_local_files(database: Database, settings: Settings, *,
                       now: datetime | None = None) -> int:
    """This machine's part of retention: its log files from before the day of the checkpoint
    the trail now starts at, and its quarantine files from before the cut-off. ``expire`` runs
    on one worker of one machine and removes the records and that machine's files; every other
    machine's files go here, called by each process that appends (``AuditLog``) once a day.
    Returns how many log files were removed."""
    now = now or utcnow()
    with database.engine.connect() as conn:
        start = conn.scalar(select(AuditHead.retained_from).where(AuditHead.id == 1)) or 0
        ts = conn.scalar(select(AuditCheckpoint.ts).where(AuditCheckpoint.tree_size == start)) \
            if start > 0 else None
    cutoff = now - timedelta(days=settings.audit_retention_days)
    for path in Path(settings.audit_log_dir).glob(f"{QUARANTINE_PREFIX}*.jsonl"):
        if path.stem.removeprefix(QUARANTINE_PREFIX) < cutoff.strftime("%Y-%m-%d"):
            path.unlink(missing_ok=True)
    if ts is None:
        return 0
    return _remove_files(Path(settings.audit_log_dir), us_to_datetime(ts).strftime("%Y-%m-%d"))


def _expire_quarantine(database: Database, settings: Settings, cutoff: datetime) -> int:
    """Quarantined records (rows and the days' files) from before the cut-off."""
    for path in Path(settings.audit_log_dir).glob(f"{QUARANTINE_PREFIX}*.jsonl"):
        if path.stem.removeprefix(QUARANTINE_PREFIX) < cutoff.strftime("%Y-%m-%d"):
            path.unlink()
    return purge_quarantine(database, cutoff)
