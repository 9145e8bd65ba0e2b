"""Cookies the banner cannot remove (HttpOnly, another path, a Domain attribute) are expired by
the vendor's server: the SDK's middleware, fed the purposes' cookie declarations and the visitor's
consent (the banner's cookie, or Vern's API), adds ``Set-Cookie: NAME=; Max-Age=0`` with the
declared path and domain for each declared cookie of a refused purpose."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.conftest import Personas
from tests.consent.helpers import setup_org
from tests.stats.server import serve
from vern.accounts.roles import Role
from vern.core.db import Database
from vern.sdk import (
    ConsentClient,
    ConsentCookieMiddleware,
    WSGIConsentCookieMiddleware,
    expired_cookies,
)
from vern.sdk.consent import banner_choices

SUBJECT = "c0ffee00c0ffee00c0ffee00c0ffee00"
PURPOSES: list[dict[str, Any]] = [
    {"key": "necessary", "kind": "necessary",
     "cookies": [{"name": "vern_consent"}, {"name": "session"}]},
    {"key": "statistics", "kind": "statistics", "cookies": [{"name": "_track"}]},
    {"key": "marketing", "kind": "marketing", "cookies": [
        {"name": "_ads*"},
        {"name": "ads_session", "path": "/shop", "domain": "fjellheim.example.com"},
        {"name": "__Host-ads"},
    ]},
]


def banner_cookie(choices: dict[str, bool], version: int = 1) -> str:
    """The value the banner writes: encodeURIComponent(JSON.stringify(state))."""
    state = {"s": SUBJECT, "v": version, "c": choices, "t": 1765000000000, "g": False}
    return urllib.parse.quote(json.dumps(state, separators=(",", ":")), safe="")


def test_only_the_declared_cookies_of_refused_purposes_are_expired_where_they_were_set() -> None:
    present = ["session", "vern_consent", "_track", "_ads_id", "_ads_seen", "ads_session",
               "__Host-ads", "unrelated"]
    headers = expired_cookies(PURPOSES, {"statistics": True, "marketing": False}, present)
    assert headers == [
        "_ads_id=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/",
        "_ads_seen=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/",
        "ads_session=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/shop; "
        "Domain=fjellheim.example.com",
        "__Host-ads=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure",
    ]
    # Nothing allowed: statistics too; the necessary ones and undeclared cookies never.
    names = [h.split("=")[0] for h in expired_cookies(PURPOSES, {}, present)]
    assert names == ["_track", "_ads_id", "_ads_seen", "ads_session", "__Host-ads"]
    # Only what the request carries: no header for a cookie the visitor does not have.
    assert expired_cookies(PURPOSES, {}, ["session", "unrelated"]) == []


def test_the_banner_cookie_is_read_as_the_banner_reads_it() -> None:
    value = banner_cookie({"statistics": True, "marketing": False})
    assert banner_choices({"vern_consent": value}) == {"statistics": True, "marketing": False}
    assert banner_choices({"vern_consent": value}, version=1) == {"statistics": True,
                                                                  "marketing": False}
    assert banner_choices({"vern_consent": value}, version=2) == {}  # asked again: no choice
    assert banner_choices({"vern_consent": "%7Bbroken"}) == {}
    assert banner_choices({"vern_consent": urllib.parse.quote('{"c": {"statistics": "yes"}}')}) == {
        "statistics": False}
    assert banner_choices({}) == {}


def _host(purposes: Any, **kwargs: Any) -> Any:
    """The vendor's product: sign-in sets an HttpOnly advertising cookie the banner cannot see."""

    def login(_request: Request) -> Response:
        response = PlainTextResponse("signed in")
        response.set_cookie("_ads_id", "42", httponly=True, path="/")
        response.set_cookie("_track", "1", httponly=True, path="/")
        return response

    def home(request: Request) -> Response:
        return PlainTextResponse(",".join(sorted(request.cookies)))

    app = Starlette(routes=[Route("/login", login), Route("/", home)])
    return ConsentCookieMiddleware(app, purposes, **kwargs)


