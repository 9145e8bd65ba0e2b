"""The console through its HTML forms: sign-in with the second step, errors tied to fields,
CSRF, language, the account pages, users, customers and API tokens."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import Personas, user_row
from tests.console.helpers import csrf_of, sign_in_with_forms, totp
from vern.accounts import security, service
from vern.console.forms import safe_next
from vern.core.config import Settings
from vern.core.db import Database


@pytest.fixture
def en(client: TestClient) -> TestClient:
    client.cookies.set("vern_lang", "en")
    return client


def test_it_signs_in_with_password_and_code_through_the_forms(en: TestClient,
                                                              personas: Personas) -> None:
    res = en.get("/console/users", follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/login?next=/console/users"
    page = en.get(res.headers["location"])
    assert 'name="next" value="/console/users"' in page.text
    res = en.post("/login", data={"email": personas.alice.email, "password": personas.alice.password,
                                  "next": "/console/users", "csrf_token": csrf_of(page.text)},
                  follow_redirects=False)
    assert res.status_code == 303
    assert res.headers["location"] == "/login/mfa?next=/console/users"
    # Before the second step the console stays closed.
    assert en.get("/console", follow_redirects=False).headers["location"] == "/login/mfa"
    form = en.get(res.headers["location"])
    assert 'autocomplete="one-time-code"' in form.text
    assert personas.alice.totp_secret is not None
    res = en.post("/login/mfa", data={"code": totp(personas.alice.totp_secret)[0],
                                      "next": "/console/users", "csrf_token": csrf_of(form.text)},
                  follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/console/users"
    users = en.get("/console/users")
    assert users.status_code == 200
    assert "Alice Aasen" in users.text and "Bjørn Bakken" in users.text
    assert "Cecilie Carlsen" not in users.text  # tenant B
    assert 'aria-current="page"' in users.text and ">Users</a>" in users.text


def test_a_wrong_code_is_an_error_on_the_code_field(en: TestClient, personas: Personas) -> None:
    page = en.get("/login")
    en.post("/login", data={"email": personas.alice.email, "password": personas.alice.password,
                            "csrf_token": csrf_of(page.text)})
    form = en.get("/login/mfa")
    res = en.post("/login/mfa", data={"code": "000000", "csrf_token": csrf_of(form.text)})
    assert res.status_code == 422
    assert 'id="code-error"' in res.text and 'aria-invalid="true"' in res.text
    assert 'aria-describedby="code-hint code-error"' in res.text
    assert "is not valid or was already used" in res.text


def test_a_wrong_password_shows_a_generic_error_on_the_field(en: TestClient,
                                                             personas: Personas) -> None:
    page = en.get("/login")
    res = en.post("/login", data={"email": personas.alice.email, "password": "not the password",
                                  "csrf_token": csrf_of(page.text)})
    assert res.status_code == 401
    assert 'id="password-error"' in res.text
    assert re.search(r'id="password"[^>]*aria-describedby="password-error" aria-invalid="true"',
                     res.text)
    assert "Wrong e-mail address or password" in res.text
    assert 'class="error-summary"' in res.text and "autofocus" in res.text
    # The e-mail is kept, the password never written back.
    assert f'value="{personas.alice.email}"' in res.text
    assert "not the password" not in res.text
    assert "vern_session" not in res.cookies


def test_an_unknown_address_gets_the_same_answer(en: TestClient, personas: Personas) -> None:
    page = en.get("/login")
    res = en.post("/login", data={"email": "ingen@fjellheim.example.com", "password": "x" * 14,
                                  "csrf_token": csrf_of(page.text)})
    assert res.status_code == 401 and "Wrong e-mail address or password" in res.text


def test_repeated_failures_show_the_lock_and_when_to_retry(en: TestClient,
                                                           personas: Personas) -> None:
    page = en.get("/login")
    token = csrf_of(page.text)
    for _ in range(5):
        en.post("/login", data={"email": personas.bob.email, "password": "feil passord 123",
                                "csrf_token": token})
    res = en.post("/login", data={"email": personas.bob.email, "password": personas.bob.password,
                                  "csrf_token": token})
    assert res.status_code == 429
    assert int(res.headers["retry-after"]) > 0
    assert "sign-in is locked for a while" in res.text
    assert f"Try again in {res.headers['retry-after']} seconds" in res.text


def test_the_sign_in_form_refuses_a_post_without_its_csrf_token(en: TestClient,
                                                                personas: Personas) -> None:
    en.get("/login")
    res = en.post("/login", data={"email": personas.bob.email, "password": personas.bob.password})
    assert res.status_code == 403
    assert res.headers["x-vern-error"] == "csrf-failed"
    assert "vern_session" not in res.cookies


def test_a_signed_in_form_post_without_the_session_token_is_refused(
    en: TestClient, personas: Personas, db: Database
) -> None:
    sign_in_with_forms(en, personas.alice)
    res = en.post("/console/users/new", data={"name": "Ola Nordmann", "role": "member",
                                              "email": "ola.nordmann@fjellheim.example.com"})
    assert res.status_code == 403
    assert "The form has expired" in res.text
    users = en.get("/console/users")
    assert "Ola Nordmann" not in users.text


@pytest.mark.parametrize("target", [
    "https://evil.example.com/", "//evil.example.com/x", "/\\evil.example.com", "javascript:alert(1)",
    "/console\r\nSet-Cookie: x=y", "",
])
def test_next_never_leaves_the_site(target: str) -> None:
    assert safe_next(target) == "/console"


def test_next_keeps_local_paths() -> None:
    assert safe_next("/console/users?x=1") == "/console/users?x=1"


def test_sign_in_ignores_a_foreign_next(en: TestClient, personas: Personas) -> None:
    page = en.get("/login?next=//evil.example.com/")
    assert 'name="next" value="/console"' in page.text
    res = en.post("/login", data={"email": personas.bob.email, "password": personas.bob.password,
                                  "next": "https://evil.example.com/",
                                  "csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/console"


def test_the_language_switch_sets_the_cookie_and_the_page_follows(client: TestClient,
                                                                  personas: Personas) -> None:
    english = {"accept-language": "en-GB,en;q=0.8"}
    page = client.get("/login", headers=english)
    assert '<html lang="en">' in page.text and ">Sign in</h1>" in page.text
    assert 'name="lang" value="nb"' in page.text
    res = client.get("/login", params={"lang": "nb"}, headers=english)
    assert res.cookies.get("vern_lang") == "nb"
    assert '<html lang="nb">' in res.text and ">Logg inn</h1>" in res.text
    page = client.get("/login", headers=english)  # remembered
    assert '<html lang="nb">' in page.text and "E-postadresse" in page.text
    page = client.get("/login", params={"lang": "xx"}, headers=english)
    assert '<html lang="nb">' in page.text and "vern_lang" not in page.cookies


def test_errors_are_translated(client: TestClient, personas: Personas) -> None:
    client.cookies.set("vern_lang", "nb")
    page = client.get("/login")
    res = client.post("/login", data={"email": personas.bob.email, "password": "feil passord 123",
                                      "csrf_token": csrf_of(page.text)})
    assert "Feil e-postadresse eller passord" in res.text and "Det er et problem" in res.text
    assert "Ikke funnet" in client.get("/console/finnes-ikke").text


def test_a_bokmaal_page_shows_an_error_with_values_in_bokmaal(client: TestClient,
                                                            personas: Personas) -> None:
    """A service message with a number ("must be 1-365") and a form's own validation message are
    shown in the page's language; the API keeps English for machines."""
    client.cookies.set("vern_lang", "nb")
    sign_in_with_forms(client, personas.alice)
    form = client.get("/console/tokens")
    res = client.post("/console/tokens", data={"name": "Lønnssystem", "role": "member", "days": "99999",
                                               "csrf_token": csrf_of(form.text)})
    assert res.status_code == 422
    assert re.search(r"må være 1–\d+", res.text) and "must be" not in res.text
    res = client.post("/console/users/new", data={"email": "ikke-en-adresse", "name": "Per",
                                                  "role": "member", "csrf_token": csrf_of(form.text)})
    assert res.status_code == 422 and "e-post" in res.text and "is not" not in res.text


