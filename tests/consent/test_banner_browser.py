"""The banner in a real browser (Chromium through Playwright), on a host page of another origin
with a strict CSP, exactly as a vendor embeds it: one script tag, a tracking script tagged
``type="text/plain" data-category="statistics"``.

Checked: the tracker does not run before a choice; "accept" runs it; withdrawal stops it and its
cookie disappears; "reject" leaves it inert; GPC refuses before anything runs; a new cookie policy
version asks again; focus stays in the dialog; Escape and the close button close it without a
choice while the page behind is inert; it reflows at 320 px; Google Consent Mode gets its
signals; a consent record appears on the server for each choice; and an HttpOnly cookie, which
the banner cannot remove, goes with the SDK's middleware on the host's server.
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
from vern.consent import service
from vern.consent.models import ConsentRecord
from vern.core.config import Settings
from vern.core.db import Database, Scope

pytestmark = pytest.mark.browser

TRACKER = """window.__tracked = (window.__tracked || 0) + 1;
document.cookie = "_track=on; path=/; max-age=86400";
document.cookie = "_ads_id=42; path=/; max-age=86400";"""


def host_site(vern: str) -> Starlette:
    """The vendor's own website: a page that embeds the banner, a tagged tracker, a tagged
    marketing iframe, and the two host links (change the choice, withdraw in one click)."""
    csp = (f"default-src 'self'; script-src 'self' {vern}; style-src 'self' {vern}; "
           f"connect-src 'self' {vern}; img-src 'self'; frame-src 'self'")

    def page(lang: str) -> str:
        return f"""<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>Fjellheim</title>
<script src="{vern}/c/vern-consent.js" data-org="fjellheim" async></script>
<script type="text/plain" data-category="statistics" src="/tracker.js"></script>
</head><body><h1>Fjellheim barnehage</h1>
<iframe id="video" title="Video" data-category="marketing" data-src="/video"></iframe>
<p><a href="#" id="settings" data-vern-consent="open">Cookies</a>
<a href="#" id="withdraw" data-vern-consent="withdraw">Withdraw consent</a></p>
</body></html>"""

    def index(request: Any) -> Response:
        return HTMLResponse(page(request.query_params.get("lang", "en")),
                            headers={"Content-Security-Policy": csp})

    def tracker(_request: Any) -> Response:
        return Response(TRACKER, media_type="text/javascript")

    def video(_request: Any) -> Response:
        return HTMLResponse("<!doctype html><p>video</p>")

    def signed_in(_request: Any) -> Response:
        """The product's own advertising cookie, HttpOnly: no script can see or delete it."""
        response = HTMLResponse("<!doctype html><title>Fjellheim</title><p>ok</p>")
        response.set_cookie("_ads_server", "7", httponly=True, path="/", max_age=86400)
        return response

    return Starlette(routes=[Route("/", index), Route("/tracker.js", tracker),
                             Route("/video", video), Route("/signed-in", signed_in)])


@pytest.fixture
def sites(db: Database, settings: Settings, personas: Personas) -> Iterator[tuple[str, str]]:
    from vern.app.web import create_app

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


def _until(page: Any, expression: str) -> None:
    """Poll an expression from here: the host page's CSP forbids the eval that Playwright's own
    in-page polling needs."""
    for _ in range(400):  # up to 20 s on a busy machine
        if page.evaluate(expression):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"never true: {expression}")


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
    _until(page, "window.__tracked === 1")
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


