"""The console in a real browser: Debian's Chromium driven by Playwright against a real server.

Signs in with password and TOTP code, adds a user, asks for a privileged role for them (which waits
for a second administrator) and disables them, and checks
that the browser reported no Content Security Policy violation on the way. With
``VERN_SCREENSHOT=1`` it also saves the users page as docs/console.png.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests.browser import sign_in
from tests.conftest import Personas, create_personas, make_settings, sqlite_database
from vern.core.config import Settings
from vern.core.crypto import KeyRing, install_keyring
from vern.core.db import Database, import_models

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    url: str
    personas: Personas
    app: Any = None
    db: Database | None = None
    settings: Settings | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """Vern under uvicorn on a free loopback port, with its own SQLite database."""
    import uvicorn

    from vern.app.web import create_app

    import_models()
    database = sqlite_database(tmp_path / "browser.db")
    settings = make_settings(database.url, tmp_path)
    install_keyring(KeyRing(database.engine, settings.master_key_bytes))
    personas = create_personas(database, settings)
    app = create_app(settings, database)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none",
                            lifespan="on", access_log=False)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="vern-browser-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield Server(f"http://127.0.0.1:{port}", personas, app, database, settings)
    finally:
        uv.should_exit = True
        thread.join(timeout=15)
        database.dispose()


def test_an_admin_signs_in_with_mfa_and_manages_a_user_in_chromium(server: Server) -> None:
    chromium = services.chromium_path()
    from playwright.sync_api import expect, sync_playwright

    alice = server.personas.alice
    assert alice.totp_secret is not None
    violations: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.on("console", lambda msg: violations.append(msg.text)
                    if "Content Security Policy" in msg.text or "Refused to" in msg.text else None)
            page.on("pageerror", lambda err: violations.append(f"page error: {err}"))

            page.goto(server.url + "/console/users")
            expect(page).to_have_url(server.url + "/login?next=/console/users")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            sign_in(page, server.url, alice, "/console/users")

            expect(page.get_by_role("heading", name="Users")).to_be_visible()
            # The vendored htmx loaded under the CSP and took its settings from the meta tag.
            assert page.evaluate("typeof htmx === 'object' && htmx.config.historyCacheSize === 0")
            expect(page.get_by_role("navigation", name="Main")
                   .get_by_role("link", name="Users")).to_have_attribute("aria-current", "page")
            expect(page.get_by_label("Organisation")).to_have_value(alice.org_id)
            expect(page.get_by_role("cell", name="Bjørn Bakken")).to_be_visible()

            page.get_by_role("link", name="Add a user").click()
            expect(page.get_by_role("heading", name="Add a user")).to_be_visible()
            page.get_by_label("Name").fill("Kari Nordmann")
            page.get_by_label("E-mail address").fill("kari@")
            page.get_by_role("button", name="Add the user").click()
            summary = page.locator("#error-summary")
            expect(summary).to_be_focused()
            expect(page.get_by_label("E-mail address")).to_have_attribute("aria-invalid", "true")
            expect(page.get_by_label("Name")).to_have_value("Kari Nordmann")
            page.get_by_label("E-mail address").fill("kari.nordmann@fjellheim.example.com")
            page.get_by_role("button", name="Add the user").click()

            expect(page.get_by_role("heading", name="Kari Nordmann")).to_be_visible()
            expect(page.get_by_role("status")).to_contain_text("An invitation was sent by e-mail.")
            expect(page.locator("#current-role")).to_have_text("Member")

            # A privileged role waits, with the stated need, for a second administrator.
            page.get_by_label("New role").select_option("tenant_admin")
            page.get_by_label("Why the role is needed").fill("Tar over brukerstøtten i høst")
            page.get_by_role("button", name="Change role").click()
            expect(page.get_by_role("status")).to_contain_text("second administrator")
            expect(page.locator("#current-role")).to_have_text("Member")

            page.get_by_role("link", name="Disable…").click()
            expect(page.get_by_role("heading", name="Disable this user?")).to_be_visible()
            page.get_by_role("button", name="Disable").click()
            expect(page.get_by_role("status")).to_contain_text("The user was disabled")
            expect(page.locator("#current-status")).to_have_text("Disabled")
            expect(page.get_by_role("link", name="Enable…")).to_be_visible()

            page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
            row = page.get_by_role("row").filter(has_text="Kari Nordmann")
            expect(row).to_contain_text("Member")
            expect(row).to_contain_text("Disabled")

            # The language switch works in place.
            page.get_by_role("button", name="Norsk bokmål").click()
            expect(page.get_by_role("heading", name="Brukere")).to_be_visible()
            page.get_by_role("button", name="English").click()
            expect(page.get_by_role("heading", name="Users")).to_be_visible()

            if os.environ.get("VERN_SCREENSHOT") == "1":
                page.screenshot(path=str(ROOT / "docs" / "console.png"), full_page=True)

            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            expect(page.get_by_role("status")).to_contain_text("You are signed out.")
        finally:
            browser.close()
    assert violations == [], violations


def test_an_invited_admin_accepts_the_invitation_and_sets_up_mfa_in_chromium(
    server: Server,
) -> None:
    chromium = services.chromium_path()
    from playwright.sync_api import expect, sync_playwright

    from tests.accounts.test_flows import NEW_PASSWORD, link_token
    from vern.accounts import flows
    from vern.core.db import Scope
    from vern.notify import service as notify

    assert server.db is not None and server.settings is not None
    previous = notify.mailer()
    memory = notify.MemoryMailer()
    notify.install_mailer(memory)
    try:
        with server.db.transaction(Scope.system("test invitation")) as session:
            flows.invite_user(session, server.settings, email="per.hansen@fjellheim.example.com",
                              name="Per Hansen", role="tenant_admin",
                              org_id=server.personas.tenant_a, actor=None, locale="en")
        notify.deliver_pending(server.db)
        token = link_token(memory.last_to("per.hansen@fjellheim.example.com"))
    finally:
        notify.install_mailer(previous)
    violations: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.on("console", lambda msg: violations.append(msg.text)
                    if "Content Security Policy" in msg.text or "Refused to" in msg.text else None)
            page.on("pageerror", lambda err: violations.append(f"page error: {err}"))

            page.goto(server.url + f"/invitation?token={token}")
            expect(page.get_by_role("heading", name="Welcome to Vern")).to_be_visible()
            expect(page.locator("#invitee")).to_contain_text("Per Hansen")
            page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
            page.get_by_label("New password again").fill(NEW_PASSWORD + " nei")
            page.get_by_role("button", name="Save the password").click()
            expect(page.locator("#error-summary")).to_be_focused()
            expect(page.get_by_label("New password again")).to_have_attribute(
                "aria-invalid", "true")

            page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
            page.get_by_label("New password again").fill(NEW_PASSWORD)
            page.get_by_role("button", name="Save the password").click()
            # An administrator's role requires two-step sign-in: the usual enrolment follows.
            expect(page).to_have_url(server.url + "/console/account/mfa")
            expect(page.get_by_role("heading", name="Two-step sign-in")).to_be_visible()

            # The link worked once.
            other = context.new_page()
            other.goto(server.url + f"/invitation?token={token}")
            expect(other.get_by_role("heading", name="This link cannot be used")).to_be_visible()
        finally:
            browser.close()
    assert violations == [], violations