def test_the_asgi_middleware_expires_httponly_cookies_the_banner_cannot_reach() -> None:
    with TestClient(_host(PURPOSES, version=1), base_url="http://testserver") as c:
        c.cookies.set("vern_consent", banner_cookie({"statistics": True, "marketing": True}))
        c.get("/login")
        assert {"_ads_id", "_track"} <= set(c.cookies.keys())
        kept = c.get("/")
        assert "set-cookie" not in kept.headers  # everything allowed: nothing touched
        assert {"_ads_id", "_track"} <= set(c.cookies.keys())

        # The visitor refuses marketing in the banner (only the banner's cookie changes).
        c.cookies.set("vern_consent", banner_cookie({"statistics": True, "marketing": False}))
        refused = c.get("/")
        assert refused.headers.get_list("set-cookie") == [
            "_ads_id=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"]
        names = set(c.cookies.keys())
        assert "_ads_id" not in names and "_track" in names
        assert c.get("/").text == "_track,vern_consent"

    # A new cookie-policy version: the old choice no longer counts, so nothing is allowed.
    with TestClient(_host(PURPOSES, version=2), base_url="http://testserver") as c:
        c.cookies.set("vern_consent", banner_cookie({"statistics": True, "marketing": True}))
        c.cookies.set("_track", "1")
        assert [v.split("=")[0] for v in c.get("/").headers.get_list("set-cookie")] == ["_track"]


def test_consent_from_vern_s_api_and_the_declaration_s_paths_and_domains(
        app: Any, db: Database, personas: Personas, api_token: Any) -> None:
    """The declaration (with a path and a domain) and the decision both come from Vern; a
    withdrawal recorded in Vern expires the cookie on the visitor's next request."""
    setup_org(db, personas.tenant_a)
    token = api_token(personas.tenant_a, Role.TENANT_ADMIN)
    with TestClient(app, base_url="http://testserver") as raw:
        raw.headers["Authorization"] = f"Bearer {token}"
        bad = raw.post("/api/v1/consent/purposes", json={
            "key": "ads2", "kind": "marketing", "legal_basis": "a", "name_nb": "Annonser",
            "name_en": "Ads", "cookies": [{"name": "shop_ads", "path": "shop; Domain=evil"}]})
        assert bad.status_code == 422 and "cookies.0.path" in bad.text
        bad = raw.post("/api/v1/consent/purposes", json={
            "key": "ads2", "kind": "marketing", "legal_basis": "a", "name_nb": "Annonser",
            "name_en": "Ads", "cookies": [{"name": "shop_ads", "domain": "https://x.example.com"}]})
        assert bad.status_code == 422 and "cookies.0.domain" in bad.text
        made = raw.post("/api/v1/consent/purposes", json={
            "key": "ads2", "kind": "marketing", "legal_basis": "a", "name_nb": "Annonser",
            "name_en": "Ads", "cookies": [{"name": "shop_ads", "provider": "Annonse AS",
                                          "path": "/shop", "domain": ".Fjellheim.example.com"}]})
        assert made.status_code == 201, made.text
    with serve(app) as url, ConsentClient(url, token) as sdk:
        purposes = sdk.purposes()
        declared = next(p for p in purposes if p["key"] == "ads2")["cookies"][0]
        assert (declared["path"], declared["domain"]) == ("/shop", "fjellheim.example.com")
        sdk.record(SUBJECT, {"ads2": "granted"})
        host = _host(sdk.purposes, decide=lambda cookies: sdk.allowed(cookies["uid"])
                     if "uid" in cookies else None)
        with TestClient(host, base_url="http://testserver") as c:
            c.cookies.set("uid", SUBJECT)
            c.cookies.set("shop_ads", "7")
            assert "set-cookie" not in c.get("/").headers
            sdk.withdraw(SUBJECT, ["ads2"])
            assert c.get("/").headers.get_list("set-cookie") == [
                "shop_ads=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/shop; "
                "Domain=fjellheim.example.com"]


@pytest.mark.parametrize(("choices", "expected"), [
    ({"statistics": True, "marketing": True}, []),
    ({"statistics": False, "marketing": True}, ["_track"]),
])
def test_the_wsgi_middleware_does_the_same(choices: dict[str, bool], expected: list[str]) -> None:
    seen: list[Any] = []

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    app = WSGIConsentCookieMiddleware(wsgi_app, PURPOSES)
    cookie = f"vern_consent={banner_cookie(choices)}; _track=1; session=abc"
    body = app({"HTTP_COOKIE": cookie, "REQUEST_METHOD": "GET"},
               lambda status, headers, exc_info=None: seen.append((status, headers)))
    assert body == [b"ok"]
    status, headers = seen[0]
    assert status == "200 OK"
    assert [v.split("=")[0] for k, v in headers if k == "Set-Cookie"] == expected
