"""A customer does not learn how much the other customers do: the audit tree is one for every
organisation, so its size (checkpoints, proofs) and a record's place in it (``seq``, the
positions of an alert) are the vendor's to see, not a customer's. The trail's bytes and hashes
are unchanged - only what is shown to whom."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from sqlalchemy import select

from tests.conftest import Personas
from vern.audit import proofs, service
from vern.audit.models import AuditAlert, AuditEvent
from vern.core.config import Settings
from vern.core.db import Database, Scope


def _busy_neighbour(db: Database, settings: Settings, personas: Personas) -> None:
    """Tenant A writes 2 records, tenant B 40 in between."""
    for org, n in ((personas.tenant_a, 1), (personas.tenant_b, 40), (personas.tenant_a, 1)):
        with db.transaction(Scope.system("seed")) as session:
            for _ in range(n):
                service.record(session, "child.read", org_id=org, resource="child:1")
        service.seal_now(db, settings)
    with db.transaction(Scope.system("seed")) as session:
        session.add(AuditAlert(org_id=personas.tenant_a, kind="mass_read", subject="u1",
                               first_seq=3, last_seq=44, count=2))


def test_a_customer_sees_no_position_or_size_of_the_shared_tree(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    _busy_neighbour(db, settings, personas)
    alice = login(personas.alice)

    items = alice.get("/api/v1/audit/events", params={"action": "child.read"}).json()["items"]
    assert len(items) == 2 and all(i["seq"] is None for i in items)
    rows = list(csv.DictReader(io.StringIO(alice.get(
        "/api/v1/audit/events", params={"action": "child.read", "format": "csv"}).text)))
    assert len(rows) == 2 and all(r["seq"] == "" for r in rows)
    lines = alice.get("/api/v1/audit/events",
                      params={"action": "child.read", "format": "jsonl"}).text.splitlines()
    assert len(lines) == 2 and all(json.loads(line)["seq"] is None for line in lines)

    alerts = alice.get("/api/v1/audit/alerts").json()["alerts"]
    assert len(alerts) == 1 and "first_seq" not in alerts[0] and "last_seq" not in alerts[0]
    page = alice.get("/console/audit/alerts")
    assert page.status_code == 200
    # The alert's link shows its count and no positions. (Not a bare "44" anywhere in the page:
    # ids, the CSRF token and the time of day may contain those digits by chance.)
    link = re.search(r'href="/console/audit/alerts/[^"]+">([^<]*)</a>', page.text)
    assert link is not None and link.group(1).strip() == "2"
    assert re.search(r"\b3\s*[–-]\s*44\b", page.text) is None and "(seq" not in page.text

    record_id = items[0]["id"]
    assert alice.get("/api/v1/audit/checkpoint").status_code == 403
    assert alice.get("/api/v1/audit/proofs/inclusion",
                     params={"record_id": record_id}).status_code == 403
    assert alice.get("/api/v1/audit/proofs/consistency", params={"old": 1}).status_code == 403


def test_the_vendors_auditors_still_get_checkpoints_and_proofs(
    db: Database, settings: Settings, personas: Personas, login: Any
) -> None:
    _busy_neighbour(db, settings, personas)
    with db.transaction(Scope.system("read")) as session:
        record_id = session.scalar(select(AuditEvent.id).where(
            AuditEvent.org_id == personas.tenant_a, AuditEvent.action == "child.read"))
    dave = login(personas.dave)
    checkpoint = dave.get("/api/v1/audit/checkpoint").json()["checkpoint"]
    assert checkpoint["tree_size"] >= 42
    proof = dave.get("/api/v1/audit/proofs/inclusion", params={"record_id": record_id})
    assert proof.status_code == 200
    assert proofs.check_inclusion(proof.json(), proofs.signer_for(settings))
    items = dave.get("/api/v1/audit/events",
                     params={"action": "child.read", "org": "*"}).json()["items"]
    assert all(isinstance(i["seq"], int) for i in items)
    alerts = dave.get("/api/v1/audit/alerts").json()["alerts"]
    assert [(a["first_seq"], a["last_seq"]) for a in alerts] == [(3, 44)]
