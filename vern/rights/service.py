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

from sqlalchemy import JSON, bindparam, or_, select, update
from sqlalchemy.orm import Session

from vern.accounts.models import Organisation
from vern.core.config import rights_settings
from vern.core.db import Database, Scope, UTCDateTime, execute_fast, utcnow
from vern.core.errors import Conflict, InvalidInput, NotFound
from vern.core.i18n import N_, format_duration, gettext
from vern.datamap.model import DataMap
from vern.datamap.service import current_map
from vern.notify import service as notify
from vern.rights.connectors import REFUSED
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
    store_answer,
)
from vern.rights.expiry import delete_closed_requests, forget_subject_requests, shred_closed_requests
from vern.rights.flags import FLAG_KINDS, active_flags, add_flags, lift_flag
from vern.rights.identities import clean_identities, identity_refs, secret, subject_ref
from vern.rights.intake import (
    create_request,
    details_of,
    get_request,
    identities_of,
    list_requests,
    set_status,
)
from vern.rights.models import Kind, RightsRequest, Status, Task
from vern.rights.packages import build_zip
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
    ENGINE_ROWS,
    STALE_AFTER,
    earlier_parts,
    job_fields,
    read_requests,
    request_row_status,
    skip_reason,
)
from vern.rights.runtime import secret as vendor_secret
from vern.rights.staff_notices import GIVEN_UP_MAIL, request_link, send_reminders, staff_for_last_attempts
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

WRITE_KINDS = (Kind.ERASURE.value, Kind.RECTIFICATION.value)


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
    from vern.rights import external

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
    from vern.rights.engine import Engine

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
    from vern.rights.engine import Engine

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
    from vern.rights.engine import Job, PartState, Subject

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


DONE_MAIL = (
    N_("Your request has been handled"),
    N_("Your request (%(kind)s) to %(org)s has been handled.%(extra)s"),
)
LINK_TEXT = N_("\n\nDownload your data here (the link works for %(duration)s):\n%(link)s")
NOBODY_MAIL = (
    N_("Your request has been handled"),
    N_("Your request (%(kind)s) to %(org)s has been handled. We searched our systems and found "
       "no data about you."),
)

_T_REQUESTS: Any = RightsRequest.__table__
_T_TASKS: Any = Task.__table__
_FINISH = (
    update(_T_REQUESTS)
    .where(_T_REQUESTS.c.id == bindparam("w_id"))
    .values(
        status=bindparam("status"),
        summary=bindparam("summary", type_=JSON()),
        error=bindparam("error"),
        completed_at=bindparam("completed_at", type_=UTCDateTime()),
        heartbeat_at=bindparam("now", type_=UTCDateTime()),
        progress_done=_T_REQUESTS.c.progress_done + bindparam("moved"),
    )
).execution_options(cross_tenant=ENGINE_ROWS)


def finish_job(session: Session, job: Any) -> str:
    """Close a claimed run (``vern.rights.engine.Job``) in the caller's transaction: done only
    when every database part is done - then the answer of a read request is stored, the person
    is told and the rows found are forgotten; otherwise partial, naming the parts that failed."""
    if job.kind in FLAG_KINDS:
        add_flags(session, job.org_id, job.request_id, job.kind, job.subject.identities, job.purpose)
    parts = job.outcome
    summary = _summary(job, parts)
    now = utcnow()
    if not all(status == "done" for status, _f, _d, _e in parts.values()):
        return _finish_partial(session, job, summary, now)
    nobody = job.kind not in FLAG_KINDS and bool(parts) and summary["rows_found"] == 0
    if nobody:
        if not job.answer_nobody_found:
            return _nobody_found(session, job, summary, now)
        summary["searched"] = job.searched  # the customer answers "nobody found" without review
    return _finish_done(session, job, summary, now, nobody=nobody)


