"""Access control: the only code that writes access grants, role requests and access reviews
(these in ``vern.access.reviews``).

* Vendor access grants: vendor staff reach a customer's data only while a grant the customer's
  administrator approved is in force (``vern.access.grants.grant_in_force``, read by
  ``vern.accounts`` on every request). Every record written while acting under a grant carries
  its id (``access_grant``).
* Role requests: a role asked for with a stated need (by the person, or by an administrator for
  someone - every privileged role goes this way); another authorised person decides.
* Access reviews: a campaign over the privileged accounts of one organisation; revocations take
  effect at once; the result is kept and exported as evidence.

Nobody approves their own request: people are compared by ``Actor.person_id`` (an API token
acts as the user who created it; ``vern.access.checks``). The grant look-ups that accounts reads
are in ``vern.access.grants``. This module stays the domain's entry point for the others.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.access.checks import (
    MAX_TEXT,
    SelfApprovalForbidden,
    audit_record,
    check_second_person,
    require_manager,
    stated_text,
)
from vern.access.grants import grant_in_force, orgs_granted
from vern.access.models import AccessGrant, RoleRequest
from vern.access.reviews import (
    REVIEW_DAYS,
    REVIEW_MAIL,
    close_review,
    decide_item,
    get_review,
    list_reviews,
    open_review,
    open_scheduled_review,
    review_evidence,
    review_items,
    review_period,
)
from vern.accounts import service as accounts
from vern.accounts.models import User
from vern.accounts.roles import ROLE_LABELS, OrgKind, Perm, Role
from vern.accounts.service import Actor
from vern.audit.service import record, tagged_events
from vern.core.config import Settings, get_settings
from vern.core.db import utcnow
from vern.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from vern.core.i18n import N_, gettext
from vern.notify import service as notify

# Defined in the modules this one builds on, and used through this one by the other domains,
# the routes, the CLI and the worker:
__all__ = [
    "MAX_TEXT", "REVIEW_DAYS", "REVIEW_MAIL", "SelfApprovalForbidden", "check_second_person",
    "close_review", "decide_item", "get_review", "grant_in_force", "list_reviews", "open_review",
    "open_scheduled_review", "orgs_granted", "review_evidence", "review_items", "review_period",
]

PURPOSES = ("support", "incident")
MAX_GRANT = timedelta(days=30)
GRANT_TAG = "access_grant"


def person_names(session: Session, ids: set[str]) -> dict[str, str]:
    """Names of the people ``ids`` names (for the pages: who asked, who decided)."""

    if not ids:
        return {}
    return {u.id: str(u.name) for u in session.scalars(select(User).where(User.id.in_(ids)))}


# -- vendor access grants -------------------------------------------------------------------------


def _period(starts_at: datetime | None, ends_at: datetime | None,
            now: datetime) -> tuple[datetime, datetime]:
    starts = starts_at or now
    if ends_at is None:
        raise InvalidInput.on("ends_at", "say until when access is needed")
    if starts.tzinfo is None or ends_at.tzinfo is None:
        raise InvalidInput.on("ends_at", "give a time with its time zone")
    if ends_at <= starts:
        raise InvalidInput.on("ends_at", "must be after the start")
    if ends_at <= now:
        raise InvalidInput.on("ends_at", "must be in the future")
    if ends_at - starts > MAX_GRANT:
        raise InvalidInput.on("ends_at", "a grant lasts at most %(n)s days", n=MAX_GRANT.days)
    if starts < now - timedelta(minutes=5):
        raise InvalidInput.on("starts_at", "must not be in the past")
    return starts, ends_at


def request_grant(
    session: Session, *, actor: Actor, org_id: str, purpose: str, reason: str,
    ends_at: datetime | None, starts_at: datetime | None = None, now: datetime | None = None,
) -> AccessGrant:
    """Vendor staff ask a customer for access to its data. ``session`` is scoped to the
    customer (``org_id``); the request is recorded in the customer's trail."""
    if actor.org_kind is not OrgKind.VENDOR or not actor.home or actor.user_id is None \
            or not actor.can(Perm.ACCESS_VENDOR):
        raise Forbidden(detail="only the vendor's staff, signed in as themselves, ask for access")
    org = accounts.get_organisation(session, org_id)
    if org.kind != OrgKind.TENANT.value or org.disabled_at is not None:
        raise NotFound(detail="org_id: no such customer")
    if purpose not in PURPOSES:
        raise InvalidInput.on("purpose", "use one of %(kinds)s", kinds=", ".join(PURPOSES))
    reason = stated_text("reason", reason)
    now = now or utcnow()
    starts, ends = _period(starts_at, ends_at, now)
    grant = AccessGrant(org_id=org_id, grantee_user_id=actor.user_id, purpose=purpose,
                        reason=reason, starts_at=starts, ends_at=ends, status="pending",
                        requested_at=now)
    session.add(grant)
    session.flush()
    record(session, "access.grant.requested", org_id=org_id, actor_user_id=actor.user_id,
           resource=f"access_grant:{grant.id}",
           details={"new": {"purpose": purpose, "starts_at": starts.isoformat(),
                            "ends_at": ends.isoformat(), "grantee": actor.user_id}})
    _tell_admins(session, grant, org.name)
    return grant


