"""The worker reminds task owners through the outbox, over real SMTP, once per due date and kind:
running it again (a restart, a second worker) sends nothing twice."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from tests.conftest import Personas
from tests.control.helpers import make_task
from vern.control import jobs, service
from vern.control.models import ControlReminder
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.core.worker import run_due
from vern.notify import service as notify
from vern.notify.sink import MailSink
from vern.notify.transport import SmtpMailer, SmtpTarget


def _reminders(db: Database) -> int:
    with db.transaction(Scope.system("test count")) as session:
        return int(session.scalar(select(func.count()).select_from(ControlReminder)) or 0)


def test_overdue_and_soon_due_tasks_are_reminded_once_over_smtp(
        db: Database, personas: Personas, settings: Settings) -> None:
    today = date.today()
    late = make_task(db, personas, title="Risk assessment", recurrence="yearly",
                     due_on=today - timedelta(days=3))
    soon = make_task(db, personas, title="Gjenopprettingsøvelse", due_on=today + timedelta(days=5))
    make_task(db, personas, title="Langt fram", due_on=today + timedelta(days=40))
    with MailSink() as sink:
        mailer = SmtpMailer(SmtpTarget.parse(sink.url), "vern@solstrand.example.com")
        assert "control.remind" in run_due(db, settings, jobs.JOBS)
        assert notify.deliver_pending(db, via=mailer) == 2
        # A restarted worker (its job row reset) and a second round: nothing new is queued.
        assert service.send_reminders(db) == 0
        with db.transaction(Scope.system("test: forget the job's last run")) as session:
            from vern.core.worker import WorkerJob

            row = session.get(WorkerJob, "control.remind")
            assert row is not None
            row.last_started_at = None
        assert "control.remind" in run_due(db, settings, jobs.JOBS)
        assert notify.deliver_pending(db, via=mailer) == 0
        got = sink.messages()
    assert len(got) == 2
    assert {tuple(m.to) for m in got} == {(personas.dave.email,)}
    by_subject = {m.subject: m for m in got}
    assert "Kontrolloppgave over fristen: Risikovurdering" in by_subject
    overdue = by_subject["Kontrolloppgave over fristen: Risikovurdering"]
    assert f"/console/control/tasks/{late}" in overdue.body
    assert any(s.startswith("Kontrolloppgave med frist snart") for s in by_subject)
    assert any(f"/console/control/tasks/{soon}" in m.body for m in got)
    assert _reminders(db) == 2


def test_a_completed_task_is_reminded_again_only_for_its_next_due_date(
        db: Database, personas: Personas) -> None:
    today = date.today()
    task_id = make_task(db, personas, recurrence="monthly", due_on=today - timedelta(days=1))
    assert service.send_reminders(db) == 1
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        service.complete_task(session, service.By(personas.vendor, personas.dave.user_id),
                              task_id, note="Utført")
    assert service.send_reminders(db) == 0  # next due is a month away
    later = today + timedelta(days=32)
    assert service.send_reminders(db, today=later) == 1  # now overdue for the next due date
    assert service.send_reminders(db, today=later) == 0
