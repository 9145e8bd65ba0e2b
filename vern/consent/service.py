"""Every write of the consent domain: purposes, notices, consent records, newsletter.

Consent records are the proof of Art. 7(1): each choice is a new row with who (a pseudonymous id or
a verified identity's keyed hash), what (purpose, the notice version shown), how (method), when,
and from where (truncated IP, user agent). Nothing here updates or deletes a record.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.orm import Session

from vern.audit.service import record as audit
from vern.consent.models import (
    CHOICES,
    KINDS,
    LEGAL_BASES,
    METHODS,
    NOTICE_KINDS,
    ConsentRecord,
    Notice,
    Purpose,
)
from vern.core.context import current_request
from vern.core.crypto import blind_index
from vern.core.db import utcnow
from vern.core.errors import Conflict, InvalidInput, NotFound
from vern.core.i18n import canonical_duration
from vern.core.ip import truncate_ip

KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
SUBJECT = re.compile(r"^[A-Za-z0-9_.:@-]{8,80}$")
COOKIE_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,120}$")
# Where a declared cookie lives, for expiring it from the server (vern.sdk.consent): the path it
# was set for (default /) and the Domain attribute it was set with (default: none, host-only).
COOKIE_PATH = re.compile(r"^/[!#$%&'()*+,./0-9:=?@A-Z\[\]^_`a-z{|}~-]{0,199}$")
COOKIE_DOMAIN = re.compile(r"^\.?(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                           r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# A choice that lets the product go ahead; anything else (or nothing, under consent) stops it.
ALLOWING = frozenset({"granted", "legitimate-interest"})


@dataclass(frozen=True)
class PurposeInput:
    key: str
    kind: str
    legal_basis: str
    name_nb: str
    name_en: str
    description_nb: str = ""
    description_en: str = ""
    data_categories: tuple[str, ...] = ()
    retention: str = ""
    cookies: tuple[dict[str, Any], ...] = ()
    scripts: tuple[str, ...] = ()
    in_banner: bool = False


def _validate_purpose(data: PurposeInput) -> None:
    if not KEY.match(data.key):
        raise InvalidInput.on("key", "lower-case letters, digits, - and _ (at most 40)")
    if data.kind not in KINDS:
        raise InvalidInput.on("kind", "one of %(values)s", values=", ".join(KINDS))
    if data.legal_basis not in LEGAL_BASES:
        raise InvalidInput.on("legal_basis", "a letter a-f (GDPR Art. 6(1)(a)-(f))")
    for field_name in ("name_nb", "name_en"):
        value = getattr(data, field_name).strip()
        if not value or len(value) > 200:
            raise InvalidInput.on(field_name, "give a name of 1-200 characters")
    if data.kind != "necessary" and data.in_banner and data.legal_basis != "a":
        # ekomloven § 3-15 / ePrivacy: storing or reading on a device needs consent unless necessary.
        raise InvalidInput.on("legal_basis", "cookies that are not strictly necessary need consent (a)")
    if data.kind == "necessary" and data.legal_basis == "a":
        raise InvalidInput.on("kind", "a purpose based on consent cannot be strictly necessary")
    for i, cookie in enumerate(data.cookies):
        if not isinstance(cookie, dict) or not COOKIE_NAME.match(str(cookie.get("name", "")).rstrip("*")):
            raise InvalidInput.on(f"cookies.{i}.name", "a cookie name (a trailing * matches a prefix)")
        path, domain = str(cookie.get("path") or "/"), str(cookie.get("domain") or "")
        if not COOKIE_PATH.match(path):
            raise InvalidInput.on(f"cookies.{i}.path", "a cookie path: / or /a/path (no ; or spaces)")
        if domain and not COOKIE_DOMAIN.match(domain):
            raise InvalidInput.on(f"cookies.{i}.domain", "a domain such as example.com (no scheme, no port)")


def create_purpose(session: Session, *, org_id: str, data: PurposeInput,
                   actor_user_id: str | None) -> Purpose:
    _validate_purpose(data)
    if session.scalar(select(Purpose.id).where(Purpose.key == data.key)) is not None:
        raise Conflict(detail="purpose %(key)s exists already", params={"key": repr(data.key)})
    purpose = Purpose(
        org_id=org_id, key=data.key, kind=data.kind, legal_basis=data.legal_basis,
        name_nb=data.name_nb.strip(), name_en=data.name_en.strip(),
        description_nb=data.description_nb, description_en=data.description_en,
        data_categories=list(data.data_categories), retention=canonical_duration(data.retention),
        cookies=[_cookie(c) for c in data.cookies], scripts=list(data.scripts),
        in_banner=data.in_banner or (data.kind != "other" and bool(data.cookies)),
    )
    session.add(purpose)
    session.flush()
    audit(session, "consent.purpose_created", org_id=org_id, actor_user_id=actor_user_id,
          resource=f"purpose:{purpose.key}", details={"new": purpose_view(purpose)})
    return purpose


def _cookie(cookie: dict[str, Any]) -> dict[str, str]:
    """A cookie's row; its duration kept as ``<number> <unit>`` (``90 days``) when it is one, so
    each reader sees it in their own language."""
    out = {k: str(cookie.get(k, ""))[:300] for k in ("name", "provider", "duration", "description_nb",
                                                     "description_en")}
    out["duration"] = canonical_duration(out["duration"])
    for k in ("path", "domain"):  # only when declared: the defaults are / and host-only
        if cookie.get(k):
            out[k] = str(cookie[k]).lstrip(".").lower() if k == "domain" else str(cookie[k])
    return out


def retire_purpose(session: Session, *, key: str, actor_user_id: str | None) -> Purpose:
    purpose = get_purpose(session, key)
    if purpose.retired_at is None:
        purpose.retired_at = utcnow()
        audit(session, "consent.purpose_retired", org_id=purpose.org_id,
              actor_user_id=actor_user_id, resource=f"purpose:{key}",
              details={"old": {"retired": False}, "new": {"retired": True}})
    return purpose


def get_purpose(session: Session, key: str) -> Purpose:
    purpose = session.scalar(select(Purpose).where(Purpose.key == key))
    if purpose is None:
        raise NotFound(detail="no such purpose")
    return purpose


def list_purposes(session: Session, *, include_retired: bool = False) -> list[Purpose]:
    query = select(Purpose).order_by(Purpose.kind, Purpose.key)
    if not include_retired:
        query = query.where(Purpose.retired_at.is_(None))
    return list(session.scalars(query))


def purpose_view(p: Purpose) -> dict[str, Any]:
    return {
        "key": p.key, "kind": p.kind, "legal_basis": p.legal_basis, "name_nb": p.name_nb,
        "name_en": p.name_en, "description_nb": p.description_nb, "description_en": p.description_en,
        "data_categories": p.data_categories, "retention": p.retention, "cookies": p.cookies,
        "scripts": p.scripts, "in_banner": p.in_banner, "retired": p.retired_at is not None,
    }


# -- notices -----------------------------------------------------------------------------------


def publish_notice(session: Session, *, org_id: str, kind: str, title_nb: str, title_en: str,
                   body_nb: str, body_en: str, actor_user_id: str | None) -> Notice:
    """A new version; the banner asks again when the cookie policy's version changes."""
    if kind not in NOTICE_KINDS:
        raise InvalidInput.on("kind", "privacy or cookie")
    for name, value in (("title_nb", title_nb), ("title_en", title_en), ("body_nb", body_nb),
                        ("body_en", body_en)):
        if not value.strip():
            raise InvalidInput.on(name, "required in both bokmål and English")
    version = (session.scalar(select(func.max(Notice.version)).where(Notice.kind == kind)) or 0) + 1
    notice = Notice(org_id=org_id, kind=kind, version=version, title_nb=title_nb.strip(),
                    title_en=title_en.strip(), body_nb=body_nb, body_en=body_en,
                    published_by=actor_user_id)
    session.add(notice)
    session.flush()
    audit(session, "consent.notice_published", org_id=org_id, actor_user_id=actor_user_id,
          resource=f"notice:{kind}:{version}", details={"new": {"kind": kind, "version": version}})
    return notice