GRANT_MAIL = (
    N_("The vendor asks for access to %(org)s"),
    N_("%(who)s at the vendor asks for access to the data of %(org)s (%(purpose)s), from "
       "%(start)s until %(end)s (UTC).\nReason: %(reason)s\nApprove or refuse it: %(link)s"),
)


def _tell_admins(session: Session, grant: AccessGrant, org_name: str) -> None:
    """The customer's administrators are told through the outbox, in the request's
    transaction: nothing is reachable until one of them approves."""

    who = person_names(session, {grant.grantee_user_id}).get(grant.grantee_user_id, "")
    link = f"{get_settings().base_url.rstrip('/')}/console/access/grants/{grant.id}"
    subject, body = GRANT_MAIL
    for user, _membership in accounts.list_members(session, roles={Role.TENANT_ADMIN},
                                                   enabled_only=True):
        address = user.email.value if user.email is not None else None
        if not address:
            continue
        lang = user.locale
        notify.queue(session, key_id=user.key_id, to=address,
                     subject=gettext(lang, subject, org=org_name),
                     body=gettext(lang, body, who=who, org=org_name,
                                  purpose=gettext(lang, grant.purpose),
                                  start=grant.starts_at.strftime("%Y-%m-%d %H:%M"),
                                  end=grant.ends_at.strftime("%Y-%m-%d %H:%M"),
                                  reason=grant.reason, link=link),
                     kind="access.grant_requested", org_id=grant.org_id)


DECISION_MAIL = {
    "grant": (
        N_("Your request for access to %(org)s was %(outcome)s"),
        N_("%(org)s %(outcome)s your request for access to its data (%(purpose)s), from "
           "%(start)s until %(end)s (UTC).\nNote: %(note)s\nSee it: %(link)s"),
    ),
    "role": (
        N_("The request for the role %(role)s in %(org)s was %(outcome)s"),
        N_("The request that %(who)s be given the role %(role)s in %(org)s was %(outcome)s.\n"
           "Note: %(note)s\nSee it: %(link)s"),
    ),
    "role_by_vendor": (
        N_("The request for the role %(role)s in %(org)s was %(outcome)s by the vendor"),
        N_("The request that %(who)s be given the role %(role)s in %(org)s was %(outcome)s by "
           "%(approver)s of the vendor's staff, as the second person.\nNote: %(note)s\n"
           "See it: %(link)s"),
    ),
}
OUTCOMES = {"approved": N_("approved"), "refused": N_("refused")}


