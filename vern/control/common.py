"""What every part of the internal control shares: who acts (``By``) and the audit record of
an act, the checks of a form's fields, and the vendor's staff as owners, doers and witnesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.audit.service import record
from vern.core.db import utcnow
from vern.core.errors import Forbidden, InvalidInput, NotFound


@dataclass(frozen=True)
class By:
    """Who acts: a person (``user_id``) or an API token, in the vendor's organisation."""

    org_id: str
    user_id: str | None = None
    token_id: str | None = None

    @classmethod
    def of(cls, actor: Any) -> By:
        return cls(actor.org_id, actor.user_id, actor.token_id)

    def person(self, what: str) -> str:
        if self.user_id is None:
            raise Forbidden(detail="%(what)s needs a signed-in person, not an API token",
                            params={"what": what})
        return self.user_id


def iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def audit(session: Session, by: By, action: str, resource: str, **details: Any) -> None:
    record(session, action, org_id=by.org_id, actor_user_id=by.user_id,
           actor_token_id=by.token_id, resource=resource, details=details or None)


def check_text(name: str, value: str | None, limit: int, *, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise InvalidInput.on(name, "is required")
    if len(value) > limit:
        raise InvalidInput.on(name, "at most %(n)s characters", n=limit)
    return value


def check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InvalidInput.on(name, "must be one of %(allowed)s", allowed=", ".join(allowed))
    return value


def check_score(name: str, value: int | None, *, required: bool = True) -> int | None:
    if value is None and not required:
        return None
    if value is None or not 1 <= value <= 4:
        raise InvalidInput.on(name, "must be 1-4")
    return value


def staff(session: Session) -> list[tuple[Any, Any]]:
    """The vendor's staff accounts (user, membership), in the vendor's scope."""
    return accounts.list_members(session)


def staff_member(session: Session, name: str, user_id: str | None) -> str:
    """``user_id`` if it is a member of the vendor's staff (the session's organisation)."""
    if not user_id:
        raise InvalidInput.on(name, "is required")
    try:
        accounts.get_member(session, user_id)
    except NotFound:
        raise InvalidInput.on(name, "is not a member of the vendor's staff") from None
    return user_id


def staff_names(session: Session) -> dict[str, str]:
    """user id → name of the vendor's staff, for display."""
    return {u.id: (u.name.value or "") for u, _m in staff(session)}


def as_date(name: str, value: str | date | None) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        raise InvalidInput.on(name, "must be a date (YYYY-MM-DD)") from None


def now_day(now: datetime | None = None) -> date:
    return (now or utcnow()).date()
