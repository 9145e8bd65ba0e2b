"""The outside tester's finding, replayed: a customer admin set its product key to another
customer's and then read one of that customer's pupils in full and erased another, with approval
turned off by the same call. Both steps are now refused, and a mapping planted before the fix
(or by a mistake in the database) stops requests from running at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.conftest import Personas, add_persona
from vern.accounts.roles import Role
from vern.core.db import Database, Scope
from vern.datamap.connect import engine_for, forget
from vern.datamap.service import publish_map
from vern.notify import service as notify
from vern.rights import demo
from vern.rights.models import Policy


@pytest.fixture
def laerbar(
    db: Database, personas: Personas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    url = f"sqlite:///{tmp_path / 'laerbar.db'}"
    demo.create_product(engine_for(url))
    people = demo.fill(engine_for(url), [personas.tenant_a, personas.tenant_b], people_per_tenant=3)
    monkeypatch.setenv("LAERBAR_DATABASE_URL", url)
    with db.transaction(Scope.system("test map")) as session:
        publish_map(session, demo.map_text(), source="laerbar.yaml")
    previous = notify.mailer()
    notify.install_mailer(notify.MemoryMailer())
    yield url, people
    notify.install_mailer(previous)
    forget(url)


def _product_user(url: str, email: str) -> Any:
    users = demo.metadata.tables["users"]
    with engine_for(url).connect() as conn:
        return conn.execute(select(users).where(users.c.email == email)).first()


def _file(alice: TestClient, kind: str, email: str) -> dict[str, Any]:
    res = alice.post("/api/v1/rights/requests", json={
        "kind": kind, "identities": {"email": email}, "verification": "attested",
        "details": {"note": "ID-kort kontrollert"}})
    assert res.status_code == 201, res.text
    return res.json()


def test_a_customer_admin_can_no_longer_read_or_erase_another_customers_pupils(
    laerbar: tuple[str, list[dict[str, Any]]], login: Any, personas: Personas, db: Any,
    settings: Any,
) -> None:
    url, people = laerbar
    theirs = [p for p in people if p["school_id"] == personas.tenant_b]
    read_target, erase_target = theirs[0], theirs[1]
    alice = login(personas.alice)

    attack = alice.put("/api/v1/rights/policy", json={
        "product_tenant_key": personas.tenant_b, "approve_erasure": False})
    assert attack.status_code == 403, attack.text
    assert alice.put("/api/v1/rights/policy",
                     json={"approve_erasure": False}).status_code == 403
    policy = alice.get("/api/v1/rights/policy").json()
    assert policy["product_tenant_key"] == personas.tenant_a
    assert policy["approve_erasure"] is True

    read = _file(alice, "access", read_target["email"])
    detail = alice.get(f"/api/v1/rights/requests/{read['id']}").json()
    # nobody of hers matches: the request waits for staff instead of answering with another's data
    assert detail["status"] == "nobody_found", detail
    assert detail["summary"]["rows_found"] == 0, detail

    erase = _file(alice, "erasure", erase_target["email"])
    assert erase["status"] == "awaiting_approval"
    # Alice filed and attested it: a second administrator of hers approves (four-eyes).
    anne = login(add_persona(db, settings, personas, "anne", "Anne Aas",
                             "anne.aas@fjellheim.example.com", personas.tenant_a,
                             Role.TENANT_ADMIN))
    assert alice.post(f"/api/v1/rights/requests/{erase['id']}/approve").status_code == 403
    assert anne.post(f"/api/v1/rights/requests/{erase['id']}/approve").status_code == 200
    assert alice.get(f"/api/v1/rights/requests/{erase['id']}").json()["status"] == "nobody_found"
    assert _product_user(url, erase_target["email"]) is not None


def test_a_planted_mapping_to_another_customer_never_runs(
    laerbar: tuple[str, list[dict[str, Any]]], login: Any, personas: Personas, db: Database
) -> None:
    """A key written before the fix (or straight into the database) is caught when the request
    runs: the request stays queued with the reason, the other customer's pupil is untouched."""
    url, people = laerbar
    target = next(p for p in people if p["school_id"] == personas.tenant_b)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        session.add(Policy(org_id=personas.tenant_a, product_tenant_key=personas.tenant_b,
                           approve_erasure=False, approve_rectification=True))
    alice = login(personas.alice)
    erase = _file(alice, "erasure", target["email"])
    detail = alice.get(f"/api/v1/rights/requests/{erase['id']}").json()
    assert detail["status"] == "queued", detail
    assert _product_user(url, target["email"]) is not None
