"""The demo trust file loads once: a penetration test summary shared with Fjellheim barnehage
only; its trust page lists it and the file downloads, Havbris skole's page does not list it."""

from __future__ import annotations

from typing import Any

from tests.conftest import Personas
from vern.core.db import Database, Scope
from vern.trust import demo, service


def _state(db: Database, personas: Personas) -> tuple[Any, ...]:
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        files = [(f.title, f.content_type, f.size) for f in service.list_files(session)]
    shares = []
    for org in (personas.tenant_a, personas.tenant_b):
        with db.transaction(Scope.tenant(org)) as session:
            shares.append([f["title"] for f in service.shared_files(session)])
    return files, shares


def test_demo_loads_once_and_shows(db: Database, personas: Personas, login: Any) -> None:
    orgs = {"solstrand": personas.vendor, "fjellheim": personas.tenant_a,
            "havbris": personas.tenant_b}
    demo.load_demo(db, orgs)
    first = _state(db, personas)
    demo.load_demo(db, orgs)
    assert _state(db, personas) == first
    files, shares = first
    assert [(t, c) for t, c, _size in files] == [(demo.TITLE, "text/plain")]
    assert shares == [[demo.TITLE], []]

    alice = login(personas.alice)
    page = alice.get("/console/trust")
    assert page.status_code == 200
    assert "Sammendrag av penetrasjonstest 2026" in page.text
    listed = alice.get("/api/v1/trust").json()
    share_id = listed["files"][0]["id"]
    download = alice.get(f"/console/trust/download/{share_id}")
    assert download.status_code == 200
    assert "Fjordvakt Sikkerhet AS" in download.text
    assert "penetrasjonstest" not in login(personas.carol).get("/console/trust").text.lower()