def current_notice(session: Session, kind: str) -> Notice | None:
    return session.scalar(
        select(Notice).where(Notice.kind == kind).order_by(Notice.version.desc()).limit(1))


def notice_version(session: Session, kind: str, version: int) -> Notice:
    notice = session.scalar(select(Notice).where(Notice.kind == kind, Notice.version == version))
    if notice is None:
        raise NotFound(detail="no such notice version")
    return notice


def list_notices(session: Session) -> list[Notice]:
    return list(session.scalars(select(Notice).order_by(Notice.kind, Notice.version.desc())))


# -- consent records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    purpose_key: str
    choice: str


def check_subject(subject: str) -> str:
    if not SUBJECT.match(subject):
        raise InvalidInput.on("subject", "8-80 characters: letters, digits and . _ : @ -")
    return subject


def verified_subject(secret: bytes, email: str) -> str:
    """The subject id of a verified identity (an e-mail address): a keyed hash, never the address."""
    return "v:" + blind_index(secret, email, "consent-subject")[:40]


def record_choices(
    session: Session,
    *,
    org_id: str,
    subject: str,
    choices: Iterable[Choice],
    method: str,
    notice: int | None,
    subject_kind: str = "pseudonymous",
    actor_user_id: str | None = None,
    at: datetime | None = None,
) -> list[ConsentRecord]:
    """Append one record per choice. The client address comes from the request context and is
    truncated here, whatever the caller passed through."""
    check_subject(subject)
    if method not in METHODS:
        raise InvalidInput.on("method", "one of %(values)s", values=", ".join(METHODS))
    purposes = {p.key: p for p in list_purposes(session)}
    wanted = list(choices)
    if not wanted:
        raise InvalidInput.on("choices", "give at least one purpose")
    for c in wanted:
        if c.purpose_key not in purposes:
            raise InvalidInput.on("choices", "unknown purpose %(key)s", key=repr(c.purpose_key))
        if c.choice not in CHOICES:
            raise InvalidInput.on("choices", "unknown choice %(choice)s", choice=repr(c.choice))
    req = current_request()
    ip = truncate_ip(req.client_ip) if req and req.client_ip else None
    agent = (req.user_agent or "")[:300] if req else None
    at = at or utcnow()
    rows = []
    for c in wanted:
        rows.append(ConsentRecord(
            org_id=org_id, subject=subject, subject_kind=subject_kind, purpose_key=c.purpose_key,
            notice_version=notice, choice=c.choice, legal_basis=purposes[c.purpose_key].legal_basis
            if c.choice != "legitimate-interest" else "f",
            method=method, recorded_at=at, ip_truncated=ip, user_agent=agent or None,
        ))
    session.add_all(rows)
    session.flush()
    audit(session, "consent.recorded", org_id=org_id, actor_user_id=actor_user_id,
          resource=f"consent_subject:{subject}",
          details={"new": {"method": method, "notice": notice,
                           "choices": {c.purpose_key: c.choice for c in wanted}}})
    return rows


