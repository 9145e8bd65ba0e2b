"""The posture page: open breach clocks, due data subject requests and whatever other domains
provide, found like jobs are."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from tests.conftest import Personas
from tests.incidents.helpers import register
from vern.core.db import Database, Scope, utcnow
from vern.incidents import overview
from vern.rights import service as rights
from vern.rights.models import RightsRequest


def _due_request(db: Database, personas: Personas, days: int) -> str:
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        req = rights.create_request(session, org_id=personas.tenant_a, kind="access",
                                    identities={"email": "kari.nordmann@example.com"},
                                    channel="staff", verified_by="attested",
                                    details={"note": "Kjent av ansatt"})
        req_id = req.id
    with db.transaction(Scope.system("test: a request received long ago")) as session:
        session.execute(update(RightsRequest).where(RightsRequest.id == req_id)
                        .values(due_at=utcnow() + timedelta(days=days)))
    return req_id


def test_every_domain_with_a_posture_module_is_a_provider() -> None:
    names = [name for name, _items in overview.providers()]
    assert "incidents" in names and "rights" in names
    assert names == sorted(names)


def test_the_posture_lists_breach_clocks_and_due_requests_overdue_first(
        db: Database, personas: Personas, login: Any) -> None:
    inc = register(db, personas, aware=utcnow() - timedelta(hours=30),
                   customers=[personas.tenant_a])
    late = _due_request(db, personas, days=-1)
    soon = _due_request(db, personas, days=2)
    _due_request(db, personas, days=25)  # not due yet: not shown
    dave = login(personas.dave)
    res = dave.get("/api/v1/posture?lang=en")
    assert res.status_code == 200, res.text
    items = res.json()["items"]
    assert [i["kind"] for i in items] == ["request", "breach", "request"]
    assert [i["overdue"] for i in items] == [True, True, False]
    assert items[0]["href"].endswith(late) and items[2]["href"].endswith(soon)
    assert items[1] == {"kind": "breach", "domain": "incidents",
                        "title": "Breach #1: notice to Fjellheim barnehage",
                        "due_at": items[1]["due_at"], "overdue": True,
                        "href": f"/console/incidents/{inc}"}
    nb = login(personas.erik).get("/api/v1/posture?lang=nb").json()["items"]
    assert nb[1]["title"] == "Brudd #1: varsel til Fjellheim barnehage"
    # A breach with several customers still to be told is one item: the first deadline, how many.
    register(db, personas, aware=utcnow() - timedelta(hours=2))
    two = [i for i in dave.get("/api/v1/posture?lang=en").json()["items"]
           if i["title"].startswith("Breach #2")]
    assert len(two) == 1 and two[0]["overdue"] is False
    assert two[0]["title"].startswith("Breach #2: 2 customer notices due, first to ")
    page = dave.get("/console/posture?lang=nb")
    assert page.status_code == 200
    assert "Brudd #1: varsel til Fjellheim barnehage" in page.text
    assert "Henvendelse fra registrert" in page.text


def test_customers_do_not_see_the_posture(login: Any, personas: Personas) -> None:
    for who in (personas.alice, personas.carol, personas.bob):
        assert login(who).get("/api/v1/posture").status_code == 403


def test_an_item_without_its_keys_is_refused() -> None:
    with pytest.raises(TypeError, match="href"):
        overview._checked("control", {"kind": "task", "title": "x", "due_at": None,
                                      "overdue": False})
