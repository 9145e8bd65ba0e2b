"""Data subject requests from intake to answer. Every change is audited in its own transaction.

Life of a request::

    unverified ──code/sign-in──▶ awaiting_approval ──approve──▶ queued ──▶ running ──▶ done
         │                        (erasure, rectification)       ▲           │
         └──────── cancel / reject ◀──────────────────────────────┘        partial ──retry──▶ queued

Unverified requests never run (Art. 12(6)). Erasure and rectification wait for approval by the
customer's admin or the privacy officer unless the customer's policy says otherwise.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from vern.access.service import check_second_person
from vern.accounts.models import Membership, Organisation, User
from vern.accounts.roles import OrgKind, Perm, Role
from vern.audit.service import record
from vern.core.config import RightsSettings, get_settings, rights_settings
from vern.core.crypto import PII, DataKey, blind_index, keyring
from vern.core.db import Database, Scope, UTCDateTime, execute_fast, new_id, utcnow
from vern.core.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from vern.core.i18n import N_, format_day, format_duration, gettext
from vern.datamap.categories import CATEGORIES
from vern.datamap.detectors import is_email, is_national_id, is_phone
from vern.datamap.model import IDENTITY_KINDS, DataMap
from vern.datamap.service import current_map
from vern.notify import service as notify
from vern.rights.connectors import REFUSED
from vern.rights.models import (
    OPEN_STATUSES,
    ExternalStep,
    Flag,
    Kind,
    LedgerEntry,
    Package,
    Part,
    Policy,
    RightsRequest,
    Status,
    Task,
    Verification,
)
from vern.rights.packages import EXPORT_TEXT, build_zip
from vern.rights.runtime import secret as vendor_secret

log = logging.getLogger("vern.rights")

FLAG_KINDS = (Kind.RESTRICTION.value, Kind.OBJECTION.value, Kind.WITHDRAWAL.value)
WRITE_KINDS = (Kind.ERASURE.value, Kind.RECTIFICATION.value)
CHANNELS = ("portal", "api", "staff")
STALE_AFTER = timedelta(minutes=5)


def secret() -> bytes:

    return vendor_secret()


# -- identities --------------------------------------------------------------------------------


def clean_identities(raw: dict[str, Any]) -> dict[str, str]:
    """Validated identities; an error names the field that is wrong."""
    found: dict[str, str] = {}
    for kind, value in raw.items():
        if value is None or str(value).strip() == "":
            continue
        text = str(value).strip()
        if kind not in IDENTITY_KINDS:
            raise InvalidInput.on(
                f"identities.{kind}", f"unknown identity (use one of {', '.join(IDENTITY_KINDS)})"
            )
        if len(text) > 254:
            raise InvalidInput.on(f"identities.{kind}", "is too long")
        if kind == "email" and not is_email(text):
            raise InvalidInput.on("identities.email", "is not an e-mail address")
        if kind == "phone" and not is_phone(text):
            raise InvalidInput.on(
                "identities.phone", "is not a Norwegian phone number (8 digits, +47 optional)"
            )
        if kind == "national_id" and not is_national_id(text):
            raise InvalidInput.on("identities.national_id", "is not a valid national identity or D-number")
        found[kind] = text.lower() if kind == "email" else text
    if not found:
        raise InvalidInput.on(
            "identities", "give at least one identity (e-mail, user id, phone, national id)"
        )
    return found


def identity_refs(identities: dict[str, str]) -> list[str]:
    """Keyed hashes of each identity: how Vern recognises a person without keeping who it is."""
    key = secret()
    refs = []
    for kind, value in sorted(identities.items()):
        normal = "".join(c for c in value if c.isdigit())[-8:] if kind == "phone" else value
        refs.append(blind_index(key, f"{kind}:{normal}", "rights.subject"))
    return refs


def subject_ref(identities: dict[str, str]) -> str:
    for kind in ("email", "national_id", "phone", "user_id"):
        if kind in identities:
            return identity_refs({kind: identities[kind]})[0]
    raise InvalidInput.on("identities", "no identity given")


# -- deadlines (Art. 12(3)) -----------------------------------------------------------------------


def add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    year = moment.year + month // 12
    month = month % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def due_date(received: datetime, cfg: RightsSettings | None = None) -> datetime:
    cfg = cfg or rights_settings()
    if cfg.due_days:
        return received + timedelta(days=cfg.due_days)
    return add_months(received, cfg.due_months)


# -- policy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EffectivePolicy:
    product_tenant_key: str
    approve_erasure: bool
    approve_rectification: bool
    answer_nobody_found: bool = False


def policy_for(session: Session, org_id: str) -> EffectivePolicy:
    cfg = rights_settings()
    row = session.scalars(select(Policy).where(Policy.org_id == org_id)).first()
    if row is None:
        return EffectivePolicy(org_id, cfg.approve_erasure, cfg.approve_rectification)
    return EffectivePolicy(
        row.product_tenant_key or org_id,
        row.approve_erasure,
        row.approve_rectification,
        bool(row.answer_nobody_found),
    )


def product_keys(session: Session) -> dict[str, str]:
    """Every customer organisation's product key (its ``product_tenant_key``, or its id when it
    has none), as ``{key: org_id}``: the customers whose schema or database a product with a
    schema or database per customer holds. Needs a system scope."""
    rows = session.execute(
        select(Organisation.id, Policy.product_tenant_key)
        .outerjoin(Policy, Policy.org_id == Organisation.id)
        .where(Organisation.kind == OrgKind.TENANT.value)
        .execution_options(cross_tenant="the product keys of every customer")
    )
    return {key or org_id: org_id for org_id, key in rows}


def _policy_row(session: Session, org_id: str) -> Policy:
    row = session.scalars(select(Policy).where(Policy.org_id == org_id)).first()
    if row is None:
        cfg = rights_settings()
        row = Policy(
            org_id=org_id,
            approve_erasure=cfg.approve_erasure,
            approve_rectification=cfg.approve_rectification,
        )
        session.add(row)
    return row


def _policy_values(row: Policy) -> dict[str, Any]:
    return {
        "product_tenant_key": row.product_tenant_key,
        "approve_erasure": row.approve_erasure,
        "approve_rectification": row.approve_rectification,
        "answer_nobody_found": bool(row.answer_nobody_found),
    }


def set_policy(
    session: Session,
    *,
    org_id: str,
    actor_user_id: str | None,
    approve_erasure: bool | None = None,
    approve_rectification: bool | None = None,
    answer_nobody_found: bool | None = None,
) -> Policy:
    """The customer's own choices: it may require approval, never drop it (that weakens the
    strict default; the vendor's staff decide it with ``set_tenant_policy``); and whether a
    search that finds nobody is answered without staff confirming it first."""
    row = _policy_row(session, org_id)
    for name, value in (("approve_erasure", approve_erasure),
                        ("approve_rectification", approve_rectification)):
        if value is False and getattr(row, name) is not False:
            raise Forbidden(
                detail=f"{name}: only the vendor may turn approval off",
                errors=[FieldError(name, "only the vendor may turn approval off", "vendor-only")],
            )
    old = _policy_values(row)
    if approve_erasure is not None:
        row.approve_erasure = approve_erasure
    if approve_rectification is not None:
        row.approve_rectification = approve_rectification
    if answer_nobody_found is not None:
        row.answer_nobody_found = answer_nobody_found
    row.updated_at = utcnow()
    session.flush()
    record(
        session,
        "rights.policy.update",
        org_id=org_id,
        actor_user_id=actor_user_id,
        resource=f"rights_policy:{row.id}",
        details={"old": old, "new": _policy_values(row)},
    )
    return row


def key_in_use(session: Session, org_id: str, key: str) -> bool:
    """Whether ``key`` is (or could be) another organisation's product key: its explicit key, or
    its id (the key of an organisation without one). Needs a system scope."""
    others = session.scalar(
        select(func.count()).select_from(Policy)
        .where(Policy.product_tenant_key == key, Policy.org_id != org_id)
    )
    ids = session.scalar(
        select(func.count()).select_from(Organisation)
        .where(Organisation.id == key, Organisation.id != org_id)
    )
    return bool(others or ids)


def set_tenant_policy(
    session: Session,
    *,
    actor: Any,
    tenant_id: str,
    product_tenant_key: str | None = None,
    approve_erasure: bool | None = None,
    approve_rectification: bool | None = None,
) -> Policy:
    """The vendor's staff set a customer's policy, including what the customer may not: which
    product key it maps to and whether approval may be skipped. ``session`` has a system scope
    (the change crosses organisations); it is audited in the customer's trail and in the
    vendor's, neither record naming the other organisation to the customer."""

    if actor.org_kind != OrgKind.VENDOR or not actor.home or Perm.TENANTS_MANAGE not in actor.perms:
        raise Forbidden(detail="only the vendor's staff may change a customer's mapping")
    org = session.get(Organisation, tenant_id)
    if org is None or org.kind != OrgKind.TENANT.value:
        raise NotFound(detail="no such customer")
    row = _policy_row(session, tenant_id)
    old = _policy_values(row)
    if product_tenant_key is not None:
        key = product_tenant_key.strip()
        if key and key_in_use(session, tenant_id, key):
            raise Conflict(
                detail="product_tenant_key: already the key of another organisation",
                errors=[FieldError("product_tenant_key", "already the key of another organisation",
                                   "in-use")],
            )
        row.product_tenant_key = key or None
    if approve_erasure is not None:
        row.approve_erasure = approve_erasure
    if approve_rectification is not None:
        row.approve_rectification = approve_rectification
    row.updated_at = utcnow()
    session.flush()
    details = {"old": old, "new": _policy_values(row), "by": "vendor"}
    record(session, "rights.policy.update", org_id=tenant_id, actor_user_id=actor.user_id,
           actor_token_id=actor.token_id, resource=f"rights_policy:{row.id}", details=details)
    record(session, "rights.tenant_policy.update", org_id=actor.org_id,
           actor_user_id=actor.user_id, actor_token_id=actor.token_id,
           resource=f"org:{tenant_id}", details={"old": old, "new": _policy_values(row)})
    return row