def test_the_portal_404_page_leads_back_to_the_portal_not_the_console(client: TestClient) -> None:
    for lang, back in (("nb", "Tilbake til personvernsiden"), ("en", "Back to the privacy page")):
        res = client.get(f"/p/fjellheim/finnes-ikke?lang={lang}", headers={"Accept": "text/html"})
        assert res.status_code == 404 and back in res.text
        assert 'href="/p/fjellheim/rights"' in res.text
        assert 'href="/console' not in res.text and 'href="/login' not in res.text
    res = client.get("/c/fjellheim/finnes-ikke", headers={"Accept": "text/html"})
    assert res.status_code == 404 and 'href="/c/fjellheim/cookies"' in res.text
    assert 'href="/console' not in res.text


def test_the_layout_shows_navigation_by_permission(en: TestClient, personas: Personas,
                                                   login: object) -> None:
    sign_in_with_forms(en, personas.bob)
    page = en.get("/console")
    assert page.status_code == 200
    nav = page.text.split('class="main-nav"')[1].split("</nav>")[0]
    assert "/console/account" in nav and "/console/users" not in nav
    assert "/console/tenants" not in nav
    assert 'action="/logout"' in page.text and 'href="#main"' in page.text


def test_an_admin_manages_a_user_from_creation_to_removal(en: TestClient, personas: Personas,
                                                          db: Database) -> None:
    sign_in_with_forms(en, personas.alice)
    form = en.get("/console/users/new")
    token = csrf_of(form.text)
    # A bad address is an error on its field; the other values are kept.
    res = en.post("/console/users/new", data={"name": "Kari Nordmann", "email": "kari@",
                                              "role": "member", "csrf_token": token})
    assert res.status_code == 422
    assert 'id="email-error"' in res.text and 'value="Kari Nordmann"' in res.text
    res = en.post("/console/users/new", data={"name": "Kari Nordmann", "role": "member",
                                              "email": "kari.nordmann@fjellheim.example.com",
                                              "csrf_token": token}, follow_redirects=False)
    assert res.status_code == 303
    user_id = res.headers["location"].split("/")[3].split("?")[0]
    page = en.get(res.headers["location"])
    # Added without a password: they are invited by e-mail to choose one.
    assert "An invitation was sent by e-mail." in page.text and "Kari Nordmann" in page.text

    # A privileged role needs a stated need, and then waits for a second administrator.
    res = en.post(f"/console/users/{user_id}/role", data={"role": "tenant_admin",
                                                          "csrf_token": token})
    assert res.status_code == 422 and 'id="need-error"' in res.text
    res = en.post(f"/console/users/{user_id}/role", data={
        "role": "tenant_admin", "need": "Skal ta over brukerstøtten", "csrf_token": token})
    assert res.status_code == 200 and "needs a second administrator's approval" in res.text
    assert re.search(r'id="current-role">Member<', res.text)

    confirm = en.get(f"/console/users/{user_id}/disable")
    assert "Disable this user?" in confirm.text
    assert user_row(db, user_id).disabled_at is None  # nothing happens before the confirmation
    res = en.post(f"/console/users/{user_id}/disable", data={"csrf_token": token})
    assert 'id="current-status">Disabled<' in res.text
    assert user_row(db, user_id).disabled_at is not None
    res = en.post(f"/console/users/{user_id}/enable", data={"csrf_token": token})
    assert 'id="current-status">Active<' in res.text

    en.get(f"/console/users/{user_id}/remove")
    res = en.post(f"/console/users/{user_id}/remove", data={"csrf_token": token})
    assert "The user was removed" in res.text and "Kari Nordmann" not in res.text
    assert en.get(f"/console/users/{user_id}").status_code == 404


