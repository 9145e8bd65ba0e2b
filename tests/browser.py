"""Signing in through the console's own forms in Chromium, shared by the browser tests."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Persona
from vern.accounts import security

REFUSED = "is not valid or was already used"


def submit(page: Any, button: str) -> None:
    """Press a form's button and return once the server's answer is on the page.

    The console's forms are sent by htmx (``hx-boost``) and the answer replaces the page's body,
    so there is no navigation to wait for. The headings on the page are marked before the press,
    and the answer has arrived when an unmarked heading is there. Going on before that (a
    ``goto`` right after the press) would cancel the request."""
    page.evaluate("document.querySelectorAll('h1').forEach(h => h.dataset.answered = 'before')")
    page.get_by_role("button", name=button).click()
    page.locator("h1:not([data-answered])").first.wait_for()


def sign_in(page: Any, url: str, persona: Persona, path: str = "/login") -> None:
    """Open ``path`` (which leads to the sign-in form), give the password and the current
    authenticator code, and return once the two-step page has been left. A code refused because
    its 30-second step ended while typing is followed by the next step's code, which the server
    accepts too (current step ±1)."""
    from playwright.sync_api import expect

    assert persona.totp_secret is not None, f"{persona.email} has no authenticator"
    page.goto(url + path)
    page.get_by_label("E-mail address").fill(persona.email)
    page.get_by_label("Password").fill(persona.password)
    submit(page, "Sign in")
    two_step = page.get_by_role("heading", name="Two-step sign-in")
    expect(two_step).to_be_visible()
    for ahead in (0, 30):
        page.get_by_label("Code").fill(security.totp_now(persona.totp_secret, time.time() + ahead))
        submit(page, "Continue")
        if not page.get_by_text(REFUSED).count():
            break
    expect(two_step).to_have_count(0)