def _tell_decided(session: Session, *, kind: str, people: set[str | None], org_id: str,
                  link: str, params: dict[str, str], outcome: str) -> None:
    """The people a decision concerns are told through the outbox, in their language, in the
    decision's transaction (nothing is mailed for a decision that is rolled back)."""

    org_name = accounts.get_organisation(session, org_id).name
    subject, body = DECISION_MAIL[kind]
    ids = {p for p in people if p is not None}
    if not ids:
        return
    for user in session.scalars(select(User).where(User.id.in_(ids))):
        address = user.email.value if user.email is not None else None
        if not address or user.disabled_at is not None:
            continue
        lang = user.locale
        words = {**params, "org": org_name, "outcome": gettext(lang, OUTCOMES[outcome]),
                 "link": link}
        if "role" in params:
            words["role"] = gettext(lang, ROLE_LABELS.get(Role(params["role"]), params["role"]))
        if "purpose" in params:
            words["purpose"] = gettext(lang, params["purpose"])
        if not params.get("note"):
            words["note"] = "-"
        notify.queue(session, key_id=user.key_id, to=address,
                     subject=gettext(lang, subject, **words), body=gettext(lang, body, **words),
                     kind=f"access.{kind}_decided", org_id=org_id)


def get_grant(session: Session, grant_id: str) -> AccessGrant:
    grant = session.get(AccessGrant, grant_id)
    if grant is None:
        raise NotFound(detail="no such access grant")
    return grant


def decide_grant(session: Session, grant_id: str, *, approve: bool, actor: Actor,
                 note: str = "", now: datetime | None = None) -> AccessGrant:
    """The customer's administrator approves or refuses a pending grant."""
    require_manager(actor)
    grant = get_grant(session, grant_id)
    if grant.status != "pending":
        raise Conflict(detail="only a pending grant can be decided (it is %(status)s)",
                       params={"status": grant.status})
    check_second_person(actor.person_id, grant.grantee_user_id)
    now = now or utcnow()
    if approve and grant.ends_at <= now:
        raise Conflict(detail="ends_at: the grant's period is over; ask for a new one")
    note = stated_text("note", note, required=not approve)
    grant.status = "approved" if approve else "refused"
    grant.decided_by = actor.person_id
    grant.decided_at = now
    grant.decision_note = note or None
    audit_record(session, "access.grant.approved" if approve else "access.grant.refused", actor,
                 grant.org_id, f"access_grant:{grant.id}",
                 {"old": {"status": "pending"}, "new": {"status": grant.status}})
    base = get_settings().base_url.rstrip("/")
    _tell_decided(session, kind="grant", people={grant.grantee_user_id}, org_id=grant.org_id,
                  link=f"{base}/console/access", outcome=grant.status,
                  params={"purpose": grant.purpose, "note": grant.decision_note or "",
                          "start": grant.starts_at.strftime("%Y-%m-%d %H:%M"),
                          "end": grant.ends_at.strftime("%Y-%m-%d %H:%M")})
    return grant


def revoke_grant(session: Session, grant_id: str, *, actor: Actor,
                 now: datetime | None = None) -> AccessGrant:
    """End an approved grant at once (the next request of the vendor's staff is refused)."""
    require_manager(actor)
    grant = get_grant(session, grant_id)
    if grant.status not in ("approved", "pending"):
        raise Conflict(detail="a grant that is %(status)s cannot be revoked",
                       params={"status": grant.status})
    old = grant.status
    grant.status = "revoked"
    grant.revoked_by = actor.person_id
    grant.revoked_at = now or utcnow()
    audit_record(session, "access.grant.revoked", actor, grant.org_id, f"access_grant:{grant.id}",
                 {"old": {"status": old}, "new": {"status": "revoked"}})
    return grant


