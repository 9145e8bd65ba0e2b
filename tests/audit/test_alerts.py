"""Alerts: repeated failed sign-ins from one source, staff from a new network, mass reads."""

from __future__ import annotations

from typing import Any

from tests.conftest import Personas
from vern.audit import alerts, service
from vern.core.config import AuditSettings, Settings
from vern.core.context import RequestContext, reset_request, set_request
from vern.core.db import Database, Scope
from vern.notify.service import MemoryMailer, deliver_pending, install_mailer


def _as(ip: str, db: Database, action: str, **kwargs: Any) -> None:
    token = set_request(RequestContext("r", ip, "Firefox", "POST", "/api/v1/session"))
    try:
        with db.transaction(Scope.system("test")) as session:
            service.record(session, action, **kwargs)
    finally:
        reset_request(token)


TEST_ALERTS = AuditSettings(alert_failed_signins=5, alert_people_read=4)


def test_repeated_failed_sign_ins_from_one_source_alert_the_security_officer(
    db: Database, settings: Settings, personas: Personas
) -> None:
    mailer = MemoryMailer()
    install_mailer(mailer)
    for _ in range(6):
        _as("203.0.113.50", db, "auth.signin_failed", org_id=None, outcome="failure")
    _as("198.51.100.9", db, "auth.signin_failed", org_id=None, outcome="failure")
    service.seal_now(db, settings)
    made = alerts.scan(db, settings, audit=TEST_ALERTS)
    assert [(a.kind, a.count) for a in made] == [("failed_signins", 5)]
    assert alerts.scan(db, settings, audit=TEST_ALERTS) == []  # resumes, no repeats
    deliver_pending(db)
    mail = mailer.last_to(personas.dave.email)
    assert mail is not None and "failed sign-ins" in mail.subject
    assert "203.0.113.50" not in mail.body  # the address is not repeated in clear


def test_a_staff_sign_in_from_a_new_network_alerts_but_a_known_one_does_not(
    db: Database, settings: Settings, personas: Personas
) -> None:
    dave = personas.dave.user_id
    _as("198.51.100.20", db, "auth.signin", org_id=personas.vendor, actor_user_id=dave)
    _as("198.51.100.21", db, "auth.signin", org_id=personas.vendor, actor_user_id=dave)
    _as("192.0.2.200", db, "auth.signin", org_id=personas.tenant_a,
        actor_user_id=personas.alice.user_id)
    _as("192.0.2.201", db, "auth.signin", org_id=personas.tenant_a,
        actor_user_id=personas.alice.user_id)  # not staff
    service.seal_now(db, settings)
    assert alerts.scan(db, settings, audit=TEST_ALERTS) == []
    _as("203.0.113.77", db, "auth.signin", org_id=personas.vendor, actor_user_id=dave)
    service.seal_now(db, settings)
    made = alerts.scan(db, settings, audit=TEST_ALERTS)
    assert [a.kind for a in made] == ["new_network"]


def test_reading_unusually_many_peoples_data_alerts(
    db: Database, settings: Settings, personas: Personas
) -> None:
    for i in range(5):
        _as("192.0.2.9", db, "rights.subject.read", org_id=personas.tenant_a,
            actor_user_id=personas.alice.user_id, resource=f"subject:{i}")
    service.seal_now(db, settings)
    made = alerts.scan(db, settings, audit=TEST_ALERTS)
    assert [(a.kind, a.subject, a.org_id) for a in made] == [
        ("mass_read", personas.alice.user_id, personas.tenant_a)]
