"""What the posture page shows of internal control: overdue and soon-due control tasks, and change
requests waiting for a second person's approval."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.control.models import ControlChange, ControlTask
from vern.control.service import SOON_DAYS
from vern.core.i18n import DEFAULT_LOCALE, gettext


def items(session: Session, now: datetime, locale: str | None = None) -> list[dict[str, Any]]:
    """Overdue and soon-due (within 14 days) control tasks, then pending change requests; each
    ``{"kind", "title", "due_at", "overdue", "href"}`` with ``title`` in ``locale`` (by default the
    reader's, which the posture page puts in ``session.info["locale"]``). ``due_at`` is the end
    of the due day (UTC); a change request has none."""
    locale = locale or str(session.info.get("locale") or DEFAULT_LOCALE)
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
            "title": gettext(locale, title), "overdue": overdue,
            "due_at": datetime.combine(due_on + timedelta(days=1), time.min, UTC),
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
