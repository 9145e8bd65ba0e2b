"""Control tasks and their due dates: the catalogue loaded as tasks, a task's completions and the
next due date that follows from its recurrence.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.control.catalogue import CATALOGUE
from vern.control.common import By, audit, check_choice, check_text, staff_member
from vern.control.models import ControlCompletion, ControlEvidence, ControlMapping, ControlTask
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import Conflict, NotFound

RECURRENCES = ("yearly", "quarterly", "monthly", "once")
MONTHS = {"yearly": 12, "quarterly": 3, "monthly": 1}
SOON_DAYS = 14


# -- due dates ---------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """``day`` ``months`` later, on the same day of the month or the month's last day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def next_due(recurrence: str, due_on: date | None, completed_on: date) -> date | None:
    """The due date after a completion: one period after the current due date, moved on by whole
    periods until it lies after the day of completion (a late completion does not leave the task
    overdue at once). A task done once has none."""
    months = MONTHS.get(recurrence)
    if months is None:
        return None
    base = due_on or completed_on
    step = 1
    nxt = add_months(base, months)
    while nxt <= completed_on:
        step += 1
        nxt = add_months(base, months * step)
    return nxt


def is_overdue(task: ControlTask, today: date) -> bool:
    return task.closed_at is None and task.due_on is not None and task.due_on < today


# -- tasks -------------------------------------------------------------------------------------


def task_resource(task: ControlTask) -> str:
    return f"control_task:{task.id}"


def create_task(
    session: Session, by: By, *, title: str, recurrence: str, due_on: date,
    owner_user_id: str | None, description: str = "", key: str | None = None,
) -> ControlTask:
    """A new control task owned by a member of the vendor's staff, first due on ``due_on``."""
    task = ControlTask(
        title=check_text("title", title, 200),
        description=check_text("description", description, 5000, required=False),
        recurrence=check_choice("recurrence", recurrence, RECURRENCES),
        owner_user_id=staff_member(session, "owner", owner_user_id), due_on=due_on, key=key,
    )
    session.add(task)
    session.flush()
    audit(session, by, "control.task.create", task_resource(task), key=key,
          recurrence=recurrence, due_on=due_on.isoformat(), owner=owner_user_id)
    return task


def create_tasks(
    database: Database, org_id: str, owner_user_id: str, specs: Iterable[tuple[str, str, date]],
) -> list[str]:
    """Create many control tasks in one transaction (for benchmarks and imports): ``specs`` are
    (title, recurrence, due_on); the owner is a member of the vendor's staff. Returns the ids."""
    by = By(org_id)
    with database.transaction(Scope.tenant(org_id)) as session:
        owner = staff_member(session, "owner", owner_user_id)
        tasks = [ControlTask(title=check_text("title", title, 200), description="",
                             recurrence=check_choice("recurrence", rec, RECURRENCES),
                             owner_user_id=owner, due_on=due) for title, rec, due in specs]
        session.add_all(tasks)
        session.flush()
        audit(session, by, "control.task.create_many", "control_task:*", count=len(tasks))
        return [t.id for t in tasks]


def seed(session: Session, by: By, *, owner_user_id: str, today: date) -> list[ControlTask]:
    """Load the catalogue: each task not loaded before, first due one period from ``today``
    (a task done once: in 30 days), with its framework mappings."""
    made = []
    for item in CATALOGUE:
        if session.scalar(select(ControlTask.id).where(ControlTask.key == item.key)):
            continue
        months = MONTHS.get(item.recurrence)
        due = add_months(today, months) if months else today + timedelta(days=30)
        task = create_task(session, by, title=item.title, recurrence=item.recurrence,
                           due_on=due, owner_user_id=owner_user_id,
                           description=item.description, key=item.key)
        for framework, requirement in item.mappings:
            session.add(ControlMapping(task_id=task.id, framework=framework,
                                       requirement=requirement))
        made.append(task)
    audit(session, by, "control.seed", "control_task:*", loaded=[t.key for t in made])
    return made


