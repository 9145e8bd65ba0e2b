"""In Chromium: a customer's administrator signs the data processing agreement on the trust page
and sees the notice of a new sub-processor; the signed agreement's PDF is rendered to an image
(poppler's pdftoppm) and its headings read back (pdftotext)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests import services
from tests.browser import sign_in
from tests.console.test_browser import Server, server  # noqa: F401 - the fixture
from tests.records.helpers import add_subprocessor, fill_vendor
from vern.records import documents

pytestmark = pytest.mark.browser


def _poppler() -> tuple[str, str]:
    found = shutil.which("pdftoppm"), shutil.which("pdftotext")
    if not all(found):
        services.unavailable("poppler-utils (pdftoppm, pdftotext) is not installed")
    return found  # type: ignore[return-value]


def test_an_admin_signs_the_agreement_and_sees_the_subprocessor_notice(server: Server,  # noqa: F811
                                                                       tmp_path: Path) -> None:
    chromium = services.chromium_path()
    pdftoppm, pdftotext = _poppler()
    from playwright.sync_api import expect, sync_playwright

    assert server.db is not None
    fill_vendor(server.db, server.personas)
    documents.publish_dpa(server.db, org_id=server.personas.tenant_a, actor_user_id=None)
    assert add_subprocessor(server.db, "Skybert AB") == 2
    alice = server.personas.alice
    assert alice.totp_secret is not None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        try:
            page = browser.new_context(locale="en-GB").new_page()
            sign_in(page, server.url, alice, "/trust")
            page.goto(server.url + "/trust")
            expect(page.get_by_role("heading", name="Trust: Fjellheim barnehage")).to_be_visible()
            expect(page.get_by_text("Version 1 is waiting for your signature.")).to_be_visible()

            page.get_by_role("button", name="Sign the agreement").click()  # no name: refused
            expect(page.get_by_role("alert")).to_contain_text("without the signer's name")
            page.get_by_label("Signed by (full name)").fill("Alice Aasen")
            page.get_by_role("button", name="Sign the agreement").click()
            expect(page.get_by_text("The agreement is signed.")).to_be_visible()
            expect(page.get_by_text("Version 1 signed by Alice Aasen")).to_be_visible()

            notices = page.get_by_role("region", name="Sub-processor notices").or_(
                page.locator("section[aria-labelledby=notices]"))
            expect(notices.get_by_role("link", name="Skybert AB")).to_be_visible()
            pdf = page.request.get(server.url + page.get_by_role("link", name="PDF").first
                                   .get_attribute("href"))  # type: ignore[operator]
            assert pdf.headers["content-type"] == "application/pdf"
            body = pdf.body()
            notices.get_by_role("link", name="Skybert AB").click()
            expect(page.get_by_text("Skybert AB").first).to_be_visible()
        finally:
            browser.close()

    path = tmp_path / "dpa.pdf"
    path.write_bytes(body)
    text = subprocess.run([pdftotext, "-layout", str(path), "-"], capture_output=True, text=True,  # noqa: S603
                          check=True, timeout=60).stdout
    for heading in ("Data processing agreement", "Annex 1: Sub-processors",
                    "Annex 2: Technical and organisational measures", "Signature"):
        assert heading in text
    assert "Fjorddrift AS" in text and "Skybert AB" in text  # the annex as it stood at signature
    subprocess.run([pdftoppm, "-png", "-r", "40", "-f", "1", "-l", "1", str(path),  # noqa: S603
                    str(tmp_path / "page")], check=True, timeout=60)
    from PIL import Image

    image = Image.open(next(tmp_path.glob("page*.png"))).convert("L")
    low, high = image.getextrema()
    assert image.width > 200 and low < 100 < high, "the first page is blank"
    dark = sum(image.histogram()[:128])  # pixels darker than mid-grey: text and table lines
    assert dark > image.width * image.height * 0.005