def _summary(job: Any, parts: dict[str, tuple[str, int, int, str | None]]) -> dict[str, Any]:
    """What the run did per database part (stored on the request), and what it kept."""
    summary: dict[str, Any] = {
        "databases": {
            name: {"status": status, "rows_found": found, "rows_done": rows_done, "error": error}
            for name, (status, found, rows_done, error) in sorted(parts.items())
        },
        "rows_found": sum(found for _s, found, _d, _e in parts.values()),
    }
    if parts and summary["rows_found"] == 0:
        summary["note"] = "the identities given match no one in the connected databases"
    kept = getattr(job, "kept", None)
    if kept:
        summary["kept"] = kept
    return summary


def _finish_partial(session: Session, job: Any, summary: dict[str, Any], now: datetime) -> str:
    """Some part failed: the request is partly done, retried automatically until its attempts
    are used up - then the staff who can act are told."""
    parts = job.outcome
    failed = sorted(name for name, (status, *_rest) in parts.items() if status == "failed")
    error = _failure_text(parts, failed)
    _close(session, job, Status.PARTIAL, summary, error=error, completed_at=None, now=now)
    attempt = job.attempts + 1  # this run's claim counted it
    last = attempt >= rights_settings().retry_max_attempts
    _audit_status(session, job, Status.PARTIAL, "rights.request.partial",
                  {"failed": failed, "attempt": attempt, "retried": not last})
    if last:
        _tell_staff_given_up(session, job, attempt, error)
    job.result = Status.PARTIAL.value
    return job.result


def _failure_text(parts: dict[str, tuple[str, int, int, str | None]], failed: list[str]) -> str:
    """The request's error: the systems that refused it (with their reason), then those that
    could not be reached."""
    refused = [n for n in failed if (parts[n][3] or "").startswith(REFUSED)]
    missed = [n for n in failed if n not in refused]
    said = [f"refused by {n}: {(parts[n][3] or '')[len(REFUSED):]}" for n in refused]
    if missed:
        said.append("not reached: " + ", ".join(missed))
    return "; ".join(said) if said else "incomplete"


def _finish_done(session: Session, job: Any, summary: dict[str, Any], now: datetime, *,
                 nobody: bool) -> str:
    """Every part is done: an erasure also erases the person in Vern, a read request's answer is
    stored, the plans' rows are forgotten and the person is told (``nobody``: that no data about
    them was found)."""
    parts = job.outcome
    if job.kind in WRITE_KINDS and summary["rows_found"] and not sum(d for _s, _f, d, _e in parts.values()):
        summary["note"] = "nothing was changed: every row found already holds what the request asks"
    if job.kind == Kind.ERASURE.value:
        summary["vern"] = _erase_in_vern(session, job.org_id, job.subject.identities, job.request_id)
    link = None
    if job.package is not None:
        link = store_answer(session, job, job.package)
    if job.stored:  # plans run from storage still hold the rows found; they are not kept
        session.connection().execute(
            update(_T_TASKS).where(_T_TASKS.c.request_id == job.request_id).values(plan=None)
        )
    _close(session, job, Status.DONE, summary, error=None, completed_at=now, now=now)
    _audit_status(session, job, Status.DONE, "rights.request.complete", {"rows_found": summary["rows_found"]})
    _tell(session, job, link, nobody=nobody)
    job.result = Status.DONE.value
    return job.result


def _close(session: Session, job: Any, status: Status, summary: dict[str, Any], *,
           error: str | None, completed_at: datetime | None, now: datetime) -> None:
    """Write the run's end on the request's row (one kept statement on the engine's connection)."""
    execute_fast(
        session.connection(),
        _FINISH,
        {
            "w_id": job.request_id,
            "status": status.value,
            "summary": summary,
            "error": error,
            "completed_at": completed_at,
            "now": now,
            "moved": job.moved,
        },
    )


def _erase_in_vern(session: Session, org_id: str, identities: dict[str, str],
                   request_id: str) -> dict[str, int]:
    from vern.retention.erasure import erase_in_vern

    return erase_in_vern(session, org_id=org_id, identities=identities, request_id=request_id)