def grant_state(grant: AccessGrant, now: datetime | None = None) -> str:
    """pending | refused | revoked | scheduled | active | expired."""
    now = now or utcnow()
    if grant.status != "approved":
        return grant.status
    if grant.ends_at <= now:
        return "expired"
    return "scheduled" if grant.starts_at > now else "active"


def list_grants(session: Session, *, limit: int = 200) -> list[AccessGrant]:
    """The grants of the session's organisation, newest first."""
    return list(session.scalars(
        select(AccessGrant).order_by(AccessGrant.requested_at.desc()).limit(limit)))


def grants_of(session: Session, *, user_id: str, limit: int = 200) -> list[AccessGrant]:
    """One vendor account's own grants across customers (needs a system scope)."""
    return list(session.scalars(
        select(AccessGrant).where(AccessGrant.grantee_user_id == user_id)
        .order_by(AccessGrant.requested_at.desc()).limit(limit)))


def accesses_under(session: Session, grant: AccessGrant, *, limit: int = 500
                   ) -> list[dict[str, Any]]:
    """Every audit record made while acting under ``grant`` (in the customer's own trail)."""
    return tagged_events(session, org_id=grant.org_id, tag=GRANT_TAG, value=grant.id, limit=limit)


def grant_view(grant: AccessGrant, now: datetime | None = None, *,
               for_vendor: bool = False) -> dict[str, Any]:
    """A grant as JSON. ``for_vendor``: the vendor's staff's own view, which names nobody of
    the customer's (who decided stays in the customer's records)."""
    view = {
        "id": grant.id, "org_id": grant.org_id, "grantee_user_id": grant.grantee_user_id,
        "purpose": grant.purpose, "reason": grant.reason,
        "starts_at": grant.starts_at.isoformat(), "ends_at": grant.ends_at.isoformat(),
        "status": grant.status, "state": grant_state(grant, now),
        "requested_at": grant.requested_at.isoformat(),
        "decided_by": grant.decided_by,
        "decided_at": grant.decided_at.isoformat() if grant.decided_at else None,
        "decision_note": grant.decision_note,
        "revoked_at": grant.revoked_at.isoformat() if grant.revoked_at else None,
    }
    if for_vendor:
        view.pop("decided_by")
    return view


# -- role requests (access requests and privileged role grants) -----------------------------------


def request_role(session: Session, *, actor: Actor, role: str, need: str,
                 user_id: str | None = None) -> RoleRequest:
    """Ask for ``role`` in the actor's organisation with a stated need: for oneself, or (an
    administrator) for another member. Nothing changes until another person approves."""
    if not actor.home:
        raise Forbidden(detail="ask for a role in your own organisation")
    org = accounts.get_organisation(session, actor.org_id)
    parsed = accounts.role_for(org, role)
    need = stated_text("need", need)
    target = user_id or actor.person_id
    if target is None:
        raise InvalidInput.on("user_id", "say whom the role is for")
    if target != actor.person_id and not actor.can(Perm.ACCESS_MANAGE):
        raise Forbidden(detail="user_id: only an administrator asks for a role for someone else")
    _user, membership = accounts.get_member(session, target)
    if membership.role == parsed.value:
        raise Conflict(detail="role: the person already has this role")
    pending = session.scalar(select(RoleRequest.id).where(
        RoleRequest.user_id == target, RoleRequest.role == parsed.value,
        RoleRequest.status == "pending"))
    if pending is not None:
        raise Conflict(detail="role: a request for this role is already waiting")
    row = RoleRequest(org_id=actor.org_id, user_id=target, role=parsed.value, need=need,
                      requested_by=actor.person_id, status="pending")
    session.add(row)
    session.flush()
    audit_record(session, "access.role_request.created", actor, actor.org_id,
                 f"access_role_request:{row.id}",
                 {"new": {"user_id": target, "role": parsed.value, "old_role": membership.role}})
    return row


