"""Who is acting: the user or API token behind a request, in one organisation (``Actor``), and
the audit record every accounts change writes in that actor's name."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from vern.accounts.roles import VENDOR_ROLES, OrgKind, Perm, Role
from vern.audit.service import record


@dataclass(frozen=True)
class Actor:
    """The user or token behind a request, in one current organisation."""

    org_id: str
    org_kind: OrgKind
    role: Role
    perms: frozenset[Perm]
    user_id: str | None = None
    token_id: str | None = None
    session_id: str | None = None
    csrf_token: str | None = None
    home: bool = True  # False for vendor staff acting inside a customer's organisation
    # The customer's access grant in force for vendor staff acting inside its organisation.
    grant_id: str | None = None
    # The person acting: the user, or for an API token the user who created it (four-eyes
    # checks compare people, so a token cannot approve what its creator filed).
    person_id: str | None = None

    @property
    def is_vendor_staff(self) -> bool:
        return self.role in VENDOR_ROLES

    def can(self, perm: Perm) -> bool:
        return perm in self.perms


def record_as(session: Session, action: str, actor: Actor | None, **kwargs: object) -> None:
    """An audit record in the actor's name, in its organisation unless ``org_id`` is given."""
    record(
        session,
        action,
        org_id=kwargs.pop("org_id", actor.org_id if actor else None),  # type: ignore[arg-type]
        actor_user_id=actor.user_id if actor else None,
        actor_token_id=actor.token_id if actor else None,
        **kwargs,  # type: ignore[arg-type]
    )
