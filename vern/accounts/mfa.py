"""The second factor: enrolling an authenticator (TOTP), checking a code or a single-use recovery
code at sign-in (wrong codes lead to locks), replacing the recovery codes, and an
administrator's reset."""

from __future__ import annotations

import hmac
from datetime import timedelta
from hashlib import sha256

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts import security
from vern.accounts.actor import Actor, record_as
from vern.accounts.lockout import locked_for, register_failure, throttle_key
from vern.accounts.members import get_member, only_here
from vern.accounts.models import AuthSession, AuthThrottle, RecoveryCode, User
from vern.accounts.sessions import end_user_sessions
from vern.audit.service import record
from vern.core.config import Settings
from vern.core.crypto import PII
from vern.core.db import utcnow
from vern.core.errors import Conflict, InvalidInput, Locked

# Second-factor guessing (NIST SP 800-63B 5.2.2) is limited per account like sign-in.
MFA_FAILURES_BEFORE_LOCK = 5
MFA_LOCK_BASE = timedelta(seconds=30)
MFA_LOCK_MAX = timedelta(minutes=15)


def begin_mfa_enrolment(session: Session, *, user: User) -> str:
    """A new secret, kept unconfirmed until a first code proves the authenticator has it."""
    if user.mfa_enabled_at is not None:
        raise Conflict(detail="MFA is already enabled")
    secret = security.new_totp_secret()
    user.mfa_secret = PII(user.key_id, secret)
    user.mfa_last_step = None
    return secret


def confirm_mfa_enrolment(
    session: Session, settings: Settings, *, user: User, auth_session: AuthSession, code: str
) -> list[str]:
    if user.mfa_secret is None or user.mfa_secret.value is None or user.mfa_enabled_at:
        raise Conflict(detail="start MFA enrolment first")
    step = security.totp_match(user.mfa_secret.value, code, last_step=user.mfa_last_step)
    if step is None:
        record(session, "auth.mfa_enrol_failed", org_id=auth_session.org_id,
               actor_user_id=user.id, outcome="failure")
        raise InvalidInput.on("code", "is not the current code from your authenticator", "wrong-code")
    user.mfa_last_step = step
    user.mfa_enabled_at = utcnow()
    auth_session.mfa_verified = True
    codes = _replace_recovery_codes(session, settings, user)
    record(session, "auth.mfa_enabled", org_id=auth_session.org_id, actor_user_id=user.id,
           resource=f"user:{user.id}")
    return codes


def _recovery_hash(settings: Settings, code: str) -> str:
    return hmac.new(settings.secret_bytes, security.normalise_recovery_code(code).encode(),
                    sha256).hexdigest()


def _replace_recovery_codes(session: Session, settings: Settings, user: User) -> list[str]:
    for old in session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        session.delete(old)
    codes = security.new_recovery_codes()
    for code in codes:
        session.add(RecoveryCode(user_id=user.id, code_hash=_recovery_hash(settings, code)))
    return codes


def verify_mfa(
    session: Session, settings: Settings, *, auth_session: AuthSession, code: str
) -> None:
    """The second factor: a TOTP code (never the same step twice) or an unused recovery code."""
    user = session.get(User, auth_session.user_id)
    if user is None or user.mfa_secret is None or user.mfa_secret.value is None:
        raise Conflict(detail="MFA is not set up")
    mfa_key = throttle_key(settings, "mfa", user.id)
    wait = locked_for(session.get(AuthThrottle, mfa_key), utcnow())
    if wait:
        record(session, "auth.mfa_locked", org_id=auth_session.org_id, actor_user_id=user.id,
               outcome="denied", details={"retry_after": wait})
        raise Locked(retry_after=wait, detail="Too many wrong codes; try again later")
    step = security.totp_match(user.mfa_secret.value, code, last_step=user.mfa_last_step)
    if step is not None:
        user.mfa_last_step = step
        method = "totp"
    else:
        used = session.scalar(
            select(RecoveryCode).where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == _recovery_hash(settings, code),
                RecoveryCode.used_at.is_(None),
            )
        )
        if used is None:
            _mfa_failed(session, mfa_key, auth_session, user)
            raise InvalidInput.on("code", "is not valid or was already used", "wrong-code")
        used.used_at = utcnow()
        method = "recovery-code"
    throttle = session.get(AuthThrottle, mfa_key)
    if throttle is not None:
        session.delete(throttle)
    auth_session.mfa_verified = True
    record(session, "auth.mfa_passed", org_id=auth_session.org_id, actor_user_id=user.id,
           details={"method": method})


def _mfa_failed(session: Session, key: str, auth_session: AuthSession, user: User) -> None:
    row = register_failure(session, key, MFA_FAILURES_BEFORE_LOCK, MFA_LOCK_BASE, MFA_LOCK_MAX,
                           now=utcnow())
    record(session, "auth.mfa_failed", org_id=auth_session.org_id, actor_user_id=user.id,
           outcome="failure")
    if row.failures == 0 and row.locked_until is not None:
        record(session, "auth.lock_started", org_id=auth_session.org_id, actor_user_id=user.id,
               outcome="denied", details={"scope": "mfa", "until": row.locked_until.isoformat()})


def regenerate_recovery_codes(session: Session, settings: Settings, *, actor: Actor) -> list[str]:
    user = session.get(User, actor.user_id)
    if user is None or user.mfa_enabled_at is None:
        raise Conflict(detail="MFA is not enabled")
    codes = _replace_recovery_codes(session, settings, user)
    record_as(session, "auth.recovery_codes_replaced", actor, resource=f"user:{user.id}")
    return codes


def reset_mfa(session: Session, *, user_id: str, actor: Actor) -> None:
    """An administrator clears a member's MFA (lost phone); they must enrol again."""
    user, membership = get_member(session, user_id)
    only_here(session, user.id, membership.org_id, actor)
    user.mfa_secret = None
    user.mfa_enabled_at = None
    user.mfa_last_step = None
    for old in session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        session.delete(old)
    end_user_sessions(session, user.id)
    record_as(session, "auth.mfa_reset", actor, resource=f"user:{user.id}")