def add_person(
    session: Session, settings: Settings, *, actor: Actor, email: str, name: str, role: str,
    password: str | None, need: str = "",
) -> tuple[User, RoleRequest | None]:
    """Add a person to the actor's organisation. A privileged role (once the organisation has a
    privileged member who could approve) is not given now: the person is added with the
    organisation's unprivileged role, or - in the vendor's organisation - with none, and the
    role is asked for as a request with the stated ``need``; a second administrator (never the
    one who added them, nor the person) approves it like any other."""
    waits = accounts.role_waits(session, org_id=actor.org_id, role=role)
    if waits:
        need = stated_text("need", need)
    user = accounts.create_user(session, settings, email=email, name=name, org_id=actor.org_id,
                                role=role, password=password, actor=actor, hold=waits)
    if not waits:
        return user, None
    row = RoleRequest(org_id=actor.org_id, user_id=user.id, role=Role(role).value, need=need,
                      requested_by=actor.person_id, status="pending")
    session.add(row)
    session.flush()
    audit_record(session, "access.role_request.created", actor, actor.org_id,
                 f"access_role_request:{row.id}",
                 {"new": {"user_id": user.id, "role": row.role, "old_role": None, "added": True}})
    return user, row


def get_role_request(session: Session, request_id: str) -> RoleRequest:
    row = session.get(RoleRequest, request_id)
    if row is None:
        raise NotFound(detail="no such access request")
    return row


def tenant_administrator(actor: Actor) -> bool:
    """Whether ``actor`` is the vendor's staff who administer customers (``tenants.manage``, in
    the vendor's own organisation): a second person for a customer's role requests."""
    return actor.home and actor.org_kind is OrgKind.VENDOR and actor.can(Perm.TENANTS_MANAGE)


def _role_decider(session: Session, actor: Actor, row: RoleRequest) -> bool:
    """Who may decide ``row``: a member of its organisation who manages access, or - for a
    customer's request - the vendor's staff who administer customers (True: as vendor staff).
    The four-eyes check (never who asked, nor whom it is for) applies to both."""
    if actor.home and actor.org_id == row.org_id and actor.can(Perm.ACCESS_MANAGE):
        return False
    if tenant_administrator(actor) and row.org_id != actor.org_id:
        org = accounts.get_organisation(session, row.org_id)
        if org.kind == OrgKind.TENANT.value and org.disabled_at is None:
            return True
    raise Forbidden(detail="only an administrator of this organisation may decide")


def decide_role_request(session: Session, request_id: str, *, approve: bool, actor: Actor,
                        note: str = "") -> RoleRequest:
    """Another authorised person approves (the role is given at once) or refuses. In a
    customer's organisation that is another of its administrators or the vendor's staff who
    administer customers - so a customer with a single administrator can get a second one.
    ``session`` is scoped to the request's organisation."""
    if not (actor.home and actor.can(Perm.ACCESS_MANAGE)) and not tenant_administrator(actor):
        raise Forbidden(detail="only an administrator of this organisation may decide")
    row = get_role_request(session, request_id)
    as_vendor = _role_decider(session, actor, row)
    if row.status != "pending":
        raise Conflict(detail="only a pending request can be decided (it is %(status)s)",
                       params={"status": row.status})
    check_second_person(actor.person_id, row.requested_by, row.user_id)
    note = stated_text("note", note, required=not approve)
    # The vendor's staff act in the customer's organisation for this decision only: its records
    # (the role's change, the decision) go to the customer's trail and name them.
    acting = replace(actor, org_id=row.org_id, org_kind=OrgKind.TENANT, home=False) \
        if as_vendor else actor
    if approve:
        accounts.give_waiting_role(session, get_settings(), user_id=row.user_id,
                                   org_id=row.org_id, role=row.role, actor=acting,
                                   approved_by=str(actor.person_id))
    row.status = "approved" if approve else "refused"
    row.decided_by = actor.person_id
    row.decided_at = utcnow()
    row.decision_note = note or None
    details: dict[str, Any] = {"old": {"status": "pending"},
                               "new": {"status": row.status, "role": row.role},
                               "decided_by": actor.person_id}
    if as_vendor:
        details["as_vendor_staff"] = {"org_id": actor.org_id, "role": actor.role.value}
    audit_record(session, f"access.role_request.{row.status}", acting, row.org_id,
                 f"access_role_request:{row.id}", details)
    who = person_names(session, {row.user_id}).get(row.user_id, "")
    base = get_settings().base_url.rstrip("/")
    people: set[str | None] = {row.user_id, row.requested_by}
    params = {"role": row.role, "who": who, "note": row.decision_note or ""}
    kind = "role"
    if as_vendor:
        # The customer's administrators are told that the vendor's staff decided, and who.
        people |= {u.id for u, _m in accounts.list_members(session, roles={Role.TENANT_ADMIN},
                                                            enabled_only=True)}
        kind = "role_by_vendor"
        params["approver"] = person_names(session, {str(actor.person_id)}).get(
            str(actor.person_id), "")
    _tell_decided(session, kind=kind, people=people, org_id=row.org_id,
                  link=f"{base}/console/access", outcome=row.status, params=params)
    return row


