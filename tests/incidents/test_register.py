"""The register through the API: breaches, clocks, notices to customers, the customers' side."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import Personas
from tests.incidents.helpers import breach_body, register
from vern.audit.models import AuditEvent
from vern.core.db import Database, Scope, utcnow
from vern.notify import service as notify
from vern.notify.sink import MailSink
from vern.notify.transport import SmtpMailer, SmtpTarget


def _field(res: Any) -> str:
    return str(res.json()["errors"][0]["field"])


def test_a_breach_without_awareness_time_is_refused_naming_the_field(login: Any,
                                                                    personas: Personas) -> None:
    dave = login(personas.dave)
    body = breach_body(personas)
    del body["aware_at"]
    res = dave.post("/api/v1/incidents", json=body)
    assert res.status_code == 422, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    assert _field(res) == "aware_at"
    assert "aware" in res.json()["detail"]
    # A deviation without personal data needs no awareness time.
    res = dave.post("/api/v1/incidents", json={"title": "Serverrom ulåst over natten"})
    assert res.status_code == 201 and res.json()["kind"] == "deviation"


@pytest.mark.parametrize(("change", "field"), [
    ({"risk": "extreme"}, "risk"),
    ({"title": ""}, "title"),
    ({"subjects_approx": -1}, "subjects_approx"),
    ({"aware_at": "2026-12-01T10:00:00"}, "aware_at"),  # no UTC offset
    ({"customers": ["0190e0b3-0000-7000-8000-000000000000"]}, "customers.0"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_input_is_refused_naming_the_field(login: Any, personas: Personas,
                                               change: dict[str, Any], field: str) -> None:
    res = login(personas.dave).post("/api/v1/incidents", json=breach_body(personas, **change))
    assert res.status_code == 422, res.text
    assert _field(res) == field


def test_a_breach_affecting_two_customers_has_a_clock_for_each(login: Any,
                                                               personas: Personas) -> None:
    dave = login(personas.dave)
    aware = utcnow() - timedelta(hours=20)
    res = dave.post("/api/v1/incidents", json=breach_body(personas, aware=aware))
    assert res.status_code == 201, res.text
    clocks = dave.get("/api/v1/incidents/clocks").json()["clocks"]
    mine = [c for c in clocks if c["incident_id"] == res.json()["id"]]
    assert sorted(c["customer"] for c in mine) == ["Fjellheim barnehage", "Havbris skole"]
    for clock in mine:
        assert clock["hours"] == 24
        assert clock["due_at"] == (aware + timedelta(hours=24)).isoformat()
        assert clock["state"] == "due_soon"  # 4 hours left of 24: inside the last quarter
        assert 3 * 3600 < clock["remaining_seconds"] <= 4 * 3600
    # A new awareness time moves every clock.
    later = aware + timedelta(hours=10)
    res = dave.patch(f"/api/v1/incidents/{res.json()['id']}", json={"aware_at": later.isoformat()})
    assert res.status_code == 200, res.text
    assert {c["due_at"] for c in res.json()["clocks"]} == {(later + timedelta(hours=24)).isoformat()}
    assert res.json()["timeline"][-1]["action"] == "changed"
    assert res.json()["timeline"][-1]["details"]["old"]["aware_at"] == aware.isoformat()


def test_a_notice_missing_an_art_33_3_item_is_refused_with_the_reason(
        login: Any, personas: Personas) -> None:
    dave = login(personas.dave)
    inc = dave.post("/api/v1/incidents", json=breach_body(personas, contact="",
                                                          consequences="")).json()
    assert inc["missing_art_33_3"] == ["contact", "consequences"]
    res = dave.post(f"/api/v1/incidents/{inc['id']}/notices", json={"phase": "initial"})
    assert res.status_code == 422, res.text
    assert [e["field"] for e in res.json()["errors"]] == ["contact", "consequences"]
    assert "Art. 33(3)(b)" in res.json()["detail"]
    assert dave.get(f"/api/v1/incidents/{inc['id']}").json()["notices"] == []


def _configure_sink(sink: MailSink) -> Any:
    previous = notify.mailer()
    notify.install_mailer(SmtpMailer(SmtpTarget.parse(sink.url), "vern@solstrand.example.com"))
    return previous


def test_notices_reach_each_customers_admins_over_smtp_and_only_their_own(
        db: Database, login: Any, personas: Personas) -> None:
    dave, alice, carol, bob = (login(personas.dave), login(personas.alice), login(personas.carol),
                               login(personas.bob))
    inc_id = dave.post("/api/v1/incidents", json=breach_body(personas)).json()["id"]
    with MailSink() as sink:
        previous = _configure_sink(sink)
        try:
            res = dave.post(f"/api/v1/incidents/{inc_id}/notices", json={"phase": "initial"})
            assert res.status_code == 201, res.text
            notify.deliver_pending(db)
            received = sink.messages()
        finally:
            notify.install_mailer(previous)
    to = {m.to[0]: m for m in received}
    assert set(to) == {personas.alice.email, personas.carol.email}
    mail = to[personas.alice.email]
    assert "Fjellheim barnehage" in mail.subject and "#1" in mail.subject
    for item in ("Feilsendt klasseliste", "barn, foresatte", "omtrent 40", "navn, fødselsdato",
                 "omtrent 80", "Personvernombud Erik Eide", "Navn og fødselsdato kjent",
                 "Mottakeren har slettet", "/console/incidents/notices/"):
        assert item in mail.body, item
    assert "Havbris" not in mail.body

    a_notices = alice.get("/api/v1/incidents/notices").json()["notices"]
    b_notices = carol.get("/api/v1/incidents/notices").json()["notices"]
    assert len(a_notices) == len(b_notices) == 1
    a_id = a_notices[0]["id"]
    assert a_id != b_notices[0]["id"]
    assert "Fjellheim" in a_notices[0]["subject_nb"] and "Havbris" not in a_notices[0]["body_nb"]
    # Customer B never sees A's notice; a member of A has no access; nor the vendor's register.
    assert carol.get(f"/api/v1/incidents/notices/{a_id}").status_code == 404
    assert carol.post(f"/api/v1/incidents/notices/{a_id}/acknowledge").status_code == 404
    assert bob.get("/api/v1/incidents/notices").status_code == 403
    assert alice.get(f"/api/v1/incidents/{inc_id}").status_code == 403
    assert alice.get("/api/v1/incidents/clocks").status_code == 403

    res = alice.post(f"/api/v1/incidents/notices/{a_id}/acknowledge")
    assert res.status_code == 200 and res.json()["acknowledged_at"]
    clocks = {c["customer"]: c for c in dave.get(f"/api/v1/incidents/{inc_id}").json()["clocks"]}
    assert clocks["Fjellheim barnehage"]["acknowledged_at"] == res.json()["acknowledged_at"]
    assert clocks["Havbris skole"]["acknowledged_at"] is None
    assert clocks["Havbris skole"]["state"] == "done"
    with db.transaction(Scope.system("test read")) as session:
        actions = {(e.action, e.org_id) for e in session.scalars(select(AuditEvent))}
    assert ("incidents.notice_sent", personas.vendor) in actions
    assert ("incidents.notice_received", personas.tenant_b) in actions
    assert ("incidents.notice_acknowledged", personas.tenant_a) in actions


def test_updates_come_in_phases_and_every_notice_is_kept(login: Any, personas: Personas) -> None:
    dave = login(personas.dave)
    inc_id = dave.post("/api/v1/incidents", json=breach_body(personas)).json()["id"]
    res = dave.post(f"/api/v1/incidents/{inc_id}/notices", json={"phase": "update"})
    assert res.status_code == 409 and "first notice" in res.json()["detail"]
    assert dave.post(f"/api/v1/incidents/{inc_id}/notices", json={}).status_code == 201
    again = dave.post(f"/api/v1/incidents/{inc_id}/notices", json={"phase": "initial"})
    assert again.status_code == 409
    dave.patch(f"/api/v1/incidents/{inc_id}", json={"records_approx": 95})
    res = dave.post(f"/api/v1/incidents/{inc_id}/notices",
                    json={"phase": "update", "customers": [personas.tenant_a]})
    assert res.status_code == 201, res.text
    notices = dave.get(f"/api/v1/incidents/{inc_id}").json()["notices"]
    assert [(n["customer_id"], n["phase"], n["sequence"]) for n in notices] == sorted(
        [(personas.tenant_a, "initial", 1), (personas.tenant_b, "initial", 1),
         (personas.tenant_a, "update", 2)], key=lambda t: (t[2], t[0] != notices[0]["customer_id"]))
    update = next(n for n in notices if n["phase"] == "update")
    assert update["content"]["records_approx"] == 95
    first = next(n for n in notices if n["phase"] == "initial"
                 and n["customer_id"] == personas.tenant_a)
    assert first["content"]["records_approx"] == 80  # kept as sent


def test_the_vendor_as_controller_reports_within_72_hours_or_gives_reasons(
        login: Any, personas: Personas) -> None:
    dave = login(personas.dave)
    aware = utcnow() - timedelta(hours=80)
    inc = dave.post("/api/v1/incidents", json=breach_body(
        personas, aware=aware, vendor_is_controller=True, customers=[])).json()
    [clock] = inc["clocks"]
    assert clock["clock"] == "authority" and clock["state"] == "overdue"
    url = f"/api/v1/incidents/{inc['id']}/authority-report"
    res = dave.post(url, json={"reported_at": utcnow().isoformat()})
    assert res.status_code == 422 and _field(res) == "late_reason"
    res = dave.post(url, json={"reported_at": utcnow().isoformat(), "reference": "Altinn 123",
                               "late_reason": "Omfanget var uklart til i dag."})
    assert res.status_code == 200, res.text
    assert res.json()["clocks"][0]["state"] == "late"


def test_the_form_fields_the_letter_and_the_exemption(login: Any, personas: Personas) -> None:
    dave = login(personas.dave)
    inc_id = dave.post("/api/v1/incidents", json=breach_body(personas)).json()["id"]
    form = dave.get(f"/api/v1/incidents/{inc_id}/authority-form").json()
    assert form["approx_data_subjects"] == 40 and form["data_subject_categories"] == "barn; foresatte"
    assert form["where_the_data_is_now"].startswith("Slettet")
    csv = dave.get(f"/api/v1/incidents/{inc_id}/authority-form?format=csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert "approx_records,80" in csv.text
    res = dave.get(f"/api/v1/incidents/{inc_id}/subject-letter")
    assert res.status_code == 422 and _field(res) == "risk"
    dave.patch(f"/api/v1/incidents/{inc_id}", json={"risk": "high"})
    letter = dave.get(f"/api/v1/incidents/{inc_id}/subject-letter?lang=en").text
    assert "personal data breach" in letter and "Datatilsynet" in letter
    res = dave.post(f"/api/v1/incidents/{inc_id}/exemption", json={"exemption": "d", "reason": "x"})
    assert res.status_code == 422 and _field(res) == "exemption"
    res = dave.post(f"/api/v1/incidents/{inc_id}/exemption",
                    json={"exemption": "a", "reason": "Vedlegget var kryptert."})
    assert res.status_code == 200 and res.json()["exemption"] == "a"
    assert dave.get(f"/api/v1/incidents/{inc_id}/authority-form").json()["data_subjects_told"] \
        == "exempt"


def test_closing_needs_cause_lessons_and_every_customer_told(login: Any,
                                                             personas: Personas) -> None:
    dave = login(personas.dave)
    inc_id = dave.post("/api/v1/incidents", json=breach_body(personas)).json()["id"]
    url = f"/api/v1/incidents/{inc_id}/close"
    res = dave.post(url, json={"cause": "", "lessons": "Fire øyne."})
    assert res.status_code == 422 and _field(res) == "cause"
    res = dave.post(url, json={"cause": "Feil liste.", "lessons": "Fire øyne."})
    assert res.status_code == 409 and "notified" in res.json()["detail"]
    dave.post(f"/api/v1/incidents/{inc_id}/notices", json={})
    res = dave.post(url, json={"cause": "Feil liste.", "lessons": "Fire øyne."})
    assert res.status_code == 200 and res.json()["status"] == "closed"
    actions = [e["action"] for e in res.json()["timeline"]]
    assert actions[0] == "registered" and actions[-1] == "closed"
    assert actions.count("customer_added") == 2 and actions.count("notice_sent") == 2
    assert dave.patch(f"/api/v1/incidents/{inc_id}", json={"title": "Ny"}).status_code == 409


def test_the_register_is_the_vendors_only(db: Database, login: Any, personas: Personas) -> None:
    inc_id = register(db, personas)
    erik = login(personas.erik)
    assert erik.get(f"/api/v1/incidents/{inc_id}").status_code == 200
    for who in (personas.alice, personas.carol, personas.bob):
        client = login(who)
        assert client.get("/api/v1/incidents").status_code == 403
        assert client.post("/api/v1/incidents", json=breach_body(personas)).status_code == 403
