"""WCAG 2.1 AA on every page a person sees, in Chromium: the console (as a customer's
administrator and as the vendor's security officer), the public portal and the public consent
pages (anonymous). Each page is checked by axe-core at desktop width and at 320 CSS pixels, where
nothing may scroll sideways (WCAG 1.4.10 reflow, which is also what 400 % zoom of 1280 px gives).

Path parameters are filled by the role matrix's sample factories, so a new page is checked the
moment it exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests import services
from tests.conftest import session_cookie_for
from tests.console.test_browser import Server, server  # noqa: F401 - the live-server fixture
from tests.matrix.test_matrix import _samples
from vern.accounts.deps import session_cookie_name

pytestmark = pytest.mark.browser
PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PUBLIC = ("/p/", "/c/", "/login")
SKIP = re.compile(r"^/(login/mfa|logout)$|\.(js|css)$|/config$|/package$|/export$|/download/")


def _pages(live: Server, who: str, values: dict[str, str]) -> list[str]:
    """Every HTML page a persona can open (GET, not a file or a redirect-only address); path
    parameters from ``values``, made by the sample factories when missing."""
    from vern.app.web import api_routes

    app = live.app
    factories: dict[str, Callable[..., Any]] = _samples()
    pages: list[str] = []
    for route in api_routes(app):
        if "GET" not in (route.methods or ()) or route.path.startswith("/api/"):
            continue
        if not route.path.startswith(("/console", *PUBLIC)) or SKIP.search(route.path):
            continue
        if (who == "anonymous") != route.path.startswith(PUBLIC):
            continue
        for name in PARAM.findall(route.path):
            if name not in values:
                values[name] = factories[name](live.db, live.personas, live.settings).value
        pages.append(PARAM.sub(lambda m: values[m.group(1)], route.path))
    return sorted(set(pages))


# The page's width when it is wider than the window, and the outermost element that sticks out.
_WIDEST = """() => {
  const limit = window.innerWidth + 1;
  if (document.documentElement.scrollWidth <= limit) return null;
  const out = [...document.querySelectorAll("body *")].filter(
    e => e.getBoundingClientRect().right > limit && !e.parentElement.closest("[tabindex='0']"));
  const top = out.find(e => !out.includes(e.parentElement)) || document.body;
  return `${document.documentElement.scrollWidth} px wide, ${top.tagName.toLowerCase()}.${top.className}`;
}"""


def _check(page: Any, url: str, axe: Any, problems: list[str]) -> bool:
    """False when the page is not this persona's; another persona covers it. The page is loaded
    once at desktop width and then narrowed, as a person zooming in does (its media queries
    apply as on a page loaded narrow: nothing in it is laid out by the server by width)."""
    page.set_viewport_size({"width": 1280, "height": 800})
    response = page.goto(url)
    assert response is not None
    if response.status in (403, 404):  # another persona's page, or another tenant's object
        return False
    assert response.status < 400, (url, response.status)
    for width in (1280, 320):
        page.set_viewport_size({"width": width, "height": 800})
        if width == 320:
            wide = page.evaluate(_WIDEST)
            if wide:
                problems.append(f"{url} @320px scrolls sideways: {wide}")
        results = axe.run(page, options={"runOnly": {"type": "tag", "values": WCAG_AA}})
        for violation in results.response["violations"]:
            targets = [n["target"] for n in violation["nodes"]][:3]
            problems.append(f"{url} @{width}px axe {violation['id']}: {targets}")
    return True


def test_every_page_meets_wcag_aa_and_reflows_at_320_px(server: Server) -> None:  # noqa: F811
    chromium = services.chromium_path()
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    unchecked: set[str] = set()
    checked: set[str] = set()
    values: dict[str, str] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        try:
            for who in ("alice", "dave", "anonymous"):
                context = browser.new_context(locale="nb-NO" if who != "dave" else "en-GB")
                if who != "anonymous":
                    cookie, _csrf = session_cookie_for(server.db, getattr(server.personas, who))
                    context.add_cookies([{"name": session_cookie_name(server.settings),
                                          "value": cookie, "url": server.url}])
                page = context.new_page()
                axe = Axe()
                for path in _pages(server, who, values):
                    if _check(page, server.url + path, axe, problems):
                        checked.add(path)
                    else:
                        unchecked.add(path)
                context.close()
        finally:
            browser.close()
    assert unchecked <= checked, f"pages no persona could open: {sorted(unchecked - checked)}"
    assert len(checked) >= 25, sorted(checked)
    assert problems == [], "\n".join(problems)