def latest(session: Session, subject: str) -> dict[str, ConsentRecord]:
    """The latest record per purpose of one subject (the one that decides)."""
    rows = session.scalars(
        select(ConsentRecord).where(ConsentRecord.subject == subject)
        .order_by(ConsentRecord.recorded_at, ConsentRecord.id)
    )
    return {r.purpose_key: r for r in rows}


def history(session: Session, subject: str) -> list[ConsentRecord]:
    return list(session.scalars(
        select(ConsentRecord).where(ConsentRecord.subject == subject)
        .order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id.desc())))


def allowed(basis: str, choice: str | None) -> bool:
    """Consent (a) needs a granted record; the other bases allow until an objection or
    withdrawal (Art. 21 for (e) and (f))."""
    if choice is None:
        return basis != "a"
    return choice in ALLOWING


def decisions(session: Session, subject: str) -> dict[str, dict[str, Any]]:
    found = latest(session, subject)
    result = {}
    for p in list_purposes(session):
        rec = found.get(p.key)
        result[p.key] = {
            "allowed": allowed(p.legal_basis, rec.choice if rec else None),
            "legal_basis": rec.legal_basis if rec else p.legal_basis,
            "choice": rec.choice if rec else None,
            "method": rec.method if rec else None,
            "notice_version": rec.notice_version if rec else None,
            "recorded_at": rec.recorded_at.isoformat() if rec else None,
        }
    return result


# The product's hot path, built once: a live purpose's legal basis and the latest record of one
# subject for it, in one indexed query (the session's tenant scope is added to both tables).
_DECISION = (
    select(Purpose.legal_basis.label("basis"), ConsentRecord.choice, ConsentRecord.legal_basis,
           ConsentRecord.method, ConsentRecord.notice_version, ConsentRecord.recorded_at)
    .select_from(Purpose)
    .outerjoin(ConsentRecord, and_(ConsentRecord.org_id == Purpose.org_id,
                                   ConsentRecord.subject == bindparam("subject"),
                                   ConsentRecord.purpose_key == Purpose.key))
    .where(Purpose.key == bindparam("purpose"), Purpose.retired_at.is_(None))
    .order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id.desc())
    .limit(1)
)


