"""What the posture page shows of internal control: overdue and soon-due control tasks, and change
requests waiting for a second person's approval."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.control.models import ControlChange, ControlTask
from vern.control.service import SOON_DAYS
from vern.i18n import DEFAULT_LOCALE, gettext


def items(session: Session, now: datetime, locale: str = DEFAULT_LOCALE) -> list[dict[str, Any]]:
    """Overdue and soon-due (within 14 days) control tasks, then pending change requests; each
    ``{"kind", "title", "due_at", "overdue", "href"}`` with ``title`` in ``locale``.
    ``due_at`` is the due day as an ISO date (a change request has none)."""
    today = now.date()
    until = today + timedelta(days=SOON_DAYS)
    found: list[dict[str, Any]] = []
    for task_id, title, due_on in session.execute(
        select(ControlTask.id, ControlTask.title, ControlTask.due_on)
        .where(ControlTask.closed_at.is_(None), ControlTask.due_on <= until)
        .order_by(ControlTask.due_on, ControlTask.title)
    ):
        if due_on is None:  # pragma: no cover - the where clause leaves these out
            continue
        overdue = due_on < today
        found.append({
            "kind": "control_task_overdue" if overdue else "control_task_due",
            "title": gettext(locale, title), "due_at": due_on.isoformat(), "overdue": overdue,
            "href": f"/console/control/tasks/{task_id}",
        })
    for change_id, title in session.execute(
        select(ControlChange.id, ControlChange.title).where(ControlChange.status == "pending")
        .order_by(ControlChange.created_at)
    ):
        found.append({
            "kind": "change_request_pending",
            "title": gettext(locale, "Change request awaiting approval: %(title)s", title=title),
            "due_at": None, "overdue": False, "href": f"/console/control/changes/{change_id}",
        })
    return found
