"""Manual tasks, recipients and paging through HTTP: the API, the console and the portal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from tests.conftest import Personas
from tests.rights.test_web import _csrf
from vern.accounts.roles import Role
from vern.core.db import Database, Scope
from vern.datamap.connect import engine_for, forget
from vern.datamap.service import publish_map
from vern.notify import service as notify
from vern.rights import demo, service

OWNER = "brukerstotte@fjellheim.example.com"


@pytest.fixture
def laerbar_with_helpdesk(
    db: Database, personas: Personas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[dict[str, Any]]]:
    url = f"sqlite:///{tmp_path / 'laerbar.db'}"
    demo.create_product(engine_for(url))
    people = demo.fill(engine_for(url), [personas.tenant_a, personas.tenant_b], people_per_tenant=4)
    monkeypatch.setenv("LAERBAR_DATABASE_URL", url)
    doc = yaml.safe_load(demo.map_text())
    doc["systems"]["helpdesk"] = {
        "title": "Brukerstøtte",
        "manual": {"owner": OWNER, "instructions": "Slett sakene."},
        "recipients": [{"name": "Nyhetsbrev AS", "email": "personvern@nyhetsbrev.example.com"}],
    }
    with db.transaction(Scope.system("test map")) as session:
        publish_map(session, yaml.safe_dump(doc, allow_unicode=True), source="laerbar.yaml")
    previous = notify.mailer()
    notify.install_mailer(notify.MemoryMailer())
    yield people
    notify.install_mailer(previous)
    forget(url)


def test_a_manual_task_is_confirmed_through_the_api_and_the_request_then_finishes(
    client: TestClient, laerbar_with_helpdesk: list[dict[str, Any]], api_token: Any,
    personas: Personas, login: Any,
) -> None:
    person = laerbar_with_helpdesk[0]
    client.headers["Authorization"] = "Bearer " + api_token(personas.tenant_a, Role.TENANT_ADMIN)
    created = client.post(
        "/api/v1/rights/requests",
        json={"kind": "erasure", "identities": {"email": person["email"]}, "verification": "customer_signin"},
    )
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    # A token nobody created names no person: it cannot approve (four-eyes needs a person).
    refused = client.post(f"/api/v1/rights/requests/{request_id}/approve")
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "approver"
    assert login(personas.alice).post(
        f"/api/v1/rights/requests/{request_id}/approve").status_code == 200

    detail = client.get(f"/api/v1/rights/requests/{request_id}").json()
    assert detail["status"] == "awaiting_tasks"
    assert sorted((s["system"], s["via"], s["status"], s["owner"]) for s in detail["steps"]) == [
        ("helpdesk", "manual", "pending", OWNER),
        ("helpdesk", "notice", "pending", None),  # the recipient is told once the erasure is done
    ]
    assert "Nyhetsbrev AS" in detail["recipients"]
    [task] = client.get("/api/v1/rights/tasks").json()["items"]

    empty = client.post(f"/api/v1/rights/tasks/{task['id']}/confirm", json={"note": ""})
    assert empty.status_code == 422 and "note" in empty.text
    confirmed = client.post(f"/api/v1/rights/tasks/{task['id']}/confirm", json={"note": "Sak 4711 slettet"})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["task"]["status"] == "done"

    after = client.get(f"/api/v1/rights/requests/{request_id}").json()  # run after the response
    assert after["status"] == "done"
    assert {s["via"]: s["status"] for s in after["steps"]} == {"manual": "done", "notice": "done"}
    assert client.get("/api/v1/rights/tasks").json()["items"] == []
    again = client.post(f"/api/v1/rights/tasks/{task['id']}/confirm", json={"note": "igjen"})
    assert again.status_code == 409


def test_the_api_list_pages_on(
    client: TestClient, laerbar_with_helpdesk: list[dict[str, Any]], api_token: Any, personas: Personas
) -> None:
    client.headers["Authorization"] = "Bearer " + api_token(personas.tenant_a, Role.TENANT_ADMIN)
    for i in range(3):
        made = client.post(
            "/api/v1/rights/requests",
            json={"kind": "objection", "identities": {"email": f"ola.{i}@example.com"},
                  "verification": "customer_signin"},
        )
        assert made.status_code == 201
    first = client.get("/api/v1/rights/requests?limit=2").json()
    second = client.get(f"/api/v1/rights/requests?limit=2&offset={first['next_offset']}").json()
    assert first["next_offset"] == 2 and second["next_offset"] is None
    ids = [r["id"] for r in first["items"] + second["items"]]
    assert len(ids) == len(set(ids)) == 3
    bad = client.get("/api/v1/rights/requests?limit=0")
    assert bad.status_code == 422 and "limit" in bad.text
    huge = client.get("/api/v1/rights/requests?offset=9223372036854775808")
    assert huge.status_code == 422 and "offset" in huge.text
    assert client.post("/api/v1/rights/tasks/no-such-task/confirm", json={"note": "x"}).status_code == 404


def test_the_console_confirms_a_task_and_the_portal_names_the_recipients(
    laerbar_with_helpdesk: list[dict[str, Any]],
    login: Any,
    personas: Personas,
    db: Database,
    client: TestClient,
) -> None:
    person = laerbar_with_helpdesk[1]
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        req = service.create_request(
            session, org_id=personas.tenant_a, kind="access", identities={"email": person["email"]},
            channel="portal", verified_by="attested", details={"note": "ID-kort kontrollert"},
        )
        request_id = req.id
    assert service.run(db, request_id) == "awaiting_tasks"
    alice = login(personas.alice)
    alice.headers["Accept-Language"] = "en"
    page = alice.get(f"/console/rights/requests/{request_id}")
    assert page.status_code == 200 and "Other systems" in page.text and "Confirm the task" in page.text
    [task_id] = [
        s["id"] for s in alice.get(f"/api/v1/rights/requests/{request_id}").json()["steps"]
    ]
    done = alice.post(
        f"/console/rights/tasks/{task_id}/confirm",
        data={"csrf_token": _csrf(page.text), "note": "Sakene eksportert og sendt"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].endswith(request_id)
    assert alice.get(f"/api/v1/rights/requests/{request_id}").json()["status"] == "done"

    status = client.get(f"/p/fjellheim/rights/{request_id}", headers={"Accept-Language": "nb"})
    assert status.status_code == 200
    assert "Hvem som mottar opplysningene dine" in status.text and "Nyhetsbrev AS" in status.text