def get_task(session: Session, task_id: str) -> ControlTask:
    task = session.get(ControlTask, task_id)
    if task is None:
        raise NotFound()
    return task


def list_tasks(session: Session, *, overdue_only: bool = False,
               today: date | None = None) -> list[ControlTask]:
    stmt = select(ControlTask).where(ControlTask.closed_at.is_(None))
    if overdue_only:
        stmt = stmt.where(ControlTask.due_on < (today or utcnow().date()))
    closed = select(ControlTask).where(ControlTask.closed_at.is_not(None))
    rows = list(session.scalars(stmt.order_by(ControlTask.due_on, ControlTask.title)))
    if not overdue_only:
        rows += list(session.scalars(closed.order_by(ControlTask.closed_at.desc())))
    return rows


def update_task(
    session: Session, by: By, task_id: str, *, title: str | None = None,
    description: str | None = None, owner_user_id: str | None = None,
    recurrence: str | None = None, due_on: date | None = None,
) -> ControlTask:
    task = get_task(session, task_id)
    old: dict[str, Any] = {}
    if title is not None:
        old["title"], task.title = task.title, check_text("title", title, 200)
    if description is not None:
        old["description"] = "(changed)"
        task.description = check_text("description", description, 5000, required=False)
    if owner_user_id is not None:
        old["owner"] = task.owner_user_id
        task.owner_user_id = staff_member(session, "owner", owner_user_id)
    if recurrence is not None:
        old["recurrence"], task.recurrence = (task.recurrence,
                                              check_choice("recurrence", recurrence, RECURRENCES))
    if due_on is not None:
        old["due_on"] = task.due_on.isoformat() if task.due_on else None
        task.due_on = due_on
        task.closed_at = None
    audit(session, by, "control.task.update", task_resource(task), old=old,
          new={k: str(getattr(task, "owner_user_id" if k == "owner" else k)) for k in old})
    return task


def complete_task(
    session: Session, by: By, task_id: str, *, note: str = "", today: date | None = None,
) -> ControlCompletion:
    """Record a completion: the current due date is met, the next one follows from the
    recurrence (a task done once is closed). Evidence added before, not yet tied to a completion,
    is tied to this one."""
    task = get_task(session, task_id)
    if task.closed_at is not None:
        raise Conflict(detail="task: this task is closed (done once)")
    today = today or utcnow().date()
    nxt = next_due(task.recurrence, task.due_on, today)
    done = ControlCompletion(task_id=task.id, due_on=task.due_on, completed_by=by.user_id,
                             note=check_text("note", note, 5000, required=False), next_due_on=nxt)
    session.add(done)
    session.flush()
    for ev in session.scalars(select(ControlEvidence).where(
            ControlEvidence.task_id == task.id, ControlEvidence.completion_id.is_(None))):
        ev.completion_id = done.id
    old_due = task.due_on
    task.due_on = nxt
    if nxt is None:
        task.closed_at = utcnow()
    audit(session, by, "control.task.complete", task_resource(task), completion=done.id,
          old={"due_on": old_due.isoformat() if old_due else None},
          new={"due_on": nxt.isoformat() if nxt else None})
    return done


def completions(session: Session, task_id: str) -> list[ControlCompletion]:
    return list(session.scalars(select(ControlCompletion).where(
        ControlCompletion.task_id == task_id).order_by(ControlCompletion.completed_at.desc())))


def task_view(task: ControlTask, today: date) -> dict[str, Any]:
    return {
        "id": task.id, "key": task.key, "title": task.title, "description": task.description,
        "owner_user_id": task.owner_user_id, "recurrence": task.recurrence,
        "due_on": task.due_on.isoformat() if task.due_on else None,
        "overdue": is_overdue(task, today),
        "closed_at": task.closed_at.isoformat() if task.closed_at else None,
    }


def overdue_count(session: Session, today: date) -> int:
    return int(session.scalar(select(func.count()).select_from(ControlTask).where(
        ControlTask.closed_at.is_(None), ControlTask.due_on < today)) or 0)
