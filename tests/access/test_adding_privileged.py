"""A person added (or invited) with a privileged role gets it only when a second administrator
approves: until then they hold the organisation's unprivileged role - or, in the vendor's
organisation, none - and are refused every privileged route. The very first administrator of an
organisation has nobody to ask and is made at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from tests.conftest import PASSWORD, Persona, Personas, add_persona
from tests.console.helpers import csrf_of, sign_in_with_forms
from vern.accounts import security
from vern.accounts.models import User
from vern.accounts.roles import Role
from vern.core.config import Settings
from vern.core.crypto import PII
from vern.core.db import Database, Scope, utcnow


def _with_mfa(db: Database, key: str, user_id: str, email: str, org_id: str,  # noqa: PLR0917
              role: Role) -> Persona:
    """The added person has set up two-step sign-in (as a privileged role will ask)."""
    secret = security.new_totp_secret()
    with db.transaction(Scope.system("test mfa")) as session:
        user = session.get(User, user_id)
        assert user is not None
        user.mfa_secret = PII(user.key_id, secret)
        user.mfa_enabled_at = utcnow()
    return Persona(key, user_id, email, org_id, role, secret)


def _add(client: TestClient, email: str, name: str, role: str, **extra: Any) -> Any:
    return client.post("/api/v1/users", json={"email": email, "name": name, "role": role,
                                              "password": PASSWORD, **extra})


def test_a_customer_admin_added_by_an_admin_waits_for_a_second_one(
    login: Any, db: Database, settings: Settings, personas: Personas
) -> None:
    alice = login(personas.alice)
    email = "per.hansen@fjellheim.example.com"
    no_need = _add(alice, email, "Per Hansen", "tenant_admin")
    assert no_need.status_code == 422 and no_need.json()["errors"][0]["field"] == "need"
    added = _add(alice, email, "Per Hansen", "tenant_admin", need="Ny styrer fra januar")
    assert added.status_code == 202, added.text
    assert added.json()["role"] == "member" and added.json()["pending_role"] == "tenant_admin"
    request_id = added.json()["pending_request"]
    per = login(_with_mfa(db, "per", added.json()["id"], email, personas.tenant_a, Role.MEMBER))
    # Before the approval: a member, refused every administrator's route.
    assert per.get("/api/v1/users").status_code == 403
    assert per.get("/api/v1/audit/events").status_code == 403
    assert per.get("/api/v1/access/requests").status_code == 403
    # The administrator who added them cannot approve it.
    own = alice.post(f"/api/v1/access/requests/{request_id}/approve", json={})
    assert own.status_code == 403 and own.json()["code"] == "self-approval"
    assert per.get("/api/v1/users").status_code == 403
    anne = login(add_persona(db, settings, personas, "anne", "Anne Aas",
                             "anne.aas@fjellheim.example.com", personas.tenant_a,
                             Role.TENANT_ADMIN))
    assert anne.post(f"/api/v1/access/requests/{request_id}/approve",
                     json={}).status_code == 200
    # After it: the role holds from the next request.
    assert per.get("/api/v1/users").status_code == 200
    assert per.get("/api/v1/access/requests").status_code == 200
    assert alice.get(f"/api/v1/users/{added.json()['id']}").json()["role"] == "tenant_admin"


def test_vendor_staff_added_by_an_officer_hold_no_role_until_a_second_approves(
    login: Any, client: TestClient, db: Database, settings: Settings, personas: Personas
) -> None:
    dave = login(personas.dave)
    email = "siri.strand@solstrand.example.com"
    added = _add(dave, email, "Siri Strand", "support", need="Brukerstøtte for skolene")
    assert added.status_code == 202, added.text
    assert added.json()["role"] is None
    user_id, request_id = added.json()["id"], added.json()["pending_request"]
    # No membership: not listed, and no way in.
    assert user_id not in {u["id"] for u in dave.get("/api/v1/users").json()["items"]}
    siri = _with_mfa(db, "siri", user_id, email, personas.vendor, Role.SUPPORT)
    refused = client.post("/api/v1/session", json={"email": email, "password": PASSWORD})
    assert refused.status_code == 401
    waiting = dave.get("/console/access?done=person-waiting")
    assert waiting.status_code == 200 and "Siri Strand" in waiting.text
    own = dave.post(f"/api/v1/access/requests/{request_id}/approve", json={})
    assert own.status_code == 403 and own.json()["code"] == "self-approval"
    # The privacy officer does not decide access; the owner does.
    erik = login(personas.erik)
    assert erik.post(f"/api/v1/access/requests/{request_id}/approve",
                     json={}).status_code == 403
    owner = login(add_persona(db, settings, personas, "olav", "Olav Solstrand",
                              "olav.solstrand@solstrand.example.com", personas.vendor,
                              Role.OWNER))
    approved = owner.post(f"/api/v1/access/requests/{request_id}/approve", json={})
    assert approved.status_code == 200, approved.text
    listed = {u["id"]: u["role"] for u in dave.get("/api/v1/users").json()["items"]}
    assert listed[user_id] == "support"
    assert login(siri).get("/api/v1/vendor/subprocessors").status_code == 200


def test_an_invitation_with_a_privileged_role_waits_too(
    login: Any, personas: Personas
) -> None:
    alice = login(personas.alice)
    invited = alice.post("/api/v1/invitations", json={
        "email": "liv.berg@fjellheim.example.com", "name": "Liv Berg", "role": "tenant_admin",
        "need": "Nestleder"})
    assert invited.status_code == 202, invited.text
    assert invited.json()["role"] == "member" and invited.json()["pending_request"]
    pending = alice.get("/api/v1/access/requests?status=pending").json()["items"]
    assert [(r["user_id"], r["role"], r["requested_by"]) for r in pending] == [
        (invited.json()["id"], "tenant_admin", personas.alice.user_id)]


def test_the_console_form_asks_for_the_need_and_the_role_waits(
    client: TestClient, db: Database, personas: Personas
) -> None:
    alice = sign_in_with_forms(client, personas.alice)
    form = alice.get("/console/users/new")
    assert 'name="need"' in form.text
    data = {"name": "Per Hansen", "email": "per.hansen@fjellheim.example.com",
            "role": "tenant_admin", "password": "", "csrf_token": csrf_of(form.text)}
    missing = alice.post("/console/users/new", data=data)
    assert missing.status_code == 422 and 'id="need"' in missing.text
    done = alice.post("/console/users/new", data={**data, "need": "Ny styrer fra januar"},
                      follow_redirects=False)
    assert done.status_code == 303 and "done=role-requested" in done.headers["location"]
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        from vern.access.models import RoleRequest

        rows = session.execute(select(RoleRequest.role, RoleRequest.status)).all()
    assert [(r.role, r.status) for r in rows] == [("tenant_admin", "pending")]
    page = alice.get(done.headers["location"])
    assert "Medlem" in page.text or "Member" in page.text


def test_the_first_administrator_of_a_new_customer_is_made_at_once(
    login: Any, db: Database, settings: Settings, personas: Personas
) -> None:
    dave = login(personas.dave)
    made = dave.post("/api/v1/tenants", json={"name": "Fjordly skole", "slug": "fjordly"})
    assert made.status_code == 201, made.text
    first = dave.post(f"/api/v1/tenants/{made.json()['id']}/admins", json={
        "email": "grete.fjord@fjordly.example.com", "name": "Grete Fjord"})
    assert first.status_code == 201 and first.json()["role"] == "tenant_admin"