def _tab_to(page: Any, name: str) -> None:
    """Move the focus with the Tab key only, checking at every step that it stays in the dialog."""
    for _ in range(20):
        if page.evaluate("document.activeElement.textContent.trim()") == name:
            return
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.closest('[role=dialog]') !== null")
    raise AssertionError(f"{name!r} not reached with Tab")


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_keyboard_only_per_category_choice_in_bokmal(
        db: Database, personas: Personas, sites: tuple[str, str], browser: Any) -> None:
    """No mouse: Tab to "Velg selv", Enter, Space on Statistikk, Tab to "Lagre valgene", Enter.
    Statistics runs; the marketing iframe stays inert; the records say so."""
    _vern, host = sites
    page = browser.new_page()
    page.goto(host + "/?lang=nb")
    dialog = page.get_by_role("dialog", name="Vi bruker informasjonskapsler")
    dialog.wait_for()
    assert dialog.get_attribute("aria-modal") == "true"
    assert page.evaluate("document.activeElement.textContent") == "Avvis alle"  # focus moved in
    _tab_to(page, "Velg selv")
    page.keyboard.press("Enter")
    stats = page.get_by_label("Statistikk")
    stats.wait_for()
    assert page.get_by_label("Nødvendige (alltid på)").is_disabled()
    assert not stats.is_checked() and not page.get_by_label("Markedsføring").is_checked()
    for _ in range(5):
        if page.evaluate("document.activeElement.id") == "vc-p-statistics":
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Space")
    assert stats.is_checked()
    _tab_to(page, "Lagre valgene")
    page.keyboard.press("Enter")
    _until(page, "window.__tracked === 1")
    assert page.get_by_role("dialog").count() == 0
    assert page.locator("#video").get_attribute("src") is None  # marketing: still inert
    assert _wait_records(db, personas.tenant_a, 2, page) == [
        ("marketing", "denied", "banner-save"), ("statistics", "granted", "banner-save")]
    page.get_by_role("button", name="Informasjonskapsler").wait_for()  # the permanent way back


CONTRAST = """() => {
  const lum = (rgb) => {
    const [r, g, b] = rgb.map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const parse = (c) => c.match(/[\\d.]+/g).map(Number);
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  const texts = ['h2', 'p', 'a', 'button', 'label', 'legend'].map(t => '[role=dialog] ' + t);
  for (const el of document.querySelectorAll(texts.join(', '))) {
    if (!el.getClientRects().length) continue;
    const fg = lum(parse(getComputedStyle(el).color).slice(0, 3)), bg = lum(background(el));
    out.push([el.textContent.trim().slice(0, 30), (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05)]);
  }
  return out;
}"""


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_the_dialog_meets_wcag_contrast_and_shows_where_the_focus_is(
        db: Database, personas: Personas, sites: tuple[str, str], browser: Any) -> None:
    _vern, host = sites
    page = browser.new_page()
    page.goto(host + "/")
    page.get_by_role("dialog").wait_for()
    page.get_by_role("button", name="Choose").click()
    ratios = page.evaluate(CONTRAST)
    assert len(ratios) >= 8
    low = [(text, round(r, 2)) for text, r in ratios if r < 4.5]
    assert low == [], low  # WCAG 2.1 AA for normal text
    page.keyboard.press("Tab")
    outline = page.evaluate("""() => { const s = getComputedStyle(document.activeElement);
        return [s.outlineStyle, parseFloat(s.outlineWidth)]; }""")
    assert outline[0] != "none" and outline[1] >= 2


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_one_click_withdrawal_from_the_host_link_stops_everything(
        db: Database, personas: Personas, sites: tuple[str, str], browser: Any) -> None:
    _vern, host = sites
    page = browser.new_page()
    page.goto(host + "/")
    page.get_by_role("button", name="Accept all").click()
    _until(page, "window.__tracked === 1")
    _until(page, "document.getElementById('video').getAttribute('src') === '/video'")
    assert {"_track", "_ads_id"} <= set(_cookies(page))
    with page.expect_navigation():
        page.click("#withdraw")  # one click
    page.get_by_role("button", name="Cookie settings").wait_for()
    assert page.evaluate("window.__tracked") is None
    assert page.locator("#video").get_attribute("src") is None
    assert not {"_track", "_ads_id"} & set(_cookies(page))
    assert page.get_by_role("dialog").count() == 0  # a withdrawal is a choice: no nagging
    assert _wait_records(db, personas.tenant_a, 4, page)[2:] == [
        ("marketing", "withdrawn", "banner-withdraw"), ("statistics", "withdrawn", "banner-withdraw")]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_global_privacy_control_overrides_an_earlier_consent_before_anything_runs(
        db: Database, personas: Personas, sites: tuple[str, str], browser: Any) -> None:
    _vern, host = sites
    context = browser.new_context()
    page = context.new_page()
    page.goto(host + "/")
    page.get_by_role("button", name="Accept all").click()
    _until(page, "window.__tracked === 1")
    assert _wait_records(db, personas.tenant_a, 2, page)[-1][1] == "granted"
    page.close()
    context.add_init_script(  # the browser now sends GPC
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})")
    page = context.new_page()
    page.goto(host + "/")
    page.get_by_role("button", name="Cookie settings").wait_for()
    assert page.evaluate("window.__tracked") is None
    assert not {"_track", "_ads_id"} & set(_cookies(page))
    assert _wait_records(db, personas.tenant_a, 4, page)[2:] == [
        ("marketing", "withdrawn", "gpc"), ("statistics", "withdrawn", "gpc")]
    page.reload()  # the refusal stands; no new record, no dialog
    page.get_by_role("button", name="Cookie settings").wait_for()
    assert page.get_by_role("dialog").count() == 0 and page.evaluate("window.__tracked") is None
    assert len(_records(db, personas.tenant_a)) == 4
    context.close()


