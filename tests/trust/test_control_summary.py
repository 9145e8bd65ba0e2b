"""The trust page shows a customer's users a summary of the vendor's internal control - the
controls in place, when each was last completed, framework coverage counts - and nothing of the
evidence, notes or people behind it. Anonymous callers and vendor staff get no trust page."""

from __future__ import annotations

from datetime import date
from typing import Any

from starlette.testclient import TestClient

from tests.conftest import Personas

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_customers_see_the_controls_and_coverage_but_no_evidence(
    login: Any, client: TestClient, personas: Personas
) -> None:
    dave = login(personas.dave)
    made = {t["key"]: t for t in dave.post("/api/v1/control/seed", json={}).json()["created"]}
    drill = made["restore_drill"]
    up = dave.post(f"/api/v1/control/tasks/{drill['id']}/evidence/file",
                   files={"file": ("gjenoppretting-logg.pdf", PDF, "application/pdf")},
                   data={"title": "Logg fra gjenopprettingsøvelsen"})
    assert up.status_code == 201, up.text
    assert dave.post(f"/api/v1/control/tasks/{drill['id']}/evidence/link", json={
        "title": "Sak", "url": "https://intern.solstrand.example.com/sak/12"}).status_code == 201
    assert dave.post(f"/api/v1/control/tasks/{drill['id']}/complete",
                     json={"note": "Hemmelig intern merknad"}).status_code == 200

    for persona in (personas.alice, personas.bob, personas.carol):
        res = login(persona).get("/api/v1/trust")
        assert res.status_code == 200, res.text
        summary = res.json()["internal_control"]
        by_title = {c["title"]: c for c in summary["controls"]}
        assert by_title[drill["title"]]["last_completed_on"] == date.today().isoformat()
        assert by_title[drill["title"]]["recurrence"] == drill["recurrence"]
        assert sum(1 for c in summary["controls"] if c["last_completed_on"]) == 1
        iso = next(f for f in summary["frameworks"] if f["framework"] == "iso27001-2022")
        assert 0 < iso["covered"] < iso["requirements"]
        for secret in ("gjenoppretting-logg", "Logg fra", "intern.solstrand", "Hemmelig",
                       drill["id"], up.json()["id"], personas.dave.user_id):
            assert secret not in res.text
    page = login(personas.alice).get("/console/trust")
    assert page.status_code == 200 and drill["title"] in page.text
    assert "gjenoppretting-logg" not in page.text and "/console/control" not in page.text
    # Nobody outside a customer's own users gets the page.
    assert client.get("/api/v1/trust").status_code == 401
    assert dave.get("/api/v1/trust").status_code == 403
