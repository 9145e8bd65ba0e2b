"""A customer admin sees a sub-processor notice and objects to it, in Chromium (Playwright)."""

from __future__ import annotations

import pytest

from tests import services
from tests.browser import sign_in
from tests.console.test_browser import Server, server  # noqa: F401 - the fixture is used by name
from vern.core.db import Scope
from vern.vendor import service as vendor

pytestmark = pytest.mark.browser


def test_a_customer_admin_reads_a_subprocessor_notice_and_objects_in_chromium(
        server: Server) -> None:  # noqa: F811 - the fixture
    chromium = services.chromium_path()
    from playwright.sync_api import expect, sync_playwright

    assert server.db is not None
    with server.db.transaction(Scope.system("test: vendor staff")) as session:
        vendor.save_subprocessor(session, vendor.SubprocessorInput(
            key="support", name="Nordlys Support Inc", service="Kundestøtte",
            data_categories=("user.name",), storage_locations=("US",),
            transfer_mechanism="scc", all_customers=False,
            customer_ids=(server.personas.tenant_a,)), actor_user_id=None)
    alice = server.personas.alice
    assert alice.totp_secret is not None
    violations: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        try:
            page = browser.new_context(locale="en-GB").new_page()
            page.on("console", lambda msg: violations.append(msg.text)
                    if "Content Security Policy" in msg.text or "Refused to" in msg.text else None)
            sign_in(page, server.url, alice, "/console/vendor/notices")

            expect(page.get_by_role("heading", name="Sub-processor notices")).to_be_visible()
            page.get_by_role("link", name="Nordlys Support Inc").click()
            expect(page.get_by_role("heading", name="new sub-processor: Nordlys Support Inc")
                   ).to_be_visible()
            expect(page.get_by_text("outside the EU/EEA").first).to_be_visible()
            expect(page.get_by_text("standard contractual clauses")).to_be_visible()
            page.get_by_label("Why do you object?").fill("We keep support in the EEA.")
            page.get_by_role("button", name="Send the objection").click()
            expect(page.get_by_role("status")).to_contain_text("We keep support in the EEA.")
        finally:
            browser.close()
    assert violations == [], violations
    with server.db.transaction(Scope.system("test: vendor staff")) as session:
        [(notice, customer)] = vendor.notices_for_vendor(session, objected_only=True)
    assert customer == "Fjellheim barnehage"
    assert notice.objection_reason == "We keep support in the EEA."
