"""Invitations, password reset and a customer's first administrator, through the HTTP API.

Mails are read from the outbox through the notify service's public functions (deliver the queue
to an in-memory mailer, read what it received)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from tests.accounts.helpers import actions, audit_details
from tests.conftest import Personas, add_persona, make_settings
from vern.accounts import flows
from vern.accounts.models import AccountToken
from vern.accounts.roles import Role
from vern.app.web import create_app
from vern.audit.models import AuditEvent
from vern.core.config import Settings
from vern.core.db import Database, Scope, utcnow
from vern.notify import service as notify

NEW_PASSWORD = "Tyttebær og multer i Finnmark"
LINK = re.compile(r"https?://[^\s]+\?token=(va_[A-Za-z0-9_-]+)")


@pytest.fixture
def mails() -> Iterator[notify.MemoryMailer]:
    previous = notify.mailer()
    memory = notify.MemoryMailer()
    notify.install_mailer(memory)
    yield memory
    notify.install_mailer(previous)


def mail_to(db: Database, mails: notify.MemoryMailer, address: str) -> notify.Mail | None:
    """The newest message to ``address`` that the outbox has queued (delivered to memory)."""
    notify.deliver_pending(db)
    return mails.last_to(address)


def link_token(mail: notify.Mail | None) -> str:
    assert mail is not None, "no mail was queued"
    found = LINK.search(mail.body)
    assert found, mail.body
    return found.group(1)


def _expire(db: Database, purpose: str) -> None:
    with db.transaction(Scope.system("test clock")) as session:
        session.execute(update(AccountToken).where(AccountToken.purpose == purpose)
                        .values(expires_at=utcnow() - timedelta(seconds=1)))


def _anonymous(app: object) -> TestClient:
    return TestClient(app, base_url="http://testserver")  # type: ignore[arg-type]


# -- invitations ----------------------------------------------------------------------------------


def test_an_invited_member_chooses_a_password_once_and_is_signed_in(
    app: object, db: Database, personas: Personas, login: object, mails: notify.MemoryMailer,
) -> None:
    alice = login(personas.alice)  # type: ignore[operator]
    res = alice.post("/api/v1/invitations", json={
        "email": "kari.nordmann@fjellheim.example.com", "name": "Kari Nordmann",
        "role": "member"}, headers={"Accept-Language": "en"})
    assert res.status_code == 201, res.text
    assert res.json()["password_set"] is False
    mail = mail_to(db, mails, "kari.nordmann@fjellheim.example.com")
    assert mail is not None and mail.kind == "accounts.invitation"
    assert "Fjellheim barnehage" in mail.body and "expires in 72 hours" in mail.body
    token = link_token(mail)
    with _anonymous(app) as kari:
        res = kari.post("/api/v1/invitations/accept",
                        json={"token": token, "password": NEW_PASSWORD})
        assert res.status_code == 200, res.text
        assert res.json()["mfa_enrolment_required"] is False
        me = kari.get("/api/v1/me")
        assert me.status_code == 200 and me.json()["user"]["password_set"] is True
    with _anonymous(app) as again:
        second = again.post("/api/v1/invitations/accept",
                            json={"token": token, "password": NEW_PASSWORD + " igjen"})
        assert second.status_code == 422
        assert second.json()["errors"][0]["field"] == "token"
    with _anonymous(app) as kari:
        signed = kari.post("/api/v1/session", json={
            "email": "kari.nordmann@fjellheim.example.com", "password": NEW_PASSWORD})
        assert signed.status_code == 200
    assert {"user.invited", "user.invitation_accepted"} <= set(actions(db, "user."))
    assert "auth.invite_link_refused" in actions(db)


def test_an_invited_admin_must_set_up_two_step_sign_in_first(  # noqa: PLR0917 - fixtures
    app: object, db: Database, settings: Settings, personas: Personas, login: object,
    mails: notify.MemoryMailer,
) -> None:
    alice = login(personas.alice)  # type: ignore[operator]
    res = alice.post("/api/v1/invitations", json={
        "email": "per.hansen@fjellheim.example.com", "name": "Per Hansen",
        "role": "tenant_admin", "need": "Ny styrer fra januar"})
    assert res.status_code == 202 and res.json()["role"] == "member"
    token = link_token(mail_to(db, mails, "per.hansen@fjellheim.example.com"))
    anne = login(add_persona(db, settings, personas, "anne",  # type: ignore[operator]
                             "Anne Aas", "anne.aas@fjellheim.example.com", personas.tenant_a,
                             Role.TENANT_ADMIN))
    approved = anne.post(f"/api/v1/access/requests/{res.json()['pending_request']}/approve",
                         json={})
    assert approved.status_code == 200, approved.text
    with _anonymous(app) as per:
        res = per.post("/api/v1/invitations/accept",
                       json={"token": token, "password": NEW_PASSWORD})
        assert res.status_code == 200 and res.json()["mfa_enrolment_required"] is True
        per.headers["X-CSRF-Token"] = res.json()["csrf_token"]
        assert per.get("/api/v1/users").json()["code"] == "mfa-enrolment-required"
        assert per.post("/api/v1/me/mfa").status_code == 200  # the existing enrolment


def test_a_weak_password_does_not_use_up_the_invitation(
    app: object, db: Database, personas: Personas, login: object, mails: notify.MemoryMailer,
) -> None:
    alice = login(personas.alice)  # type: ignore[operator]
    alice.post("/api/v1/invitations", json={"email": "liv.berg@fjellheim.example.com",
                                            "name": "Liv Berg", "role": "member"})
    token = link_token(mail_to(db, mails, "liv.berg@fjellheim.example.com"))
    with _anonymous(app) as liv:
        weak = liv.post("/api/v1/invitations/accept", json={"token": token, "password": "kort"})
        assert weak.status_code == 422
        assert weak.json()["errors"][0]["field"] == "password"
        ok = liv.post("/api/v1/invitations/accept",
                      json={"token": token, "password": NEW_PASSWORD})
        assert ok.status_code == 200


def test_an_expired_invitation_is_refused_and_a_new_one_replaces_it(
    app: object, db: Database, personas: Personas, login: object, mails: notify.MemoryMailer,
) -> None:
    alice = login(personas.alice)  # type: ignore[operator]
    created = alice.post("/api/v1/invitations", json={
        "email": "ola.vik@fjellheim.example.com", "name": "Ola Vik", "role": "member"})
    user_id = created.json()["id"]
    first = link_token(mail_to(db, mails, "ola.vik@fjellheim.example.com"))
    _expire(db, "invite")
    with _anonymous(app) as ola:
        res = ola.post("/api/v1/invitations/accept", json={"token": first,
                                                          "password": NEW_PASSWORD})
        assert res.status_code == 422 and res.json()["errors"][0]["field"] == "token"
    resent = alice.post(f"/api/v1/users/{user_id}/invitation")
    assert resent.status_code == 202, resent.text
    second = link_token(mail_to(db, mails, "ola.vik@fjellheim.example.com"))
    assert second != first
    with _anonymous(app) as ola:
        assert ola.post("/api/v1/invitations/accept", json={
            "token": second, "password": NEW_PASSWORD}).status_code == 200
    # Once the password is chosen there is nothing to invite to.
    again = alice.post(f"/api/v1/users/{user_id}/invitation")
    assert again.status_code == 409


def test_a_new_invitation_ends_the_earlier_link(
    app: object, db: Database, personas: Personas, login: object, mails: notify.MemoryMailer,
) -> None:
    alice = login(personas.alice)  # type: ignore[operator]
    user_id = alice.post("/api/v1/invitations", json={
        "email": "siri.lie@fjellheim.example.com", "name": "Siri Lie",
        "role": "member"}).json()["id"]
    first = link_token(mail_to(db, mails, "siri.lie@fjellheim.example.com"))
    alice.post(f"/api/v1/users/{user_id}/invitation")
    with _anonymous(app) as siri:
        res = siri.post("/api/v1/invitations/accept", json={"token": first,
                                                           "password": NEW_PASSWORD})
        assert res.status_code == 422


def test_a_password_set_from_one_link_ends_the_accounts_other_links(  # noqa: PLR0917 - fixtures
    app: object, client: TestClient, db: Database, personas: Personas, login: object,
    mails: notify.MemoryMailer,
) -> None:
    alice = login(personas.alice)  # type: ignore[operator]
    alice.post("/api/v1/invitations", json={"email": "ida.moe@fjellheim.example.com",
                                            "name": "Ida Moe", "role": "member"})
    invite = link_token(mail_to(db, mails, "ida.moe@fjellheim.example.com"))
    client.post("/api/v1/password-reset", json={"email": "ida.moe@fjellheim.example.com"})
    reset = link_token(mail_to(db, mails, "ida.moe@fjellheim.example.com"))
    assert reset != invite
    assert client.post("/api/v1/password-reset/confirm",
                       json={"token": reset, "password": NEW_PASSWORD}).status_code == 204
    with _anonymous(app) as ida:
        res = ida.post("/api/v1/invitations/accept",
                       json={"token": invite, "password": NEW_PASSWORD + " to"})
        assert res.status_code == 422 and res.json()["errors"][0]["field"] == "token"


def test_a_user_added_without_a_password_is_invited(
    db: Database, personas: Personas, login: object, mails: notify.MemoryMailer,
) -> None:
    alice = login(personas.alice)  # type: ignore[operator]
    res = alice.post("/api/v1/users", json={"email": "tor.aas@fjellheim.example.com",
                                            "name": "Tor Aas", "role": "member"})
    assert res.status_code == 201
    assert link_token(mail_to(db, mails, "tor.aas@fjellheim.example.com"))
    res = alice.post("/api/v1/users", json={"email": "mia.aas@fjellheim.example.com",
                                            "name": "Mia Aas", "role": "member",
                                            "password": NEW_PASSWORD})
    assert res.status_code == 201
    assert mail_to(db, mails, "mia.aas@fjellheim.example.com") is None


def test_the_token_is_kept_only_as_a_keyed_hash(
    db: Database, settings: Settings, personas: Personas, login: object,
    mails: notify.MemoryMailer,
) -> None:
    alice = login(personas.alice)  # type: ignore[operator]
    alice.post("/api/v1/invitations", json={"email": "eva.dal@fjellheim.example.com",
                                            "name": "Eva Dal", "role": "member"})
    token = link_token(mail_to(db, mails, "eva.dal@fjellheim.example.com"))
    with db.transaction(Scope.system("test read")) as session:
        rows = session.scalars(select(AccountToken)).all()
        assert len(rows) == 1
        stored = rows[0].token_hash
    assert token not in stored
    assert stored != hashlib.sha256(token.encode()).hexdigest()  # not a plain hash
    assert stored == flows.token_hash(settings, token)


# -- password reset -------------------------------------------------------------------------------


def _comparable(res: object) -> tuple[int, str, dict[str, str]]:
    skip = {"x-request-id", "date", "content-length"}
    headers = {k: v for k, v in res.headers.items() if k not in skip}  # type: ignore[attr-defined]
    return res.status_code, res.text, headers  # type: ignore[attr-defined]


def test_a_reset_request_answers_the_same_for_known_and_unknown_addresses(
    client: TestClient, db: Database, personas: Personas, mails: notify.MemoryMailer,
) -> None:
    known = client.post("/api/v1/password-reset", json={"email": personas.bob.email})
    unknown = client.post("/api/v1/password-reset",
                          json={"email": "ingen.her@fjellheim.example.com"})
    assert known.status_code == 202
    assert _comparable(known) == _comparable(unknown)
    assert mail_to(db, mails, personas.bob.email) is not None
    assert mail_to(db, mails, "ingen.her@fjellheim.example.com") is None
    details = audit_details(db, "auth.password_reset_requested")
    assert [d.get("reason") for d in details] == [None, "unknown"]


def test_a_reset_sets_the_password_once_and_ends_every_session(  # noqa: PLR0917 - fixtures
    app: object, client: TestClient, db: Database, personas: Personas, login: object,
    mails: notify.MemoryMailer,
) -> None:
    signed_in = login(personas.bob)  # type: ignore[operator]
    assert signed_in.get("/api/v1/me").status_code == 200
    client.post("/api/v1/password-reset", json={"email": personas.bob.email},
                headers={"Accept-Language": "nb"})
    mail = mail_to(db, mails, personas.bob.email)
    assert mail is not None and mail.kind == "accounts.password_reset"
    assert "Nytt passord" in mail.subject  # bokmål, as asked for
    token = link_token(mail)
    res = client.post("/api/v1/password-reset/confirm",
                      json={"token": token, "password": NEW_PASSWORD})
    assert res.status_code == 204, res.text
    assert signed_in.get("/api/v1/me").status_code == 401  # the old session has ended
    again = client.post("/api/v1/password-reset/confirm",
                        json={"token": token, "password": NEW_PASSWORD + " to"})
    assert again.status_code == 422 and again.json()["errors"][0]["field"] == "token"
    with _anonymous(app) as bob:
        old = bob.post("/api/v1/session", json={"email": personas.bob.email,
                                                "password": personas.bob.password})
        assert old.status_code == 401
        new = bob.post("/api/v1/session", json={"email": personas.bob.email,
                                                "password": NEW_PASSWORD})
        assert new.status_code == 200
    assert audit_details(db, "auth.password_reset")[0]["sessions_ended"] == 1
    assert "auth.reset_link_refused" in actions(db)


def test_an_expired_reset_link_is_refused(
    client: TestClient, db: Database, personas: Personas, mails: notify.MemoryMailer,
) -> None:
    client.post("/api/v1/password-reset", json={"email": personas.bob.email})
    token = link_token(mail_to(db, mails, personas.bob.email))
    _expire(db, "reset")
    res = client.post("/api/v1/password-reset/confirm",
                      json={"token": token, "password": NEW_PASSWORD})
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "token"


def test_a_failing_reset_lookup_does_not_change_the_answer(
    client: TestClient, personas: Personas, monkeypatch: pytest.MonkeyPatch,
    mails: notify.MemoryMailer,
) -> None:
    """The look-up runs as a background task once the answer is made, so the answer cannot
    depend on it: even a look-up that fails leaves it as it is (no 500)."""
    from vern.accounts import flows as flows_module

    order: list[str] = []

    def failing(*_args: object, **_kwargs: object) -> bool:
        order.append("lookup")
        raise RuntimeError("the database is gone")

    monkeypatch.setattr(flows_module, "request_password_reset", failing)
    res = client.post("/api/v1/password-reset", json={"email": personas.bob.email})
    assert res.status_code == 202 and order == ["lookup"]


def test_a_reset_request_with_a_malformed_address_names_the_field(client: TestClient) -> None:
    res = client.post("/api/v1/password-reset", json={"email": "ikke en adresse"})
    assert res.status_code == 422 and res.json()["errors"][0]["field"] == "email"


@pytest.fixture
def strict_app(db: Database, tmp_path: Path) -> object:
    settings = make_settings(db.url, tmp_path, rate_limit_reset_address="2/hour",
                             rate_limit_reset_source="5/hour")
    return create_app(settings, db)


def test_reset_requests_are_limited_per_address_alike_for_known_and_unknown(
    strict_app: object, personas: Personas, mails: notify.MemoryMailer,
) -> None:
    with _anonymous(strict_app) as c:
        for address in (personas.bob.email, "ingen.her@fjellheim.example.com"):
            answers = [c.post("/api/v1/password-reset", json={"email": address}).status_code
                       for _ in range(3)]
            assert answers == [202, 202, 429], address


def test_reset_requests_are_limited_per_source(strict_app: object, personas: Personas,
                                               mails: notify.MemoryMailer) -> None:
    with _anonymous(strict_app) as c:
        answers = [c.post("/api/v1/password-reset",
                          json={"email": f"person{i}@fjellheim.example.com"}).status_code
                   for i in range(6)]
    assert answers == [202] * 5 + [429]


# -- a customer's first administrator -------------------------------------------------------------


def _new_tenant(login: object, personas: Personas) -> tuple[TestClient, str]:
    dave = login(personas.dave)  # type: ignore[operator]
    res = dave.post("/api/v1/tenants", json={"name": "Fjordly skole", "slug": "fjordly",
                                             "org_number": "945678127"})
    assert res.status_code == 201, res.text
    return dave, res.json()["id"]


def test_vendor_staff_invite_a_new_customers_first_admin(
    app: object, db: Database, personas: Personas, login: object, mails: notify.MemoryMailer,
) -> None:
    dave, tenant_id = _new_tenant(login, personas)
    res = dave.post(f"/api/v1/tenants/{tenant_id}/admins",
                    json={"email": "grete.fjord@fjordly.example.com", "name": "Grete Fjord"})
    assert res.status_code == 201, res.text
    user_id = res.json()["id"]
    with db.transaction(Scope.system("test read")) as session:
        trails = set(session.execute(
            select(AuditEvent.org_id).where(AuditEvent.action == "tenant.first_admin_created",
                                            AuditEvent.actor_user_id == personas.dave.user_id,
                                            AuditEvent.resource == f"user:{user_id}")).scalars())
    assert trails == {personas.vendor, tenant_id}
    token = link_token(mail_to(db, mails, "grete.fjord@fjordly.example.com"))
    with _anonymous(app) as grete:
        res = grete.post("/api/v1/invitations/accept",
                         json={"token": token, "password": NEW_PASSWORD})
        assert res.status_code == 200 and res.json()["mfa_enrolment_required"] is True
    # Only the first: once there is an administrator, the customer adds people itself.
    second = dave.post(f"/api/v1/tenants/{tenant_id}/admins",
                       json={"email": "hans.fjord@fjordly.example.com", "name": "Hans Fjord"})
    assert second.status_code == 409


def test_a_customer_with_an_admin_gets_no_first_admin(personas: Personas, login: object,
                                                      mails: notify.MemoryMailer) -> None:
    dave = login(personas.dave)  # type: ignore[operator]
    res = dave.post(f"/api/v1/tenants/{personas.tenant_a}/admins",
                    json={"email": "x.y@fjellheim.example.com", "name": "X Y"})
    assert res.status_code == 409


def test_vendor_staff_without_customer_management_may_not(personas: Personas, login: object,
                                                          mails: notify.MemoryMailer) -> None:
    _dave, tenant_id = _new_tenant(login, personas)
    erik = login(personas.erik)  # type: ignore[operator]
    res = erik.post(f"/api/v1/tenants/{tenant_id}/admins",
                    json={"email": "grete.fjord@fjordly.example.com", "name": "Grete Fjord"})
    assert res.status_code == 403
    alice = login(personas.alice)  # type: ignore[operator]
    res = alice.post(f"/api/v1/tenants/{tenant_id}/admins",
                     json={"email": "grete.fjord@fjordly.example.com", "name": "Grete Fjord"})
    assert res.status_code == 403


def test_a_vendor_owner_invites_the_first_admin(
    db: Database, settings: Settings, personas: Personas, login: object,
    mails: notify.MemoryMailer,
) -> None:
    """The finding: the vendor's owner got 403. The owner holds ``tenants.manage`` at home."""
    from tests.conftest import PASSWORD, Persona
    from vern.accounts import service
    from vern.accounts.roles import Role

    with db.transaction(Scope.system("test owner")) as session:
        owner = service.create_user(session, settings, email="solveig.berg@solstrand.example.com",
                                    name="Solveig Berg", org_id=personas.vendor,
                                    role=Role.OWNER.value, password=PASSWORD, actor=None)
        from vern.accounts import security
        from vern.core.crypto import PII

        secret = security.new_totp_secret()
        owner.mfa_secret = PII(owner.key_id, secret)
        owner.mfa_enabled_at = utcnow()
        persona = Persona("solveig", owner.id, "solveig.berg@solstrand.example.com",
                          personas.vendor, Role.OWNER, secret)
    _dave, tenant_id = _new_tenant(login, personas)
    solveig = login(persona)  # type: ignore[operator]
    res = solveig.post(f"/api/v1/tenants/{tenant_id}/admins",
                       json={"email": "grete.fjord@fjordly.example.com", "name": "Grete Fjord"})
    assert res.status_code == 201, res.text