def test_an_admin_cannot_disable_themself(en: TestClient, personas: Personas) -> None:
    sign_in_with_forms(en, personas.alice)
    token = csrf_of(en.get("/console").text)
    res = en.post(f"/console/users/{personas.alice.user_id}/disable", data={"csrf_token": token})
    assert res.status_code == 403 and "cannot disable or remove your own account" in res.text


def test_another_tenants_user_is_not_found(en: TestClient, personas: Personas) -> None:
    sign_in_with_forms(en, personas.carol)
    assert en.get(f"/console/users/{personas.bob.user_id}").status_code == 404
    token = csrf_of(en.get("/console").text)
    res = en.post(f"/console/users/{personas.bob.user_id}/disable", data={"csrf_token": token})
    assert res.status_code == 404


def test_a_member_enrols_in_mfa_and_signs_in_with_a_recovery_code(en: TestClient,
                                                                  personas: Personas) -> None:
    sign_in_with_forms(en, personas.bob)
    page = en.get("/console/account/mfa")
    assert page.status_code == 200
    assert "<svg" in page.text and 'role="img"' in page.text and "<script" not in page.text.split(
        "<body")[1].replace('<script src="/static/console/htmx.min.js" defer></script>', "")
    secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page.text)
    assert secret
    key = secret.group(1).replace(" ", "")
    assert en.get("/console/account/mfa").text.count(secret.group(1)) == 1  # same secret on reload
    bad = en.post("/console/account/mfa", data={"code": "123", "csrf_token": csrf_of(page.text)})
    assert bad.status_code == 422 and 'id="code-error"' in bad.text
    done = en.post("/console/account/mfa", data={"code": security.totp_now(key),
                                                 "csrf_token": csrf_of(page.text)})
    assert done.status_code == 200
    codes = re.findall(r"<li><code>([0-9a-f]{6}-[0-9a-f]{6})</code></li>", done.text)
    assert len(codes) == 10
    en.post("/logout", data={"csrf_token": csrf_of(done.text)})
    page = en.get("/login")
    res = en.post("/login", data={"email": personas.bob.email, "password": personas.bob.password,
                                  "csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert res.headers["location"] == "/login/mfa"
    form = en.get("/login/mfa")
    res = en.post("/login/mfa", data={"code": codes[0], "csrf_token": csrf_of(form.text)},
                  follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/console"
    assert "Unused recovery codes: 9" in en.get("/console/account/mfa").text


def test_changing_the_password_checks_the_current_one(en: TestClient, personas: Personas) -> None:
    sign_in_with_forms(en, personas.bob)
    page = en.get("/console/account")
    token = csrf_of(page.text)
    res = en.post("/console/account/password", data={
        "current_password": "wrong one entirely", "new_password": "Tindetur i tåke 2026",
        "new_password_repeat": "Tindetur i tåke 2026", "csrf_token": token})
    assert res.status_code == 422 and 'id="current_password-error"' in res.text
    res = en.post("/console/account/password", data={
        "current_password": personas.bob.password, "new_password": "short",
        "new_password_repeat": "short", "csrf_token": token})
    assert res.status_code == 422 and 'id="new_password-error"' in res.text
    assert "must be at least 12 characters" in res.text
    res = en.post("/console/account/password", data={
        "current_password": personas.bob.password, "new_password": "Tindetur i tåke 2026",
        "new_password_repeat": "Tindetur i tåke 2026", "csrf_token": token})
    assert res.status_code == 200 and "Your password is changed" in res.text


def test_vendor_staff_create_a_customer_and_switch_into_it(en: TestClient, db: Database,
                                                           personas: Personas) -> None:
    from tests.matrix.samples_access import actor_of, grant
    from vern.accounts.roles import OrgKind

    sign_in_with_forms(en, personas.dave)
    page = en.get("/console/tenants")
    assert "Fjellheim barnehage" in page.text and "Havbris skole" in page.text
    token = csrf_of(page.text)
    res = en.post("/console/tenants", data={"name": "Fjordly skole", "slug": "fjellheim",
                                            "org_number": "", "csrf_token": token})
    assert res.status_code == 422 and 'id="slug-error"' in res.text
    assert 'value="Fjordly skole"' in res.text
    res = en.post("/console/tenants", data={"name": "Fjordly skole", "slug": "fjordly",
                                            "org_number": "945678127", "csrf_token": token})
    assert res.status_code == 200 and "Fjordly skole" in res.text
    # Entering a customer's organisation takes a grant its administrator approved.
    res = en.post("/console/org", data={"org_id": personas.tenant_a, "csrf_token": token})
    assert res.status_code == 403 and "no access grant" in res.text
    grant(db, personas, actor_of(personas.dave, OrgKind.VENDOR), personas.tenant_a,
          approve_by=personas.alice)
    res = en.post("/console/org", data={"org_id": personas.tenant_a, "csrf_token": token})
    assert res.status_code == 200
    assert "working inside a customer" in res.text and "<h1>Fjellheim barnehage</h1>" in res.text


def test_a_token_is_shown_once_and_can_be_revoked(en: TestClient, personas: Personas) -> None:
    sign_in_with_forms(en, personas.alice)
    page = en.get("/console/tokens")
    token = csrf_of(page.text)
    res = en.post("/console/tokens", data={"name": "Timeplan", "role": "member", "days": "30",
                                           "csrf_token": token})
    assert res.status_code == 201
    secret = re.search(r'id="new-token">(vt_[^<]+)<', res.text)
    assert secret
    assert secret.group(1) not in en.get("/console/tokens").text
    api = en.get("/api/v1/me", headers={"authorization": f"Bearer {secret.group(1)}"})
    assert api.status_code == 200
    token_id = re.search(r'/console/tokens/([^/]+)/revoke', res.text)
    assert token_id
    en.get(f"/console/tokens/{token_id.group(1)}/revoke")
    res = en.post(f"/console/tokens/{token_id.group(1)}/revoke", data={"csrf_token": token})
    assert "The token was revoked." in res.text
    api = en.get("/api/v1/me", headers={"authorization": f"Bearer {secret.group(1)}"})
    assert api.status_code == 401


def test_someone_signed_in_is_sent_on_from_the_sign_in_page(en: TestClient,
                                                            personas: Personas) -> None:
    sign_in_with_forms(en, personas.bob)
    res = en.get("/login?next=/console/account", follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/console/account"


def test_an_admin_without_mfa_must_set_it_up_before_the_console_opens(
    en: TestClient, personas: Personas, db: Database, settings: Settings
) -> None:
    from vern.core.db import Scope

    with db.transaction(Scope.system("test")) as session:
        service.create_user(session, settings, email="siri.solberg@fjellheim.example.com",
                            name="Siri Solberg", org_id=personas.tenant_a, role="tenant_admin",
                            password="Multe på myra 2026", actor=None)
    page = en.get("/login")
    res = en.post("/login", data={"email": "siri.solberg@fjellheim.example.com",
                                  "password": "Multe på myra 2026",
                                  "csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert res.headers["location"] == "/console/account/mfa"
    assert en.get("/console/users", follow_redirects=False).headers["location"] == (
        "/console/account/mfa")
    page = en.get("/console/account/mfa")
    assert "Your role requires two-step sign-in" in page.text
    assert 'class="main-nav"' not in page.text
    secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page.text)
    assert secret
    en.post("/console/account/mfa", data={"code": security.totp_now(secret.group(1).replace(" ", "")),
                                          "csrf_token": csrf_of(page.text)})
    users = en.get("/console/users")
    assert users.status_code == 200 and "Siri Solberg" in users.text


def test_an_expired_password_must_be_changed_first(db: Database, tmp_path: Path,
                                                   personas: Personas) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from tests.conftest import make_settings
    from vern.accounts.models import User
    from vern.app.web import create_app
    from vern.core.db import Scope, utcnow

    settings = make_settings(db.url, tmp_path, password_max_age_days=90)
    with db.transaction(Scope.system("test")) as session:
        session.execute(update(User).where(User.id == personas.bob.user_id)
                        .values(password_changed_at=utcnow() - timedelta(days=91)))
    with TestClient(create_app(settings, db), base_url="http://testserver") as client:
        client.cookies.set("vern_lang", "en")
        page = client.get("/login")
        res = client.post("/login", data={"email": personas.bob.email,
                                          "password": personas.bob.password,
                                          "csrf_token": csrf_of(page.text)},
                          follow_redirects=False)
        assert res.headers["location"] == "/console/account/password"
        assert client.get("/console", follow_redirects=False).headers["location"] == (
            "/console/account/password")
        page = client.get("/console/account/password")
        assert "Your password has expired" in page.text
        res = client.post("/console/account/password", data={
            "current_password": personas.bob.password, "new_password": "Sommerfugl i vinterdvale",
            "new_password_repeat": "Sommerfugl i vinterdvale", "csrf_token": csrf_of(page.text)})
        assert res.status_code == 200 and "Your password is changed" in res.text
        assert client.get("/console").status_code == 200


def test_console_pages_carry_no_inline_script_or_style(en: TestClient, personas: Personas) -> None:
    sign_in_with_forms(en, personas.alice)
    paths = ["/console", "/console/users", "/console/users/new", f"/console/users/{personas.bob.user_id}",
             f"/console/users/{personas.bob.user_id}/disable", "/console/tokens", "/console/account",
             "/console/account/mfa", "/console/account/password", "/logout"]
    for path in paths:
        page = en.get(path)
        assert page.status_code == 200, path
        assert " style=" not in page.text and "<style" not in page.text, path
        scripts = re.findall(r"<script[^>]*>(.*?)</script>", page.text, re.S)
        assert scripts == ["", ""], path  # only the vendored htmx and focus.js, loaded by src
        assert re.findall(r'<script src="([^"]+)"', page.text) == [
            "/static/console/htmx.min.js", "/static/console/focus.js"], path
        assert page.headers["cache-control"] == "no-store"
    assert en.get("/login").status_code == 200
    htmx = en.get("/static/console/htmx.min.js")
    assert htmx.status_code == 200 and "Zero-Clause BSD" in htmx.text[:600]
    focus = en.get("/static/console/focus.js")
    assert focus.status_code == 200 and "htmx:afterSettle" in focus.text


def test_the_language_switch_after_a_post_goes_to_a_page_that_exists(en: TestClient,
                                                                     personas: Personas) -> None:
    sign_in_with_forms(en, personas.alice)
    token = csrf_of(en.get("/console").text)
    # A refused role change is answered at the POST-only address: the switcher leaves it.
    res = en.post(f"/console/users/{personas.alice.user_id}/role",
                  data={"role": "member", "csrf_token": token})
    assert res.status_code == 403
    assert '<form class="lang" method="get" action="/console"' in res.text
    # A refused form at an address that also has a GET page stays there.
    res = en.post("/console/users/new", data={"name": "", "csrf_token": token})
    assert res.status_code == 422 and '<form class="lang" method="get" aria-label' in res.text


@pytest.mark.parametrize("name", ["alice", "dave"])
def test_every_navigation_entry_opens_in_the_layout(en: TestClient, personas: Personas,
                                                    name: str) -> None:
    sign_in_with_forms(en, personas.people[name])
    page = en.get("/console")
    nav = page.text.split('class="main-nav"')[1].split("</nav>")[0]
    links = re.findall(r'href="([^"]+)"', nav)
    assert "/console" in links and "/console/users" in links
    assert ("/console/tenants" in links) == (name == "dave")
    for link in links:
        res = en.get(link)
        assert res.status_code == 200, link
        assert 'aria-current="page"' in res.text, link


def test_signing_out_everywhere_ends_the_other_sessions_too(app: object, en: TestClient,
                                                            personas: Personas) -> None:
    sign_in_with_forms(en, personas.bob)
    with TestClient(app, base_url="http://testserver") as other:  # type: ignore[arg-type]
        sign_in_with_forms(other, personas.bob)
        assert other.get("/console", follow_redirects=False).status_code == 200
        page = en.get("/console/account")
        res = en.post("/console/account/signout-everywhere", data={"csrf_token": csrf_of(page.text)},
                      follow_redirects=False)
        assert res.status_code == 303 and res.headers["location"] == "/login?done=signed-out"
        assert other.get("/console", follow_redirects=False).headers["location"].startswith("/login")
    assert en.get("/console", follow_redirects=False).headers["location"].startswith("/login")


def test_signing_out_needs_the_button(en: TestClient, personas: Personas) -> None:
    sign_in_with_forms(en, personas.bob)
    page = en.get("/logout")
    assert page.status_code == 200
    assert en.get("/console", follow_redirects=False).status_code == 200  # GET changed nothing
    res = en.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert "You are signed out." in res.text
    assert en.get("/console", follow_redirects=False).headers["location"].startswith("/login")


def test_new_recovery_codes_are_shown_once_and_replace_the_old_ones(en: TestClient,
                                                                    personas: Personas) -> None:
    sign_in_with_forms(en, personas.alice)
    page = en.get("/console/account/mfa")
    assert "Two-step sign-in is on." in page.text and "<svg" not in page.text
    res = en.post("/console/account/mfa/recovery-codes", data={"csrf_token": csrf_of(page.text)})
    codes = re.findall(r"<li><code>([0-9a-f]{6}-[0-9a-f]{6})</code></li>", res.text)
    assert len(codes) == 10
    page = en.get("/console/account/mfa")
    assert "Unused recovery codes: 10" in page.text
    assert not any(code in page.text for code in codes)
