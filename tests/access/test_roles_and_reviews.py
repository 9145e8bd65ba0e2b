"""Access requests and privileged role grants need a second person; access reviews revoke at once
and keep their result as evidence; the posture items list what waits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.testclient import TestClient

from tests.conftest import Persona, Personas, add_persona
from vern.accounts.roles import Role
from vern.core.config import Settings
from vern.core.db import Database, Scope, utcnow
from vern.notify import service as notify


def _second_admin(db: Database, settings: Settings, personas: Personas) -> Persona:
    return add_persona(db, settings, personas, "anne", "Anne Aas",
                       "anne.aas@fjellheim.example.com", personas.tenant_a, Role.TENANT_ADMIN)


def test_a_role_request_names_a_role_of_the_organisations_kind(
    login: Any, personas: Personas
) -> None:
    bob = login(personas.bob)
    for role, words in (("styrer", "unknown role"),
                        ("security_officer", "is not a role in a tenant organisation")):
        refused = bob.post("/api/v1/access/requests", json={"role": role, "need": "Vikar i juli"})
        assert refused.status_code == 422, refused.text
        error = refused.json()["errors"][0]
        assert error["field"] == "role" and words in error["message"], error


def test_a_member_asks_for_a_role_and_an_administrator_decides(
    login: Any, personas: Personas
) -> None:
    bob, alice = login(personas.bob), login(personas.alice)
    no_need = bob.post("/api/v1/access/requests", json={"role": "tenant_admin", "need": " "})
    assert no_need.status_code == 422 and no_need.json()["errors"][0]["field"] == "need"
    asked = bob.post("/api/v1/access/requests",
                     json={"role": "tenant_admin", "need": "Vikar for styrer i juli"})
    assert asked.status_code == 201, asked.text
    twice = bob.post("/api/v1/access/requests",
                     json={"role": "tenant_admin", "need": "Vikar for styrer i juli"})
    assert twice.status_code == 409
    # A member cannot decide; a member cannot ask on someone else's behalf.
    assert bob.post(f"/api/v1/access/requests/{asked.json()['id']}/approve",
                    json={}).status_code == 403
    assert bob.post("/api/v1/access/requests", json={
        "role": "member", "need": "x", "user_id": personas.alice.user_id}).status_code == 403
    assert bob.get("/api/v1/users").status_code == 403
    approved = alice.post(f"/api/v1/access/requests/{asked.json()['id']}/approve", json={})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert alice.get(f"/api/v1/users/{personas.bob.user_id}").json()["role"] == "tenant_admin"


def test_nobody_approves_their_own_privileged_role_grant(
    login: Any, db: Database, settings: Settings, personas: Personas
) -> None:
    alice = login(personas.alice)
    # Changing a role to a privileged one is a request, not a change.
    direct = alice.put(f"/api/v1/users/{personas.bob.user_id}/role", json={"role": "tenant_admin"})
    assert direct.status_code == 422 and direct.json()["errors"][0]["field"] == "need"
    asked = alice.put(f"/api/v1/users/{personas.bob.user_id}/role",
                      json={"role": "tenant_admin", "need": "Skal ha ansvar for brukere"})
    assert asked.status_code == 202 and asked.json()["role"] == "member"
    request_id = asked.json()["pending_request"]
    own = alice.post(f"/api/v1/access/requests/{request_id}/approve", json={})
    assert own.status_code == 403
    assert own.json()["code"] == "self-approval"
    assert own.json()["errors"][0]["field"] == "approver"
    # The person who would get the role does not approve it either.
    anne = login(_second_admin(db, settings, personas))
    asked_for_anne = alice.post("/api/v1/access/requests", json={
        "role": "member", "need": "Trenger ikke lenger adminrettigheter",
        "user_id": personas.anne.user_id})
    assert asked_for_anne.status_code == 201
    assert anne.post(f"/api/v1/access/requests/{asked_for_anne.json()['id']}/approve",
                     json={}).status_code == 403
    # A second administrator does.
    assert anne.post(f"/api/v1/access/requests/{request_id}/approve", json={}).status_code == 200
    assert alice.get(f"/api/v1/users/{personas.bob.user_id}").json()["role"] == "tenant_admin"


def test_a_token_acts_as_the_person_who_created_it(
    login: Any, client: TestClient, db: Database, settings: Settings, personas: Personas
) -> None:
    alice = login(personas.alice)
    made = alice.post("/api/v1/tokens", json={"name": "Skript", "role": "tenant_admin", "days": 1})
    assert made.status_code == 201, made.text
    client.headers["Authorization"] = "Bearer " + made.json()["token"]
    asked = alice.put(f"/api/v1/users/{personas.bob.user_id}/role",
                      json={"role": "tenant_admin", "need": "Skal ha ansvar for brukere"})
    refused = client.post(f"/api/v1/access/requests/{asked.json()['pending_request']}/approve",
                          json={})
    assert refused.status_code == 403 and refused.json()["code"] == "self-approval"


def test_a_review_revokes_at_once_and_keeps_its_result(
    login: Any, client: TestClient, db: Database, settings: Settings, personas: Personas
) -> None:
    from tests.conftest import make_api_token

    anne_p = _second_admin(db, settings, personas)
    tor_p = add_persona(db, settings, personas, "tor", "Tor Tveit", "tor.tveit@fjellheim.example.com",
                        personas.tenant_a, Role.TENANT_ADMIN)
    alice, anne, tor = login(personas.alice), login(anne_p), login(tor_p)
    anne_token = make_api_token(db, personas.tenant_a, Role.TENANT_ADMIN, created_by=anne_p.user_id)
    client.headers["Authorization"] = f"Bearer {anne_token}"
    assert client.get("/api/v1/users").status_code == 200

    opened = alice.post("/api/v1/access/reviews", json={"title": "Kvartalsvis tilgangskontroll"})
    assert opened.status_code == 201, opened.text
    review = opened.json()
    items = {i["user_id"]: i for i in review["items"]}
    # Every privileged account, none of the others.
    assert set(items) == {personas.alice.user_id, anne_p.user_id, tor_p.user_id}
    assert items[personas.alice.user_id]["role"] == "tenant_admin"
    base = f"/api/v1/access/reviews/{review['id']}"

    own = alice.post(f"{base}/items/{items[personas.alice.user_id]['id']}",
                     json={"decision": "keep"})
    assert own.status_code == 403 and own.json()["errors"][0]["field"] == "decision"
    early = alice.post(f"{base}/close")
    assert early.status_code == 409
    revoked = alice.post(f"{base}/items/{items[anne_p.user_id]['id']}",
                         json={"decision": "revoke", "note": "Sluttet i august"})
    assert revoked.status_code == 200
    # At once: her session and her token stop working for administration.
    assert anne.get("/api/v1/users").status_code == 403
    assert client.get("/api/v1/users").status_code == 401
    assert alice.post(f"{base}/items/{items[tor_p.user_id]['id']}",
                      json={"decision": "keep"}).status_code == 200
    assert tor.post(f"{base}/items/{items[personas.alice.user_id]['id']}",
                    json={"decision": "keep"}).status_code == 200
    closed = alice.post(f"{base}/close")
    assert closed.status_code == 200 and closed.json()["closed_at"]

    evidence = alice.get(base)
    assert evidence.headers["content-disposition"].startswith("attachment;")
    kept = {i["user_id"]: (i["decision"], i["decided_by"]) for i in evidence.json()["items"]}
    assert kept == {personas.alice.user_id: ("keep", tor_p.user_id),
                    anne_p.user_id: ("revoke", personas.alice.user_id),
                    tor_p.user_id: ("keep", personas.alice.user_id)}


def test_the_vendors_security_officer_reviews_the_vendors_staff(
    login: Any, personas: Personas
) -> None:
    dave = login(personas.dave)
    review = dave.post("/api/v1/access/reviews", json={}).json()
    assert {(i["user_id"], i["role"]) for i in review["items"]} == {
        (personas.dave.user_id, "security_officer"), (personas.erik.user_id, "privacy_officer")}
    # The privacy officer holds no access.manage: no campaigns of their own.
    assert login(personas.erik).post("/api/v1/access/reviews", json={}).status_code == 403


def test_posture_items_list_what_waits(login: Any, db: Database, personas: Personas) -> None:
    from vern.access import posture

    bob, alice, erik = login(personas.bob), login(personas.alice), login(personas.erik)
    bob.post("/api/v1/access/requests", json={"role": "tenant_admin", "need": "Vikar i juli"})
    erik.post("/api/v1/access/grants", json={
        "org_id": personas.tenant_a, "purpose": "support", "reason": "Sak 4711",
        "ends_at": (utcnow() + timedelta(hours=2)).isoformat()})
    alice.post("/api/v1/access/reviews", json={"title": "Høstens gjennomgang"})
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        found = posture.items(session, utcnow(), "nb")
    assert sorted(i["kind"] for i in found) == [
        "access.grant", "access.review", "access.role_request"]
    for item in found:
        assert set(item) == {"kind", "title", "due_at", "overdue", "href"}
        assert item["overdue"] is False and item["href"].startswith("/console/access")
    assert any("Høstens gjennomgang" in i["title"] for i in found)
    with db.transaction(Scope.tenant(personas.tenant_b)) as session:
        assert posture.items(session, utcnow()) == []


def test_the_person_who_asked_is_told_by_mail_when_the_request_is_decided(
    mailer: notify.MemoryMailer, login: Any, db: Database, personas: Personas
) -> None:
    bob, alice = login(personas.bob), login(personas.alice)
    asked = bob.post("/api/v1/access/requests",
                     json={"role": "tenant_admin", "need": "Vikar for styrer i juli"})
    refused = alice.post(f"/api/v1/access/requests/{asked.json()['id']}/refuse",
                         json={"note": "Styrer er tilbake i juli"})
    assert refused.status_code == 200, refused.text
    notify.deliver_pending(db)
    mail = mailer.last_to(personas.bob.email)
    assert mail is not None
    assert "Administrator" in mail.subject and "avslått" in mail.subject
    assert "Styrer er tilbake i juli" in mail.body and "/console/access" in mail.body
    assert mailer.last_to(personas.alice.email) is None
