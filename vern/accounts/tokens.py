"""API tokens: created with a role no stronger than their creator's and a limited life, shown
once (only a hash is kept), revoked, and resolved to an ``Actor`` on every API request."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts import security
from vern.accounts.actor import Actor, record_as
from vern.accounts.members import role_for
from vern.accounts.models import ApiToken, Organisation
from vern.accounts.orgs import get_organisation
from vern.accounts.roles import OrgKind, Perm, Role, permissions
from vern.accounts.sessions import SESSION_TOUCH_SECONDS
from vern.core.config import Settings
from vern.core.db import utcnow
from vern.core.errors import Forbidden, InvalidInput, NotFound


def create_token(
    session: Session, settings: Settings, *, name: str, role: str, days: int, actor: Actor
) -> tuple[str, ApiToken]:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput.on("name", "must be 1-100 characters")
    if not 1 <= days <= settings.api_token_max_days:
        raise InvalidInput.on("days", "must be 1-%(n)s", n=settings.api_token_max_days)
    org = get_organisation(session, actor.org_id)
    parsed = role_for(org, role)
    # A token acts without SELF (it is nobody's account), so compare what it will really hold.
    granted = permissions(parsed, org_kind=OrgKind(org.kind), home=True) - {Perm.SELF}
    if not granted <= actor.perms:
        raise Forbidden(detail="role: a token cannot have more rights than its creator")
    expires_at = utcnow() + timedelta(days=days)
    if actor.token_id is not None:
        creator = session.get(ApiToken, actor.token_id)
        if creator is None or expires_at > creator.expires_at:
            raise InvalidInput.on("days", "must not outlast the token that creates it")
    token = security.new_token("vt")
    row = ApiToken(
        name=name,
        prefix=token[:10],
        token_hash=security.token_hash(token),
        role=parsed.value,
        created_by=actor.user_id,
        expires_at=expires_at,
        org_id=actor.org_id,
    )
    session.add(row)
    session.flush()
    record_as(session, "token.created", actor, resource=f"token:{row.id}",
              details={"new": {"role": parsed.value, "days": days}})
    return token, row


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc())))


def revoke_token(session: Session, *, token_id: str, actor: Actor) -> ApiToken:
    row = session.scalar(select(ApiToken).where(ApiToken.id == token_id))
    if row is None:
        raise NotFound()
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        record_as(session, "token.revoked", actor, resource=f"token:{row.id}")
    return row


def actor_for_token(session: Session, token: str) -> Actor | None:
    """Needs a system scope: the token says which organisation it belongs to."""
    # The token and its organisation in one query (every API request runs this).
    found = session.execute(
        select(ApiToken, Organisation).join(Organisation, Organisation.id == ApiToken.org_id)
        .where(ApiToken.token_hash == security.token_hash(token))
    ).first()
    now = utcnow()
    if found is None:
        return None
    row, org = found
    if row.revoked_at is not None or row.expires_at <= now:
        return None
    if org.disabled_at is not None:
        return None
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > SESSION_TOUCH_SECONDS:
        row.last_used_at = now
    kind = OrgKind(org.kind)
    role = Role(row.role)
    return Actor(org_id=org.id, org_kind=kind, role=role,
                 perms=permissions(role, org_kind=kind, home=True) - {Perm.SELF},
                 token_id=row.id, person_id=row.created_by)
