"""The portal, the API and the console, end to end through HTTP."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.conftest import Personas
from vern.audit.models import AuditEvent
from vern.core.db import Database, Scope
from vern.datamap.connect import engine_for, forget
from vern.datamap.service import publish_map
from vern.notify import service as notify
from vern.rights import demo


@pytest.fixture
def laerbar(
    db: Database, personas: Personas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[dict[str, Any]]]:
    url = f"sqlite:///{tmp_path / 'laerbar.db'}"
    demo.create_product(engine_for(url))
    people = demo.fill(engine_for(url), [personas.tenant_a, personas.tenant_b], people_per_tenant=4)
    monkeypatch.setenv("LAERBAR_DATABASE_URL", url)
    with db.transaction(Scope.system("test map")) as session:
        publish_map(session, demo.map_text(), source="laerbar.yaml")
    yield people
    forget(url)


@pytest.fixture
def mails() -> Iterator[notify.MemoryMailer]:
    previous = notify.mailer()
    memory = notify.MemoryMailer()
    notify.install_mailer(memory)
    yield memory
    notify.install_mailer(previous)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_a_person_gets_a_copy_of_their_data_through_the_portal(
    client: TestClient, laerbar: list[dict[str, Any]], mails: notify.MemoryMailer, db: Database
) -> None:
    person = laerbar[1]
    start = client.get("/p/fjellheim/rights", headers={"Accept-Language": "nb"})
    assert start.status_code == 200 and "Slett meg" in start.text
    form = client.get("/p/fjellheim/rights/new?kind=access")
    sent = client.post(
        "/p/fjellheim/rights/new",
        data={"csrf_token": _csrf(form.text), "kind": "access", "email": person["email"]},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    verify_url = sent.headers["location"]
    code_mail = mails.last_to(person["email"])
    assert code_mail is not None
    code = re.search(r"\b(\d{6})\b", code_mail.body).group(1)  # type: ignore[union-attr]

    page = client.get(verify_url)
    done = client.post(
        verify_url, data={"csrf_token": _csrf(page.text), "code": code}, follow_redirects=False
    )

    assert done.status_code == 303
    status = client.get(done.headers["location"], headers={"Accept-Language": "en"})
    assert "done" in status.text
    answer = mails.last_to(person["email"])
    assert answer is not None and answer.kind == "rights.done"
    link = re.search(r"(/p/fjellheim/download/\S+)", answer.body).group(1)  # type: ignore[union-attr]
    download = client.get(link)
    assert download.status_code == 200
    data = zipfile.ZipFile(io.BytesIO(download.content)).read("data.json").decode()
    assert person["email"] in data
    with db.transaction(Scope.system("test")) as session:
        actions = list(session.scalars(select(AuditEvent.action)))
    assert "rights.package.download" in actions and "rights.request.complete" in actions
    assert client.get(link.replace("/fjellheim/", "/havbris/")).status_code == 404


def test_the_plain_delete_me_path_needs_the_code_and_then_approval(
    client: TestClient,
    laerbar: list[dict[str, Any]],
    mails: notify.MemoryMailer,
    login: Any,
    personas: Personas,
) -> None:
    person = laerbar[2]
    form = client.get("/p/fjellheim/delete-me", headers={"Accept-Language": "en"})
    assert form.status_code == 200 and "Delete me" in form.text
    sent = client.post(
        "/p/fjellheim/rights/new",
        data={"csrf_token": _csrf(form.text), "kind": "erasure", "email": person["email"]},
        follow_redirects=False,
    )
    verify_url = sent.headers["location"]
    page = client.get(verify_url)
    wrong = client.post(verify_url, data={"csrf_token": _csrf(page.text), "code": "000000"})
    assert wrong.status_code == 422
    # The message is tied to the field it is about (WCAG 1.3.1, 3.3.1); not before a wrong code.
    assert 'aria-invalid' not in page.text
    assert re.search(r'<p role="alert" id="code-error">[^<]+</p>', wrong.text)
    assert re.search(r'<input id="code"[^>]* aria-invalid="true" aria-describedby="code-error"',
                     wrong.text)
    code = re.search(r"\b(\d{6})\b", mails.last_to(person["email"]).body).group(1)  # type: ignore[union-attr]
    client.post(verify_url, data={"csrf_token": _csrf(page.text), "code": code})
    request_id = verify_url.split("/")[-2]

    alice = login(personas.alice)
    listing = alice.get("/api/v1/rights/requests?status=open").json()["items"]
    assert [(r["id"], r["status"]) for r in listing] == [(request_id, "awaiting_approval")]
    carol = login(personas.carol)
    assert carol.post(f"/api/v1/rights/requests/{request_id}/approve").status_code == 404
    approved = alice.post(f"/api/v1/rights/requests/{request_id}/approve")
    assert approved.status_code == 200

    detail = alice.get(f"/api/v1/rights/requests/{request_id}").json()
    assert detail["status"] == "done"
    assert detail["parts"][0]["database"] == "laerbar.main" and detail["parts"][0]["status"] == "done"
    page = alice.get(f"/console/rights/requests/{request_id}")
    assert page.status_code == 200 and "laerbar.main" in page.text


def test_the_product_checks_a_restriction_with_its_api_token(
    client: TestClient, laerbar: list[dict[str, Any]], api_token: Any, personas: Personas
) -> None:
    from vern.accounts.roles import Role

    client.headers["Authorization"] = "Bearer " + api_token(personas.tenant_a, Role.TENANT_ADMIN)
    created = client.post(
        "/api/v1/rights/requests",
        json={
            "kind": "restriction",
            "identities": {"email": "kari.nordmann@example.com"},
            "verification": "customer_signin",
        },
    )
    assert created.status_code == 201, created.text

    check = client.post("/api/v1/rights/check", json={"identities": {"email": "kari.nordmann@example.com"}})
    assert check.json() == {"restricted": True, "objections": [], "withdrawals": []}
    flags = client.get("/api/v1/rights/flags").json()["items"]
    assert client.post(f"/api/v1/rights/flags/{flags[0]['id']}/lift").status_code == 200
    again = client.post("/api/v1/rights/check", json={"identities": {"email": "kari.nordmann@example.com"}})
    assert again.json()["restricted"] is False


def test_the_api_rejects_unknown_fields(client: TestClient, api_token: Any, personas: Personas) -> None:
    from vern.accounts.roles import Role

    client.headers["Authorization"] = "Bearer " + api_token(personas.tenant_a, Role.TENANT_ADMIN)
    res = client.post(
        "/api/v1/rights/requests",
        json={"kind": "access", "identities": {"email": "a@example.com"}, "priority": "high"},
    )
    assert res.status_code == 422


def test_the_sdk_client_sees_an_objection(
    app: Any, laerbar: list[dict[str, Any]], api_token: Any, personas: Personas
) -> None:
    from vern.accounts.roles import Role
    from vern.rights.client import RightsClient

    token = api_token(personas.tenant_a, Role.TENANT_ADMIN)
    with TestClient(app, base_url="http://testserver") as web:
        web.headers["Authorization"] = "Bearer " + token
        web.post(
            "/api/v1/rights/requests",
            json={
                "kind": "objection",
                "identities": {"email": "ola@example.com"},
                "details": {"purpose": "newsletter"},
                "verification": "customer_signin",
            },
        )
        rights = RightsClient("http://testserver", token, http=web)
        flags = rights.check(email="ola@example.com")
    assert flags.objects_to("newsletter") and not flags.restricted
    assert not flags.objects_to("invoicing")


def test_staff_file_a_request_on_behalf_of_a_person_in_the_console(
    laerbar: list[dict[str, Any]], login: Any, personas: Personas
) -> None:
    alice = login(personas.alice)
    alice.headers["Accept-Language"] = "en"
    form = alice.get("/console/rights/new")
    assert form.status_code == 200 and "on behalf of a person" in form.text

    made = alice.post(
        "/console/rights/new",
        data={
            "kind": "access",
            "email": laerbar[0]["email"],
            "verification": "attested",
            "note": "Møtte med førerkort",
        },
        follow_redirects=False,
    )

    assert made.status_code == 303
    detail = alice.get(made.headers["location"])
    assert detail.status_code == 200 and "laerbar.main" in detail.text
    listing = alice.get("/console/rights?status=all")
    assert "Data subject requests" in listing.text and made.headers["location"] in listing.text
    missing = alice.post("/console/rights/new", data={"kind": "access", "email": "not-an-address"})
    assert missing.status_code == 422 and "not an e-mail address" in missing.text


def test_the_console_shows_what_is_due_and_overdue(
    laerbar: list[dict[str, Any]], login: Any, personas: Personas, db: Database
) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from vern.core.db import utcnow
    from vern.rights import service
    from vern.rights.models import RightsRequest

    ids = []
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        for person in laerbar[:3]:
            req = service.create_request(
                session,
                org_id=personas.tenant_a,
                kind="access",
                identities={"email": person["email"]},
                channel="staff",
            )
            ids.append(req.id)
    now = utcnow()
    with db.transaction(Scope.system("test: time passes")) as session:
        for request_id, due in zip(ids, (now - timedelta(days=1), now + timedelta(days=3)), strict=False):
            session.execute(update(RightsRequest).where(RightsRequest.id == request_id).values(due_at=due))
    alice = login(personas.alice)
    alice.headers["Accept-Language"] = "en"

    page = alice.get("/console/rights")

    assert page.status_code == 200
    assert "Overdue: 1" in page.text and "Due within a week: 1" in page.text
    rows = {rid: page.text[page.text.index(rid) :].split("</tr>")[0] for rid in ids}
    assert "(overdue)" in rows[ids[0]]
    assert "(due soon)" in rows[ids[1]]
    assert "overdue" not in rows[ids[2]] and "due soon" not in rows[ids[2]]
    api = alice.get(f"/api/v1/rights/requests/{ids[0]}").json()
    assert api["due_state"] == "overdue"


def test_portal_visitors_are_recorded_with_the_truncated_address(  # noqa: PLR0917 - fixtures
    app: Any, db: Database, settings: Any, laerbar: list[dict[str, Any]], mails: notify.MemoryMailer,
    login: Any, personas: Personas,
) -> None:
    from vern.audit import service as audit_service

    person, visitor_ip = laerbar[1], "195.159.103.82"
    with TestClient(app, base_url="http://testserver", client=(visitor_ip, 50123)) as visitor:
        assert visitor.get("/p/fjellheim/rights").status_code == 200
        form = visitor.get("/p/fjellheim/rights/new?kind=access")
        sent = visitor.post(
            "/p/fjellheim/rights/new",
            data={"csrf_token": _csrf(form.text), "kind": "access", "email": person["email"]},
            follow_redirects=False,
        )
        assert sent.status_code == 303
        page = visitor.get(sent.headers["location"])
        wrong = visitor.post(sent.headers["location"],
                             data={"csrf_token": _csrf(page.text), "code": "000000"})
        assert wrong.status_code == 422
        assert visitor.get("/p/ingen-slik/rights").status_code == 404
    audit_service.flush_writer()
    audit_service.seal_now(db, settings)

    dave = login(personas.dave)
    found = dave.get("/api/v1/audit/events", params={"org": "*", "ip": visitor_ip, "limit": 500})
    assert found.status_code == 200 and found.json()["items"] == []  # the full address is nowhere
    items = dave.get("/api/v1/audit/events", params={"org": "*", "limit": 500}).json()["items"]
    portal = [i for i in items if (i["resource"] or "").startswith("/p/")]
    assert {i["resource"] for i in portal} >= {"/p/fjellheim/rights", "/p/fjellheim/rights/new",
                                               "/p/ingen-slik/rights"}
    assert {i["ip"] for i in portal} == {"195.159.103.0"}
    # the records the service wrote for the request (created, code sent, wrong code) too
    service_records = [i for i in items if i["action"].startswith("rights.")]
    assert service_records and {i["ip"] for i in service_records} == {"195.159.103.0"}


def test_staff_see_what_was_searched_and_confirm_a_request_that_found_nobody(
    laerbar: list[dict[str, Any]], login: Any, personas: Personas, db: Database, mails: notify.MemoryMailer
) -> None:
    alice = login(personas.alice)
    res = alice.post("/api/v1/rights/requests", json={
        "kind": "access", "identities": {"email": "Ingen.Her@example.com"}, "verification": "attested",
        "details": {"note": "ID-kort kontrollert"}})
    assert res.status_code == 201, res.text
    request_id = res.json()["id"]

    detail = alice.get(f"/api/v1/rights/requests/{request_id}").json()
    assert detail["status"] == "nobody_found"
    assert detail["summary"]["searched"]["laerbar.main"]["users"] == ["email"]
    page = alice.get(f"/console/rights/requests/{request_id}")
    assert "laerbar.main.users: email" in page.text and "confirm-nobody-found" in page.text
    notify.deliver_pending(db)
    assert mails.last_to("ingen.her@example.com") is None  # not answered before staff confirm

    confirmed = alice.post(f"/api/v1/rights/requests/{request_id}/confirm-nobody-found",
                           json={"note": "Sjekket også papirarkivet"})
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "done"
    again = alice.post(f"/api/v1/rights/requests/{request_id}/confirm-nobody-found")
    assert again.status_code == 409
    notify.deliver_pending(db)
    assert mails.last_to("ingen.her@example.com") is not None
