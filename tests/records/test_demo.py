"""The demo records load once: two Art. 30(1) entries of the vendor as controller and a DPA sent
to each customer, Fjellheim barnehage's signed by its administrator; the pages show them."""

from __future__ import annotations

from typing import Any

from tests.conftest import Personas
from vern.consent import demo as consent_demo
from vern.core.db import Database, Scope
from vern.records import demo, service


def _state(db: Database, personas: Personas) -> tuple[Any, ...]:
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        entries = sorted(e.key for e in service.list_entries(session, include_retired=True))
    agreements = []
    for org in (personas.tenant_a, personas.tenant_b):
        with db.transaction(Scope.tenant(org)) as session:
            agreements.append([(a.version, a.status, a.signer_name)
                               for a in service.list_agreements(session)])
            agreements.append(len(service.document_versions(session, "dpa")))
    return entries, agreements


def test_demo_loads_once_and_shows(db: Database, personas: Personas, login: Any) -> None:
    orgs = {"solstrand": personas.vendor, "fjellheim": personas.tenant_a,
            "havbris": personas.tenant_b}
    consent_demo.load_demo(db, orgs)  # loaded before records in `vern demo` (domain order)
    demo.load_demo(db, orgs)
    first = _state(db, personas)
    demo.load_demo(db, orgs)
    assert _state(db, personas) == first
    entries, agreements = first
    assert entries == ["customer-contacts", "website"]
    assert agreements == [[(1, "signed", "Alice Aasen")], 1, [(1, "sent", None)], 1]
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        contacts = service.get_entry(session, "customer-contacts")
        assert len(contacts.subprocessors) == 1  # the data centre operator of the registry
        assert service.get_entry(session, "website").purpose_keys == ["statistics", "newsletter"]

    page = login(personas.erik).get("/console/records")
    assert page.status_code == 200
    assert "Nettsted og nyhetsbrev" in page.text or "Website and newsletter" in page.text
    assert "Kontaktpersoner hos kunder" in page.text or "Contact persons at customers" in page.text
    alice = login(personas.alice).get("/console/trust")
    assert alice.status_code == 200
    assert "Alice Aasen" in alice.text
