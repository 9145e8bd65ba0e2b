"""Data subject requests from intake to answer. Every change is audited in its own transaction.

Life of a request::

    unverified ──code/sign-in──▶ awaiting_approval ──approve──▶ queued ──▶ running ──▶ done
         │                        (erasure, rectification)       ▲           │
         └──────── cancel / reject ◀──────────────────────────────┘        partial ──retry──▶ queued

Unverified requests never run (Art. 12(6)). Erasure and rectification wait for approval by the
customer's admin or the privacy officer unless the customer's policy says otherwise.

This module runs requests (with the engine and the connectors to systems outside SQL) and closes
each run. It is the domain's public service: the rest is imported back from the sibling modules
that hold it - identities, policy, deadlines, intake (a request and its states), verification
(the one-time code), decisions, flags, downloads (answer packages), staff_notices, product_map,
run_inputs (what a run reads first) and expiry (how long requests are kept).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from vern.accounts.models import Organisation
from vern.core.config import rights_settings
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import Conflict, InvalidInput, NotFound
from vern.core.i18n import gettext
from vern.datamap.model import DataMap
from vern.datamap.service import current_map
from vern.notify import service as notify
from vern.rights import external, ledger
from vern.rights.deadlines import add_months, due_date, due_state
from vern.rights.decisions import (
    approve,
    cancel,
    extend,
    reject,
    requeue_partial,
    retry,
    retry_backoff,
)
from vern.rights.downloads import (
    build_export_package,
    download,
    download_for_staff,
    download_link,
    new_package,
    renew_link,
)
from vern.rights.engine import Engine, Job, PartState, Subject
from vern.rights.expiry import delete_closed_requests, forget_subject_requests, shred_closed_requests
from vern.rights.finish import (
    DONE_MAIL,
    LINK_TEXT,
    NOBODY_MAIL,
    WRITE_KINDS,
    _erase_in_vern,
    build_package,
    finish_job,
)
from vern.rights.flags import FLAG_KINDS, active_flags, lift_flag
from vern.rights.identities import clean_identities, identity_refs, secret, subject_ref
from vern.rights.intake import (
    create_request,
    details_of,
    get_request,
    identities_of,
    list_requests,
    set_status,
)
from vern.rights.models import Kind, RightsRequest, Status
from vern.rights.policy import (
    EffectivePolicy,
    key_in_use,
    policy_for,
    product_keys,
    set_policy,
    set_tenant_policy,
    shared_keys,
)
from vern.rights.product_map import map_if_needed, published_map, published_map_or_none, replay_targets
from vern.rights.run_inputs import (
    STALE_AFTER,
    earlier_parts,
    job_fields,
    read_requests,
    request_row_status,
    skip_reason,
)
from vern.rights.runtime import secret as vendor_secret
from vern.rights.staff_notices import request_link, send_reminders, staff_for_last_attempts
from vern.rights.verification import CodeResult, check_code, code_error, send_code

__all__ = [
    "DONE_MAIL", "FLAG_KINDS", "LINK_TEXT", "NOBODY_MAIL", "STALE_AFTER", "WRITE_KINDS", "CodeResult",
    "EffectivePolicy", "active_flags", "add_months", "approve", "build_export_package", "build_package",
    "cancel", "check_code", "clean_identities", "code_error", "confirm_nobody_found", "create_request",
    "delete_closed_requests", "details_of", "download", "download_for_staff", "download_link", "due_date",
    "due_state", "extend", "external_needed", "finish_job", "forget_subject_requests", "get_request",
    "identities_of", "identity_refs", "key_in_use", "lift_flag", "list_requests", "policy_for",
    "product_keys", "published_map_or_none", "reject", "renew_link", "replay_erasures", "replay_targets",
    "request_row_status", "requeue_partial", "retry", "retry_backoff", "run", "run_batch", "run_pending",
    "secret", "send_code", "send_reminders", "set_policy", "set_tenant_policy", "shred_closed_requests",
    "subject_ref",
]

# Earlier private names that other modules of the domain (and tests) still import from here.
_set_status = set_status
_request_link = request_link
_published_map = published_map
_new_package = new_package

log = logging.getLogger("vern.rights")

def confirm_nobody_found(
    session: Session, request_id: str, *, actor_user_id: str | None, note: str = ""
) -> RightsRequest:
    """Staff have looked at what was searched and confirm that no data about the person is held:
    only now is the request done and the person told so."""
    req = get_request(session, request_id)
    if req.status != Status.NOBODY_FOUND.value:
        raise Conflict(detail="only a request that found nobody can be confirmed as such")
    req.completed_at = utcnow()
    if req.kind == Kind.ERASURE.value:  # nobody in the product's databases, maybe in Vern's own
        req.summary = {**(req.summary or {}),
                       "vern": _erase_in_vern(session, req.org_id, identities_of(req), req.id)}
    set_status(
        session,
        req,
        Status.DONE,
        actor_user_id=actor_user_id,
        action="rights.request.confirm_nobody_found",
        extra={"note": note.strip()[:2000]} if note.strip() else None,
    )
    email = identities_of(req).get("email")
    if email and req.channel != "api":
        subject, body = NOBODY_MAIL
        lang = req.locale
        org = session.get(Organisation, req.org_id)
        notify.queue(
            session,
            key_id=req.key_id,
            to=email,
            kind="rights.nobody_found",
            org_id=req.org_id,
            subject=gettext(lang, subject),
            body=gettext(lang, body, kind=gettext(lang, req.kind),
                         org=org.name if org is not None else ""),
        )
    return req


# -- running ---------------------------------------------------------------------------------------


def run(
    database: Database,
    request_id: str,
    *,
    data_map: DataMap | None = None,
    urls: dict[str, str] | None = None,
    on_step: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    resume: bool = False,
    batch_rows: int | None = None,
) -> str:
    """Claim and carry out a request; returns its status. ``resume`` takes over a running request
    (after a crash) without waiting for its heartbeat to go stale."""
    if data_map is None:
        data_map = map_if_needed(database, request_id)  # a missing map leaves the request queued
    outside = data_map if data_map is not None else published_map_or_none(database)
    if outside is not None and external.needed(outside):  # systems outside SQL go first
        left = external.prepare(database, outside, request_id)
        if left is not None:
            return left
        token = external.ANSWERS.set({request_id: external.answers(database, outside, request_id)})
        try:
            status = _run_engine(database, request_id, data_map, urls=urls, on_step=on_step,
                                 on_progress=on_progress, resume=resume, batch_rows=batch_rows)
        finally:
            external.ANSWERS.reset(token)
        if status == Status.DONE.value:
            external.send_notices(database, outside, request_id)
        return status
    return _run_engine(database, request_id, data_map, urls=urls, on_step=on_step,
                       on_progress=on_progress, resume=resume, batch_rows=batch_rows)


def _run_engine(
    database: Database,
    request_id: str,
    data_map: DataMap | None,
    *,
    urls: dict[str, str] | None,
    on_step: Callable[[str], None] | None,
    on_progress: Callable[[int, int], None] | None,
    resume: bool,
    batch_rows: int | None,
) -> str:
    engine = Engine(
        database,
        data_map or DataMap(systems={}),
        secret(),
        urls=urls,
        batch_rows=batch_rows or rights_settings().batch_rows,
        on_step=on_step,
        on_progress=on_progress,
    )
    try:
        jobs, skipped = _load_jobs(engine, [request_id], resume=resume, strict=True)
    except BaseException:
        engine.close()
        raise
    if skipped:
        engine.close()
        return request_row_status(database, request_id)
    try:
        staff_for_last_attempts(database, jobs)
    except BaseException:
        engine.close()
        raise
    engine.process(jobs)  # on the connection the request was loaded with; closes it
    if not jobs[0].claimed:
        return request_row_status(database, request_id)
    return str(jobs[0].result)


def run_batch(
    database: Database,
    request_ids: list[str],
    *,
    data_map: DataMap | None = None,
    urls: dict[str, str] | None = None,
) -> dict[str, str]:
    """Carry out several queued requests with shared bookkeeping transactions (the worker's way
    of draining a queue); each request ends exactly as if it had been run alone."""
    if data_map is None:
        data_map = published_map(database)
    engine = Engine(database, data_map, secret(), urls=urls, batch_rows=rights_settings().batch_rows)
    try:
        jobs, results = _load_jobs(engine, request_ids, resume=False, strict=False)
        staff_for_last_attempts(database, jobs)
    except BaseException:
        engine.close()
        raise
    engine.process(jobs)
    for job in jobs:
        results[job.request_id] = job.result if job.claimed else "skipped: taken by another runner"
    return {rid: results[rid] for rid in request_ids if rid in results}


def _load_jobs(
    engine: Any, request_ids: list[str], *, resume: bool, strict: bool
) -> tuple[list[Any], dict[str, str]]:
    """Everything a run needs, read without changing anything (``Engine.reading``): (jobs that may
    be claimed, {request id: why not} for the rest). ``strict`` raises instead (a single run)."""
    jobs: list[Any] = []
    skipped: dict[str, str] = {}
    stale = utcnow() - STALE_AFTER
    with engine.reading() as session:
        by_id = read_requests(session, request_ids)
        shared = shared_keys(session, {r.org_id: r.product_tenant_key for r in by_id.values()
                                       if r.product_tenant_key})
        for request_id in request_ids:
            req = by_id.get(request_id)
            why = skip_reason(req, shared, stale=stale, resume=resume, strict=strict)
            if why is not None:
                skipped[request_id] = why
                continue
            job, subject = job_fields(req)
            jobs.append(Job(**job, subject=Subject(**subject)))
        again = [j.request_id for j in jobs if j.attempts]  # only these can have parts already
        by_request = {j.request_id: j for j in jobs}
        for request_id, database, state in earlier_parts(session, again):
            by_request[request_id].parts[database] = PartState(*state)
    return jobs, skipped


def replay_erasures(database: Database, database_name: str, since: datetime, *,
                    urls: dict[str, str] | None = None,
                    actor_user_id: str | None = None) -> dict[str, Any]:
    """``vern rights replay`` for other parts of Vern (the restore drill): erase again, in the
    product database ``database_name`` of the published map (restored from a backup of its own
    taken at ``since``), every erasure the ledger recorded since then. Returns ``{"database",
    "since", "entries", "rows", "tables"}``. An unknown database is refused naming ``database``;
    a replay that cannot be done raises (``ledger.ReplayError``, ``connectors.Unreachable``),
    writing nothing."""
    with database.transaction(Scope.system("replay erasures")) as session:
        data_map = current_map(session)
    if data_map is None:
        raise InvalidInput.on("database", "no product data map is published")
    try:
        data_map.database(database_name)
    except KeyError:
        raise InvalidInput.on("database", "not a database of the published map") from None
    result = ledger.replay(database, data_map, database_name, since, secret=vendor_secret(),
                           urls=urls, actor_user_id=actor_user_id)
    return {"database": result.database, "since": since.isoformat(), "entries": result.entries,
            "rows": result.rows, "tables": dict(result.tables)}


def run_pending(
    database: Database, *, limit: int = 50, urls: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """The worker's step: put partly done requests whose wait is over back in the queue, run
    queued requests and take over ones whose runner died."""
    requeue_partial(database, limit=limit)
    stale = utcnow() - STALE_AFTER
    with database.transaction(Scope.system("find runnable rights requests")) as session:
        ids = list(
            session.scalars(
                select(RightsRequest.id)
                .where(
                    or_(
                        RightsRequest.status == Status.QUEUED.value,
                        (RightsRequest.status == Status.RUNNING.value) & (RightsRequest.heartbeat_at < stale),
                    )
                )
                .order_by(RightsRequest.received_at)
                .limit(limit)
            )
        )
    try:
        data_map = published_map(database)
    except Conflict as exc:  # no map published yet: the requests stay queued
        return [(request_id, f"waiting: {exc}") for request_id in ids]
    if external_needed(data_map):  # systems outside SQL: one request at a time, those first
        results = []
        for rid in ids:
            try:
                results.append((rid, run(database, rid, data_map=data_map, urls=urls)))
            except (Conflict, NotFound) as exc:
                results.append((rid, f"skipped: {exc}"))
            except Exception as exc:  # noqa: BLE001 - one damaged request never holds up the next
                log.error("rights request %s failed in the worker: %s", rid, type(exc).__name__)
                results.append((rid, f"failed: {type(exc).__name__}"))
            external.send_notices(database, data_map)  # any left over by a crash after a request finished
    else:
        results = list(run_batch(database, ids, data_map=data_map, urls=urls).items())
    notify.deliver_pending(database)
    return results


def external_needed(data_map: DataMap) -> bool:
    return external.needed(data_map)
