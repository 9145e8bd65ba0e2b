"""Look-ups of account holders for other domains and the pages: a user's public view, and who
to tell - a customer's administrators, every active account holder, staff by role."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts.models import Membership, User
from vern.accounts.roles import Role


def user_view(user: User, membership: Membership | None = None) -> dict[str, object]:
    return {
        "id": user.id,
        "email": str(user.email),
        "name": str(user.name),
        "role": membership.role if membership else None,
        "mfa_enabled": user.mfa_enabled_at is not None,
        "password_set": user.password_hash is not None,
        "disabled": user.disabled_at is not None,
        "created_at": user.created_at.isoformat(),
        "last_sign_in_at": user.last_sign_in_at.isoformat() if user.last_sign_in_at else None,
    }



# -- a customer's administrators, for other domains' notices -------------------------------------


def active_admins(session: Session, org_id: str) -> list[User]:
    """The active administrators of one customer organisation, for notices to it (the vendor's
    registry falls back to them when the customer named no contact). Reads the customer's
    memberships by its id on purpose, whatever the session's scope: callers check first that
    the reader may see that customer."""
    return active_admins_by_org(session, [org_id]).get(org_id, [])


def active_admins_by_org(session: Session, org_ids: list[str]) -> dict[str, list[User]]:
    """``active_admins`` for many customers at once (one query per 500 organisations)."""
    m = Membership.__table__
    found: dict[str, list[User]] = {}
    for start in range(0, len(org_ids), 500):
        rows = session.execute(
            select(m.c.org_id, User)
            .join(User, m.c.user_id == User.id)
            .where(m.c.org_id.in_(org_ids[start:start + 500]),
                   m.c.role == Role.TENANT_ADMIN.value, User.disabled_at.is_(None))
            .order_by(User.created_at)
            .execution_options(cross_tenant="customers' admins, for notices to the customers")
        )
        for org_id, user in rows:
            found.setdefault(org_id, []).append(user)
    return found


def active_users(session: Session) -> list[User]:
    """Every account holder who is not disabled, in every organisation (announcements that
    concern all of them, such as a new privacy statement), oldest first. Users carry no
    organisation, so this reads across organisations by nature: call it in a system scope."""
    scope = session.info.get("scope")
    if scope is None or not scope.is_system:
        raise RuntimeError("every account holder: system scope")
    return list(session.scalars(select(User).where(User.disabled_at.is_(None))
                                .order_by(User.created_at, User.id)))


def active_with_roles(session: Session, org_id: str, roles: tuple[str, ...]) -> list[User]:
    """The active members of one organisation holding one of ``roles`` (the vendor's staff who
    are told of a closed objection window, for instance), oldest account first."""
    m = Membership.__table__
    return list(session.scalars(
        select(User).join(m, m.c.user_id == User.id)
        .where(m.c.org_id == org_id, m.c.role.in_(roles), User.disabled_at.is_(None))
        .order_by(User.created_at, User.id)
        .execution_options(cross_tenant="one organisation's staff by role, for notices to them")))
