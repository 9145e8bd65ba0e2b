"""Access reviews: a campaign over the privileged accounts of one organisation, opened by its
administrator or each period by the worker; every account is kept or revoked by someone other
than its holder, revocations take effect at once, and the result is kept as evidence."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.access.checks import SelfApprovalForbidden, audit_record, require_manager, stated_text
from vern.access.models import AccessReview, AccessReviewItem
from vern.accounts import service as accounts
from vern.accounts.models import User
from vern.accounts.roles import PRIVILEGED_ROLES, OrgKind, Perm, Role, permissions
from vern.accounts.service import Actor
from vern.core.config import get_settings
from vern.core.db import utcnow
from vern.core.errors import Conflict, FieldError, InvalidInput, NotFound
from vern.core.i18n import N_, gettext
from vern.notify import service as notify

REVIEW_DAYS = 14


def open_review(session: Session, *, actor: Actor, title: str = "",
                days: int = REVIEW_DAYS) -> AccessReview:
    """A campaign over every privileged account of the actor's organisation (a customer's for
    its administrator, the vendor's for the vendor's security officer), with roles and last
    activity as they are now."""
    require_manager(actor)
    if not 1 <= days <= 90:
        raise InvalidInput.on("days", "must be 1-%(n)s", n=90)
    return _open_review(session, org_id=actor.org_id, actor=actor,
                        title=stated_text("title", title, required=False)[:200], days=days,
                        now=utcnow())


def _open_review(session: Session, *, org_id: str, actor: Actor | None, title: str, days: int,
                 now: datetime, period: str | None = None) -> AccessReview:
    review = AccessReview(org_id=org_id, title=title or f"Access review {now:%Y-%m-%d}",
                          opened_by=actor.person_id if actor else None, opened_at=now,
                          due_at=now + timedelta(days=days))
    session.add(review)
    session.flush()
    count = 0
    for user, membership in accounts.list_members(session, roles=PRIVILEGED_ROLES,
                                                  enabled_only=True):
        session.add(AccessReviewItem(org_id=org_id, review_id=review.id, user_id=user.id,
                                     role=membership.role, last_activity_at=user.last_sign_in_at))
        count += 1
    details: dict[str, Any] = {"new": {"accounts": count, "due_at": review.due_at.isoformat()}}
    if period is not None:
        details["scheduled"] = period
    audit_record(session, "access.review.opened", actor, org_id, f"access_review:{review.id}", details)
    return review


# -- access reviews on schedule (the worker) ------------------------------------------------------


def review_period(now: datetime, months: int) -> tuple[datetime, str]:
    """The start (UTC) and name of the review period ``now`` falls in: periods of ``months``
    months counted from January (3: quarters, named ``2026-Q4``)."""
    first = (now.month - 1) // months * months + 1
    start = now.replace(month=first, day=1, hour=0, minute=0, second=0, microsecond=0)
    if months == 3:
        return start, f"{now.year}-Q{(first - 1) // 3 + 1}"
    if months == 12:
        return start, f"{now.year}"
    return start, f"{now.year}-{first:02d}+{months}m"


REVIEW_MAIL = (
    N_("Access review in %(org)s: %(title)s"),
    N_("The periodic access review of %(org)s is open: %(n)s privileged accounts to keep or "
       "revoke by %(due)s (UTC). Nobody reviews their own account.\nReview them: %(link)s"),
)


def _reviewers(session: Session, org_kind: OrgKind) -> list[User]:
    """Who decides a campaign: the members whose role may manage access here."""
    managers = {role for role in Role
                if Perm.ACCESS_MANAGE in permissions(role, org_kind=org_kind, home=True)}
    return [user for user, _membership in accounts.list_members(session, roles=managers,
                                                                enabled_only=True)]


def open_scheduled_review(session: Session, *, org_id: str, months: int,
                          now: datetime | None = None) -> AccessReview | None:
    """Open this period's campaign in the session's organisation (``org_id``) unless the worker
    already opened one in it - the campaigns are the record, so a restart or a second run in
    the same period opens nothing - or there is no privileged account to review. The reviewers
    are told through the outbox, in the campaign's transaction."""
    now = now or utcnow()
    start, period = review_period(now, months)
    done = session.scalar(select(AccessReview.id).where(
        AccessReview.org_id == org_id, AccessReview.opened_by.is_(None),
        AccessReview.opened_at >= start).limit(1))
    if done is not None:
        return None
    org = accounts.get_organisation(session, org_id)
    kind = OrgKind(org.kind)
    if not accounts.list_members(session, roles=PRIVILEGED_ROLES, enabled_only=True):
        return None
    review = _open_review(session, org_id=org_id, actor=None, title=f"Access review {period}",
                          days=REVIEW_DAYS, now=now, period=period)
    count = len(review_items(session, review.id))
    link = f"{get_settings().base_url.rstrip('/')}/console/access/reviews/{review.id}"
    subject, body = REVIEW_MAIL
    for user in _reviewers(session, kind):
        address = user.email.value if user.email is not None else None
        if not address:
            continue
        lang = user.locale
        notify.queue(session, key_id=user.key_id, to=address,
                     subject=gettext(lang, subject, org=org.name, title=review.title),
                     body=gettext(lang, body, org=org.name, n=count,
                                  due=review.due_at.strftime("%Y-%m-%d"), link=link),
                     kind="access.review_opened", org_id=org_id)
    return review


