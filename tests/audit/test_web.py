"""The trail through the API and the console: who sees what, every read recorded, ingest."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.conftest import Personas
from vern.accounts.roles import Role
from vern.audit import service
from vern.audit.models import AuditEvent
from vern.audit.verify import verify
from vern.core.config import Settings
from vern.core.context import RequestContext, reset_request, set_request
from vern.core.db import Database, Scope


def _seed(db: Database, settings: Settings, personas: Personas) -> None:
    """One record per tenant and one with no organisation, from known addresses."""
    for org, ip, who in ((personas.tenant_a, "198.51.100.1", personas.alice.user_id),
                         (personas.tenant_b, "198.51.100.2", personas.carol.user_id),
                         (None, "203.0.113.66", None)):
        token = set_request(RequestContext("seed", ip, "Firefox", "GET", "/x"))
        try:
            with db.transaction(Scope.system("seed")) as session:
                service.record(session, "child.read", org_id=org, actor_user_id=who,
                               resource=f"child:{org}", details={"fields": ["name"]})
        finally:
            reset_request(token)
    service.seal_now(db, settings)


def _items(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    res = client.get("/api/v1/audit/events", params=params)
    assert res.status_code == 200, res.text
    return res.json()["items"]


def test_a_tenant_admin_sees_only_her_organisations_trail(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    _seed(db, settings, personas)
    alice = login(personas.alice)
    orgs = {i["org_id"] for i in _items(alice, limit=500)}
    assert orgs == {personas.tenant_a}
    assert alice.get("/api/v1/audit/events", params={"org": personas.tenant_b}).status_code == 403
    carol = login(personas.carol)
    assert {i["org_id"] for i in _items(carol, action="child.read")} == {personas.tenant_b}


def test_a_vendor_security_officer_reads_every_organisation_when_asking_for_it(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    _seed(db, settings, personas)
    dave = login(personas.dave)
    own = {i["org_id"] for i in _items(dave, action="child.read")}
    assert own == {None}  # the vendor's own trail and records of no organisation
    every = {i["org_id"] for i in _items(dave, action="child.read", org="*")}
    assert every == {personas.tenant_a, personas.tenant_b, None}
    one = _items(dave, action="child.read", org=personas.tenant_b)
    assert [i["ip"] for i in one] == ["198.51.100.2"]


def test_every_read_of_the_trail_is_itself_recorded(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    alice = login(personas.alice)
    _items(alice, action="auth.*")
    with db.transaction(Scope.system("check")) as session:
        reads = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "audit.read",
            AuditEvent.actor_user_id == personas.alice.user_id)).all()
    assert len(reads) == 1
    assert '"action":"auth.*"' in (reads[0].details or "")


def test_questions_people_ask_are_answered_by_filters_and_paging(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    _seed(db, settings, personas)
    dave = login(personas.dave)
    by_ip = _items(dave, ip="198.51.100.1", org="*")
    assert [i["actor_user_id"] for i in by_ip] == [personas.alice.user_id]
    now = datetime.now(UTC)
    who = _items(dave, resource=f"child:{personas.tenant_a}", org="*",
                 since=(now - timedelta(hours=1)).isoformat(), until=(now + timedelta(hours=1)).isoformat())
    assert len(who) == 1 and who[0]["actor_user_id"] == personas.alice.user_id
    assert _items(dave, resource=f"child:{personas.tenant_a}", org="*",
                  until=(now - timedelta(hours=1)).isoformat()) == []
    signins = _items(dave, action="auth.signin", org="*", actor=personas.dave.user_id)
    assert signins and all(i["action"] == "auth.signin" for i in signins)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"org": "*", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        res = dave.get("/api/v1/audit/events", params=params).json()
        seen += [i["id"] for i in res["items"]]
        cursor = res["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) >= 3
    bad = dave.get("/api/v1/audit/events", params={"ip": "not-an-ip"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "ip"


def test_the_trail_exports_as_csv_without_formulas(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    _seed(db, settings, personas)
    alice = login(personas.alice)
    res = alice.get("/api/v1/audit/events", params={"format": "csv", "action": "child.read"})
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(res.text)))
    assert [r["resource"] for r in table] == [f"child:{personas.tenant_a}"]
    assert table[0]["ip"] == "198.51.100.1"


def test_the_csv_export_writes_formula_like_values_as_text(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    token = set_request(RequestContext("seed", "198.51.100.9", "@SUM(A1:A9)", "GET", "/x"))
    try:
        with db.transaction(Scope.system("seed")) as session:
            service.record(session, "child.read", org_id=personas.tenant_a,
                           actor_user_id=personas.alice.user_id,
                           resource='=HYPERLINK("http://x.invalid","klikk")',
                           details={"fields": ["name"]})
    finally:
        reset_request(token)
    service.seal_now(db, settings)
    alice = login(personas.alice)
    res = alice.get("/api/v1/audit/events", params={"format": "csv", "action": "child.read"})
    [row] = list(csv.DictReader(io.StringIO(res.text)))
    assert row["resource"] == "'=HYPERLINK(\"http://x.invalid\",\"klikk\")"
    assert row["user_agent"] == "'@SUM(A1:A9)"
    assert row["ip"] == "198.51.100.9"
    exact = alice.get("/api/v1/audit/events", params={"action": "child.read"}).json()["items"][0]
    assert exact["resource"] == '=HYPERLINK("http://x.invalid","klikk")'  # JSON keeps the value


VISITOR = "195.159.103.82"
STATIC = ["/static/consent/vern-consent.js", "/static/stats/vern-stats.js", "/static/console/vern.css"]


def _requests_from_visitor(
    db: Database, settings: Settings, dave: TestClient
) -> tuple[dict[str, str | None], set[str]]:
    """({path: recorded address} of the anonymous requests, {paths of the records found by the
    visitor's full address})."""
    service.flush_writer()
    service.seal_now(db, settings)
    items = _items(dave, org="*", action="http.request", limit=500)
    full = {i["resource"] for i in _items(dave, org="*", ip=VISITOR, limit=500)}
    return {i["resource"]: i["ip"] for i in items if i["actor_user_id"] is None}, full


def test_static_files_are_out_of_the_trail_by_default(
    app: Any, db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    dave = login(personas.dave)
    with TestClient(app, base_url="http://testserver", client=(VISITOR, 50123)) as visitor:
        for path in STATIC:
            assert visitor.get(path).status_code == 200
        assert visitor.get("/static/stats/nothing-here.js").status_code == 404
        assert visitor.get("/login").status_code == 200  # an ordinary page: recorded
    recorded, full = _requests_from_visitor(db, settings, dave)
    assert not [p for p in recorded if p.startswith("/static/")]
    assert recorded["/login"] == VISITOR and full == {"/login"}


def test_static_files_when_recorded_keep_only_the_truncated_address(  # noqa: PLR0917 - fixtures
    app: Any, db: Database, settings: Settings, personas: Personas, login: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vern.core.config import audit_settings

    monkeypatch.setenv("VERN_AUDIT_STATIC_FILES", "true")
    audit_settings.cache_clear()
    try:
        dave = login(personas.dave)
        with TestClient(app, base_url="http://testserver", client=(VISITOR, 50123)) as visitor:
            for path in STATIC:
                assert visitor.get(path).status_code == 200
        recorded, full = _requests_from_visitor(db, settings, dave)
    finally:
        monkeypatch.delenv("VERN_AUDIT_STATIC_FILES")
        audit_settings.cache_clear()
    assert {p: recorded.get(p) for p in STATIC} == dict.fromkeys(STATIC, "195.159.103.0")
    assert not full  # the full address is in no record


def test_no_interface_edits_or_deletes_a_record(personas: Personas, login: Any) -> None:
    dave = login(personas.dave)
    for method in ("PUT", "PATCH", "DELETE"):
        assert dave.request(method, "/api/v1/audit/events").status_code == 405


def _event(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"evt-{i}", "time": datetime.now(UTC).isoformat(), "action": "lesson.viewed",
            "actor": "elev-1001", "resource": f"student:{i}", "ip": "192.0.2.44",
            "user_agent": "Mozilla/5.0", **extra}


def test_ingest_stores_a_batch_once_and_names_the_bad_event_and_field(
    db: Database, settings: Settings, personas: Personas, client: TestClient, api_token: Any
) -> None:
    token = api_token(personas.tenant_a, Role.TENANT_ADMIN)
    auth = {"Authorization": f"Bearer {token}"}
    res = client.post("/api/v1/audit/events", json={"events": [_event(1), _event(2)]}, headers=auth)
    assert res.status_code == 202, res.text
    assert res.json() == {"accepted": 2, "duplicates": 0}
    again = client.post("/api/v1/audit/events", json={"events": [_event(1), _event(2), _event(3)]},
                        headers=auth)
    assert again.json() == {"accepted": 1, "duplicates": 2}

    bad = client.post("/api/v1/audit/events", headers=auth, json={"events": [
        _event(4), _event(5, time="yesterday"), _event(6)]})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["errors"][0]["field"] == "events.1.time"
    unknown = client.post("/api/v1/audit/events", headers=auth,
                          json={"events": [_event(7, colour="red")]})
    assert unknown.json()["errors"][0]["field"] == "events.0.colour"
    twice = client.post("/api/v1/audit/events", headers=auth, json={"events": [_event(8), _event(8)]})
    assert twice.status_code == 422 and twice.json()["errors"][0]["field"] == "events.1.id"
    many = client.post("/api/v1/audit/events", headers=auth,
                       json={"events": [_event(i) for i in range(1001)]})
    assert many.status_code == 422 and many.json()["errors"][0]["field"] == "events"
    fat = client.post("/api/v1/audit/events", headers=auth,
                      json={"events": [_event(9), _event(10, details={"x": "y" * 5000})]})
    assert fat.status_code == 422 and fat.json()["errors"][0]["field"] == "events.1.details"
    huge = client.post("/api/v1/audit/events", headers=auth,
                       json={"events": [_event(11, details={"x": "y" * 4000})] * 300})
    assert huge.status_code == 413
    assert huge.headers["content-type"].startswith("application/problem+json")

    with db.transaction(Scope.system("check")) as session:
        stored = session.scalars(select(AuditEvent.client_event_id).where(
            AuditEvent.source == "ingest")).all()
    assert sorted(s or "" for s in stored) == ["evt-1", "evt-2", "evt-3"]  # nothing of the refused batches
    assert verify(db, settings).ok


def test_ingested_records_are_answerable_like_vern_s_own(
    db: Database, settings: Settings, personas: Personas, login: Any, api_token: Any
) -> None:
    token = api_token(personas.tenant_a, Role.TENANT_ADMIN)
    alice = login(personas.alice)
    res = alice.post("/api/v1/audit/events", json={"events": [_event(1, actor_name="Kari Nordmann")]},
                     headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == 202, res.text
    found = _items(alice, actor="elev-1001")
    assert found[0]["actor_name"] == "Kari Nordmann" and found[0]["ip"] == "192.0.2.44"


def test_requests_and_sign_ins_are_recorded_with_the_address_sealed(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    alice = login(personas.alice)
    alice.get("/console/audit")
    service.flush_writer()
    with db.transaction(Scope.system("check")) as session:
        requests = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "http.request", AuditEvent.actor_user_id == personas.alice.user_id,
            AuditEvent.resource == "/console/audit")).all()
        signins = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "auth.signin", AuditEvent.actor_user_id == personas.alice.user_id)).all()
    assert len(requests) == 1 and requests[0].seq is not None
    assert '"status":200' in (requests[0].details or "")
    assert signins and signins[0].personal is not None and signins[0].key_id is not None


@pytest.mark.parametrize(("lang", "text"), [("en", "Audit trail"), ("nb", "Revisjonsspor")])
def test_the_console_page_shows_the_trail_in_both_languages(  # noqa: PLR0917 - fixtures
    db: Database, settings: Settings, personas: Personas, login: Any, lang: str, text: str
) -> None:
    _seed(db, settings, personas)
    alice = login(personas.alice)
    alice.cookies.set("vern_lang", lang)
    page = alice.get("/console/audit", params={"action": "child.read"})
    assert page.status_code == 200
    assert text in page.text and f"child:{personas.tenant_a}" in page.text
    assert f"child:{personas.tenant_b}" not in page.text
    assert alice.get("/console/audit/alerts").status_code == 200


def test_sign_ins_show_who_and_a_failed_one_keeps_the_name_typed_sealed(
    db: Database, settings: Settings, personas: Personas, login: Any, client: TestClient
) -> None:
    typed = "nobody-here@example.org"
    res = client.post("/api/v1/session", json={"email": typed, "password": "wrong password"})
    assert res.status_code == 401
    alice = login(personas.alice)
    service.seal_now(db, settings)
    with db.transaction(Scope.system("check")) as session:
        failed = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "auth.signin_failed", AuditEvent.actor_user_id.is_(None))).one()
    assert failed.personal is not None and typed.encode() not in failed.personal  # sealed
    vendor = login(personas.dave)
    shown = _items(vendor, action="auth.signin_failed")
    assert [i["actor_name"] for i in shown if i["actor_user_id"] is None] == [typed]
    signins = _items(alice, action="auth.signin")
    assert signins and all(i["actor_email"] == personas.alice.email for i in signins
                           if i["actor_user_id"] == personas.alice.user_id)
    page = alice.get("/console/audit", params={"action": "auth.signin"})
    assert personas.alice.email in page.text
