"""When an Art. 28(2) objection window closes, the worker records the closing once and tells the
vendor's privacy officers the objections by customer (over a real SMTP server on loopback)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from tests.conftest import Personas, add_persona
from vern.audit.models import AuditEvent
from vern.core.config import Settings
from vern.core.db import Database, Scope, utcnow
from vern.core.worker import run_due
from vern.notify import service as notify
from vern.notify.sink import MailSink, Received
from vern.notify.transport import SmtpMailer, SmtpTarget
from vern.vendor import jobs
from vern.vendor import service as vendor

SENDER = "vern@solstrand.example.com"
REASON = "Vi godtar ikke lagring i Sverige."


def _sub(key: str, name: str) -> vendor.SubprocessorInput:
    return vendor.SubprocessorInput(
        key=key, name=name, service="Kundestøtte", data_categories=("user.name",),
        storage_locations=("SE",), processing_locations=("SE",), agreement_date=date(2026, 1, 15))


def _deliver(db: Database) -> list[Received]:
    with MailSink() as sink:
        notify.deliver_pending(db, via=SmtpMailer(SmtpTarget.parse(sink.url), SENDER))
        return list(sink.messages())


def test_a_closed_window_is_recorded_once_and_the_privacy_officers_get_the_objections(
        db: Database, personas: Personas, settings: Settings, login: Any) -> None:
    sent = utcnow() - timedelta(days=20)
    with db.transaction(Scope.system("test")) as session:
        vendor.save_subprocessor(session, _sub("nordlys", "Nordlys Støtte AS"), actor_user_id=None,
                                 objection_days=14, now=sent)
        vendor.save_subprocessor(session, _sub("havgap", "Havgap Drift AS"), actor_user_id=None,
                                 objection_days=14, now=sent)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        notice = next(n for n in vendor.customer_notices(session) if n.summary["key"] == "nordlys")
        vendor.object_to_notice(session, notice.id, reason=REASON,
                                actor_user_id=personas.alice.user_id, now=sent + timedelta(days=1))
    _deliver(db)  # the notices to the customers

    # Before the window closes (a test clock: the job's ``now``), nothing is closed.
    with db.transaction(Scope.system("test")) as session:
        assert vendor.close_windows(session, now=sent + timedelta(days=13)) == []
    erik = login(personas.erik)
    before = erik.get("/api/v1/vendor/subprocessors/nordlys").json()["notices"]
    assert {n["closed_at"] for n in before} == {None}

    # The worker closes both windows, once.
    assert "vendor.close_windows" in run_due(db, settings, jobs.JOBS)
    with db.transaction(Scope.system("test")) as session:
        assert vendor.close_windows(session) == []
    assert jobs.close_windows(db) == 0
    mails = _deliver(db)
    # To the privacy officer only (Dag is the security officer), one mail per window.
    assert sorted(m.to[0] for m in mails) == ["erik.eide@solstrand.example.com"] * 2
    by_name = {m.subject: m for m in mails}
    objected = by_name["Fristen for innsigelser er ute: Nordlys Støtte AS"]
    assert f"Fjellheim barnehage: {REASON}" in objected.body
    assert "Havbris skole" not in objected.body
    assert "2 kunder fikk varsel" in objected.body
    quiet = by_name["Fristen for innsigelser er ute: Havgap Drift AS"]
    assert "Ingen kunde protesterte." in quiet.body
    assert _deliver(db) == []  # nothing queued twice

    after = erik.get("/api/v1/vendor/subprocessors/nordlys").json()["notices"]
    assert {n["status"] for n in after} == {"closed"}
    assert all(n["closed_at"] for n in after)
    alice = login(personas.alice)
    mine = alice.get("/api/v1/vendor/customer/notices").json()["notices"]
    assert {n["status"] for n in mine} == {"closed"} and all(n["closed_at"] for n in mine)
    page = erik.get("/console/vendor/subprocessors/nordlys").text
    assert "(utløpt)" in page or "(closed)" in page
    with db.transaction(Scope.system("test")) as session:
        events = list(session.scalars(select(AuditEvent).where(
            AuditEvent.action == "vendor.objection_window_closed")))
    assert sorted(e.resource for e in events) == ["subprocessor:havgap", "subprocessor:nordlys"]


def test_without_a_privacy_officer_the_owners_are_told(db: Database, personas: Personas,
                                                      settings: Settings) -> None:
    from vern.accounts import service as accounts
    from vern.accounts.roles import Role

    add_persona(db, settings, personas, "ola", "Ola Olsen", "ola.olsen@solstrand.example.com",
                personas.vendor, Role.OWNER)
    with db.transaction(Scope.system("test")) as session:
        vendor.save_subprocessor(session, _sub("nordlys", "Nordlys Støtte AS"), actor_user_id=None,
                                 objection_days=1, now=utcnow() - timedelta(days=2))
        assert [r.email for r in vendor.window_staff(session)] == ["erik.eide@solstrand.example.com"]
        accounts.disable_user(session, user_id=personas.erik.user_id, actor=None)
    _deliver(db)
    with db.transaction(Scope.system("test")) as session:
        [closed] = vendor.close_windows(session)
    assert closed.customers == 2 and closed.objections == ()
    assert [m.to[0] for m in _deliver(db)] == ["ola.olsen@solstrand.example.com"]
