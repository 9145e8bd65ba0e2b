"""In Chromium: a vendor privacy officer asks a customer for access, the customer's administrator
approves it, the officer opens the customer's data subject requests; after the administrator
revokes the grant, the officer is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests import services
from tests.browser import sign_in
from tests.conftest import Persona
from tests.console.test_browser import Server, server  # noqa: F401 - the fixture
from vern.core.db import utcnow

pytestmark = pytest.mark.browser


def _sign_in(page: Any, url: str, persona: Persona) -> None:
    from playwright.sync_api import expect

    sign_in(page, url, persona, "/login?next=/console/access")
    expect(page.get_by_role("heading", name="Access control", exact=True)).to_be_visible()


def test_vendor_staff_get_in_only_while_the_customer_grants_it_in_chromium(
    server: Server,  # noqa: F811 - the fixture
) -> None:
    chromium = services.chromium_path()
    from playwright.sync_api import expect, sync_playwright

    erik, alice = server.personas.erik, server.personas.alice
    violations: list[str] = []
    until = (utcnow() + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        try:
            pages = []
            for _who in (erik, alice):
                context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.on("console", lambda msg: violations.append(msg.text)
                        if "Content Security Policy" in msg.text or "Refused to" in msg.text
                        else None)
                pages.append(page)
            staff, admin = pages

            # The vendor's privacy officer asks Fjellheim for access.
            _sign_in(staff, server.url, erik)
            staff.get_by_label("Customer", exact=True).select_option(label="Fjellheim barnehage")
            staff.get_by_label("Purpose", exact=True).select_option("support")
            staff.get_by_label("Reason", exact=True).fill("Innsynsbegjæring som stopper, sak 4711")
            staff.get_by_label("Until (UTC)").fill(until)
            staff.get_by_role("button", name="Ask for access").click()
            expect(staff.get_by_role("status")).to_contain_text("sent to the customer")
            expect(staff.locator("#my-grants")).to_contain_text("pending")
            # Not yet: the customer is not among the organisations to switch to.
            expect(staff.locator("#org-switch option", has_text="Fjellheim")).to_have_count(0)

            # Fjellheim's administrator sees who asked and why, and approves.
            _sign_in(admin, server.url, alice)
            grants = admin.locator("#grants")
            expect(grants).to_contain_text("Erik Eide")
            expect(grants).to_contain_text("Innsynsbegjæring som stopper")
            grants.get_by_role("link", name="Erik Eide").click()
            admin.get_by_role("button", name="Approve").click()
            expect(admin.locator("#grant-state")).to_have_text("active")

            # Now the officer can enter and open the customer's request list.
            staff.reload()
            staff.get_by_label("Organisation").select_option(label="Fjellheim barnehage")
            staff.get_by_role("button", name="Switch").click()
            expect(staff.get_by_text("working inside a customer")).to_be_visible()
            staff.goto(server.url + "/console/rights")
            expect(staff.get_by_role("heading", name="Data subject requests")).to_be_visible()

            # The administrator sees that access, and revokes the grant.
            from vern.audit import service as audit

            audit.flush_writer()
            admin.reload()
            expect(admin.locator("#accesses")).to_contain_text("/console/rights")
            admin.get_by_role("button", name="Revoke now").click()
            expect(admin.locator("#grant-state")).to_have_text("revoked")

            # At once: the officer's next request is refused.
            response = staff.goto(server.url + "/console/rights")
            assert response is not None and response.status == 403
            expect(staff.get_by_role("heading", name="Not allowed")).to_be_visible()
        finally:
            browser.close()
    assert violations == [], violations
