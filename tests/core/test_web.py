"""The web layer for every route: problem+json errors naming the field, body limits, rate limits,
security headers, request ids and the protected metrics endpoint."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import Personas, create_personas, make_settings
from vern.accounts.roles import Role
from vern.app.web import create_app
from vern.core.db import Database

PROBLEM = "application/problem+json"


def _problem(res, status: int) -> dict:  # type: ignore[no-untyped-def, type-arg]
    assert res.status_code == status, res.text
    assert res.headers["content-type"] == PROBLEM
    body = res.json()
    assert body["status"] == status and body["type"].startswith("/problems/")
    return body  # type: ignore[no-any-return]


def test_an_unknown_json_field_is_rejected_by_name(client: TestClient) -> None:
    body = _problem(client.post("/api/v1/session", json={
        "email": "a@example.com", "password": "x", "remember_me": True}), 422)
    assert body["errors"] == [{"field": "remember_me", "message": "unknown field",
                               "code": "extra_forbidden"}]
    assert body["detail"] == "remember_me: unknown field"


def test_a_missing_field_is_named(client: TestClient) -> None:
    body = _problem(client.post("/api/v1/session", json={"email": "a@example.com"}), 422)
    assert [e["field"] for e in body["errors"]] == ["password"]
    assert body["errors"][0]["code"] == "missing"


def test_a_field_of_the_wrong_type_is_named(login, personas: Personas) -> None:  # type: ignore[no-untyped-def]
    alice = login(personas.alice)
    body = _problem(alice.post("/api/v1/tokens", json={"name": "x", "role": "member",
                                                       "days": "many"}), 422)
    assert [e["field"] for e in body["errors"]] == ["days"]
    body = _problem(alice.post("/api/v1/users", json={"email": ["a@example.com"], "name": 7,
                                                      "role": "member"}), 422)
    assert {e["field"] for e in body["errors"]} == {"email", "name"}


def test_a_body_that_is_not_json_is_refused(client: TestClient) -> None:
    body = _problem(client.post("/api/v1/session", content=b"{not json",
                                headers={"content-type": "application/json"}), 422)
    assert body["errors"]


def test_an_overlong_value_is_named(client: TestClient) -> None:
    body = _problem(client.post("/api/v1/session", json={"email": "a" * 300 + "@example.com",
                                                          "password": "x"}), 422)
    assert body["errors"][0]["field"] == "email"


def test_unknown_routes_and_methods_answer_with_problems(client: TestClient) -> None:
    _problem(client.get("/api/v1/does-not-exist"), 404)
    body = _problem(client.put("/healthz"), 405)
    assert body["code"] == "http-error"


def test_an_oversized_body_with_a_length_is_refused_before_it_is_read(
    client: TestClient, personas: Personas
) -> None:
    big = b'{"email": "' + b"a" * 2_000_000 + b'", "password": "x"}'
    body = _problem(client.post("/api/v1/session", content=big,
                                headers={"content-type": "application/json"}), 413)
    assert body["code"] == "payload-too-large"


def test_an_oversized_chunked_body_is_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"email": "'
        for _ in range(40):
            yield b"a" * 65_536
        yield b'", "password": "x"}'

    res = client.post("/api/v1/session", content=chunks(),
                      headers={"content-type": "application/json"})
    assert "content-length" not in res.request.headers
    body = _problem(res, 413)
    assert body["code"] == "payload-too-large"


def test_a_small_chunked_body_is_accepted(client: TestClient, personas: Personas) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"email": "' + personas.bob.email.encode() + b'", '
        yield b'"password": "' + personas.bob.password.encode() + b'"}'

    res = client.post("/api/v1/session", content=chunks(),
                      headers={"content-type": "application/json"})
    assert res.status_code == 200, res.text


def _strict_app(db: Database, tmp: Path, **overrides: object):  # type: ignore[no-untyped-def]
    return create_app(make_settings(db.url, tmp, **overrides), db)


def test_the_api_rate_limit_answers_429_with_retry_after(db: Database, tmp_path: Path) -> None:
    address = f"2001:db8::{secrets.token_hex(2)}"
    with TestClient(_strict_app(db, tmp_path, rate_limit_api_unauthenticated="3/minute"),
                    client=(address, 1)) as client:
        for _ in range(3):
            assert client.get("/api/v1/me").status_code == 401
        body = _problem(client.get("/api/v1/me"), 429)
        res = client.get("/api/v1/me")
        assert body["code"] == "rate-limited"
        assert 0 < int(res.headers["retry-after"]) <= 60
        assert res.headers["x-content-type-options"] == "nosniff"
        assert client.get("/healthz").status_code == 200  # only the API is limited


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def _assert_security_headers(res, *, hsts: bool) -> None:  # type: ignore[no-untyped-def]
    for name, value in SECURITY_HEADERS.items():
        assert res.headers.get(name) == value, (res.request.url, name)
    csp = res.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "permissions-policy" in res.headers
    assert ("strict-transport-security" in res.headers) is hsts


def test_every_response_carries_the_security_headers(
    login, client: TestClient, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    alice = login(personas.alice)
    responses = [
        client.get("/healthz"), client.get("/readyz"), client.get("/api/v1/me"),
        client.get("/nowhere"), client.post("/api/v1/session", json={}),
        client.post("/api/v1/session", content=b"x" * 2_000_000), client.get("/metrics"),
        client.get("/", follow_redirects=False), alice.get("/api/v1/me"),
        alice.get("/api/v1/tokens"), alice.post("/api/v1/session/everywhere",
                                                 headers={"X-CSRF-Token": "wrong"}),
    ]
    for res in responses:
        _assert_security_headers(res, hsts=False)


def test_hsts_is_sent_in_production_only(db: Database, tmp_path: Path) -> None:
    from tests.accounts.test_sessions import production_settings

    with TestClient(create_app(production_settings(db, tmp_path), db),
                    base_url="https://vern.example.com") as client:
        for res in (client.get("/healthz"), client.get("/api/v1/me"), client.get("/nowhere")):
            _assert_security_headers(res, hsts=True)
            assert "max-age=63072000" in res.headers["strict-transport-security"]
        assert client.get("/api/docs").status_code == 404  # no API explorer in production
        assert client.get("/docs").status_code == 404
        assert client.get("/api/openapi.json").status_code == 200  # the description is served


def test_a_request_id_is_echoed_or_made(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers[
        "x-request-id"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-Id": "<script>"}).headers["x-request-id"]
    assert made != "<script>" and made.isalnum()


# -- metrics ---------------------------------------------------------------------------------------


def test_metrics_need_the_metrics_permission(
    login, client: TestClient, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    _problem(client.get("/metrics"), 401)
    for persona in (personas.bob, personas.alice, personas.erik):
        _problem(login(persona).get("/metrics"), 403)
    res = login(personas.dave).get("/metrics")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/plain")
    assert "# TYPE vern_http_requests" in res.text
    assert 'route="/api/v1/session"' in res.text


@pytest.mark.parametrize(
    "case",
    [("vendor", Role.AUDITOR, 200), ("vendor", Role.SECURITY_OFFICER, 200),
     ("vendor", Role.SUPPORT, 403), ("tenant_a", Role.TENANT_ADMIN, 403)],
)
def test_metrics_can_be_scraped_with_a_token(
    client: TestClient, api_token, personas: Personas, case: tuple[str, Role, int]  # type: ignore[no-untyped-def]
) -> None:
    where, role, status = case
    token = api_token(getattr(personas, where), role)
    res = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert res.status_code == status
    if status == 200:
        assert "vern_http_request_seconds" in res.text


def test_a_production_app_starts_and_serves_with_its_own_keys(db: Database, tmp_path: Path) -> None:
    from tests.accounts.test_sessions import production_settings

    settings = production_settings(db, tmp_path)
    app = create_app(settings, db)
    people = create_personas(db, settings)
    with TestClient(app, base_url="https://vern.example.com") as client:
        res = client.get("/api/v1/users/" + people.bob.user_id)
        _problem(res, 401)