def replay_erasures(database: Database, database_name: str, since: datetime, *,
                    urls: dict[str, str] | None = None,
                    actor_user_id: str | None = None) -> dict[str, Any]:
    """``vern rights replay`` for other parts of Vern (the restore drill): erase again, in the
    product database ``database_name`` of the published map (restored from a backup of its own
    taken at ``since``), every erasure the ledger recorded since then. Returns ``{"database",
    "since", "entries", "rows", "tables"}``. An unknown database is refused naming ``database``;
    a replay that cannot be done raises (``ledger.ReplayError``, ``connectors.Unreachable``),
    writing nothing."""
    from vern.rights import ledger

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


def _nobody_found(session: Session, job: Any, summary: dict[str, Any], now: Any) -> str:
    """No row matched anywhere: not a silent "done". The request waits for staff, showing what
    was searched; the person is answered when staff confirm (``confirm_nobody_found``)."""
    summary["searched"] = getattr(job, "searched", {})
    _close(session, job, Status.NOBODY_FOUND, summary, error=None, completed_at=None, now=now)
    _audit_status(session, job, Status.NOBODY_FOUND, "rights.request.nobody_found", {"rows_found": 0})
    job.result = Status.NOBODY_FOUND.value
    return job.result


def _audit_status(session: Session, job: Any, status: Status, action: str, extra: dict[str, Any]) -> None:
    from vern.rights.engine import book

    book(
        session,
        action,
        org_id=job.org_id,
        resource=f"rights_request:{job.request_id}",
        details={"old": {"status": Status.RUNNING.value}, "new": {"status": status.value, **extra}},
    )


def _tell(session: Session, job: Any, link: str | None, *, nobody: bool = False) -> None:
    email = job.subject.identities.get("email")
    if not email or job.channel == "api":
        return
    lang = job.locale
    days = format_duration(f"{rights_settings().download_days} days", lang)
    extra = gettext(lang, LINK_TEXT, duration=days, link=link) if link and not nobody else ""
    subject, body = NOBODY_MAIL if nobody else DONE_MAIL
    from vern.rights.engine import book_mail

    book_mail(
        session,
        key_id=job.key_id,
        to=email,
        kind="rights.done",
        org_id=job.org_id,
        subject=gettext(lang, subject),
        body=gettext(lang, body, kind=gettext(lang, job.kind), org=job.org_name, extra=extra),
    )


def build_package(data_map: DataMap, job: Any, rows: dict[str, dict[str, list[dict[str, Any]]]]) -> bytes:
    """The zip answering an access or portability request (built before any transaction)."""
    from vern.rights.external import ANSWERS

    return build_zip(
        data_map,
        rows,
        external=ANSWERS.get().get(job.request_id),
        request_id=job.request_id,
        kind=job.kind,
        org_name=job.org_name,
        received=job.received_at,
        locale=job.locale,
    )


def _tell_staff_given_up(session: Session, job: Any, attempts: int, error: str) -> None:
    """The automatic retries are used up: tell the people who can act (in the finish's
    transaction, through the outbox)."""
    from vern.rights.engine import book, book_mail

    told = 0
    for key_id, email, locale in job.staff:
        lang = locale
        subject, body = GIVEN_UP_MAIL
        book_mail(
            session,
            key_id=key_id,
            to=email,
            kind="rights.retries_exhausted",
            org_id=job.org_id,
            subject=gettext(lang, subject),
            body=gettext(lang, body, kind=gettext(lang, job.kind), attempts=attempts, error=error,
                         link=request_link(job.request_id)),
        )
        told += 1
    book(
        session,
        "rights.request.retries_exhausted",
        org_id=job.org_id,
        resource=f"rights_request:{job.request_id}",
        outcome="failure",
        details={"new": {"attempts": attempts, "told": told}},
    )


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
        from vern.rights import external

        external.send_notices(database, data_map)  # any left over by a crash after a request finished
    else:
        results = list(run_batch(database, ids, data_map=data_map, urls=urls).items())
    notify.deliver_pending(database)
    return results


def external_needed(data_map: DataMap) -> bool:
    from vern.rights import external

    return external.needed(data_map)