def decision(session: Session, subject: str, purpose_key: str) -> dict[str, Any] | None:
    """One purpose's decision for one subject; None for an unknown or retired purpose."""
    row = session.execute(_DECISION, {"subject": subject, "purpose": purpose_key}).first()
    if row is None:
        return None
    found = row.choice is not None
    return {
        "allowed": allowed(row.basis, row.choice),
        "legal_basis": row.legal_basis if found else row.basis,
        "choice": row.choice,
        "method": row.method,
        "notice_version": row.notice_version,
        "recorded_at": row.recorded_at.isoformat() if found else None,
    }


def withdraw(session: Session, *, org_id: str, subject: str, purposes: list[str] | None,
             method: str, actor_user_id: str | None = None) -> list[ConsentRecord]:
    """One step, as easy as giving (Art. 7(3)): every allowing choice (or the named ones) becomes
    withdrawn (consent) or objected (legitimate interest)."""
    found = latest(session, subject)
    keys = purposes if purposes is not None else [k for k, r in found.items() if r.choice in ALLOWING]
    known = {p.key: p for p in list_purposes(session)}
    choices = []
    for key in keys:
        if key not in known:
            raise InvalidInput.on("purposes", "unknown purpose %(key)s", key=repr(key))
        basis = found[key].legal_basis if key in found else known[key].legal_basis
        choices.append(Choice(key, "withdrawn" if basis == "a" else "objected"))
    if not choices:
        return []
    notice = current_notice(session, "cookie")
    return record_choices(session, org_id=org_id, subject=subject, choices=choices, method=method,
                          notice=notice.version if notice else None, actor_user_id=actor_user_id,
                          subject_kind=found[keys[0]].subject_kind if keys[0] in found else "pseudonymous")


def records_since(session: Session, since: datetime, limit: int = 1000) -> list[ConsentRecord]:
    """The change feed: every record after ``since`` (the product polls it to learn of withdrawals)."""
    return list(session.scalars(
        select(ConsentRecord).where(ConsentRecord.recorded_at > since)
        .order_by(ConsentRecord.recorded_at, ConsentRecord.id).limit(limit)))


def record_view(r: ConsentRecord) -> dict[str, Any]:
    return {
        "id": r.id, "subject": r.subject, "subject_kind": r.subject_kind, "purpose": r.purpose_key,
        "notice_version": r.notice_version, "choice": r.choice, "legal_basis": r.legal_basis,
        "method": r.method, "recorded_at": r.recorded_at.isoformat(), "ip": r.ip_truncated,
        "user_agent": r.user_agent,
    }


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def anonymise_subjects(session: Session, *, org_id: str, subjects: list[str]) -> int:
    """Keep the proof of consent of erased people without who they were: each subject's
    records get one random pseudonym (so their history still reads as one person's), and
    lose the truncated address and user agent. The one change ever made to consent records,
    done as a Core statement past the append-only guard, in the caller's transaction."""
    from sqlalchemy import update

    table: Any = ConsentRecord.__table__
    changed = 0
    for subject in subjects:
        pseudonym = "erased:" + secrets.token_hex(16)
        result = session.execute(
            update(table)
            .where(table.c.org_id == org_id, table.c.subject == subject)
            .values(subject=pseudonym, subject_kind="erased", ip_truncated=None, user_agent=None)
            .execution_options(cross_tenant="erasure: one organisation's records, named by org_id")
        )
        changed += getattr(result, "rowcount", 0) or 0
    return changed


def expire_records(session: Session, *, retired_before: datetime, limit: int) -> int:
    """Retention of consent proof: the records of purposes retired before ``retired_before``
    (kept while the purpose exists plus the proof period) are deleted, at most ``limit`` per
    call, in the caller's transaction. Returns how many went."""
    from sqlalchemy import delete

    table: Any = ConsentRecord.__table__
    retired = select(Purpose.org_id, Purpose.key).where(
        Purpose.retired_at.is_not(None), Purpose.retired_at < retired_before)
    why = "retention: records of retired purposes, every organisation"
    gone = 0
    for org_id, key in session.execute(retired.execution_options(cross_tenant=why)).all():
        ids = list(session.scalars(
            select(table.c.id).where(table.c.org_id == org_id, table.c.purpose_key == key)
            .limit(limit - gone).execution_options(cross_tenant=why)))
        if ids:
            session.execute(delete(table).where(table.c.id.in_(ids)).execution_options(cross_tenant=why))
            gone += len(ids)
        if gone >= limit:
            break
    if gone:
        audit(session, "consent.records_expired", org_id=None, details={"new": {"records": gone}})
    return gone
