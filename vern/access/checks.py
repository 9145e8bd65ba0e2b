"""What every decision on access shares: the four-eyes check (nobody approves their own request),
who may decide, the limits of a stated text, and the decision's audit record."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.audit.service import record
from vern.core.errors import FieldError, Forbidden, InvalidInput

MAX_TEXT = 2000


class SelfApprovalForbidden(Forbidden):
    code = "self-approval"
    title = "Nobody approves their own request"


def check_second_person(approver: str | None, *involved: str | None) -> None:
    """Four-eyes: ``approver`` (a person id) must be named and be none of the ``involved``
    people (who asked, who would get the role, who filed or attested)."""
    if approver is None:
        raise InvalidInput.on("approver", "an approval needs a named person")
    if approver in {p for p in involved if p is not None}:
        raise SelfApprovalForbidden(
            detail="approver: nobody approves their own request; a second person must",
            errors=[FieldError("approver", "nobody approves their own request; a second person "
                                           "must", "self-approval")])


def audit_record(  # noqa: PLR0917 - the columns of one record
        session: Session, action: str, actor: Actor | None, org_id: str, resource: str,
        details: dict[str, Any] | None = None) -> None:
    """An access record in ``org_id``'s trail, naming the actor (user or token)."""
    record(session, action, org_id=org_id,
           actor_user_id=actor.user_id if actor else None,
           actor_token_id=actor.token_id if actor else None,
           resource=resource, details=details)


def stated_text(field_name: str, value: str | None, *, required: bool = True) -> str:
    """A stated reason, need, note or title: trimmed, at most ``MAX_TEXT`` characters."""
    value = (value or "").strip()
    if required and not value:
        raise InvalidInput.on(field_name, "is required")
    if len(value) > MAX_TEXT:
        raise InvalidInput.on(field_name, "must be at most %(n)s characters", n=MAX_TEXT)
    return value


def require_manager(actor: Actor) -> None:
    """Only a member of the organisation whose role manages access decides there."""
    if not actor.home or not actor.can(Perm.ACCESS_MANAGE):
        raise Forbidden(detail="only an administrator of this organisation may decide")
