"""Which vendor access grants are in force. Accounts reads this on every request of the vendor's
staff acting in a customer's organisation (and for the organisations they may switch to); it
depends on nothing but the grants' table, so that accounts and access do not import each other
in a circle."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.access.models import AccessGrant
from vern.core.db import utcnow


def grant_in_force(session: Session, *, org_id: str, user_id: str,
                   now: datetime | None = None) -> str | None:
    """The id of an approved, unrevoked grant for ``user_id`` in ``org_id`` whose period holds
    ``now`` - or None. Any scope (the caller is resolved under a system scope)."""
    now = now or utcnow()
    return session.scalar(
        select(AccessGrant.id).where(
            AccessGrant.org_id == org_id, AccessGrant.grantee_user_id == user_id,
            AccessGrant.status == "approved", AccessGrant.starts_at <= now,
            AccessGrant.ends_at > now,
        ).order_by(AccessGrant.ends_at.desc()).limit(1)
    )


def orgs_granted(session: Session, *, user_id: str, now: datetime | None = None) -> set[str]:
    """Customers whose grant for ``user_id`` is in force (needs a system scope)."""
    now = now or utcnow()
    return set(session.scalars(
        select(AccessGrant.org_id).where(
            AccessGrant.grantee_user_id == user_id, AccessGrant.status == "approved",
            AccessGrant.starts_at <= now, AccessGrant.ends_at > now)))
