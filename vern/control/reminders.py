"""Mails to a control task's owner when the task is due within a week and when it is overdue,
queued by the worker once per due date.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.accounts.roles import Role
from vern.audit.service import record
from vern.control.common import staff
from vern.control.models import ControlReminder, ControlTask
from vern.core.db import Database, Scope, utcnow
from vern.core.i18n import N_, format_day, gettext
from vern.notify import service as notify

REMIND_BEFORE_DAYS = 7


REMINDER_SUBJECT = {
    "soon": N_("Control task due soon: %(title)s"),
    "overdue": N_("Control task overdue: %(title)s"),
}
REMINDER_BODY = N_("The control task \"%(title)s\" was due %(due)s.\n\nOpen it in the console: "
                   "%(link)s\n")
REMINDER_BODY_SOON = N_("The control task \"%(title)s\" is due %(due)s.\n\nOpen it in the "
                        "console: %(link)s\n")


def send_reminders(database: Database, *, base_url: str = "", today: date | None = None) -> int:
    """Queue a mail to the owner of each task due within a week (once per due date) and of each
    overdue task (once per due date). The reminder row and the mail are written in one
    transaction, so a restart never sends one twice and never loses one."""

    today = today or utcnow().date()
    with database.transaction(Scope.system("control reminders: find the vendor")) as session:
        vendor = accounts.vendor_org(session)
        if vendor is None:
            return 0
        vendor_id = vendor.id
    soon_until = today + timedelta(days=REMIND_BEFORE_DAYS)
    with database.transaction(Scope.tenant(vendor_id)) as session:
        due = [(t.id, t.due_on) for t in session.scalars(select(ControlTask).where(
            ControlTask.closed_at.is_(None), ControlTask.due_on <= soon_until))]
        sent = {(r.task_id, r.due_on, r.kind) for r in session.scalars(
            select(ControlReminder).where(ControlReminder.due_on <= soon_until))}
    queued = 0
    for task_id, due_on in due:
        if due_on is None:
            continue
        kind = "overdue" if due_on < today else "soon"
        if (task_id, due_on, kind) in sent:
            continue
        try:
            with database.transaction(Scope.tenant(vendor_id)) as session:
                task = session.get(ControlTask, task_id)
                if task is None or task.due_on != due_on or task.closed_at is not None:
                    continue
                session.add(ControlReminder(task_id=task.id, due_on=due_on, kind=kind))
                session.flush()
                for user in _recipients(session, task):
                    locale = user.locale or "nb"
                    title = gettext(locale, task.title)
                    params = {"title": title, "due": format_day(due_on, locale),
                              "link": f"{base_url}/console/control/tasks/{task.id}"}
                    body = REMINDER_BODY if kind == "overdue" else REMINDER_BODY_SOON
                    notify.queue(session, key_id=user.key_id, to=user.email.value,
                                 subject=gettext(locale, REMINDER_SUBJECT[kind], **params),
                                 body=gettext(locale, body, **params),
                                 kind=f"control.{kind}", org_id=None)
                record(session, "control.task.remind", org_id=vendor_id,
                       resource=f"control_task:{task.id}",
                       details={"kind": kind, "due_on": due_on.isoformat()})
                queued += 1
        except IntegrityError:
            continue  # another worker queued this one first
    return queued


def _recipients(session: Session, task: ControlTask) -> list[Any]:
    members = [(u, m) for u, m in staff(session) if u.disabled_at is None and u.email.value]
    owner = [u for u, _m in members if u.id == task.owner_user_id]
    if owner:
        return owner
    return [u for u, m in members if m.role == Role.SECURITY_OFFICER.value]
