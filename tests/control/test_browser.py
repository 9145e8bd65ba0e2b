"""In Chromium: the security officer opens internal control, sees an overdue task, completes it
with an evidence file, and sees it no longer overdue."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from tests import services
from tests.browser import sign_in
from tests.console.test_browser import Server, server  # noqa: F401 - the fixture
from tests.control.helpers import PDF, make_task, task

pytestmark = pytest.mark.browser


def test_security_officer_completes_an_overdue_task_with_evidence(
        server: Server, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    chromium = services.chromium_path()
    from playwright.sync_api import expect, sync_playwright

    assert server.db is not None
    dave = server.personas.dave
    assert dave.totp_secret is not None
    due = date.today() - timedelta(days=12)
    task_id = make_task(server.db, server.personas, title="Tilgangskontroll Q3", due_on=due)
    evidence = tmp_path / "tilgangsgjennomgang.pdf"
    evidence.write_bytes(PDF)
    violations: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.on("console", lambda msg: violations.append(msg.text)
                    if "Content Security Policy" in msg.text or "Refused to" in msg.text else None)
            sign_in(page, server.url, dave, "/console/control?lang=en")

            expect(page.get_by_role("heading", name="Internal control")).to_be_visible()
            overdue = page.locator("#overdue-list")
            expect(overdue.get_by_role("link", name="Tilgangskontroll Q3")).to_be_visible()
            overdue.get_by_role("link", name="Tilgangskontroll Q3").click()

            expect(page.locator("#task-status")).to_have_text("Overdue")
            page.get_by_label("Note").first.fill("Gjennomgått, to kontoer fjernet")
            page.get_by_label("Evidence file").set_input_files(str(evidence))
            page.get_by_role("button", name="Mark as completed").click()

            expect(page.locator("#task-status")).to_have_text("Open")
            expect(page.locator("#evidence").get_by_role("link",
                                                         name="tilgangsgjennomgang.pdf")).to_be_visible()
            expect(page.locator("#history")).to_contain_text("Gjennomgått, to kontoer fjernet")
            page.get_by_role("link", name="Internal control").first.click()
            expect(page.locator("#no-overdue")).to_be_visible()
        finally:
            browser.close()
    assert violations == []
    after = task(server.db, server.personas, task_id)
    assert after["overdue"] is False and after["due_on"] > date.today().isoformat()
