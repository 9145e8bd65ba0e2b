"""The beacon and report routes through the whole app (middleware, access rules, tenant scope)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from tests.conftest import Personas
from tests.stats.helpers import FIREFOX, make_site
from vern.core.db import Database, Scope
from vern.stats.models import PublicReject, StatsEvent


def _client(app: Any, ip: str = "195.159.103.82") -> TestClient:
    return TestClient(app, base_url="http://testserver", client=(ip, 50123))


def _post(c: TestClient, body: bytes, **headers: str) -> Any:
    return c.post("/s/e", content=body, headers={"content-type": "text/plain",
                                                  "user-agent": FIREFOX, **headers})


def test_a_beacon_is_counted_and_shows_in_the_report(
        app: Any, db: Database, personas: Personas, login: Any) -> None:
    site = make_site(db, personas.tenant_a)
    with _client(app) as c:
        res = _post(c, json.dumps({"s": site, "u": "/om-oss?epost=ola@example.com",
                                   "r": "https://duckduckgo.com/?q=barnehage"}).encode())
        assert res.status_code == 204
        assert res.headers["access-control-allow-origin"] == "*"
    alice = login(personas.alice)
    rep = alice.get(f"/api/v1/stats/sites/{site}/report?days=7").json()
    assert rep["totals"]["pageviews"] == 1
    assert rep["top"]["page"] == [{"value": "/om-oss", "count": 1}]
    assert rep["top"]["referrer"] == [{"value": "duckduckgo.com", "count": 1}]
    csv_res = alice.get(f"/api/v1/stats/sites/{site}/export.csv?interval=week")
    assert csv_res.headers["content-type"].startswith("text/csv")
    page = alice.get(f"/console/stats/{site}?interval=month&days=90")
    assert page.status_code == 200
    assert page.text.count("<svg") == 3 and "/om-oss" in page.text  # views/visitors, bounce, visit
    assert 'id="bounce-title"' in page.text and 'id="duration-title"' in page.text


def test_do_not_track_and_gpc_are_respected(app: Any, db: Database, personas: Personas) -> None:
    site = make_site(db, personas.tenant_a)
    body = json.dumps({"s": site, "u": "/"}).encode()
    with _client(app) as c:
        assert _post(c, body, dnt="1").status_code == 204
        assert _post(c, body, **{"sec-gpc": "1"}).status_code == 204
    with db.transaction(Scope.system("test read")) as session:
        assert session.scalars(select(StatsEvent)).all() == []


def test_malformed_beacons_get_4xx_and_are_counted(app: Any, db: Database, personas: Personas) -> None:
    make_site(db, personas.tenant_a)
    with _client(app) as c:
        assert _post(c, b"{broken").status_code == 400
        assert _post(c, json.dumps({"s": "00000000-0000-0000-0000-000000000000",
                                    "u": "/"}).encode()).status_code == 404
        assert _post(c, b"x" * 4000).status_code == 413
    with db.transaction(Scope.system("test read")) as session:
        counts = {r.reason: r.count for r in session.scalars(select(PublicReject))}
        assert session.scalars(select(StatsEvent)).all() == []
    assert counts == {"not-json": 1, "unknown-site": 1, "too-large": 1}


def test_the_beacon_script_is_small_and_served_gzipped(app: Any) -> None:
    with _client(app) as c:
        res = c.get("/s/vern-stats.js", headers={"accept-encoding": "gzip"})
    assert res.status_code == 200
    assert res.headers["content-encoding"] == "gzip"
    assert len(res.content) <= 2048
    assert "cookie" not in res.text.replace("No cookies", "")


def test_a_site_is_made_from_the_console_and_hidden_from_other_tenants(
        app: Any, personas: Personas, login: Any) -> None:
    alice = login(personas.alice)
    res = alice.post("/console/stats/sites", data={"name": "Nettsiden", "domain": "fjellheim.example.com",
                                                   "csrf_token": alice.headers["X-CSRF-Token"]},
                     follow_redirects=False)
    assert res.status_code == 303
    site = res.headers["location"].rsplit("/", 1)[1]
    carol = login(personas.carol)
    assert carol.get(f"/api/v1/stats/sites/{site}/report").status_code == 404
    assert site not in carol.get("/api/v1/stats/sites").text
    bad = alice.post("/api/v1/stats/sites", json={"name": "X", "domain": "not a domain"})
    assert bad.status_code == 422


def test_public_routes_hand_only_the_truncated_address_to_the_request_audit(
        app: Any, db: Database, personas: Personas) -> None:
    site = make_site(db, personas.tenant_a)
    seen: list[dict[str, Any]] = []

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        if scope["type"] == "http":
            seen.append({"path": scope["path"], "state": dict(scope.get("state", {})),
                         "client": scope.get("client")})

    with TestClient(outer, base_url="http://testserver", client=("195.159.103.82", 40000)) as c:
        _post(c, json.dumps({"s": site, "u": "/"}).encode())
        _post(c, b"{broken")
        c.get("/s/vern-stats.js")
        c.get("/c/vern-consent.js")
        c.get("/c/fjellheim/config")
        c.post("/c/fjellheim/consent", content=b"{")
        c.get("/c/nobody/cookies")
    assert len(seen) == 7
    for entry in seen:
        assert entry["state"]["audit_ip"] == "195.159.103.0", entry["path"]
        assert entry["state"]["client_ip"] == "195.159.103.0", entry["path"]
        assert entry["client"][0] == "195.159.103.0", entry["path"]


def test_a_chunked_beacon_is_read_within_the_limit(app: Any, db: Database, personas: Personas) -> None:
    """Without a declared length the body is read in chunks and refused as soon as it passes the
    limit; a small chunked beacon is taken as usual."""
    site = make_site(db, personas.tenant_a)
    body = json.dumps({"s": site, "u": "/"}).encode()
    with _client(app) as c:
        small = c.post("/s/e", content=iter([body[:10], body[10:]]),
                       headers={"content-type": "text/plain", "user-agent": FIREFOX})
        big = c.post("/s/e", content=iter([b"x" * 1500, b"x" * 1500]),
                     headers={"content-type": "text/plain", "user-agent": FIREFOX})
    assert small.status_code == 204
    assert big.status_code == 413 and big.headers["x-vern-error"] == "too-large"
    with db.transaction(Scope.system("test read")) as session:
        assert len(session.scalars(select(StatsEvent)).all()) == 1


SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy",
                    "x-frame-options", "cross-origin-opener-policy", "permissions-policy",
                    "strict-transport-security")


def test_beacon_answers_carry_the_same_security_headers_as_other_answers(
        app: Any, db: Database, personas: Personas) -> None:
    """``POST /s/e`` is answered on the middleware's fast path; accepted, refused and DNT answers
    still get every security header an ordinary answer gets."""
    site = make_site(db, personas.tenant_a)
    with _client(app) as c:
        ordinary = c.get("/s/vern-stats.js")
        expected = {h: ordinary.headers[h] for h in SECURITY_HEADERS if h in ordinary.headers}
        assert "content-security-policy" in expected and "x-content-type-options" in expected
        answers = [
            _post(c, json.dumps({"s": site, "u": "/"}).encode()),
            _post(c, b"{broken"),
            _post(c, b"x" * 4000),
            _post(c, json.dumps({"s": site, "u": "/"}).encode(), dnt="1"),
        ]
    assert [a.status_code for a in answers] == [204, 400, 413, 204]
    for answer in answers:
        assert {h: answer.headers.get(h) for h in expected} == expected
        assert answer.headers["access-control-allow-origin"] == "*"  # its own headers stay
