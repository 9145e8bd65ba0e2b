"""Keyboard use and 320 px reflow in Chromium, on the pages a person outside the vendor meets
first: the sign-in page and the privacy portal's request and verification pages; and where the
focus goes after a boosted (htmx) page change in the console.

Checked on each page: Tab alone reaches every control in order and never loses the focus ring;
Enter follows links and submits, Space presses buttons; nothing scrolls sideways at 320 CSS
pixels; axe-core finds no WCAG 2.1 AA violation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests import services
from tests.conftest import session_cookie_for
from tests.console.test_browser import Server, server  # noqa: F401 - the live-server fixture
from vern.accounts.deps import session_cookie_name

pytestmark = pytest.mark.browser
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

# Every control a person could use: visible, enabled, not taken out of the Tab order.
_CONTROLS = """() => [...document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, [tabindex='0']")]
  .filter(e => !e.disabled && e.getAttribute('tabindex') !== '-1' && !e.closest('[inert]')
    && (e.getClientRects().length > 0 || e.classList.contains('skip')))
  .map(e => e.outerHTML.slice(0, 80))"""
# The focused control and whether its focus can be seen (an outline or a ring of box-shadow).
_FOCUSED = """() => { const e = document.activeElement; const s = getComputedStyle(e);
  const ring = (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2) || s.boxShadow !== 'none';
  return [e === document.body ? null : e.outerHTML.slice(0, 80), ring]; }"""
_WIDE = "document.documentElement.scrollWidth > window.innerWidth + 1"


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium = services.chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _tab_through(page: Any) -> list[str]:
    """Tab from the top of the page until the focus comes round again; every control on the
    way must show its focus. Returns the controls in the order reached."""
    page.evaluate("""() => { const start = document.createElement('span');
      start.id = 'tab-start'; start.tabIndex = -1; document.body.prepend(start); start.focus(); }""")
    reached: list[str] = []
    for _ in range(60):
        page.keyboard.press("Tab")
        html, ring = page.evaluate(_FOCUSED)
        if html is None or (reached and html == reached[0]):
            break
        assert ring, f"no visible focus on {html}"
        reached.append(html)
    page.evaluate("document.getElementById('tab-start').remove()")
    expected = page.evaluate(_CONTROLS)
    assert reached == expected, (reached, expected)
    return reached


def _reflows_and_passes_axe(page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    for width in (1280, 320):
        page.set_viewport_size({"width": width, "height": 800})
        assert not page.evaluate(_WIDE), f"{page.url} scrolls sideways at {width} px"
        results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_AA}})
        assert results.response["violations"] == [], [
            (v["id"], [n["target"] for n in v["nodes"]]) for v in results.response["violations"]]
    page.set_viewport_size({"width": 1280, "height": 800})


def _focus_on(page: Any) -> str:
    return str(page.evaluate("document.activeElement.outerHTML.slice(0, 80)"))


def _announced(page: Any) -> str:
    for _ in range(100):  # up to 5 s
        text = str(page.evaluate("document.getElementById('vern-announce').textContent"))
        if text:
            return text
        page.wait_for_timeout(50)
    return ""


def test_sign_in_works_with_the_keyboard_alone_and_reflows(server: Server, browser: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    alice = server.personas.alice
    page = browser.new_context(locale="en-GB").new_page()
    page.goto(server.url + "/login")
    expect(page.get_by_label("E-mail address")).to_be_focused()  # autofocus on a full load
    reached = _tab_through(page)
    assert any('id="email"' in c for c in reached) and any('id="password"' in c for c in reached)
    assert any('id="forgot-password"' in c for c in reached)
    _reflows_and_passes_axe(page)

    # Enter on the empty form: the error summary takes the focus.
    page.get_by_label("E-mail address").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#error-summary")).to_be_focused()
    _reflows_and_passes_axe(page)

    page.get_by_label("E-mail address").focus()
    page.keyboard.type(alice.email)
    page.keyboard.press("Tab")
    page.keyboard.type(alice.password)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.get_by_role("heading", name="Two-step sign-in")).to_be_visible()
    expect(page.get_by_label("Code")).to_be_focused()  # the new page's autofocus, not <body>
    assert _announced(page) == page.title()


def test_a_boosted_page_change_moves_the_focus_to_the_heading_and_announces_the_title(
        server: Server, browser: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    assert server.db is not None and server.settings is not None
    context = browser.new_context(locale="en-GB")
    cookie, _csrf = session_cookie_for(server.db, server.personas.alice)
    context.add_cookies([{"name": session_cookie_name(server.settings), "value": cookie,
                          "url": server.url}])
    page = context.new_page()
    page.goto(server.url + "/console")
    link = page.get_by_role("navigation", name="Main").get_by_role("link", name="Users")
    link.focus()
    page.keyboard.press("Enter")
    heading = page.get_by_role("heading", name="Users", level=1)
    expect(heading).to_be_focused()
    assert page.evaluate("typeof htmx === 'object'")  # it was htmx's page change, not a load
    assert _announced(page) == page.title() and "Users" in page.title()
    # The next Tab goes on from the heading into the page, as after a full load.
    page.keyboard.press("Tab")
    assert page.evaluate("document.getElementById('main').contains(document.activeElement)")


def test_the_portal_request_and_verification_pages_work_with_the_keyboard(
        server: Server, browser: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    page = browser.new_context(locale="en-GB").new_page()
    page.goto(server.url + "/p/fjellheim/rights")
    reached = _tab_through(page)
    _reflows_and_passes_axe(page)
    see = next(c for c in reached if "kind=access" in c)
    for _ in range(len(reached) + 1):  # Tab to the link, Enter follows it
        page.keyboard.press("Tab")
        if _focus_on(page) == see:
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    _tab_through(page)
    _reflows_and_passes_axe(page)

    page.get_by_label("Your e-mail address").focus()
    page.keyboard.type("ola.nordmann@example.com")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send me a code")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.get_by_role("heading", name="Confirm it is you")).to_be_focused()
    code = page.get_by_label("Code")
    expect(code).not_to_have_attribute("aria-invalid", "true")
    _tab_through(page)
    _reflows_and_passes_axe(page)

    code.focus()
    page.keyboard.type("000000")
    page.keyboard.press("Enter")
    message = page.get_by_role("alert")
    expect(message).to_be_visible()
    # The message belongs to the field: invalid, described by it, and the focus is on it.
    expect(code).to_have_attribute("aria-invalid", "true")
    described = code.get_attribute("aria-describedby")
    assert described and page.locator(f"#{described}").inner_text() == message.inner_text()
    assert page.evaluate("document.activeElement.id") == "code"
    _tab_through(page)
    _reflows_and_passes_axe(page)
