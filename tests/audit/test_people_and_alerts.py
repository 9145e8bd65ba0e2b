"""Searching the trail for a person by e-mail address or name, and an alert's own records."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select

from tests.conftest import Personas
from vern.audit import alerts, service
from vern.audit.models import AuditEvent
from vern.core.config import AuditSettings, Settings
from vern.core.context import RequestContext, reset_request, set_request
from vern.core.db import Database, Scope
from vern.notify.service import MemoryMailer, deliver_pending, install_mailer, mailer


def _as(db: Database, ip: str, action: str, **kwargs: Any) -> None:
    token = set_request(RequestContext("seed", ip, "Firefox", "GET", "/x"))
    try:
        with db.transaction(Scope.system("seed")) as session:
            service.record(session, action, **kwargs)
    finally:
        reset_request(token)


def _seed(db: Database, settings: Settings, personas: Personas) -> None:
    """Records of alice and bob in tenant A, carol in tenant B, dave (vendor staff) in A."""
    for who, org in ((personas.alice, personas.tenant_a), (personas.bob, personas.tenant_a),
                     (personas.carol, personas.tenant_b), (personas.dave, personas.tenant_a)):
        _as(db, "198.51.100.7", "child.read", org_id=org, actor_user_id=who.user_id,
            resource=f"child:{who.name}")
    service.seal_now(db, settings)


def _actors(client: Any, **params: Any) -> list[str]:
    res = client.get("/api/v1/audit/events", params={"action": "child.read", **params})
    assert res.status_code == 200, res.text
    return [i["actor_user_id"] for i in res.json()["items"]]


def test_a_tenant_admin_finds_a_member_by_e_mail_address(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    _seed(db, settings, personas)
    alice = login(personas.alice)
    assert _actors(alice, actor=personas.bob.email) == [personas.bob.user_id]
    assert _actors(alice, actor=personas.bob.email.upper()) == [personas.bob.user_id]
    # The id still works as before.
    assert _actors(alice, actor=personas.bob.user_id) == [personas.bob.user_id]


def test_an_address_outside_the_callers_organisation_finds_nothing(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    _seed(db, settings, personas)
    alice = login(personas.alice)
    assert _actors(alice, actor=personas.carol.email) == []
    # Dave acted in tenant A, but he is not one of its members: his address is not resolved.
    assert _actors(alice, actor=personas.dave.email) == []
    assert _actors(alice, actor="ingen.her@fjellheim.example.com") == []


def test_a_name_finds_the_members_it_matches(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    _seed(db, settings, personas)
    alice = login(personas.alice)
    assert _actors(alice, actor="bakken") == [personas.bob.user_id]
    assert _actors(alice, actor="Carlsen") == []  # tenant B's member


def test_the_vendor_finds_anyone_when_reading_every_organisation(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    _seed(db, settings, personas)
    dave = login(personas.dave)
    assert _actors(dave, actor=personas.carol.email, org="*") == [personas.carol.user_id]
    # Narrowed to tenant A, carol (of tenant B) is not resolved there.
    assert _actors(dave, actor=personas.carol.email, org=personas.tenant_a) == []


def test_the_search_record_does_not_repeat_the_address(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    _seed(db, settings, personas)
    alice = login(personas.alice)
    _actors(alice, actor=personas.bob.email)
    with db.transaction(Scope.system("test read")) as session:
        rows = session.scalars(select(AuditEvent.details).where(
            AuditEvent.action == "audit.read")).all()
    texts = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    assert texts and not any(personas.bob.email in t for t in texts)
    filters = json.loads(texts[-1])["filters"]
    assert filters["actor"] == "(given)" and filters["actor_ids"] == personas.bob.user_id


def test_the_console_search_takes_an_e_mail_address(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    _seed(db, settings, personas)
    alice = login(personas.alice)
    alice.cookies.set("vern_lang", "en")
    page = alice.get("/console/audit", params={"actor": personas.bob.email,
                                               "action": "child.read"})
    assert page.status_code == 200
    assert "child:bob" in page.text and "child:alice" not in page.text
    assert "Person: e-mail, name or id" in page.text


TEST_ALERTS = AuditSettings(alert_failed_signins=5, alert_people_read=4)


def test_an_alerts_link_shows_the_records_it_was_raised_on(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    previous = mailer()
    memory = MemoryMailer()
    install_mailer(memory)
    try:
        for ip in ["203.0.113.50"] * 3 + ["198.51.100.9"] + ["203.0.113.50"] * 2:
            _as(db, ip, "auth.signin_failed", org_id=None, outcome="failure")
        service.seal_now(db, settings)
        made = alerts.scan(db, settings, audit=TEST_ALERTS)
        deliver_pending(db)
    finally:
        install_mailer(previous)
    assert [a.kind for a in made] == ["failed_signins"]
    alert_id = made[0].id
    mail = memory.last_to(personas.dave.email)
    assert mail is not None and f"/console/audit/alerts/{alert_id}" in mail.body
    dave = login(personas.dave)
    dave.cookies.set("vern_lang", "en")
    listing = dave.get("/console/audit/alerts")
    assert f'href="/console/audit/alerts/{alert_id}"' in listing.text
    page = dave.get(f"/console/audit/alerts/{alert_id}")
    assert page.status_code == 200
    assert len(re.findall(r"<td>auth\.signin_failed</td>", page.text)) == 5
    assert "198.51.100.9" not in page.text  # another source, inside the range, is left out
    api = dave.get(f"/api/v1/audit/alerts/{alert_id}/events")
    assert api.status_code == 200
    body = api.json()
    assert body["alert"]["id"] == alert_id and len(body["items"]) == 5
    assert {i["ip"] for i in body["items"]} == {"203.0.113.50"}
    alice = login(personas.alice)
    assert alice.get(f"/api/v1/audit/alerts/{alert_id}/events").status_code == 404