_OUTSIDE = """() => [...document.body.children].filter(e => !e.classList.contains('vc-backdrop'))
    .map(e => [e.tagName.toLowerCase(), e.inert])"""


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_escape_and_the_close_button_close_the_dialog_without_a_choice_and_the_page_is_inert(
        db: Database, personas: Personas, sites: tuple[str, str], browser: Any) -> None:
    """Opened from the host's link: the rest of the page is inert; Escape closes the dialog,
    records nothing, gives the page back and returns focus to the link; the visible close button
    (named in bokmål and English) does the same from the keyboard."""
    _vern, host = sites
    page = browser.new_page()
    page.goto(host + "/")
    page.get_by_role("button", name="Reject all").click()
    assert _wait_records(db, personas.tenant_a, 2, page) == [
        ("marketing", "denied", "banner-reject"), ("statistics", "denied", "banner-reject")]
    _until(page, "document.querySelector('.vc-reopen') !== null")
    assert all(not inert for _tag, inert in page.evaluate(_OUTSIDE))

    page.focus("#settings")
    page.keyboard.press("Enter")
    page.get_by_role("dialog").wait_for()
    outside = page.evaluate(_OUTSIDE)
    assert outside and all(inert for _tag, inert in outside), outside  # the reopen button too
    # The page behind takes neither focus nor clicks.
    page.evaluate("document.getElementById('withdraw').focus()")
    assert page.evaluate("document.activeElement.closest('[role=dialog]') !== null")
    page.get_by_role("button", name="Choose").click()
    page.keyboard.press("Escape")
    assert page.get_by_role("dialog").count() == 0
    assert page.evaluate("document.activeElement.id") == "settings"  # back where it was opened
    assert all(not inert for _tag, inert in page.evaluate(_OUTSIDE))
    page.wait_for_timeout(300)
    assert len(_records(db, personas.tenant_a)) == 2  # Escape is no choice

    # The close button: reached with Tab, pressed with Space.
    page.keyboard.press("Enter")
    page.get_by_role("dialog").wait_for()
    close = page.get_by_role("button", name="Close", exact=True)
    assert close.is_visible()
    for _ in range(10):
        if page.evaluate("document.activeElement.dataset.vc") == "close":
            break
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.closest('[role=dialog]') !== null")
    page.keyboard.press("Space")
    assert page.get_by_role("dialog").count() == 0
    assert page.evaluate("document.activeElement.id") == "settings"
    assert all(not inert for _tag, inert in page.evaluate(_OUTSIDE))
    page.wait_for_timeout(300)
    assert len(_records(db, personas.tenant_a)) == 2
    assert page.evaluate("window.__tracked") is None


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_first_visit_escape_leaves_everything_refused_and_the_close_button_speaks_bokmal(
        db: Database, personas: Personas, sites: tuple[str, str], browser: Any) -> None:
    _vern, host = sites
    page = browser.new_page()
    page.goto(host + "/?lang=nb")
    page.get_by_role("dialog", name="Vi bruker informasjonskapsler").wait_for()
    assert page.get_by_role("button", name="Lukk", exact=True).is_visible()
    page.keyboard.press("Escape")
    assert page.get_by_role("dialog").count() == 0
    page.get_by_role("button", name="Informasjonskapsler").wait_for()
    page.wait_for_timeout(300)
    assert _records(db, personas.tenant_a) == []
    assert page.evaluate("window.__tracked") is None
    assert page.locator("#video").get_attribute("src") is None
    page.reload()  # no choice was made: the banner asks again
    page.get_by_role("dialog").wait_for()


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_the_dialog_reflows_at_320_pixels_with_nothing_cut_off(
        db: Database, personas: Personas, sites: tuple[str, str], browser: Any) -> None:
    _vern, host = sites
    page = browser.new_page(viewport={"width": 320, "height": 640})
    page.goto(host + "/")
    page.get_by_role("dialog").wait_for()
    page.get_by_role("button", name="Choose").click()
    assert page.evaluate("document.documentElement.scrollWidth") <= 321
    cut = page.evaluate("""() => [...document.querySelectorAll('[role=dialog] *')]
        .filter(e => e.getClientRects().length && e.getBoundingClientRect().right > 321)
        .map(e => e.tagName + ' ' + e.textContent.slice(0, 20))""")
    assert cut == [], cut
    assert page.get_by_role("button", name="Save choices").is_visible()


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_an_httponly_cookie_outlives_the_banner_and_goes_with_the_sdk_middleware(
        db: Database, personas: Personas, sites: tuple[str, str], browser: Any) -> None:
    """The same withdrawal twice: on the plain host the banner deletes the script-visible
    cookies but the HttpOnly one stays; on a host behind ``ConsentCookieMiddleware`` (fed the
    organisation's real declaration) the reload after the withdrawal expires it too."""
    from vern.sdk import ConsentCookieMiddleware

    vern, plain = sites
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        declaration = [service.purpose_view(p) for p in service.list_purposes(session)]

    def withdraw_after_accepting(host: str) -> set[str]:
        context = browser.new_context()  # cookies are per host name, not port: one each
        page = context.new_page()
        page.goto(host + "/")
        page.get_by_role("button", name="Accept all").click()
        _until(page, "window.__tracked === 1")
        page.goto(host + "/signed-in")
        page.goto(host + "/")
        assert {"_track", "_ads_id", "_ads_server"} <= set(_cookies(page))
        # The host's links work once the banner has its configuration (until then the link is
        # a plain "#" and a click only moves to the page's top): its button shows that.
        page.get_by_role("button", name="Cookie settings").wait_for()
        with page.expect_navigation():
            page.click("#withdraw")
        page.get_by_role("button", name="Cookie settings").wait_for()
        left = set(_cookies(page))
        context.close()
        return left

    left = withdraw_after_accepting(plain)
    assert not {"_track", "_ads_id"} & left  # what a script can reach, the banner removed
    assert "_ads_server" in left  # HttpOnly: out of the banner's reach
    with serve(ConsentCookieMiddleware(host_site(vern), declaration), lifespan="off") as guarded:
        left = withdraw_after_accepting(guarded)
    assert not {"_track", "_ads_id", "_ads_server"} & left
