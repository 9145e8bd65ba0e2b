"""Beacons and banner posts from a distinct loopback address (127.0.0.77), through a real server:
the full address is never written - not to the database, not to any file, not to a log record,
not to the process output. The truncated address (127.0.0.0) is, which shows the test looks in
the right places."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, inspect, select, text

from tests.conftest import Personas
from tests.consent.helpers import setup_org
from tests.stats.helpers import FIREFOX, make_site
from tests.stats.server import free_port, serve
from vern.consent.models import ConsentRecord
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.stats.models import StatsDaily, StatsEvent

VISITOR = "127.0.0.77"


def _all_text(db: Database) -> str:
    """Every value of every table, as text."""
    parts = []
    with db.engine.connect() as conn:
        for table in inspect(db.engine).get_table_names():
            # Table names come from the schema itself, not from input.
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                parts.extend(repr(v) for v in row)
    return "\n".join(parts)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_visitors_full_address_is_never_written_anywhere(  # noqa: PLR0917 - fixtures
    db: Database, settings: Settings, personas: Personas, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    from vern.app.web import create_app

    setup_org(db, personas.tenant_a)
    site = make_site(db, personas.tenant_a)
    app = create_app(settings, db)
    peers: list[str] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            peers.append(scope["client"][0])  # kept in memory only, to prove who called
        await app(scope, receive, send)

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # every statement and its values
    transport = httpx.HTTPTransport(local_address=VISITOR)
    with serve(recording) as url, httpx.Client(base_url=url, transport=transport) as visitor:
        ua = {"user-agent": FIREFOX, "content-type": "text/plain"}
        for path in ("/", "/om-oss", "/kontakt"):
            res = visitor.post("/s/e", content=json.dumps({"s": site, "u": path}), headers=ua)
            assert res.status_code == 204
        assert visitor.post("/s/e", content=b"{bad", headers=ua).status_code == 400
        assert visitor.get("/s/vern-stats.js").status_code == 200
        assert visitor.get("/c/vern-consent.js").status_code == 200
        assert visitor.get("/c/fjellheim/config").status_code == 200
        choice = {"subject": "f00dfeedf00dfeed", "version": 1, "method": "banner-accept",
                  "choices": {"statistics": True, "marketing": True}}
        assert visitor.post("/c/fjellheim/consent", content=json.dumps(choice),
                            headers=ua).status_code == 201
        assert visitor.post("/c/fjellheim/consent", content=b"[]", headers=ua).status_code == 422
        assert visitor.get("/c/fjellheim/cookies").status_code == 200
        assert visitor.get("/c/public.css").status_code == 200
    assert set(peers) == {VISITOR}

    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        records = session.scalars(select(ConsentRecord)).all()
    assert {r.ip_truncated for r in records} == {"127.0.0.0"}

    # The audit trail seals addresses under data keys: open every record and look inside too.
    from vern.audit.chain import Sealer
    from vern.audit.models import AuditEvent
    from vern.audit.query import view

    with db.transaction(Scope.system("test: read the trail")) as session:
        events = session.scalars(select(AuditEvent)).all()
        audit_ips = {view(e)["ip"] for e in events}
        indexes = {e.ip_index for e in events}
    assert "127.0.0.0" in audit_ips  # the requests were recorded, with the truncated address
    assert VISITOR not in audit_ips
    assert Sealer(settings).ip_index(VISITOR) not in indexes

    everything = _all_text(db)
    assert VISITOR not in everything
    assert "127.0.0.0" in everything
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert VISITOR.encode() not in path.read_bytes(), f"full address in {path}"
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name.startswith("sqlalchemy.engine") for r in server_side)
    for record in server_side:  # the visitor's own HTTP client may log its own address
        assert VISITOR not in record.getMessage(), record.name
        assert VISITOR not in repr(record.args)
    out, err = capfd.readouterr()
    assert VISITOR not in out and VISITOR not in err


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_real_vern_serve_process_never_writes_or_prints_the_full_address(
    db: Database, settings: Settings, personas: Personas, tmp_path: Path,
) -> None:
    """The same, against the real ``vern serve`` command in its own process with its default
    logging, its stdout and stderr captured whole, and the beacon on its production path (the
    middleware's fast path, the background writer flushing every second)."""
    setup_org(db, personas.tenant_a)
    site = make_site(db, personas.tenant_a)
    port = free_port()
    env = {**os.environ, "VERN_ENV": settings.env, "VERN_DATABASE_URL": db.url,
           "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit"), "VERN_STATS_FLUSH_INTERVAL_MS": "200",
           "VERN_BASE_URL": f"http://127.0.0.1:{port}"}
    vern = Path(sys.executable).parent / "vern"
    server = subprocess.Popen([str(vern), "serve", "--port", str(port)], env=env,  # noqa: S603
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        transport = httpx.HTTPTransport(local_address=VISITOR, retries=50)
        with httpx.Client(base_url=url, transport=transport, timeout=10) as visitor:
            for _ in range(300):  # wait for the server to listen (bounded: 30 s)
                try:
                    visitor.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            ua = {"user-agent": FIREFOX, "content-type": "text/plain"}
            for path in ("/", "/om-oss", "/kontakt"):
                res = visitor.post("/s/e", content=json.dumps({"s": site, "u": path}), headers=ua)
                assert res.status_code == 204
            assert visitor.post("/s/e", content=b"{bad", headers=ua).status_code == 400
            assert visitor.get("/c/fjellheim/config").status_code == 200
            choice = {"subject": "f00dfeedf00dfeed", "version": 1, "method": "banner-reject",
                      "choices": {"statistics": False, "marketing": False}}
            assert visitor.post("/c/fjellheim/consent", content=json.dumps(choice),
                                headers=ua).status_code == 201
            assert visitor.get("/no/such/page").status_code == 404
        # A neighbour in the same /24 with the same browser is the same visitor: the visitor
        # hash is made from the truncated address, never from the full one.
        neighbour = httpx.HTTPTransport(local_address="127.0.0.78")
        with httpx.Client(base_url=url, transport=neighbour, timeout=10) as other:
            res = other.post("/s/e", content=json.dumps({"s": site, "u": "/"}), headers=ua)
            assert res.status_code == 204
    finally:
        server.send_signal(signal.SIGINT)  # a clean shutdown flushes both background writers
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output.decode(errors="replace")
    assert b"Uvicorn running" in output or b"Application startup complete" in output
    assert VISITOR.encode() not in output

    with db.transaction(Scope.system("test: read")) as session:
        assert session.scalar(select(func.count()).select_from(StatsEvent)) == 4
        assert session.scalar(select(StatsDaily.visitors)) == 1
    everything = _all_text(db)
    assert VISITOR not in everything and "127.0.0.0" in everything
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert VISITOR.encode() not in path.read_bytes(), f"full address in {path}"
