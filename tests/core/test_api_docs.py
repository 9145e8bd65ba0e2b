"""The API description and its documentation page: served where the docs say, complete, and
readable in a browser under Vern's own Content-Security-Policy."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests import services
from tests.console.test_browser import Server, server  # noqa: F401 - the live-server fixture
from vern.accounts.deps import access_of


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in spec["paths"].items()
            for method, op in item.items()]


def test_the_description_and_the_docs_are_served_at_their_addresses(client: TestClient) -> None:
    assert client.get("/api/openapi.json").headers["content-type"] == "application/json"
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert "/static/api-docs/ui/swagger-ui-bundle.js" in page.text
    assert "<script>" not in page.text  # no inline script: the CSP forbids it
    assert client.get(page.text.split('src="')[2].split('"')[0]).status_code == 200  # init.js
    for short, full in (("/docs", "/api/docs"), ("/openapi.json", "/api/openapi.json")):
        res = client.get(short, follow_redirects=False)
        assert res.status_code == 308 and res.headers["location"] == full


def test_every_operation_declares_security_and_problem_answers(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/api/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerToken"] == {"type": "http", "scheme": "bearer",
                                      "description": schemes["bearerToken"]["description"]}
    assert schemes["sessionCookie"]["in"] == "cookie"
    assert not any(path.startswith(("/console", "/p/")) for path in spec["paths"])
    from vern.app.web import api_routes

    rules = {(r.path, m.lower()): r for r in api_routes(app) for m in r.methods or ()}
    operations = _operations(spec)
    assert len(operations) > 40
    for path, method, op in operations:
        route = rules[(path, method)]
        kinds = {access_of(d.call).kind for d in route.dependant.dependencies  # type: ignore[union-attr]
                 if access_of(d.call) is not None}
        where = f"{method.upper()} {path}"
        if kinds == {"public"}:
            assert op["security"] == [], where
        else:
            assert op["security"] == [{"bearerToken": []}, {"sessionCookie": []}], where
            for status in ("401", "403", "404"):
                assert status in op["responses"], (where, status)
        problem = op["responses"]["429"]["content"]["application/problem+json"]
        assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}, where
        assert "Retry-After" in op["responses"]["429"]["headers"], where
        if method in ("post", "put", "delete"):
            assert {"409", "422"} <= op["responses"].keys(), where


def test_every_operation_has_a_description(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    missing = [f"{method.upper()} {path}" for path, method, op in _operations(spec)
               if len(op.get("description", "").strip()) < 20]
    assert missing == [], "operations without a description (write the route's docstring)"


def test_a_wrong_method_answers_405_with_allow(client: TestClient) -> None:
    res = client.delete("/api/v1/me")
    assert res.status_code == 405
    assert res.headers["allow"] == "GET"
    assert res.headers["content-type"] == "application/problem+json"


@pytest.mark.browser
def test_the_docs_page_renders_in_chromium_without_csp_violations(server: Server) -> None:  # noqa: F811
    chromium = services.chromium_path()
    from playwright.sync_api import expect, sync_playwright

    violations: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda msg: violations.append(msg.text)
                    if "Content Security Policy" in msg.text or "Refused to" in msg.text else None)
            page.on("pageerror", lambda err: violations.append(f"page error: {err}"))
            page.goto(server.url + "/docs")
            expect(page.get_by_role("heading", name="Vern API")).to_be_visible(timeout=20_000)
            expect(page.locator(".opblock").first).to_be_visible()
            assert page.locator(".opblock").count() > 40
            expect(page.get_by_role("button", name="Authorize")).to_be_visible()
        finally:
            browser.close()
    assert violations == []
