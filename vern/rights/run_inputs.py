"""What a run of requests reads before it claims anything: the requests' rows with their
organisation and policy (read once, with the Core), why a request may not run now, and the
database parts an earlier run of it left."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from vern.accounts.models import Organisation
from vern.core.db import Database, Scope
from vern.core.errors import Conflict, NotFound
from vern.rights.intake import details_of, identities_of
from vern.rights.models import Part, Policy, RightsRequest, Status, Task

# A running request whose heartbeat is older than this has lost its runner: another may take it.
STALE_AFTER = timedelta(minutes=5)

# Statements a run writes on the engine's bare connection (no tenant scope) address rows by
# request id only: their reason for crossing tenants.
ENGINE_ROWS = "rights engine: rows of requests loaded by id"

_T_REQUESTS: Any = RightsRequest.__table__


def read_requests(session: Session, request_ids: list[str]) -> dict[str, Any]:
    """The rows of ``load_statement`` for ``request_ids``, by request id."""
    one = len(request_ids) == 1
    rows = (
        session.connection()
        .execute(load_statement(one), {"ids": request_ids[0] if one else request_ids})
        .all()
    )
    return {r.id: r for r in rows}


@functools.cache


def load_statement(one: bool) -> Any:
    """What a run reads of its requests, prepared once (Core: no ORM objects are needed)."""
    t = _T_REQUESTS
    ids: Any = bindparam("ids")
    return (
        select(
            t.c.id,
            t.c.org_id,
            t.c.kind,
            t.c.status,
            t.c.attempts,
            t.c.heartbeat_at,
            t.c.key_id,
            t.c.channel,
            t.c.locale,
            t.c.received_at,
            t.c.identities,
            t.c.details,
            t.c.subject_ref,
            Organisation.name.label("org_name"),
            Organisation.slug.label("org_slug"),
            Policy.product_tenant_key,
            Policy.answer_nobody_found,
        )
        .join(Organisation.__table__, Organisation.id == t.c.org_id)
        .outerjoin(Policy.__table__, Policy.org_id == t.c.org_id)
        .where(t.c.id == ids if one else t.c.id.in_(bindparam("ids", expanding=True)))
    )


def skip_reason(req: Any, shared: set[str], *, stale: datetime, resume: bool,
                strict: bool) -> str | None:
    """Why the request of row ``req`` (None: there is no such request) is left out of a run, or
    None when it may be claimed. ``strict`` raises instead (a single run), except when another
    runner holds the request. ``shared``: organisations whose product key is another's."""
    if req is None:
        if strict:
            raise NotFound(detail="no such request")
        return "skipped: no such request"
    problem = _refusal(req, shared)
    if problem is not None:
        if strict:
            raise Conflict(detail=problem)
        return f"skipped: {problem}"
    if not _claimable(req, stale=stale, resume=resume):
        return "skipped: taken by another runner"
    return None


def _refusal(req: Any, shared: set[str]) -> str | None:
    """Why a request cannot run at all yet: not verified or approved, or its customer's product
    key is another organisation's (it would reach the other's people)."""
    if req.status in (Status.UNVERIFIED.value, Status.AWAITING_APPROVAL.value):
        return f"the request is {req.status} and cannot run yet"
    if req.org_id in shared:
        return ("the customer's product key is another organisation's; the vendor "
                "must correct the mapping first")
    return None


def _claimable(req: Any, *, stale: datetime, resume: bool) -> bool:
    """Queued, or running without a live runner (its heartbeat gone stale, or ``resume``)."""
    return req.status == Status.QUEUED.value or (
        req.status == Status.RUNNING.value
        and (resume or req.heartbeat_at is None or req.heartbeat_at < stale)
    )


def job_fields(req: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields of the engine's ``Job`` for the row ``req``, and those of its ``Subject``."""
    details = details_of(req)
    job = {
        "request_id": req.id,
        "org_id": req.org_id,
        "kind": req.kind,
        "status": req.status,
        "attempts": req.attempts,
        "key_id": req.key_id,
        "channel": req.channel,
        "locale": req.locale,
        "received_at": req.received_at,
        "org_name": req.org_name or "",
        "org_slug": req.org_slug or req.org_id,
        "purpose": details.get("purpose"),
        "answer_nobody_found": bool(req.answer_nobody_found),
    }
    subject = {
        "org_id": req.org_id,
        "tenant_value": req.product_tenant_key or req.org_id,
        "identities": identities_of(req),
        "subject_ref": req.subject_ref,
        "corrections": details.get("corrections") or {},
    }
    return job, subject


def earlier_parts(session: Session, request_ids: list[str]) -> list[tuple[str, str, tuple[Any, ...]]]:
    """The database parts earlier runs of ``request_ids`` left, as (request id, database, the
    fields of the engine's ``PartState``: part id, status, whether it has tasks, rows found,
    rows done, error). Nothing is read when ``request_ids`` is empty."""
    if not request_ids:
        return []
    with_tasks = set(
        session.scalars(select(Task.part_id).where(Task.request_id.in_(request_ids)).distinct())
    )
    return [
        (part.request_id, part.database,
         (part.id, part.status, part.id in with_tasks, part.rows_found, part.rows_done, part.error))
        for part in session.execute(
            select(
                Part.id,
                Part.request_id,
                Part.database,
                Part.status,
                Part.rows_found,
                Part.rows_done,
                Part.error,
            ).where(Part.request_id.in_(request_ids))
        )
    ]


def request_row_status(database: Database, request_id: str) -> str:
    with database.transaction(Scope.system("read rights request")) as session:
        status = session.scalar(select(RightsRequest.status).where(RightsRequest.id == request_id))
    if status is None:
        raise NotFound(detail="no such request")
    return str(status)
