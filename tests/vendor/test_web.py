"""The registry over HTTP: vendor staff register a sub-processor, only the customers it serves
see the notice, a customer admin objects through the console and the vendor sees it; problems
name the field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import Personas
from vern.core.db import Database, utcnow

SUB = {"name": "Fjordhall Drift AS", "service": "Drift av datasenter",
       "data_categories": ["user.name", "user.contact.email"], "storage_locations": ["NO"],
       "processing_locations": ["SE"], "agreement_date": "2026-01-15"}


def test_a_subprocessor_outside_the_eea_without_a_mechanism_is_a_problem_naming_the_field(
        login: Any, personas: Personas) -> None:
    dave = login(personas.dave)
    res = dave.put("/api/v1/vendor/subprocessors/support",
                   json={**SUB, "processing_locations": ["US"]})
    assert res.status_code == 422
    problem = res.json()
    assert problem["errors"][0]["field"] == "transfer_mechanism"
    assert "outside the EU/EEA" in problem["errors"][0]["message"]
    res = dave.put("/api/v1/vendor/subprocessors/support",
                   json={**SUB, "processing_locations": ["US"], "transfer_mechanism": "scc"})
    assert res.status_code == 200, res.text
    assert res.json()["outside_eea"] is True


def test_notice_reaches_the_customer_served_and_its_objection_reaches_the_vendor(
        login: Any, personas: Personas) -> None:
    dave, alice, carol = login(personas.dave), login(personas.alice), login(personas.carol)
    res = dave.put("/api/v1/vendor/subprocessors/drift",
                   json={**SUB, "all_customers": False, "customer_ids": [personas.tenant_a],
                         "objection_days": 14})
    assert res.status_code == 200, res.text
    assert res.json()["customers_notified"] == 1

    assert carol.get("/api/v1/vendor/customer/notices").json() == {"notices": []}
    [notice] = alice.get("/api/v1/vendor/customer/notices").json()["notices"]
    assert notice["summary"]["name"] == "Fjordhall Drift AS" and notice["open"]
    assert carol.get(f"/api/v1/vendor/customer/notices/{notice['id']}").status_code == 404
    assert carol.post(f"/api/v1/vendor/customer/notices/{notice['id']}/objection",
                      json={"reason": "Nei"}).status_code == 404

    page = alice.get(f"/console/vendor/notices/{notice['id']}?lang=nb")
    assert page.status_code == 200 and "Protester" in page.text and "Sverige" in page.text
    res = alice.post(f"/console/vendor/notices/{notice['id']}/objection",
                     data={"reason": "Vi ønsker ikke behandling i Sverige.",
                           "csrf_token": alice.headers["X-CSRF-Token"]},
                     follow_redirects=False)
    assert res.status_code == 303
    again = alice.post(f"/api/v1/vendor/customer/notices/{notice['id']}/objection",
                       json={"reason": "igjen"})
    assert again.status_code == 409

    [objection] = dave.get("/api/v1/vendor/objections").json()["objections"]
    assert objection["customer"] == "Fjellheim barnehage"
    assert objection["objection_reason"] == "Vi ønsker ikke behandling i Sverige."
    assert objection["subprocessor"] == "drift"
    detail = dave.get("/console/vendor/subprocessors/drift?lang=en")
    assert "Vi ønsker ikke behandling i Sverige." in detail.text
    assert personas.alice.user_id not in detail.text  # the vendor sees the customer, not its people


def test_customers_cannot_reach_the_vendor_registry_and_members_cannot_object(
        login: Any, personas: Personas) -> None:
    alice, bob = login(personas.alice), login(personas.bob)
    assert alice.get("/api/v1/vendor/subprocessors").status_code == 403
    assert alice.get("/console/vendor").status_code == 403
    assert bob.get("/api/v1/vendor/customer/notices").status_code == 403


def test_maintenance_less_than_24_hours_ahead_needs_the_emergency_flag_and_reason(
        login: Any, personas: Personas) -> None:
    dave, alice = login(personas.dave), login(personas.alice)
    soon = utcnow() + timedelta(hours=3)
    body = {"title_nb": "Oppgradering", "title_en": "Upgrade", "starts_at": soon.isoformat(),
            "ends_at": (soon + timedelta(hours=1)).isoformat()}
    res = dave.post("/api/v1/vendor/maintenance", json=body)
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "starts_at"
    res = dave.post("/api/v1/vendor/maintenance", json={**body, "emergency": True})
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "emergency_reason"
    res = dave.post("/api/v1/vendor/maintenance",
                    json={**body, "emergency": True, "emergency_reason": "Kritisk sårbarhet"})
    assert res.status_code == 201, res.text
    assert res.json()["recipients"] == 2
    [shown] = alice.get("/api/v1/vendor/customer/maintenance").json()["maintenance"]
    assert shown["emergency_reason"] == "Kritisk sårbarhet"
    assert "Kritisk sårbarhet" in alice.get("/console/vendor/notices").text


def test_customer_profile_and_contacts_over_the_api(login: Any, personas: Personas,
                                                    db: Database) -> None:
    dave = login(personas.dave)
    base = f"/api/v1/vendor/customers/{personas.tenant_a}"
    res = dave.put(base, json={"org_number": "923609017"})
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "org_number"
    res = dave.put(base, json={"contract_start": "2026-02-01", "contract_end": "2026-01-01"})
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "contract_end"
    res = dave.put(base, json={"org_number": "923609016", "contract_start": "2026-01-01",
                               "breach_notice_hours": 12})
    assert res.status_code == 200, res.text
    assert res.json()["breach_notice_hours"] == 12
    res = dave.post(f"{base}/contacts", json={"kind": "breach", "name": "Berit Brudd",
                                              "email": "brudd@fjellheim.example.com"})
    assert res.status_code == 201
    contact = res.json()["id"]
    profile = dave.get(base).json()
    assert profile["contacts"][0]["email"] == "brudd@fjellheim.example.com"
    assert "Berit Brudd" in dave.get(f"/console/vendor/customers/{personas.tenant_a}").text
    assert dave.delete(f"{base}/contacts/{contact}").status_code == 204
    assert dave.get(base).json()["contacts"] == []


def test_the_registry_pages_render_in_both_languages(login: Any, personas: Personas) -> None:
    dave = login(personas.dave)
    assert dave.post("/api/v1/vendor/measures/seed").json()["added"] >= 15
    assert dave.put("/api/v1/vendor/officers/dpo", json={
        "name": "Pia Personvern", "email": "personvernombud@solstrand.example.com"}
    ).status_code == 200
    dave.put("/api/v1/vendor/systems/crm", json={"name": "CRM", "storage_locations": ["IE"],
                                                 "processing_locations": ["IN"],
                                                 "transfer_mechanism": "scc"})
    nb = dave.get("/console/vendor?lang=nb").text
    en = dave.get("/console/vendor?lang=en").text
    assert "Tekniske og organisatoriske tiltak" in nb and "Kryptering av lagrede data" in nb
    assert "Technical and organisational measures" in en and "Encryption at rest" in en
    assert "standard personvernbestemmelser" in nb and "utenfor EU/EØS" in nb
    assert "Pia Personvern" in en and "Datatilsynet" in en