def get_review(session: Session, review_id: str) -> AccessReview:
    review = session.get(AccessReview, review_id)
    if review is None:
        raise NotFound(detail="no such access review")
    return review


def review_items(session: Session, review_id: str) -> list[AccessReviewItem]:
    return list(session.scalars(select(AccessReviewItem)
                                .where(AccessReviewItem.review_id == review_id)
                                .order_by(AccessReviewItem.role, AccessReviewItem.id)))


def decide_item(session: Session, review_id: str, item_id: str, *, decision: str, actor: Actor,
                note: str = "") -> AccessReviewItem:
    """Keep or revoke one account; a revocation takes the role away at once."""
    require_manager(actor)
    review = get_review(session, review_id)
    if review.closed_at is not None:
        raise Conflict(detail="the review is closed")
    item = session.get(AccessReviewItem, item_id)
    if item is None or item.review_id != review.id:
        raise NotFound(detail="no such account in this review")
    if decision not in ("keep", "revoke"):
        raise InvalidInput.on("decision", "use keep or revoke")
    if item.decision is not None:
        raise Conflict(detail="decision: this account was already decided (%(decision)s)",
                       params={"decision": item.decision})
    if item.user_id == actor.person_id:
        raise SelfApprovalForbidden(
            detail="decision: nobody reviews their own access; a second person must",
            errors=[FieldError("decision", "nobody reviews their own access; a second person "
                                           "must", "self-approval")])
    note = stated_text("note", note, required=False)
    if decision == "revoke":
        accounts.revoke_privileged(session, user_id=item.user_id, actor=actor)
    item.decision = decision
    item.decided_by = actor.person_id
    item.decided_at = utcnow()
    item.note = note or None
    audit_record(session, "access.review.decided", actor, review.org_id, f"access_review:{review.id}",
                 {"new": {"user_id": item.user_id, "role": item.role, "decision": decision}})
    return item


def close_review(session: Session, review_id: str, *, actor: Actor) -> AccessReview:
    require_manager(actor)
    review = get_review(session, review_id)
    if review.closed_at is not None:
        raise Conflict(detail="the review is closed")
    open_items = [i for i in review_items(session, review_id) if i.decision is None]
    if open_items:
        raise Conflict(detail="decide every account first (%(n)s left)",
                       params={"n": len(open_items)})
    review.closed_at = utcnow()
    review.closed_by = actor.person_id
    audit_record(session, "access.review.closed", actor, review.org_id, f"access_review:{review.id}",
                 {"new": {"closed_at": review.closed_at.isoformat()}})
    return review


def list_reviews(session: Session, *, limit: int = 100) -> list[AccessReview]:
    return list(session.scalars(select(AccessReview).order_by(AccessReview.opened_at.desc())
                                .limit(limit)))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def review_evidence(session: Session, review_id: str) -> dict[str, Any]:
    """The campaign and every decision, as kept: the evidence a customer's auditor reads."""
    review = get_review(session, review_id)
    items = review_items(session, review_id)
    return {
        "id": review.id, "org_id": review.org_id, "title": review.title,
        "opened_by": review.opened_by, "opened_at": _iso(review.opened_at),
        "due_at": _iso(review.due_at), "closed_by": review.closed_by,
        "closed_at": _iso(review.closed_at),
        "items": [{
            "id": i.id, "user_id": i.user_id, "role": i.role,
            "last_activity_at": _iso(i.last_activity_at), "decision": i.decision,
            "decided_by": i.decided_by, "decided_at": _iso(i.decided_at), "note": i.note,
        } for i in items],
    }
