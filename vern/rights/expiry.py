"""How long what is kept for a request lasts. A person's earlier requests are forgotten when the
person is erased; after the retention period the details of a closed request (identities,
details, answers, mails) become unreadable by destroying its data key, and later the request
itself is deleted with everything kept for it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from vern.audit.service import record
from vern.core.crypto import DataKey, keyring
from vern.rights.models import (
    ExternalStep,
    Flag,
    LedgerEntry,
    Package,
    Part,
    RightsRequest,
    Status,
    Task,
    Verification,
)

# The states in which a request is over.
CLOSED = (Status.DONE.value, Status.REJECTED.value, Status.CANCELLED.value)


def forget_subject_requests(session: Session, *, org_id: str, subject_ref: str,
                            keep_request_id: str | None) -> int:
    """Destroy the data keys of the person's earlier closed requests in ``org_id`` (their
    identities, details, answers and mails become unreadable); the requests stay, as the fact
    that they were handled. Returns how many keys were destroyed."""
    rows = session.execute(
        select(RightsRequest.id, RightsRequest.key_id).where(
            RightsRequest.org_id == org_id, RightsRequest.subject_ref == subject_ref,
            RightsRequest.status.in_(CLOSED), RightsRequest.id != (keep_request_id or ""))
    ).all()
    return _shred_request_keys(session, [r.key_id for r in rows])


def _shred_request_keys(session: Session, key_ids: list[str]) -> int:

    live = list(session.scalars(select(DataKey.id).where(
        DataKey.id.in_(key_ids), DataKey.destroyed_at.is_(None)))) if key_ids else []
    for key_id in live:
        keyring().shred(session, key_id)
    return len(live)


def shred_closed_requests(session: Session, *, closed_before: datetime, limit: int,
                          held: set[str] | None = None) -> list[str]:
    """Retention of request details: the data keys of requests closed before ``closed_before``
    are destroyed (identities, details, answers, mails), at most ``limit`` per call, oldest
    first, skipping the request ids in ``held`` (legal holds). The request rows stay (the fact
    that a request was handled, kept five years). Returns the ids of the requests done."""

    stmt = (
        select(RightsRequest.id, RightsRequest.key_id)
        .join(DataKey, DataKey.id == RightsRequest.key_id)
        .where(RightsRequest.status.in_(CLOSED), RightsRequest.completed_at.is_not(None),
               RightsRequest.completed_at < closed_before, DataKey.destroyed_at.is_(None))
        .order_by(RightsRequest.completed_at, RightsRequest.id)
        .limit(limit + len(held or ()))
    )
    stmt = stmt.add_columns(RightsRequest.subject_ref)
    rows = [r for r in session.execute(stmt)
            if r.id not in (held or set()) and r.subject_ref not in (held or set())][:limit]
    for r in rows:
        keyring().shred(session, r.key_id)
    if rows:
        record(session, "rights.request.details_expired", org_id=None,
               details={"new": {"requests": len(rows)}})
    return [r.id for r in rows]


def delete_closed_requests(session: Session, *, closed_before: datetime, limit: int,
                           held: set[str] | None = None) -> list[str]:
    """Retention of the fact that a request was handled (five years): requests closed before
    ``closed_before`` are deleted with everything kept for them (parts, tasks, ledger, flags,
    external steps, codes, packages), at most ``limit`` per call, oldest first, skipping the
    request ids and subject references in ``held`` and requests whose restriction or objection
    still stands (a flag not lifted). One transaction: the caller's."""
    held = held or set()
    standing = exists().where(Flag.request_id == RightsRequest.id, Flag.lifted_at.is_(None))
    rows = session.execute(
        select(RightsRequest.id, RightsRequest.subject_ref)
        .where(RightsRequest.status.in_(CLOSED), RightsRequest.completed_at.is_not(None),
               RightsRequest.completed_at < closed_before, ~standing)
        .order_by(RightsRequest.completed_at, RightsRequest.id)
        .limit(limit + len(held))
    ).all()
    ids = [r.id for r in rows if r.id not in held and r.subject_ref not in held][:limit]
    if not ids:
        return []
    for model in (Task, Part, LedgerEntry, Flag, ExternalStep, Verification, Package):
        session.execute(delete(model).where(model.request_id.in_(ids)))
    session.execute(delete(RightsRequest).where(RightsRequest.id.in_(ids)))
    record(session, "rights.request.expired", org_id=None, details={"new": {"requests": len(ids)}})
    return ids