# -- intake ------------------------------------------------------------------------------------


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
    if kind not in {k.value for k in Kind}:
        raise InvalidInput.on("kind", "unknown kind (use one of %(kinds)s)",
                              kinds=", ".join(k.value for k in Kind))
    if channel not in CHANNELS:
        raise InvalidInput.on("channel", "unknown channel")
    if locale not in ("nb", "en"):
        raise InvalidInput.on("locale", "use nb or en")
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
    record(
        session,
        "rights.request.create",
        org_id=org_id,
        actor_user_id=actor_user_id,
        resource=f"rights_request:{req.id}",
        details={
            "new": {
                "kind": kind,
                "channel": channel,
                "identity_kinds": sorted(clean),
                "due_at": req.due_at.isoformat(),
            }
        },
    )
    if verified_by is not None:
        _mark_verified(session, req, verified_by, actor_user_id)
        if verified_by == "attested":
            req.attested_by = person_id or actor_user_id
    return req


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


def _set_status(
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


def _mark_verified(session: Session, req: RightsRequest, method: str, actor_user_id: str | None) -> None:
    req.verified_at = utcnow()
    req.verification_method = method
    nxt = Status.AWAITING_APPROVAL if req.approval_required else Status.QUEUED
    _set_status(
        session,
        req,
        nxt,
        actor_user_id=actor_user_id,
        action="rights.request.verify",
        extra={"method": method},
    )


# -- one-time code by e-mail ---------------------------------------------------------------------


class CodeResult(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"
    NONE = "none"


def _code_hash(request_id: str, code: str) -> str:
    return hmac.new(secret(), f"rights.code:{request_id}:{code}".encode(), hashlib.sha256).hexdigest()


# The mails to the person and to staff: English texts, translated through the catalogs (vern.core.i18n).
CODE_MAIL = (
    N_("Your code: %(code)s"),
    N_("The code to confirm your request to %(org)s is %(code)s.\n"
       "It is valid for %(duration)s and can be used once.\n"
       "If you did not ask for this, you can ignore this e-mail."),
)


def send_code(session: Session, request_id: str) -> None:
    """A fresh 6-digit code to the request's e-mail; any earlier code stops working."""
    req = get_request(session, request_id)
    if req.status != Status.UNVERIFIED.value:
        raise Conflict(detail="the request is already verified")
    email = identities_of(req).get("email")
    if not email:
        raise InvalidInput.on("identities.email", "no e-mail address to send the code to")
    cfg = rights_settings()
    now = utcnow()
    session.execute(
        update(Verification)
        .where(Verification.request_id == req.id, Verification.used_at.is_(None))
        .values(used_at=now)
    )
    code = f"{secrets.randbelow(1_000_000):06d}"
    session.add(
        Verification(
            org_id=req.org_id,
            request_id=req.id,
            code_hash=_code_hash(req.id, code),
            expires_at=now + timedelta(minutes=cfg.code_minutes),
        )
    )
    org = session.get(Organisation, req.org_id)
    subject, body = CODE_MAIL
    notify.queue(
        session,
        key_id=req.key_id,
        to=email,
        kind="rights.code",
        org_id=req.org_id,
        subject=gettext(req.locale, subject, code=code),
        body=gettext(req.locale, body, code=code, org=org.name if org else "",
                     duration=format_duration(f"{cfg.code_minutes} minutes", req.locale)),
    )
    record(session, "rights.code.send", org_id=req.org_id, resource=f"rights_request:{req.id}")


def check_code(session: Session, request_id: str, code: str) -> CodeResult:
    """Try a code. Returns the outcome instead of raising, so the attempt count commits."""
    req = get_request(session, request_id)
    if req.status != Status.UNVERIFIED.value:
        return CodeResult.OK if req.verified_at else CodeResult.NONE
    found = session.scalars(
        select(Verification)
        .where(Verification.request_id == req.id, Verification.used_at.is_(None))
        .order_by(Verification.created_at.desc())
    ).first()
    cfg = rights_settings()
    if found is None:
        return CodeResult.NONE
    if found.expires_at <= utcnow():
        found.used_at = utcnow()
        record(
            session,
            "rights.code.expired",
            org_id=req.org_id,
            outcome="failure",
            resource=f"rights_request:{req.id}",
        )
        return CodeResult.EXPIRED
    found.attempts += 1
    given = "".join(c for c in code if c.isdigit())
    if hmac.compare_digest(found.code_hash, _code_hash(req.id, given)):
        found.used_at = utcnow()
        _mark_verified(session, req, "email_code", None)
        return CodeResult.OK
    outcome = CodeResult.WRONG
    if found.attempts >= cfg.code_attempts:
        found.used_at = utcnow()
        outcome = CodeResult.EXHAUSTED
    record(
        session,
        "rights.code.wrong",
        org_id=req.org_id,
        outcome="failure",
        resource=f"rights_request:{req.id}",
        details={"new": {"attempts": found.attempts}},
    )
    return outcome


def code_error(result: CodeResult) -> InvalidInput:
    messages = {
        CodeResult.WRONG: "the code is wrong; try again",
        CodeResult.EXPIRED: "the code has expired; ask for a new one",
        CodeResult.EXHAUSTED: "too many wrong codes; ask for a new one",
        CodeResult.NONE: "no code is waiting; ask for a new one",
    }
    return InvalidInput.on("code", messages[result], code=result.value)


# -- decisions -----------------------------------------------------------------------------------


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
    _set_status(session, req, Status.QUEUED, actor_user_id=actor_user_id, action="rights.request.approve")
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
    _set_status(session, req, Status.REJECTED, actor_user_id=actor_user_id, action="rights.request.reject")
    return req


def cancel(session: Session, request_id: str, *, actor_user_id: str | None) -> RightsRequest:
    req = get_request(session, request_id)
    if req.status not in (Status.UNVERIFIED.value, Status.AWAITING_APPROVAL.value, Status.QUEUED.value):
        raise Conflict(detail="a request that is %(status)s cannot be cancelled",
                       params={"status": req.status})
    req.completed_at = utcnow()
    _set_status(session, req, Status.CANCELLED, actor_user_id=actor_user_id, action="rights.request.cancel")
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
    _set_status(session, req, Status.QUEUED, actor_user_id=actor_user_id, action="rights.request.retry")
    return req


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
    _set_status(
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
        data_map = _map_if_needed(database, request_id)  # a missing map leaves the request queued
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
        _staff_for_last_attempts(database, jobs)
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
        data_map = _published_map(database)
    engine = Engine(database, data_map, secret(), urls=urls, batch_rows=rights_settings().batch_rows)
    try:
        jobs, results = _load_jobs(engine, request_ids, resume=False, strict=False)
        _staff_for_last_attempts(database, jobs)
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
        one = len(request_ids) == 1
        rows = (
            session.connection()
            .execute(_load_statement(one), {"ids": request_ids[0] if one else request_ids})
            .all()
        )
        by_id = {r.id: r for r in rows}
        shared = _shared_keys(session, {r.org_id: r.product_tenant_key for r in rows
                                        if r.product_tenant_key})
        for request_id in request_ids:
            req = by_id.get(request_id)
            if req is None:
                if strict:
                    raise NotFound(detail="no such request")
                skipped[request_id] = "skipped: no such request"
                continue
            org_name, org_slug, tenant_key = req.org_name, req.org_slug, req.product_tenant_key
            if req.status in (Status.UNVERIFIED.value, Status.AWAITING_APPROVAL.value):
                problem = f"the request is {req.status} and cannot run yet"
                if strict:
                    raise Conflict(detail=problem)
                skipped[request_id] = f"skipped: {problem}"
                continue
            if req.org_id in shared:
                problem = ("the customer's product key is another organisation's; the vendor "
                           "must correct the mapping first")
                if strict:
                    raise Conflict(detail=problem)
                skipped[request_id] = f"skipped: {problem}"
                continue
            runnable = req.status == Status.QUEUED.value or (
                req.status == Status.RUNNING.value
                and (resume or req.heartbeat_at is None or req.heartbeat_at < stale)
            )
            if not runnable:
                skipped[request_id] = "skipped: taken by another runner"
                continue
            details = details_of(req)
            jobs.append(
                Job(
                    request_id=req.id,
                    org_id=req.org_id,
                    kind=req.kind,
                    status=req.status,
                    attempts=req.attempts,
                    key_id=req.key_id,
                    channel=req.channel,
                    locale=req.locale,
                    received_at=req.received_at,
                    org_name=org_name or "",
                    org_slug=org_slug or req.org_id,
                    purpose=details.get("purpose"),
                    subject=Subject(
                        org_id=req.org_id,
                        tenant_value=tenant_key or req.org_id,
                        identities=identities_of(req),
                        subject_ref=req.subject_ref,
                        corrections=details.get("corrections") or {},
                    ),
                    answer_nobody_found=bool(req.answer_nobody_found),
                )
            )
        again = [j.request_id for j in jobs if j.attempts]  # only these can have parts already
        if again:
            with_tasks = set(
                session.scalars(select(Task.part_id).where(Task.request_id.in_(again)).distinct())
            )
            by_request = {j.request_id: j for j in jobs}
            for part in session.execute(
                select(
                    Part.id,
                    Part.request_id,
                    Part.database,
                    Part.status,
                    Part.rows_found,
                    Part.rows_done,
                    Part.error,
                ).where(Part.request_id.in_(again))
            ):
                by_request[part.request_id].parts[part.database] = PartState(
                    part.id, part.status, part.id in with_tasks, part.rows_found, part.rows_done, part.error
                )
    return jobs, skipped


def _shared_keys(session: Session, keys: dict[str, str]) -> set[str]:
    """Organisations (of ``keys``: org id -> explicit product key) whose key is also another
    organisation's: a request of theirs would reach the other's people, so it never runs. One
    query each for the keys' owners and for ids equal to a key; none when no key is set."""
    if not keys:
        return set()
    wanted = sorted(set(keys.values()))
    owners: dict[str, set[str]] = {}
    pol = Policy.__table__
    for org_id, key in session.execute(
        select(pol.c.org_id, pol.c.product_tenant_key).where(pol.c.product_tenant_key.in_(wanted))
    ):
        owners.setdefault(key, set()).add(org_id)
    for (org_id,) in session.execute(
        select(Organisation.id).where(Organisation.id.in_(wanted))
    ):
        owners.setdefault(org_id, set()).add(org_id)
    return {org for org, key in keys.items() if owners.get(key, set()) - {org}}


@functools.cache
def _load_statement(one: bool) -> Any:
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


def _map_if_needed(database: Database, request_id: str) -> DataMap | None:
    with database.transaction(Scope.system("read rights request")) as session:
        kind = session.scalar(select(RightsRequest.kind).where(RightsRequest.id == request_id))
    if kind is None:
        raise NotFound(detail="no such request")
    return None if kind in FLAG_KINDS else _published_map(database)


def published_map_or_none(database: Database) -> DataMap | None:
    try:
        return _published_map(database)
    except Conflict:
        return None


def request_row_status(database: Database, request_id: str) -> str:
    with database.transaction(Scope.system("read rights request")) as session:
        status = session.scalar(select(RightsRequest.status).where(RightsRequest.id == request_id))
    if status is None:
        raise NotFound(detail="no such request")
    return str(status)


def _published_map(database: Database) -> DataMap:

    with database.transaction(Scope.system("read product map")) as session:
        found = current_map(session)
    if found is None:
        raise Conflict(detail="no product data map is published (vern datamap publish FILE)")
    return found


def _add_flags(  # noqa: PLR0917 - the pieces of one flag
    session: Session, org_id: str, request_id: str, kind: str, identities: dict[str, str], purpose: str | None
) -> None:
    for ref in identity_refs(identities):
        session.add(Flag(org_id=org_id, kind=kind, subject_ref=ref, purpose=purpose, request_id=request_id))
    record(
        session,
        f"rights.flag.{kind}",
        org_id=org_id,
        resource=f"rights_request:{request_id}",
        details={"new": {"kind": kind, "purpose": purpose}},
    )


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
_T_PACKAGES: Any = Package.__table__
# Run on the engine's bare connection (no tenant scope): rows addressed by request id only.
_ENGINE = "rights engine: rows of requests loaded by id"
_INSERT_PACKAGE = insert(_T_PACKAGES).execution_options(cross_tenant=_ENGINE)
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
).execution_options(cross_tenant=_ENGINE)


def finish_job(session: Session, job: Any) -> str:
    """Close a claimed run (``vern.rights.engine.Job``) in the caller's transaction: done only
    when every database part is done - then the answer of a read request is stored, the person
    is told and the rows found are forgotten; otherwise partial, naming the parts that failed."""
    if job.kind in FLAG_KINDS:
        _add_flags(session, job.org_id, job.request_id, job.kind, job.subject.identities, job.purpose)
    parts = job.outcome
    done = all(status == "done" for status, _f, _d, _e in parts.values())
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
    now = utcnow()
    if not done:
        failed = sorted(name for name, (status, *_rest) in parts.items() if status == "failed")
        refused = [n for n in failed if (parts[n][3] or "").startswith(REFUSED)]
        missed = [n for n in failed if n not in refused]
        said = [f"refused by {n}: {(parts[n][3] or '')[len(REFUSED):]}" for n in refused]
        if missed:
            said.append("not reached: " + ", ".join(missed))
        error = "; ".join(said) if said else "incomplete"
        execute_fast(
            session.connection(),
            _FINISH,
            {
                "w_id": job.request_id,
                "status": Status.PARTIAL.value,
                "summary": summary,
                "error": error,
                "completed_at": None,
                "now": now,
                "moved": job.moved,
            },
        )
        attempt = job.attempts + 1  # this run's claim counted it
        last = attempt >= rights_settings().retry_max_attempts
        _audit_status(session, job, Status.PARTIAL, "rights.request.partial",
                      {"failed": failed, "attempt": attempt, "retried": not last})
        if last:
            _tell_staff_given_up(session, job, attempt, error)
        job.result = Status.PARTIAL.value
        return job.result
    if job.kind not in FLAG_KINDS and parts and summary["rows_found"] == 0:
        if not job.answer_nobody_found:
            return _nobody_found(session, job, summary, now)
        summary["searched"] = job.searched  # the customer answers "nobody found" without review
    if job.kind in WRITE_KINDS and summary["rows_found"] and not sum(d for _s, _f, d, _e in parts.values()):
        summary["note"] = "nothing was changed: every row found already holds what the request asks"
    if job.kind == Kind.ERASURE.value:
        summary["vern"] = _erase_in_vern(session, job.org_id, job.subject.identities, job.request_id)
    link = None
    if job.package is not None:
        link = _store_answer(session, job, job.package)
    if job.stored:  # plans run from storage still hold the rows found; they are not kept
        session.connection().execute(
            update(_T_TASKS).where(_T_TASKS.c.request_id == job.request_id).values(plan=None)
        )
    execute_fast(
        session.connection(),
        _FINISH,
        {
            "w_id": job.request_id,
            "status": Status.DONE.value,
            "summary": summary,
            "error": None,
            "completed_at": now,
            "now": now,
            "moved": job.moved,
        },
    )
    _audit_status(session, job, Status.DONE, "rights.request.complete", {"rows_found": summary["rows_found"]})
    _tell(session, job, link, nobody=job.kind not in FLAG_KINDS and bool(parts) and not summary["rows_found"])
    job.result = Status.DONE.value
    return job.result


def _erase_in_vern(session: Session, org_id: str, identities: dict[str, str],
                   request_id: str) -> dict[str, int]:
    from vern.retention.erasure import erase_in_vern

    return erase_in_vern(session, org_id=org_id, identities=identities, request_id=request_id)


def forget_subject_requests(session: Session, *, org_id: str, subject_ref: str,
                            keep_request_id: str | None) -> int:
    """Destroy the data keys of the person's earlier closed requests in ``org_id`` (their
    identities, details, answers and mails become unreadable); the requests stay, as the fact
    that they were handled. Returns how many keys were destroyed."""
    closed = (Status.DONE.value, Status.REJECTED.value, Status.CANCELLED.value)
    rows = session.execute(
        select(RightsRequest.id, RightsRequest.key_id).where(
            RightsRequest.org_id == org_id, RightsRequest.subject_ref == subject_ref,
            RightsRequest.status.in_(closed), RightsRequest.id != (keep_request_id or ""))
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

    closed = (Status.DONE.value, Status.REJECTED.value, Status.CANCELLED.value)
    stmt = (
        select(RightsRequest.id, RightsRequest.key_id)
        .join(DataKey, DataKey.id == RightsRequest.key_id)
        .where(RightsRequest.status.in_(closed), RightsRequest.completed_at.is_not(None),
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


def replay_targets(database: Database, name: str) -> list[str]:
    """The product databases (``system.database``) a restore of ``name`` covers: a system of the
    published map (every database of it), or one database (``database`` or ``system.database``).
    Refused naming ``database`` when the map has neither."""
    with database.transaction(Scope.system("replay erasures")) as session:
        data_map = current_map(session)
    if data_map is None:
        raise InvalidInput.on("database", "no product data map is published")
    system = data_map.systems.get(name)
    if system is not None and system.databases:
        return [db.qualified for db in system.databases.values()]
    try:
        return [data_map.database(name).qualified]
    except KeyError:
        raise InvalidInput.on("database", "not a database of the published map") from None


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


def delete_closed_requests(session: Session, *, closed_before: datetime, limit: int,
                           held: set[str] | None = None) -> list[str]:
    """Retention of the fact that a request was handled (five years): requests closed before
    ``closed_before`` are deleted with everything kept for them (parts, tasks, ledger, flags,
    external steps, codes, packages), at most ``limit`` per call, oldest first, skipping the
    request ids and subject references in ``held`` and requests whose restriction or objection
    still stands (a flag not lifted). One transaction: the caller's."""
    from sqlalchemy import delete, exists


    closed = (Status.DONE.value, Status.REJECTED.value, Status.CANCELLED.value)
    held = held or set()
    standing = exists().where(Flag.request_id == RightsRequest.id, Flag.lifted_at.is_(None))
    rows = session.execute(
        select(RightsRequest.id, RightsRequest.subject_ref)
        .where(RightsRequest.status.in_(closed), RightsRequest.completed_at.is_not(None),
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


def _nobody_found(session: Session, job: Any, summary: dict[str, Any], now: Any) -> str:
    """No row matched anywhere: not a silent "done". The request waits for staff, showing what
    was searched; the person is answered when staff confirm (``confirm_nobody_found``)."""
    summary["searched"] = getattr(job, "searched", {})
    execute_fast(
        session.connection(),
        _FINISH,
        {
            "w_id": job.request_id,
            "status": Status.NOBODY_FOUND.value,
            "summary": summary,
            "error": None,
            "completed_at": None,
            "now": now,
            "moved": job.moved,
        },
    )
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


def build_export_package(
    data_map: DataMap,
    rows: dict[str, dict[str, list[dict[str, Any]]]],
    *,
    reference: str,
    org_name: str,
    made_at: datetime,
    locale: str,
) -> bytes:
    """A customer organisation's whole data in the access package's formats (data.json, one CSV
    per table, a readable summary), for the export at the end of its contract. ``rows`` is keyed
    like an access package's: database (``system.database``), then table."""

    return build_zip(data_map, rows, request_id=reference, kind="export", org_name=org_name,
                     received=made_at, locale=locale, texts=EXPORT_TEXT)


def _store_answer(session: Session, job: Any, body: bytes) -> str:
    import base64

    token = secrets.token_urlsafe(32)
    execute_fast(
        session.connection(),
        _INSERT_PACKAGE,
        {
            "id": new_id(),
            "org_id": job.org_id,
            "request_id": job.request_id,
            "body": PII(job.key_id, base64.b64encode(body).decode()),
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "token_hash": hashlib.sha256(token.encode()).hexdigest(),
            "created_at": utcnow(),
            "expires_at": utcnow() + timedelta(days=rights_settings().download_days),
            "downloads": 0,
        },
    )
    return download_link(job.org_slug, token)


def _new_package(session: Session, req: RightsRequest, body: bytes, slug: str) -> str:
    import base64

    token = secrets.token_urlsafe(32)
    session.add(
        Package(
            org_id=req.org_id,
            request_id=req.id,
            body=PII(req.key_id, base64.b64encode(body).decode()),
            size=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            expires_at=utcnow() + timedelta(days=rights_settings().download_days),
        )
    )
    return download_link(slug, token)


def download_link(slug: str, token: str) -> str:

    return f"{get_settings().base_url.rstrip('/')}/p/{slug}/download/{token}"


def renew_link(session: Session, request_id: str, *, actor_user_id: str | None) -> str:
    """A fresh download link for a finished request (the old one stops working)."""
    req = get_request(session, request_id)
    pkg = _latest_package(session, req.id)
    if pkg is None or pkg.body is None or pkg.body.value is None:
        raise Conflict(detail="this request has no answer to download")
    token = secrets.token_urlsafe(32)
    pkg.token_hash = hashlib.sha256(token.encode()).hexdigest()
    pkg.expires_at = utcnow() + timedelta(days=rights_settings().download_days)
    org = session.get(Organisation, req.org_id)
    record(
        session,
        "rights.package.link",
        org_id=req.org_id,
        actor_user_id=actor_user_id,
        resource=f"rights_package:{pkg.id}",
    )
    return download_link(org.slug if org else req.org_id, token)


def _latest_package(session: Session, request_id: str) -> Package | None:
    return session.scalars(
        select(Package).where(Package.request_id == request_id).order_by(Package.created_at.desc())
    ).first()


def download(session: Session, token: str, *, actor_user_id: str | None = None) -> tuple[bytes, str]:
    """The zip behind a download link; every download is audited. Expired links give NotFound."""

    pkg = session.scalars(
        select(Package).where(Package.token_hash == hashlib.sha256(token.encode()).hexdigest())
    ).first()
    return _deliver(session, pkg, actor_user_id)


def download_for_staff(session: Session, request_id: str, *, actor_user_id: str | None) -> tuple[bytes, str]:
    req = get_request(session, request_id)
    pkg = _latest_package(session, req.id)
    if pkg is None:
        raise Conflict(detail="this request has no answer to download")
    return _deliver(session, pkg, actor_user_id)


def _deliver(session: Session, pkg: Package | None, actor_user_id: str | None) -> tuple[bytes, str]:
    import base64

    if pkg is None or pkg.body is None or pkg.body.value is None:
        raise NotFound(detail="no such download")
    if pkg.expires_at <= utcnow():
        record(
            session,
            "rights.package.download",
            org_id=pkg.org_id,
            actor_user_id=actor_user_id,
            resource=f"rights_package:{pkg.id}",
            outcome="failure",
            details={"new": {"expired": True}},
        )
        raise NotFound(detail="the download link has expired")
    pkg.downloads += 1
    pkg.last_download_at = utcnow()
    record(
        session,
        "rights.package.download",
        org_id=pkg.org_id,
        actor_user_id=actor_user_id,
        resource=f"rights_package:{pkg.id}",
        details={"new": {"downloads": pkg.downloads}},
    )
    return base64.b64decode(pkg.body.value), f"personal-data-{pkg.request_id[:8]}.zip"


# -- flags the product checks (Art. 18, 21, 7(3)) ------------------------------------------------


def active_flags(session: Session, identities: dict[str, Any]) -> list[Flag]:
    refs = identity_refs(clean_identities(identities))
    return list(
        session.scalars(
            select(Flag).where(Flag.subject_ref.in_(refs), Flag.lifted_at.is_(None)).order_by(Flag.created_at)
        )
    )


def lift_flag(session: Session, flag_id: str, *, actor_user_id: str | None) -> Flag:
    flag = session.get(Flag, flag_id)
    scope: Scope | None = session.info.get("scope")
    if flag is None or (scope is not None and not scope.is_system and flag.org_id != scope.org_id):
        raise NotFound(detail="no such flag")
    if flag.lifted_at is not None:
        raise Conflict(detail="already lifted")
    flag.lifted_at = utcnow()
    flag.lifted_by = actor_user_id
    # every identity's flag from the same request is lifted together
    if flag.request_id:
        for other in session.scalars(
            select(Flag).where(Flag.request_id == flag.request_id, Flag.lifted_at.is_(None))
        ):
            other.lifted_at = flag.lifted_at
            other.lifted_by = actor_user_id
    record(
        session,
        "rights.flag.lift",
        org_id=flag.org_id,
        actor_user_id=actor_user_id,
        resource=f"rights_flag:{flag.id}",
        details={"old": {"lifted": False}, "new": {"lifted": True}},
    )
    return flag


# -- overview, reminders, the worker -----------------------------------------------------------------


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


def due_state(req: RightsRequest, now: datetime | None = None) -> str:
    now = now or utcnow()
    if req.status not in [s.value for s in OPEN_STATUSES]:
        return "closed"
    if req.deadline <= now:
        return "overdue"
    if req.deadline - now <= timedelta(days=rights_settings().remind_days_before):
        return "due_soon"
    return "ok"


REMINDER_MAIL = (
    N_("A request's deadline is near"),
    N_("A request (%(kind)s) is due on %(due)s.\n%(link)s"),
)


def _staff(session: Session, org_id: str) -> list[Any]:
    """Who is told about a customer's requests: its admins and the vendor's privacy officers."""

    return list(
        session.execute(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(
                or_(Membership.org_id == org_id, Membership.role == Role.PRIVACY_OFFICER.value),
                Membership.role.in_([Role.TENANT_ADMIN.value, Role.PRIVACY_OFFICER.value]),
                User.disabled_at.is_(None),
            )
        )
        .scalars()
        .unique()
        .all()
    )


def _request_link(request_id: str) -> str:

    return f"{get_settings().base_url.rstrip('/')}/console/rights/requests/{request_id}"


GIVEN_UP_MAIL = (
    N_("A request could not be completed"),
    N_("A request (%(kind)s) is only partly done after %(attempts)s attempts (%(error)s). "
       "It is not retried automatically any more; fix the fault and retry it from the console.\n%(link)s"),
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
                         link=_request_link(job.request_id)),
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


def _staff_for_last_attempts(database: Database, jobs: list[Any]) -> None:
    """Read who is to be told for the jobs whose run is their last automatic attempt (before the
    run: the finish writes the mail without reading anything)."""
    last = [j for j in jobs if j.attempts + 1 >= rights_settings().retry_max_attempts]
    if not last:
        return
    found: dict[str, list[tuple[str, str, str]]] = {}
    with database.transaction(Scope.system("rights staff to tell")) as session:
        for job in last:
            if job.org_id not in found:
                found[job.org_id] = [
                    (user.key_id, user.email.value, user.locale)
                    for user in _staff(session, job.org_id)
                    if user.email.value is not None
                ]
            job.staff = found[job.org_id]


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
            _set_status(session, req, Status.QUEUED, actor_user_id=None, action="rights.request.retry",
                        extra={"automatic": True, "attempt": req.attempts + 1})
            requeued.append(req.id)
    return requeued


def send_reminders(database: Database, *, now: datetime | None = None) -> int:
    """Remind each customer's admins (and the vendor's privacy officers) of requests due soon."""
    now = now or utcnow()
    sent = 0
    horizon = now + timedelta(days=rights_settings().remind_days_before)
    with database.transaction(Scope.system("rights reminders")) as session:
        due = session.scalars(
            select(RightsRequest).where(
                RightsRequest.status.in_([s.value for s in OPEN_STATUSES]),
                RightsRequest.reminded_at.is_(None),
                or_(
                    RightsRequest.extended_due_at <= horizon,
                    RightsRequest.extended_due_at.is_(None) & (RightsRequest.due_at <= horizon),
                ),
            )
        ).all()
        for req in due:
            link = _request_link(req.id)
            for user in _staff(session, req.org_id):
                if user.email.value is None:
                    continue
                lang = user.locale
                subject, body = REMINDER_MAIL
                notify.queue(
                    session,
                    key_id=user.key_id,
                    to=user.email.value,
                    kind="rights.reminder",
                    org_id=req.org_id,
                    subject=gettext(lang, subject),
                    body=gettext(lang, body, kind=gettext(lang, req.kind),
                                 due=format_day(req.deadline, lang), link=link),
                )
                sent += 1
            req.reminded_at = now
            record(session, "rights.request.remind", org_id=req.org_id, resource=f"rights_request:{req.id}")
    return sent


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
        data_map = _published_map(database)
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
