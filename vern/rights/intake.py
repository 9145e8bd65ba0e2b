"""A request from intake on: recorded the moment it is received (its deadline runs from then),
read back within the caller's organisation, listed, and moved from one state to the next, each
change audited."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.audit.service import record
from vern.core.crypto import PII, keyring
from vern.core.db import Scope, utcnow
from vern.core.errors import InvalidInput, NotFound
from vern.datamap.categories import CATEGORIES
from vern.rights.deadlines import due_date
from vern.rights.identities import clean_identities, subject_ref
from vern.rights.models import OPEN_STATUSES, Kind, RightsRequest, Status
from vern.rights.policy import policy_for

CHANNELS = ("portal", "api", "staff")


def _details_for(kind: str, details: dict[str, Any] | None) -> dict[str, Any]:
    details = dict(details or {})
    allowed = {"corrections", "purpose", "note"}
    for key in details:
        if key not in allowed:
            raise InvalidInput.on(f"details.{key}", "unknown field")
    if kind == Kind.RECTIFICATION.value:
        corrections = details.get("corrections")
        if not isinstance(corrections, dict) or not corrections:
            raise InvalidInput.on("details.corrections", "say which data to correct and to what")
        for target, value in corrections.items():
            personal_category = target in CATEGORIES and target.startswith("user.")
            if not personal_category and target.count(".") != 1:
                raise InvalidInput.on(
                    f"details.corrections.{target}", "name a personal data category or table.field"
                )
            if not isinstance(value, str) or len(value) > 1000:
                raise InvalidInput.on(f"details.corrections.{target}", "must be text up to 1000 characters")
    purpose = details.get("purpose")
    if purpose is not None and (not isinstance(purpose, str) or len(purpose) > 200):
        raise InvalidInput.on("details.purpose", "must be text up to 200 characters")
    note = details.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise InvalidInput.on("details.note", "must be text up to 2000 characters")
    return details


def _check_choices(kind: str, channel: str, locale: str) -> None:
    """The request's kind, the channel it came through and its language are known ones."""
    if kind not in {k.value for k in Kind}:
        raise InvalidInput.on("kind", "unknown kind (use one of %(kinds)s)",
                              kinds=", ".join(k.value for k in Kind))
    if channel not in CHANNELS:
        raise InvalidInput.on("channel", "unknown channel")
    if locale not in ("nb", "en"):
        raise InvalidInput.on("locale", "use nb or en")


def create_request(
    session: Session,
    *,
    org_id: str,
    kind: str,
    identities: dict[str, Any],
    channel: str,
    locale: str = "nb",
    details: dict[str, Any] | None = None,
    actor_user_id: str | None = None,
    verified_by: str | None = None,
    person_id: str | None = None,
) -> RightsRequest:
    """Record a request the moment it is received; the deadline runs from now.

    ``verified_by`` is given when identity is already established: ``customer_signin`` (the
    customer's own system, signed in with its API token, vouches for its user) or ``attested``
    (staff checked identity, with a note). Otherwise a one-time code must be sent and entered.
    ``person_id`` is the person filing (for an API token, its creator; defaults to
    ``actor_user_id``): they, and whoever attested identity, can never approve the request.
    """
    _check_choices(kind, channel, locale)
    clean = clean_identities(identities)
    clean_details = _details_for(kind, details)
    if verified_by is None and "email" not in clean:
        raise InvalidInput.on("identities.email", "an e-mail address is needed to send the one-time code")
    if verified_by == "attested" and not clean_details.get("note"):
        raise InvalidInput.on("details.note", "say how identity was checked")
    pol = policy_for(session, org_id)
    approval = (kind == Kind.ERASURE.value and pol.approve_erasure) or (
        kind == Kind.RECTIFICATION.value and pol.approve_rectification
    )
    key_id = keyring().create(session)
    now = utcnow()
    req = RightsRequest(
        org_id=org_id,
        kind=kind,
        status=Status.UNVERIFIED.value,
        channel=channel,
        locale=locale,
        key_id=key_id,
        identities=PII(key_id, json.dumps(clean, sort_keys=True)),
        subject_ref=subject_ref(clean),
        details=PII(key_id, json.dumps(clean_details)) if clean_details else None,
        received_at=now,
        due_at=due_date(now),
        approval_required=approval,
        created_by=person_id or actor_user_id,
    )
    session.add(req)
    session.flush()
    _record_created(session, req, sorted(clean), actor_user_id)
    if verified_by is not None:
        mark_verified(session, req, verified_by, actor_user_id)
        if verified_by == "attested":
            req.attested_by = person_id or actor_user_id
    return req


def _record_created(
    session: Session, req: RightsRequest, identity_kinds: list[str], actor_user_id: str | None
) -> None:
    """The audit record of a new request: what was asked and by which kinds of identity, never
    the identities themselves."""
    record(
        session,
        "rights.request.create",
        org_id=req.org_id,
        actor_user_id=actor_user_id,
        resource=f"rights_request:{req.id}",
        details={
            "new": {
                "kind": req.kind,
                "channel": req.channel,
                "identity_kinds": identity_kinds,
                "due_at": req.due_at.isoformat(),
            }
        },
    )


def get_request(session: Session, request_id: str) -> RightsRequest:
    req = session.get(RightsRequest, request_id)
    if req is None:
        raise NotFound(detail="no such request")
    scope: Scope | None = session.info.get("scope")
    if scope is not None and not scope.is_system and req.org_id != scope.org_id:
        raise NotFound(detail="no such request")
    return req


def identities_of(req: Any) -> dict[str, str]:
    if req.identities.value is None:
        return {}
    loaded: dict[str, str] = json.loads(req.identities.value)
    return loaded


def details_of(req: Any) -> dict[str, Any]:
    if req.details is None or req.details.value is None:
        return {}
    loaded: dict[str, Any] = json.loads(req.details.value)
    return loaded


def set_status(
    session: Session,
    req: RightsRequest,
    status: Status,
    *,
    actor_user_id: str | None,
    action: str,
    extra: dict[str, Any] | None = None,
) -> None:
    old = req.status
    req.status = status.value
    details: dict[str, Any] = {"old": {"status": old}, "new": {"status": status.value, **(extra or {})}}
    record(
        session,
        action,
        org_id=req.org_id,
        actor_user_id=actor_user_id,
        resource=f"rights_request:{req.id}",
        details=details,
    )


def mark_verified(session: Session, req: RightsRequest, method: str, actor_user_id: str | None) -> None:
    req.verified_at = utcnow()
    req.verification_method = method
    nxt = Status.AWAITING_APPROVAL if req.approval_required else Status.QUEUED
    set_status(
        session,
        req,
        nxt,
        actor_user_id=actor_user_id,
        action="rights.request.verify",
        extra={"method": method},
    )


def list_requests(
    session: Session, *, status: str | None = None, limit: int = 200, offset: int = 0
) -> list[RightsRequest]:
    """Newest first; ``offset`` pages on (the id breaks ties so pages never overlap)."""
    stmt = (
        select(RightsRequest)
        .order_by(RightsRequest.received_at.desc(), RightsRequest.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if status == "open":
        stmt = stmt.where(RightsRequest.status.in_([s.value for s in OPEN_STATUSES]))
    elif status:
        stmt = stmt.where(RightsRequest.status == status)
    return list(session.scalars(stmt))
