"""Decisions on a request by staff - approve (four-eyes), reject, cancel, extend the deadline,
retry - and the worker's own retry of a partly done request after a growing wait."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.access.service import check_second_person
from vern.audit.service import record
from vern.core.config import RightsSettings, rights_settings
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import Conflict, InvalidInput
from vern.core.i18n import N_, format_day, gettext
from vern.notify import service as notify
from vern.rights.deadlines import add_months
from vern.rights.intake import get_request, identities_of, set_status
from vern.rights.models import OPEN_STATUSES, RightsRequest, Status


def approve(
    session: Session, request_id: str, *, actor_user_id: str | None, person_id: str | None = None
) -> RightsRequest:
    """Four-eyes: the approving person (``person_id``, for an API token its creator; defaults to
    ``actor_user_id``) must be named and be neither who filed the request nor who attested the
    person's identity."""

    req = get_request(session, request_id)
    if req.status != Status.AWAITING_APPROVAL.value:
        raise Conflict(detail="only a request awaiting approval can be approved (it is %(status)s)",
                       params={"status": req.status})
    approver = person_id or actor_user_id
    check_second_person(approver, req.created_by, req.attested_by)
    req.approved_at = utcnow()
    req.approved_by = approver
    set_status(session, req, Status.QUEUED, actor_user_id=actor_user_id, action="rights.request.approve")
    return req


def reject(session: Session, request_id: str, *, actor_user_id: str | None, reason: str) -> RightsRequest:
    req = get_request(session, request_id)
    if req.status not in (Status.UNVERIFIED.value, Status.AWAITING_APPROVAL.value, Status.QUEUED.value):
        raise Conflict(detail="a request that is %(status)s cannot be rejected",
                       params={"status": req.status})
    if not reason.strip():
        raise InvalidInput.on("reason", "say why the request is rejected (the person is told)")
    req.decision_note = reason.strip()[:2000]
    req.completed_at = utcnow()
    set_status(session, req, Status.REJECTED, actor_user_id=actor_user_id, action="rights.request.reject")
    return req


def cancel(session: Session, request_id: str, *, actor_user_id: str | None) -> RightsRequest:
    req = get_request(session, request_id)
    if req.status not in (Status.UNVERIFIED.value, Status.AWAITING_APPROVAL.value, Status.QUEUED.value):
        raise Conflict(detail="a request that is %(status)s cannot be cancelled",
                       params={"status": req.status})
    req.completed_at = utcnow()
    set_status(session, req, Status.CANCELLED, actor_user_id=actor_user_id, action="rights.request.cancel")
    return req


EXTENSION_MAIL = (
    N_("The answer to your request will take longer"),
    N_("We need more time to answer your request. The new deadline is %(due)s.\nReason: %(reason)s"),
)


def extend(
    session: Session, request_id: str, *, months: int, reason: str, actor_user_id: str | None
) -> RightsRequest:
    """Art. 12(3): up to two further months, with the reason told to the person within the first."""
    req = get_request(session, request_id)
    cfg = rights_settings()
    if req.status not in [s.value for s in OPEN_STATUSES]:
        raise Conflict(detail="only an open request can be extended")
    if req.extended_due_at is not None:
        raise Conflict(detail="the deadline has already been extended once")
    if not 1 <= months <= cfg.max_extension_months:
        raise InvalidInput.on("months", "extend by 1 to %(n)s months", n=cfg.max_extension_months)
    if not reason.strip():
        raise InvalidInput.on("reason", "the person must be told why")
    if utcnow() >= req.due_at:
        raise Conflict(detail="an extension must be given within the first month")
    req.extended_due_at = add_months(req.due_at, months)
    req.extension_reason = reason.strip()[:2000]
    email = identities_of(req).get("email")
    if email:
        subject, body = EXTENSION_MAIL
        notify.queue(
            session,
            key_id=req.key_id,
            to=email,
            kind="rights.extension",
            org_id=req.org_id,
            subject=gettext(req.locale, subject),
            body=gettext(req.locale, body, due=format_day(req.extended_due_at, req.locale),
                         reason=req.extension_reason),
        )
    record(
        session,
        "rights.request.extend",
        org_id=req.org_id,
        actor_user_id=actor_user_id,
        resource=f"rights_request:{req.id}",
        details={
            "old": {"due_at": req.due_at.isoformat()},
            "new": {"due_at": req.extended_due_at.isoformat(), "told_person": bool(email)},
        },
    )
    return req


def retry(session: Session, request_id: str, *, actor_user_id: str | None) -> RightsRequest:
    req = get_request(session, request_id)
    if req.status != Status.PARTIAL.value:
        raise Conflict(detail="only a partly done request can be retried")
    set_status(session, req, Status.QUEUED, actor_user_id=actor_user_id, action="rights.request.retry")
    return req


def retry_backoff(attempts: int, cfg: RightsSettings | None = None) -> timedelta:
    """How long a partly done request waits before the worker runs it again, after ``attempts``
    runs: the base wait, doubled per earlier attempt, at most the maximum."""
    cfg = cfg or rights_settings()
    seconds = cfg.retry_backoff_seconds * 2 ** max(0, min(attempts - 1, 30))
    return timedelta(seconds=min(seconds, cfg.retry_backoff_max_seconds))


def requeue_partial(database: Database, *, now: datetime | None = None, limit: int = 50) -> list[str]:
    """The worker's automatic retry: partly done requests whose wait is over (``retry_backoff``)
    and that have attempts left go back to the queue (audited). Returns their ids."""
    cfg = rights_settings()
    now = now or utcnow()
    requeued: list[str] = []
    with database.transaction(Scope.system("retry partly done rights requests")) as session:
        candidates = session.scalars(
            select(RightsRequest)
            .where(
                RightsRequest.status == Status.PARTIAL.value,
                RightsRequest.attempts < cfg.retry_max_attempts,
            )
            .order_by(RightsRequest.heartbeat_at)
            .limit(limit)
        ).all()
        for req in candidates:
            since = req.heartbeat_at or req.completed_at or req.received_at
            if since + retry_backoff(req.attempts, cfg) > now:
                continue
            set_status(session, req, Status.QUEUED, actor_user_id=None, action="rights.request.retry",
                       extra={"automatic": True, "attempt": req.attempts + 1})
            requeued.append(req.id)
    return requeued
