"""The vendor's product feeding the trail: the client and its ASGI and WSGI middleware, sending to
a real Vern app."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any
from wsgiref.util import setup_testing_defaults

from fastapi import FastAPI, Request
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.conftest import Personas
from vern.accounts.roles import Role
from vern.audit.models import AuditEvent
from vern.audit.query import view
from vern.core.db import Database, Scope
from vern.sdk import AuditClient, AuditMiddleware, WSGIAuditMiddleware
from vern.sdk.client import Transport


def to_vern(vern: TestClient) -> Transport:
    """Send the client's batches to the Vern app under test."""

    def send(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        res = vern.post(url.removeprefix("http://vern.test"), content=body, headers=headers)
        return res.status_code, res.content

    return send


def ingested(db: Database) -> list[dict[str, Any]]:
    with db.transaction(Scope.system("check")) as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.source == "ingest")
                               .order_by(AuditEvent.ts)).all()
        return [view(r) for r in rows]


def host_app() -> FastAPI:
    app = FastAPI()

    @app.get("/elever/{elev}")
    def elev(elev: str, request: Request) -> dict[str, str]:
        request.state.audit_actor = "laerer-7"
        return {"elev": elev}

    @app.get("/hemmelig")
    def hemmelig() -> dict[str, str]:
        from fastapi import HTTPException

        raise HTTPException(403)

    return app


def test_the_asgi_middleware_records_each_host_request_in_vern(
    db: Database, personas: Personas, client: TestClient, api_token: Any
) -> None:
    token = api_token(personas.tenant_a, Role.TENANT_ADMIN)
    audit = AuditClient("http://vern.test", token, transport=to_vern(client), flush_interval=0.05)
    host = TestClient(AuditMiddleware(host_app(), audit, trusted_proxies=["127.0.0.0/8"]))
    assert host.get("/elever/42", headers={"User-Agent": "Skolesystem"}).status_code == 200
    assert host.get("/hemmelig").status_code == 403
    assert audit.flush(10)
    audit.close()
    found = ingested(db)
    assert [(e["resource"], e["outcome"]) for e in found] == [
        ("/elever/42", "success"), ("/hemmelig", "denied")]
    assert found[0]["actor"] == "laerer-7" and found[0]["user_agent"] == "Skolesystem"
    assert found[0]["org_id"] == personas.tenant_a
    assert audit.stats.sent == 2 and audit.stats.dropped == 0
    assert 0 < audit.stats.busy_seconds < 10  # the background thread's CPU time, counted


def test_the_wsgi_middleware_records_after_the_response_is_sent(
    db: Database, personas: Personas, client: TestClient, api_token: Any
) -> None:
    token = api_token(personas.tenant_a, Role.TENANT_ADMIN)
    audit = AuditClient("http://vern.test", token, transport=to_vern(client), flush_interval=0.05)

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["vern.audit_actor"] = "rektor-1"
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [b"ok"]

    app = WSGIAuditMiddleware(wsgi_app, audit)
    environ: dict[str, Any] = {"PATH_INFO": "/karakterer", "REQUEST_METHOD": "POST",
                               "REMOTE_ADDR": "192.0.2.80"}
    setup_testing_defaults(environ)
    body = app(environ, lambda status, headers: None)
    assert b"".join(body) == b"ok"
    assert audit.stats.queued == 0  # nothing recorded until the server closes the response
    body.close()  # type: ignore[attr-defined]
    assert audit.flush(10)
    audit.close()
    found = ingested(db)
    assert len(found) == 1
    assert (found[0]["resource"], found[0]["actor"], found[0]["ip"]) == (
        "/karakterer", "rektor-1", "192.0.2.80")
    assert found[0]["details"]["status"] == 201


def test_the_client_retries_while_vern_is_down_and_loses_nothing(
    db: Database, personas: Personas, client: TestClient, api_token: Any
) -> None:
    token = api_token(personas.tenant_a, Role.TENANT_ADMIN)
    forward = to_vern(client)
    failures = {"left": 2}

    def flaky(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if failures["left"]:
            failures["left"] -= 1
            return 503, b"down for maintenance"
        return forward(url, body, headers)

    audit = AuditClient("http://vern.test", token, transport=flaky, flush_interval=0.05,
                        max_backoff=0.01)
    for i in range(5):
        audit.record("lesson.viewed", actor="elev-3", resource=f"lesson:{i}")
    assert audit.flush(10)
    audit.close()
    assert audit.stats.retries == 2 and audit.stats.sent == 5
    assert len(ingested(db)) == 5


def test_a_full_queue_never_blocks_the_host_and_the_gap_is_recorded(
    db: Database, personas: Personas, client: TestClient, api_token: Any
) -> None:
    token = api_token(personas.tenant_a, Role.TENANT_ADMIN)
    forward = to_vern(client)
    gate = threading.Event()

    def slow(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        gate.wait(10)
        return forward(url, body, headers)

    audit = AuditClient("http://vern.test", token, transport=slow, flush_interval=0.01,
                        max_queue=3, batch_size=1)
    results = [audit.record("lesson.viewed", resource=f"lesson:{i}") for i in range(20)]
    assert not all(results)
    assert audit.stats.dropped == results.count(False)
    gate.set()
    assert audit.flush(10)
    audit.close()
    found = ingested(db)
    gap = [e for e in found if e["action"] == "sdk.records_dropped"]
    assert sum(e["details"]["count"] for e in gap) == results.count(False)


def test_an_event_vern_refuses_is_left_out_and_the_rest_is_stored(
    db: Database, personas: Personas, client: TestClient, api_token: Any
) -> None:
    token = api_token(personas.tenant_a, Role.TENANT_ADMIN)
    audit = AuditClient("http://vern.test", token, transport=to_vern(client), flush_interval=0.05)
    audit.record("lesson.viewed", resource="lesson:1")
    audit.record("lesson.viewed", resource="lesson:2", ip="not-an-address")
    audit.record("lesson.viewed", resource="lesson:3")
    assert audit.flush(10)
    audit.close()
    assert audit.stats.refused == 1 and "events.1.ip" in (audit.stats.last_error or "")
    assert sorted(e["resource"] for e in ingested(db)) == ["lesson:1", "lesson:3"]
