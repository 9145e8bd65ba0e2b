"""In Chromium: the security officer registers a breach affecting two customers, sees both
clocks, sends the notices; one customer's admin reads and acknowledges theirs, and the
vendor sees it acknowledged."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from tests import services
from tests.browser import sign_in
from tests.console.test_browser import Server, server  # noqa: F401 - the live-server fixture
from vern.core.db import utcnow

pytestmark = pytest.mark.browser


def test_a_breach_for_two_customers_is_notified_and_acknowledged_in_chromium(
        server: Server) -> None:  # noqa: F811
    chromium = services.chromium_path()
    from playwright.sync_api import expect, sync_playwright

    people = server.personas
    aware = (utcnow() - timedelta(hours=2)).astimezone(ZoneInfo("Europe/Oslo"))
    violations: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        try:
            vendor = browser.new_context(locale="en-GB").new_page()
            vendor.on("console", lambda m: violations.append(m.text)
                      if "Content Security Policy" in m.text or "Refused to" in m.text else None)
            sign_in(vendor, server.url, people.dave, "/console/incidents/new")
            expect(vendor.get_by_role("heading", name="Register a deviation")).to_be_visible()
            vendor.get_by_label("Title").fill("Feilsendt klasseliste")
            vendor.get_by_label("Personal data is concerned (a breach)").check()
            vendor.get_by_role("button", name="Register").click()
            # Refused without the awareness time, naming the field.
            expect(vendor.locator("#error-summary")).to_contain_text("The vendor became aware")
            expect(vendor.get_by_label("The vendor became aware")).to_have_attribute(
                "aria-invalid", "true")
            vendor.get_by_label("The vendor became aware").fill(aware.strftime("%Y-%m-%dT%H:%M"))
            vendor.get_by_label("What happened").fill("Klasselister sendt til feil mottaker.")
            vendor.get_by_label("Categories of data subjects").fill("barn\nforesatte")
            vendor.get_by_label("Approximate number of data subjects").fill("40")
            vendor.get_by_label("Categories of personal data").fill("navn")
            vendor.get_by_label("Approximate number of records").fill("80")
            vendor.get_by_label("Likely consequences").fill("Navn kjent for uvedkommende.")
            vendor.get_by_label("Measures taken").fill("Mottakeren har slettet e-posten.")
            vendor.get_by_label("Contact point (data protection officer)").fill(
                "personvern@solstrand.example.com")
            vendor.get_by_label("Fjellheim barnehage").check()
            vendor.get_by_label("Havbris skole").check()
            vendor.get_by_role("button", name="Register").click()

            expect(vendor.get_by_role("heading", name="#1 Feilsendt klasseliste")).to_be_visible()
            clocks = vendor.get_by_role("table", name="This breach's clocks")
            for name in ("Fjellheim barnehage", "Havbris skole"):
                row = clocks.get_by_role("row").filter(has_text=name)
                expect(row).to_contain_text("24")
                expect(row).to_contain_text("21 h")  # of 24, two hours after awareness
            vendor.get_by_role("button", name="Send the notice").click()
            notices = vendor.get_by_role("table", name="Every notice and update, as sent")
            expect(notices.get_by_role("row")).to_have_count(3)

            customer = browser.new_context(locale="en-GB").new_page()
            sign_in(customer, server.url, people.alice, "/console/incidents/notices")
            expect(customer.get_by_role("heading", name="Breach notices")).to_be_visible()
            expect(customer.get_by_role("row")).to_have_count(2)  # A's notice only
            customer.get_by_role("link", name="Personal data breach #1").click()
            expect(customer.get_by_text("Klasselister sendt til feil mottaker.")).to_be_visible()
            expect(customer.get_by_text("Havbris")).to_have_count(0)
            customer.get_by_role("button", name="Acknowledge the notice").click()
            expect(customer.get_by_role("status")).to_contain_text("Acknowledged")

            vendor.reload()
            row = vendor.get_by_role("table", name="This breach's clocks").get_by_role(
                "row").filter(has_text="Fjellheim barnehage")
            expect(row).not_to_contain_text("not yet")
            other = vendor.get_by_role("table", name="This breach's clocks").get_by_role(
                "row").filter(has_text="Havbris skole")
            expect(other).to_contain_text("not yet")
        finally:
            browser.close()
    assert violations == [], violations