def customer_request_org(session: Session, request_id: str) -> str:
    """The customer organisation a role request belongs to (a system scope: the vendor's staff
    look it up before deciding in the customer's scope). 404 for an unknown id and for a
    request of the vendor's own organisation (which its own officers decide) or of a disabled
    customer."""
    row = session.get(RoleRequest, request_id)
    org = accounts.get_organisation(session, row.org_id) if row is not None else None
    if row is None or org is None or org.kind != OrgKind.TENANT.value \
            or org.disabled_at is not None:
        raise NotFound(detail="no such access request")
    return row.org_id


def customer_role_requests(session: Session, *, actor: Actor,
                           limit: int = 200) -> list[dict[str, Any]]:
    """The pending role requests of every active customer, for the vendor's staff who
    administer customers (a system scope). Only what deciding needs: the customer, whom the
    role is for, the role, the stated need and who asked - names, no other customer data."""
    if not tenant_administrator(actor):
        raise Forbidden(detail="only the vendor's staff who administer customers see this")
    tenants = {t.id: t for t in accounts.list_tenants(session) if t.disabled_at is None}
    rows = list(session.scalars(
        select(RoleRequest).where(RoleRequest.status == "pending",
                                  RoleRequest.org_id.in_(list(tenants)))
        .order_by(RoleRequest.created_at).limit(limit)))
    ids = {r.user_id for r in rows} | {r.requested_by for r in rows if r.requested_by}
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)))}

    def email(user_id: str | None) -> str | None:
        user = people.get(user_id or "")
        return user.email.value if user is not None and user.email is not None else None

    def name(user_id: str | None) -> str | None:
        user = people.get(user_id or "")
        return str(user.name) if user is not None else None

    return [{
        "id": r.id, "org_id": r.org_id, "org_name": tenants[r.org_id].name,
        "org_slug": tenants[r.org_id].slug, "for_name": name(r.user_id),
        "for_email": email(r.user_id), "role": r.role, "need": r.need,
        "requested_by_name": name(r.requested_by), "created_at": r.created_at.isoformat(),
        "status": r.status,
    } for r in rows]


def list_role_requests(session: Session, *, status: str | None = None,
                       limit: int = 200) -> list[RoleRequest]:
    stmt = select(RoleRequest).order_by(RoleRequest.created_at.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(RoleRequest.status == status)
    return list(session.scalars(stmt))


def role_request_view(row: RoleRequest) -> dict[str, Any]:
    return {
        "id": row.id, "user_id": row.user_id, "role": row.role, "need": row.need,
        "requested_by": row.requested_by, "created_at": row.created_at.isoformat(),
        "status": row.status, "decided_by": row.decided_by,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
        "decision_note": row.decision_note,
    }
