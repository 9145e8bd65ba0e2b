"""API tokens (hashed, scoped to one organisation and role, expiring, revocable, never more than
their creator) and the rule that the vendor always keeps a security officer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from starlette.testclient import TestClient

from tests.accounts.helpers import actions
from tests.conftest import Personas, add_persona
from vern.accounts import service
from vern.accounts.models import ApiToken
from vern.accounts.roles import Role
from vern.core.config import Settings
from vern.core.db import Database, Scope, utcnow


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _create(client: TestClient, role: str = "member", days: int = 30, **extra: object):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/tokens", json={"name": "Skoleportalen", "role": role,
                                               "days": days, **extra})


def test_a_token_is_shown_once_and_only_its_hash_is_stored(
    login, db: Database, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    alice = login(personas.alice)
    res = _create(alice)
    assert res.status_code == 201, res.text
    token = res.json()["token"]
    assert token.startswith("vt_") and len(token) > 40
    with db.engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(text("SELECT * FROM api_tokens"))
                        for v in row)
    assert token not in dump and token[10:] not in dump
    listed = alice.get("/api/v1/tokens").json()["items"]
    assert [t["prefix"] for t in listed] == [token[:10]]
    assert all("token" not in t for t in listed)
    assert "token.created" in actions(db, "token.")


def test_a_token_acts_only_in_its_own_organisation_with_its_role(
    client: TestClient, api_token, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    member = api_token(personas.tenant_a, Role.MEMBER)
    admin = api_token(personas.tenant_a, Role.TENANT_ADMIN)
    me = client.get("/api/v1/me", headers=_bearer(member)).json()
    assert me["organisation"]["id"] == personas.tenant_a and me["role"] == "member"
    assert "self" not in me["permissions"]
    assert client.get("/api/v1/users", headers=_bearer(member)).status_code == 403
    users = client.get("/api/v1/users", headers=_bearer(admin)).json()["items"]
    assert {u["id"] for u in users} == {personas.alice.user_id, personas.bob.user_id}
    other = client.get(f"/api/v1/users/{personas.carol.user_id}", headers=_bearer(admin))
    assert other.status_code == 404  # another tenant's user does not exist here
    assert client.post("/api/v1/session/everywhere", headers=_bearer(admin)).status_code == 403


def test_an_expired_token_is_refused(
    client: TestClient, db: Database, api_token, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    token = api_token(personas.tenant_a, Role.MEMBER)
    assert client.get("/api/v1/me", headers=_bearer(token)).status_code == 200
    with db.transaction(Scope.system("test clock")) as session:
        session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    res = client.get("/api/v1/me", headers=_bearer(token))
    assert res.status_code == 401
    assert res.headers["www-authenticate"].startswith("Bearer")


def test_a_revoked_token_is_refused(login, client: TestClient, personas: Personas  # type: ignore[no-untyped-def]
                                    ) -> None:
    alice = login(personas.alice)
    created = _create(alice).json()
    assert client.get("/api/v1/me", headers=_bearer(created["token"])).status_code == 200
    assert alice.delete(f"/api/v1/tokens/{created['id']}").status_code == 204
    assert client.get("/api/v1/me", headers=_bearer(created["token"])).status_code == 401
    assert alice.get("/api/v1/tokens").json()["items"][0]["revoked"] is True


def test_another_tenants_token_cannot_be_revoked(login, client: TestClient, personas: Personas  # type: ignore[no-untyped-def]
                                                 ) -> None:
    created = _create(login(personas.alice)).json()
    carol = login(personas.carol)
    assert carol.delete(f"/api/v1/tokens/{created['id']}").status_code == 404
    assert client.get("/api/v1/me", headers=_bearer(created["token"])).status_code == 200


def test_an_unknown_or_malformed_token_is_refused(client: TestClient, personas: Personas) -> None:
    for value in ("vt_nope", "", "x" * 500):
        assert client.get("/api/v1/me", headers=_bearer(value)).status_code == 401


@pytest.mark.parametrize("days", [0, 3651, -1])
def test_token_lifetimes_are_bounded(login, personas: Personas, days: int) -> None:  # type: ignore[no-untyped-def]
    res = _create(login(personas.alice), days=days)
    assert res.status_code == 422
    assert res.json()["errors"][0]["field"] == "days"


def test_the_maximum_lifetime_is_a_setting(login, personas: Personas, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    alice = login(personas.alice)
    assert _create(alice, days=settings.api_token_max_days).status_code == 201
    assert _create(alice, days=settings.api_token_max_days + 1).status_code == 422


def test_a_token_cannot_have_more_rights_than_its_creator(
    login, client: TestClient, api_token, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    dave = login(personas.dave)  # security officer: no rights requests, consent or statistics
    refused = _create(dave, role="owner")
    assert refused.status_code == 403
    assert "more rights" in refused.json()["detail"]
    assert _create(dave, role="security_officer").status_code == 201
    assert _create(dave, role="support").status_code == 201
    member_token = api_token(personas.tenant_a, Role.MEMBER)
    assert client.post("/api/v1/tokens", headers=_bearer(member_token),
                       json={"name": "x", "role": "member", "days": 1}).status_code == 403


def test_a_token_may_create_tokens_that_do_not_outlast_it(
    login, client: TestClient, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    parent = _create(login(personas.alice), role="tenant_admin", days=30).json()["token"]
    child = client.post("/api/v1/tokens", headers=_bearer(parent),
                        json={"name": "kortlivet", "role": "member", "days": 7})
    assert child.status_code == 201, child.text
    longer = client.post("/api/v1/tokens", headers=_bearer(parent),
                         json={"name": "evig", "role": "member", "days": 60})
    assert longer.status_code == 422
    assert longer.json()["errors"][0]["field"] == "days"


def test_a_role_that_does_not_exist_in_the_organisation_is_refused(
    login, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    alice = login(personas.alice)
    for role in ("owner", "security_officer", "superuser"):
        res = _create(alice, role=role)
        assert res.status_code == 422 and res.json()["errors"][0]["field"] == "role"


# -- the last security officer -------------------------------------------------------------------


def test_the_last_security_officer_cannot_be_removed_demoted_or_disabled(
    login, db: Database, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    dave = login(personas.dave)
    me = personas.dave.user_id
    for res in (dave.put(f"/api/v1/users/{me}/role", json={"role": "support"}),
                dave.post(f"/api/v1/users/{me}/disable"),
                dave.delete(f"/api/v1/users/{me}")):
        assert res.status_code == 409, res.text
        assert "security officer" in res.json()["detail"]
    assert dave.get(f"/api/v1/users/{me}").json()["role"] == "security_officer"


def test_a_security_officer_can_step_down_once_another_is_appointed(
    login, db: Database, settings: Settings, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    dave = login(personas.dave)
    erik = personas.erik.user_id
    asked = dave.put(f"/api/v1/users/{erik}/role",
                     json={"role": "security_officer", "need": "Ny sikkerhetsleder fra 1. mars"})
    assert asked.status_code == 202, asked.text  # a privileged role: a second person approves
    olav = login(add_persona(db, settings, personas, "olav", "Olav Olsen",
                             "olav.olsen@solstrand.example.com", personas.vendor, Role.OWNER))
    approved = olav.post(f"/api/v1/access/requests/{asked.json()['pending_request']}/approve",
                         json={})
    assert approved.status_code == 200, approved.text
    # Stepping down to a role with fewer permissions needs nobody else.
    res = dave.put(f"/api/v1/users/{personas.dave.user_id}/role", json={"role": "support"})
    assert res.status_code == 200, res.text
    roles = actions(db, "membership.")
    assert roles.count("membership.role_changed") == 2


def test_a_disabled_security_officer_does_not_count(
    db: Database, settings: Settings, personas: Personas
) -> None:
    """With the second officer disabled, the first one is again the last one."""
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        second = service.create_user(session, settings, email="siv.sande@solstrand.example.com",
                                     name="Siv Sande", org_id=personas.vendor,
                                     role="security_officer", password=None, actor=None)
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        actor = service.Actor(org_id=personas.vendor, org_kind=service.OrgKind.VENDOR,
                              role=Role.SECURITY_OFFICER, perms=frozenset(),
                              user_id=personas.dave.user_id)
        service.disable_user(session, user_id=second.id, actor=actor)
    from vern.core.errors import Conflict

    with pytest.raises(Conflict), db.transaction(Scope.tenant(personas.vendor)) as session:
        service.remove_member(session, user_id=personas.dave.user_id, actor=actor)
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        left = session.scalars(select(service.Membership.role)
                               .where(service.Membership.user_id == personas.dave.user_id)).all()
    assert left == ["security_officer"]


def test_a_tenant_cannot_disable_or_reset_an_account_used_in_another_organisation(
    login, db: Database, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    """Disabling is global: Fjellheim may remove Cecilie from itself, not lock her out of
    Havbris, nor disable the vendor's security officer through a membership of its own."""
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        for person in (personas.carol, personas.dave):
            service.add_membership(session, user_id=person.user_id, org_id=personas.tenant_a,
                                   role="member", actor=None)
    alice = login(personas.alice)
    for person in (personas.carol, personas.dave):
        for action in ("disable", "reset-mfa"):
            res = alice.post(f"/api/v1/users/{person.user_id}/{action}")
            assert res.status_code == 409, res.text
            assert "another organisation" in res.json()["detail"]
    assert login(personas.carol).get("/api/v1/me").status_code == 200
    assert alice.delete(f"/api/v1/users/{personas.carol.user_id}").status_code == 204
    assert login(personas.carol).get("/api/v1/me").json()["organisation"]["id"] == (
        personas.tenant_b)


def test_the_operator_cannot_disable_the_last_security_officer_through_a_tenant(
    db: Database, personas: Personas
) -> None:
    from vern.core.errors import Conflict

    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        service.add_membership(session, user_id=personas.dave.user_id, org_id=personas.tenant_a,
                               role="member", actor=None)
    with pytest.raises(Conflict, match="security officer"), db.transaction(
        Scope.tenant(personas.tenant_a)
    ) as session:
        service.disable_user(session, user_id=personas.dave.user_id, actor=None)


def test_a_tenant_cannot_enable_an_account_disabled_for_another_organisation(
    login, db: Database, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    with db.transaction(Scope.tenant(personas.tenant_b)) as session:
        service.disable_user(session, user_id=personas.carol.user_id, actor=None)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        service.add_membership(session, user_id=personas.carol.user_id, org_id=personas.tenant_a,
                               role="member", actor=None)
    res = login(personas.alice).post(f"/api/v1/users/{personas.carol.user_id}/enable")
    assert res.status_code == 409
