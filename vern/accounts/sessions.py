"""Signed-in sessions: starting one (its token is the cookie's value, only its hash is kept),
and ending one, all of a person's, or all of one's own."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from vern.accounts import security
from vern.accounts.actor import Actor, record_as
from vern.accounts.models import AuthSession, User
from vern.audit.service import record
from vern.core.db import utcnow
from vern.core.errors import Forbidden

SESSION_TOUCH_SECONDS = 60


@dataclass(frozen=True)
class SignIn:
    """A password (or invitation) accepted: the person, their new session and its token."""

    user: User
    session: AuthSession
    token: str
    needs_mfa: bool  # a code is still to be given
    must_enrol_mfa: bool  # the role requires MFA and none is set up
    password_expired: bool


def start_session(session: Session, *, user_id: str, org_id: str) -> tuple[str, AuthSession]:
    """A new session in ``org_id``, its second step not yet done: (token, session)."""
    token = security.new_token("vs")
    auth_session = AuthSession(
        token_hash=security.token_hash(token),
        user_id=user_id,
        org_id=org_id,
        csrf_token=secrets.token_urlsafe(32),
        mfa_verified=False,
    )
    session.add(auth_session)
    session.flush()
    return token, auth_session


def end_session(session: Session, auth_session: AuthSession) -> None:
    auth_session.revoked_at = utcnow()
    record(session, "auth.signout", org_id=auth_session.org_id, actor_user_id=auth_session.user_id)


def end_user_sessions(session: Session, user_id: str) -> int:
    """End every open session of an account (the caller records why); how many there were."""
    result = session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def end_all_sessions(session: Session, *, actor: Actor) -> int:
    """Sign out everywhere."""
    if actor.user_id is None:
        raise Forbidden(detail="only a person can sign out")
    count = end_user_sessions(session, actor.user_id)
    record_as(session, "auth.signout_everywhere", actor, resource=f"user:{actor.user_id}",
              details={"sessions": count})
    return count
