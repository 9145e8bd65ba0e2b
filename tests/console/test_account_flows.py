"""The console's self-service pages: forgotten password, reset and invitation links, a new
invitation for a member, a customer's first administrator, organisation numbers."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.accounts.test_flows import NEW_PASSWORD, link_token, mail_to
from tests.conftest import Persona, Personas
from tests.console.helpers import csrf_of, sign_in_with_forms
from tests.matrix.samples_access import actor_of, grant
from vern.accounts import service as accounts
from vern.accounts.roles import OrgKind, Role
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.notify import service as notify


@pytest.fixture
def mails() -> Iterator[notify.MemoryMailer]:
    previous = notify.mailer()
    memory = notify.MemoryMailer()
    notify.install_mailer(memory)
    yield memory
    notify.install_mailer(previous)


@pytest.fixture
def en(client: TestClient) -> TestClient:
    client.cookies.set("vern_lang", "en")
    return client


def _new_client(app: object) -> TestClient:
    c = TestClient(app, base_url="http://testserver")  # type: ignore[arg-type]
    c.cookies.set("vern_lang", "en")
    return c


def _forgot(client: TestClient, email: str) -> tuple[int, str]:
    page = client.get("/password/forgot")
    res = client.post("/password/forgot", data={"email": email, "csrf_token": csrf_of(page.text)})
    return res.status_code, res.text


def test_the_sign_in_page_links_to_forgot_password(en: TestClient) -> None:
    page = en.get("/login")
    assert 'href="/password/forgot"' in page.text and "Forgot your password?" in page.text
    nb = en.get("/login?lang=nb")
    assert "Glemt passordet?" in nb.text


def test_forgot_password_answers_alike_and_the_link_resets_once(
    app: object, en: TestClient, db: Database, personas: Personas, mails: notify.MemoryMailer,
) -> None:
    with _new_client(app) as other:
        signed_in = sign_in_with_forms(other, personas.bob)
        assert signed_in.get("/console", follow_redirects=False).status_code == 200
        known = _forgot(en, personas.bob.email)
        unknown = _forgot(en, "ingen.her@fjellheim.example.com")
        assert known[0] == unknown[0] == 200
        assert known[1] == unknown[1]  # the same page, word for word
        assert 'id="reset-sent"' in known[1]
        assert mail_to(db, mails, "ingen.her@fjellheim.example.com") is None
        token = link_token(mail_to(db, mails, personas.bob.email))

        form = en.get(f"/password/reset?token={token}")
        assert form.status_code == 200 and f'value="{token}"' in form.text
        csrf = csrf_of(form.text)
        mismatch = en.post("/password/reset", data={
            "token": token, "new_password": NEW_PASSWORD, "new_password_repeat": "noe annet",
            "csrf_token": csrf})
        assert mismatch.status_code == 422 and 'id="new_password_repeat-error"' in mismatch.text
        done = en.post("/password/reset", data={
            "token": token, "new_password": NEW_PASSWORD, "new_password_repeat": NEW_PASSWORD,
            "csrf_token": csrf}, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == "/login?done=password-reset"
        assert "every session of the account is signed out" in en.get(done.headers["location"]).text
        # The other browser's session has ended.
        assert other.get("/console", follow_redirects=False).status_code == 303
    used = en.get(f"/password/reset?token={token}")
    assert used.status_code == 400 and "This link cannot be used" in used.text


def test_a_forgot_password_post_without_its_csrf_token_is_refused(
    en: TestClient, db: Database, personas: Personas, mails: notify.MemoryMailer,
) -> None:
    en.get("/password/forgot")
    res = en.post("/password/forgot", data={"email": personas.bob.email})
    assert res.status_code == 403
    assert mail_to(db, mails, personas.bob.email) is None


def test_an_invitation_from_the_users_page_is_accepted_in_the_console(
    app: object, en: TestClient, db: Database, personas: Personas, mails: notify.MemoryMailer,
) -> None:
    sign_in_with_forms(en, personas.alice)
    form = en.get("/console/users/new")
    res = en.post("/console/users/new", data={
        "name": "Kari Nordmann", "email": "kari.nordmann@fjellheim.example.com",
        "role": "member", "password": "", "csrf_token": csrf_of(form.text)},
        follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"].endswith("?done=invited")
    detail = en.get(res.headers["location"])
    assert "An invitation was sent by e-mail." in detail.text
    assert 'id="password-state"' in detail.text
    first = link_token(mail_to(db, mails, "kari.nordmann@fjellheim.example.com"))
    user_path = res.headers["location"].split("?")[0]
    again = en.post(f"{user_path}/invite", data={"csrf_token": csrf_of(detail.text)},
                    follow_redirects=False)
    assert again.status_code == 303
    token = link_token(mail_to(db, mails, "kari.nordmann@fjellheim.example.com"))
    assert token != first
    with _new_client(app) as kari:
        stale = kari.get(f"/invitation?token={first}")
        assert stale.status_code == 400
        page = kari.get(f"/invitation?token={token}")
        assert page.status_code == 200 and "Kari Nordmann" in page.text
        res = kari.post("/invitation", data={
            "token": token, "new_password": NEW_PASSWORD, "new_password_repeat": NEW_PASSWORD,
            "csrf_token": csrf_of(page.text)}, follow_redirects=False)
        assert res.status_code == 303 and res.headers["location"] == "/console"
        assert kari.get("/console").status_code == 200


def test_a_weak_password_on_the_invitation_page_names_the_field(
    app: object, en: TestClient, db: Database, personas: Personas, mails: notify.MemoryMailer,
) -> None:
    alice = sign_in_with_forms(en, personas.alice)
    form = alice.get("/console/users/new")
    alice.post("/console/users/new", data={
        "name": "Liv Berg", "email": "liv.berg@fjellheim.example.com", "role": "member",
        "password": "", "csrf_token": csrf_of(form.text)})
    token = link_token(mail_to(db, mails, "liv.berg@fjellheim.example.com"))
    with _new_client(app) as liv:
        page = liv.get(f"/invitation?token={token}")
        weak = liv.post("/invitation", data={"token": token, "new_password": "kort",
                                             "new_password_repeat": "kort",
                                             "csrf_token": csrf_of(page.text)})
        assert weak.status_code == 422 and 'id="new_password-error"' in weak.text
        ok = liv.post("/invitation", data={
            "token": token, "new_password": NEW_PASSWORD, "new_password_repeat": NEW_PASSWORD,
            "csrf_token": csrf_of(page.text)}, follow_redirects=False)
        # A member needs no two-step sign-in: straight into the console.
        assert ok.status_code == 303 and ok.headers["location"] == "/console"


def test_vendor_staff_invite_a_customers_first_admin_from_the_console(
    en: TestClient, db: Database, personas: Personas, mails: notify.MemoryMailer,
) -> None:
    sign_in_with_forms(en, personas.dave)
    page = en.get("/console/tenants")
    res = en.post("/console/tenants", data={"name": "Fjordly skole", "slug": "fjordly",
                                            "org_number": "945678127",
                                            "csrf_token": csrf_of(page.text)},
                  follow_redirects=False)
    assert res.status_code == 303
    listing = en.get("/console/tenants")
    found = re.search(r'<td>Fjordly skole</td>.*?href="(/console/tenants/[^"]+/admin)"',
                      listing.text, re.DOTALL)
    assert found, listing.text
    form = en.get(found.group(1))
    assert form.status_code == 200 and "First administrator of Fjordly skole" in form.text
    bad = en.post(found.group(1), data={"name": "Grete Fjord", "email": "ikke-en-adresse",
                                        "csrf_token": csrf_of(form.text)})
    assert bad.status_code == 422 and 'id="email-error"' in bad.text
    res = en.post(found.group(1), data={"name": "Grete Fjord",
                                        "email": "grete.fjord@fjordly.example.com",
                                        "csrf_token": csrf_of(form.text)},
                  follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/console/tenants?done=admin-invited"
    assert link_token(mail_to(db, mails, "grete.fjord@fjordly.example.com"))
    again = en.get(found.group(1))
    assert "already has an administrator" in again.text


def test_an_organisation_number_with_a_wrong_check_digit_is_refused(
    en: TestClient, personas: Personas,
) -> None:
    sign_in_with_forms(en, personas.dave)
    page = en.get("/console/tenants")
    res = en.post("/console/tenants", data={"name": "Fjordly skole", "slug": "fjordly",
                                            "org_number": "945678123",
                                            "csrf_token": csrf_of(page.text)})
    assert res.status_code == 422 and 'id="org_number-error"' in res.text
    assert "check digit" in res.text


def test_vendor_staff_in_a_customer_without_an_admin_are_told_where_to_invite_one(
    en: TestClient, db: Database, personas: Personas, settings: Settings,
    mails: notify.MemoryMailer,
) -> None:
    sign_in_with_forms(en, personas.dave)
    page = en.get("/console/tenants")
    en.post("/console/tenants", data={"name": "Fjordly skole", "slug": "fjordly",
                                      "csrf_token": csrf_of(page.text)})
    listing = en.get("/console/tenants")
    found = re.search(r'<td>Fjordly skole</td>.*?href="/console/tenants/([^"/]+)/admin"',
                      listing.text, re.DOTALL)
    assert found
    tenant_id = found.group(1)
    # Vendor staff enter a customer only under a grant its administrator approved. Here the
    # customer's only administrator approves one and then leaves (the operator disables the
    # account), so the customer is left without an administrator while the grant is in force.
    with db.transaction(Scope.tenant(tenant_id)) as session:
        admin = accounts.create_user(session, settings, email="grete.fjord@fjordly.example.com",
                                     name="Grete Fjord", org_id=tenant_id,
                                     role=Role.TENANT_ADMIN.value, password=None, actor=None)
        grete = Persona(name="Grete Fjord", user_id=admin.id, email="grete.fjord@fjordly.example.com",
                        org_id=tenant_id, role=Role.TENANT_ADMIN, totp_secret=None)
    grant(db, personas, actor_of(personas.dave, OrgKind.VENDOR), tenant_id, approve_by=grete)
    with db.transaction(Scope.tenant(tenant_id)) as session:
        accounts.disable_user(session, user_id=grete.user_id, actor=None)
    en.post("/console/org", data={"org_id": tenant_id, "csrf_token": csrf_of(page.text)})
    users = en.get("/console/users")
    assert users.status_code == 200 and 'id="first-admin-hint"' in users.text
    assert en.get("/console/users/new", follow_redirects=False).status_code == 403
    # A customer that has an administrator shows no such hint.
    grant(db, personas, actor_of(personas.dave, OrgKind.VENDOR), personas.tenant_a,
          approve_by=personas.alice)
    en.post("/console/org", data={"org_id": personas.tenant_a, "csrf_token": csrf_of(page.text)})
    users = en.get("/console/users")
    assert users.status_code == 200 and 'id="first-admin-hint"' not in users.text
