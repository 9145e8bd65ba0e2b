"""The banner in a real browser (Chromium through Playwright), on a host page of another origin
with a strict CSP, exactly as a vendor embeds it: one script tag, a tracking script tagged
``type="text/plain" data-category="statistics"``.

Checked: the tracker does not run before a choice; "accept" runs it; withdrawal stops it and its
cookie disappears; "reject" leaves it inert; GPC refuses before anything runs; a new cookie policy
version asks again; focus stays in the dialog; Google Consent Mode gets its signals; and a consent
record appears on the server for each choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.conftest import Personas
from tests.consent.helpers import setup_org
from tests.services import CHROMIUM_ARGS, chromium_path
from tests.stats.server import serve
from vern.config import Settings
from vern.consent import service
from vern.consent.models import ConsentRecord
from vern.db import Database, Scope

pytestmark = pytest.mark.browser

TRACKER = """window.__tracked = (window.__tracked || 0) + 1;
document.cookie = "_track=on; path=/; max-age=86400";
document.cookie = "_ads_id=42; path=/; max-age=86400";"""


def host_site(vern: str) -> Starlette:
    """The vendor's own website: a page that embeds the banner and a tagged tracker."""
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Fjellheim</title>
<script src="{vern}/c/vern-consent.js" data-org="fjellheim" async></script>
<script type="text/plain" data-category="statistics" src="/tracker.js"></script>
</head><body><h1>Fjellheim barnehage</h1><p><a href="#" id="settings" data-vern-consent="open">Cookies</a></p>
</body></html>"""
    csp = (f"default-src 'self'; script-src 'self' {vern}; style-src 'self' {vern}; "
           f"connect-src 'self' {vern}; img-src 'self'")

    def index(_request: Any) -> Response:
        return HTMLResponse(page, headers={"Content-Security-Policy": csp})

    def tracker(_request: Any) -> Response:
        return Response(TRACKER, media_type="text/javascript")

    return Starlette(routes=[Route("/", index), Route("/tracker.js", tracker)])


@pytest.fixture
def sites(db: Database, settings: Settings, personas: Personas) -> Iterator[tuple[str, str]]:
    from vern.web import create_app

    setup_org(db, personas.tenant_a)
    vern_app = create_app(settings, db)
    with serve(vern_app) as vern:
        vern_app.state.settings = settings.model_copy(update={"base_url": vern})
        with serve(host_site(vern), lifespan="off") as host:
            yield vern, host


@pytest.fixture
def browser() -> Iterator[Any]:
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _records(db: Database, org: str) -> list[tuple[str, str, str]]:
    with db.transaction(Scope.tenant(org)) as session:
        rows = session.scalars(select(ConsentRecord).order_by(ConsentRecord.recorded_at,
                                                              ConsentRecord.purpose_key)).all()
        return [(r.purpose_key, r.choice, r.method) for r in rows]


def _cookies(page: Any) -> dict[str, str]:
    return {c["name"]: c["value"] for c in page.context.cookies()}


def _wait_records(db: Database, org: str, n: int, page: Any) -> list[tuple[str, str, str]]:
    for _ in range(400):  # up to 20 s on a busy machine
        found = _records(db, org)
        if len(found) >= n:
            return found
        page.wait_for_timeout(50)
    return _records(db, org)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_accept_runs_the_tracker_and_withdrawal_stops_it_and_removes_its_cookie(
        db: Database, personas: Personas, sites: tuple[str, str], browser: Any) -> None:
    _vern, host = sites
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(host + "/")
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert page.evaluate("window.__tracked") is None
    assert "_track" not in _cookies(page)
    # Reject is exactly as prominent as accept.
    reject = page.get_by_role("button", name="Reject all")
    accept = page.get_by_role("button", name="Accept all")
    assert reject.get_attribute("class") == accept.get_attribute("class")
    rb, ab = reject.bounding_box(), accept.bounding_box()
    assert rb is not None and ab is not None and abs(rb["height"] - ab["height"]) < 1
    # Focus stays inside the dialog when tabbing past the last control.
    for _ in range(8):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.closest('[role=dialog]') !== null")
    gcm = page.evaluate("JSON.stringify(window.dataLayer.map(a => Array.from(a)))")
    assert '"default"' in gcm and '"analytics_storage":"denied"' in gcm

    accept.click()
    page.wait_for_function("window.__tracked === 1")
    assert _cookies(page)["_track"] == "on"
    assert '"analytics_storage":"granted"' in page.evaluate(
        "JSON.stringify(window.dataLayer.map(a => Array.from(a)))")
    assert _wait_records(db, personas.tenant_a, 2, page) == [
        ("marketing", "granted", "banner-accept"), ("statistics", "granted", "banner-accept")]

    # Withdraw through the permanent link: one click on "Reject all".
    with page.expect_navigation():
        page.click("#settings")
        page.get_by_role("button", name="Reject all").click()
    page.get_by_role("button", name="Cookie settings").wait_for()
    assert page.evaluate("window.__tracked") is None
    cookies = _cookies(page)
    assert "_track" not in cookies and "_ads_id" not in cookies
    assert page.get_by_role("dialog").count() == 0
    assert _wait_records(db, personas.tenant_a, 4, page)[2:] == [
        ("marketing", "withdrawn", "banner-reject"), ("statistics", "withdrawn", "banner-reject")]
    assert not [e for e in errors if "Content Security Policy" in e]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_reject_leaves_the_tracker_inert_and_a_new_policy_version_asks_again(
        db: Database, personas: Personas, sites: tuple[str, str], browser: Any) -> None:
    _vern, host = sites
    page = browser.new_page()
    page.goto(host + "/")
    page.get_by_role("button", name="Reject all").click()
    assert _wait_records(db, personas.tenant_a, 2, page) == [
        ("marketing", "denied", "banner-reject"), ("statistics", "denied", "banner-reject")]
    page.reload()
    page.get_by_role("button", name="Cookie settings").wait_for()
    assert page.get_by_role("dialog").count() == 0
    assert page.evaluate("window.__tracked") is None
    assert "_track" not in _cookies(page)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        service.publish_notice(session, org_id=personas.tenant_a, kind="cookie", title_nb="Ny",
                               title_en="New", body_nb="Ny tekst", body_en="New text",
                               actor_user_id=None)
    page.reload()
    page.get_by_role("dialog").wait_for()


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_global_privacy_control_refuses_before_anything_runs(
        db: Database, personas: Personas, sites: tuple[str, str], browser: Any) -> None:
    _vern, host = sites
    context = browser.new_context()
    context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})")
    page = context.new_page()
    page.goto(host + "/")
    assert _wait_records(db, personas.tenant_a, 2, page) == [
        ("marketing", "denied", "gpc"), ("statistics", "denied", "gpc")]
    assert page.get_by_role("dialog").count() == 0
    assert page.evaluate("window.__tracked") is None
    context.close()
