"""``GET /api/v1/me`` answers from the resolved caller: the same answer for members, vendor
staff (in their own organisation and inside a customer's) and tokens."""

from __future__ import annotations

from sqlalchemy import update
from starlette.testclient import TestClient

from tests.conftest import Personas
from vern.accounts.models import Organisation
from vern.accounts.roles import Role
from vern.core.db import Database, Scope, utcnow


def test_a_member_sees_their_own_organisation_only(login, personas: Personas) -> None:  # type: ignore[no-untyped-def]
    body = login(personas.bob).get("/api/v1/me").json()
    assert body["user"]["id"] == personas.bob.user_id
    assert body["user"]["name"] == "Bjørn Bakken"
    assert body["role"] == "member"
    assert [o["id"] for o in body["organisations"]] == [personas.tenant_a]
    assert body["permissions"] == ["access.request", "org.read", "self", "trust.read"]


def test_vendor_staff_may_switch_only_to_customers_whose_grant_is_in_force(
    login, db: Database, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    from tests.matrix.samples_access import actor_of, grant
    from vern.accounts.roles import OrgKind

    dave = login(personas.dave)
    body = dave.get("/api/v1/me").json()
    assert body["organisation"]["kind"] == "vendor"
    assert {o["id"] for o in body["organisations"]} == {personas.vendor}
    refused = dave.put("/api/v1/session/org", json={"org_id": personas.tenant_b})
    assert refused.status_code == 403 and "no access grant" in refused.json()["detail"]
    grant(db, personas, actor_of(personas.dave, OrgKind.VENDOR), personas.tenant_b,
          approve_by=personas.carol)
    body = dave.get("/api/v1/me").json()
    assert {o["id"] for o in body["organisations"]} == {personas.vendor, personas.tenant_b}
    switched = dave.put("/api/v1/session/org", json={"org_id": personas.tenant_b})
    assert switched.status_code == 200, switched.text
    inside = dave.get("/api/v1/me").json()
    assert inside["organisation"]["id"] == personas.tenant_b
    assert inside["role"] == "security_officer"
    assert "users.manage" not in inside["permissions"]  # less than at home


def test_a_member_cannot_switch_to_another_tenant(login, personas: Personas) -> None:  # type: ignore[no-untyped-def]
    bob = login(personas.bob)
    assert bob.put("/api/v1/session/org", json={"org_id": personas.tenant_b}).status_code == 404
    assert bob.get("/api/v1/me").json()["organisation"]["id"] == personas.tenant_a


def test_a_token_sees_its_organisation_and_no_person(
    client: TestClient, api_token, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    token = api_token(personas.tenant_b, Role.TENANT_ADMIN)
    body = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert body["organisation"]["id"] == personas.tenant_b
    assert "user" not in body and body["token_id"]


def test_a_disabled_organisation_ends_access(
    login, client: TestClient, db: Database, api_token, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    bob = login(personas.bob)
    token = api_token(personas.tenant_a, Role.MEMBER)
    with db.transaction(Scope.system("test")) as session:
        session.execute(update(Organisation).where(Organisation.id == personas.tenant_a)
                        .values(disabled_at=utcnow()))
    assert bob.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
