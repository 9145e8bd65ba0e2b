"""Change requests under four eyes: filed by one person, approved by another, then implemented;
each step in the request's history.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.control.common import By, audit, check_choice, check_text
from vern.control.models import ControlChange, ControlChangeEvent
from vern.core.db import utcnow
from vern.core.errors import Conflict, Forbidden, NotFound


def _change_event(session: Session, change: ControlChange, action: str, by: By,
                  note: str = "") -> None:
    session.add(ControlChangeEvent(change_id=change.id, action=action, actor_user_id=by.user_id,
                                   note=check_text("note", note, 2000, required=False)))


def create_change(session: Session, by: By, *, title: str, description: str, risk: str,
                  rollback: str) -> ControlChange:
    author = by.person("Filing a change request")
    change = ControlChange(title=check_text("title", title, 200),
                           description=check_text("description", description, 10000),
                           risk=check_text("risk", risk, 5000),
                           rollback=check_text("rollback", rollback, 5000),
                           status="pending", author_user_id=author)
    session.add(change)
    session.flush()
    _change_event(session, change, "filed", by)
    audit(session, by, "control.change.create", f"control_change:{change.id}")
    return change


def get_change(session: Session, change_id: str) -> ControlChange:
    change = session.get(ControlChange, change_id)
    if change is None:
        raise NotFound()
    return change


def list_changes(session: Session, status: str | None = None) -> list[ControlChange]:
    stmt = select(ControlChange)
    if status:
        stmt = stmt.where(ControlChange.status == check_choice("status", status, (
            "pending", "approved", "rejected", "implemented")))
    return list(session.scalars(stmt.order_by(ControlChange.created_at.desc())))


def change_history(session: Session, change_id: str) -> list[ControlChangeEvent]:
    return list(session.scalars(select(ControlChangeEvent).where(
        ControlChangeEvent.change_id == change_id).order_by(ControlChangeEvent.at)))


def decide_change(session: Session, by: By, change_id: str, *, approve: bool,
                  note: str = "") -> ControlChange:
    """Approve (a person other than the author) or reject a pending change request."""
    who = by.person("Deciding a change request")
    change = get_change(session, change_id)
    if change.status != "pending":
        raise Conflict(detail="status: the change request is %(status)s, not pending",
                       params={"status": change.status})
    if approve and change.author_user_id == who:  # the refused request is in the trail (403)
        raise Forbidden(detail="The author of a change request cannot approve it; another "
                               "person must")
    change.status = "approved" if approve else "rejected"
    change.decided_by, change.decided_at = who, utcnow()
    _change_event(session, change, change.status, by, note)
    audit(session, by, f"control.change.{'approve' if approve else 'reject'}",
          f"control_change:{change.id}", author=change.author_user_id)
    return change


def implement_change(session: Session, by: By, change_id: str, *, note: str = "") -> ControlChange:
    who = by.person("Implementing a change request")
    change = get_change(session, change_id)
    if change.status != "approved":
        raise Conflict(detail="status: only an approved change request can be implemented")
    change.status = "implemented"
    change.implemented_by, change.implemented_at = who, utcnow()
    _change_event(session, change, "implemented", by, note)
    audit(session, by, "control.change.implement", f"control_change:{change.id}")
    return change


def change_view(session: Session, change: ControlChange, *, history: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": change.id, "title": change.title, "description": change.description,
        "risk": change.risk, "rollback": change.rollback, "status": change.status,
        "author_user_id": change.author_user_id, "decided_by": change.decided_by,
        "decided_at": change.decided_at.isoformat() if change.decided_at else None,
        "implemented_by": change.implemented_by,
        "implemented_at": change.implemented_at.isoformat() if change.implemented_at else None,
        "created_at": change.created_at.isoformat(),
    }
    if history:
        view["history"] = [{"action": e.action, "actor_user_id": e.actor_user_id, "note": e.note,
                            "at": e.at.isoformat()} for e in change_history(session, change.id)]
    return view
