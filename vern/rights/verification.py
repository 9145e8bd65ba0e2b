"""Identity checks by a one-time code sent by e-mail: an unverified request never runs
(Art. 12(6)). A fresh code replaces any earlier one; a code expires, and too many wrong tries
use it up."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vern.accounts.models import Organisation
from vern.audit.service import record
from vern.core.config import rights_settings
from vern.core.db import utcnow
from vern.core.errors import Conflict, InvalidInput
from vern.core.i18n import N_, format_duration, gettext
from vern.notify import service as notify
from vern.rights.identities import secret
from vern.rights.intake import get_request, identities_of, mark_verified
from vern.rights.models import Status, Verification


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
        mark_verified(session, req, "email_code", None)
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
