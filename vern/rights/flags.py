"""Flags the product checks before it processes a person's data (Art. 18, 21, 7(3)): set when a
restriction, objection or withdrawal is carried out, one per identity, and lifted together."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.audit.service import record
from vern.core.db import Scope, utcnow
from vern.core.errors import Conflict, NotFound
from vern.rights.identities import clean_identities, identity_refs
from vern.rights.models import Flag, Kind

# The kinds of request carried out by setting a flag (no product data is read or written).
FLAG_KINDS = (Kind.RESTRICTION.value, Kind.OBJECTION.value, Kind.WITHDRAWAL.value)


def add_flags(  # noqa: PLR0917 - the pieces of one flag
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
