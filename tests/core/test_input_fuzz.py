"""Every route, driven with values out of range: numbers beyond 64 bits, JSON nested thousands
deep, NUL characters, lone surrogates, dates in year 1 or 9999, overlong text - in its path
parameters, its query string and its body, as a caller allowed to use it. No answer may be a
server error; a refusal is a problem (``application/problem+json``; console and portal pages may
answer with their HTML error page). Values that are refused everywhere (a NUL anywhere, a lone
surrogate, a number beyond 64 bits or too deep nesting in a JSON body) must be refused.

Routes are enumerated from the app, like the role matrix does, so a new route is driven the moment
it exists. A few examples per route keep it to well under a minute per database.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import BaseModel
from starlette.testclient import TestClient

from tests.conftest import Personas
from tests.matrix.test_matrix import PARAM, Who, _access, _client_for, _samples, _who
from vern.app.web import api_routes
from vern.core.config import Settings, stats_settings
from vern.core.db import Database
from vern.core.inputs import INT64_MAX, INT64_MIN, MAX_URL_TEXT

EXAMPLES_PER_ROUTE = 6
URL_TEXT = 4_000
PROBLEM = "application/problem+json"
PAGE_PREFIXES = ("/console", "/p/", "/login", "/logout")
EXTRA_QUERY = ("since", "until", "version", "cursor", "limit", "days", "tree_size", "old", "t")
FORM_FIELDS = ("email", "password", "name", "code", "org_id", "role", "kind", "note", "reason",
               "months", "subject", "body", "key", "days", "next", "domain", "lang", "t")


per_route = hypothesis_settings(
    max_examples=EXAMPLES_PER_ROUTE, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture])


@dataclass(frozen=True)
class Deep:
    """A JSON text of ``depth`` nested arrays (unclosed when ``closed`` is false)."""

    depth: int
    closed: bool

    def text(self) -> str:
        return "[" * self.depth + ("]" * self.depth if self.closed else "")


def _nul(a: str, b: str) -> str:
    return a + "\x00" + b


def _surrogate(a: str, code: int) -> str:
    return a + chr(code)


texts = st.text(max_size=8)
huge_ints = st.integers(min_value=INT64_MAX + 1, max_value=2**200) | st.integers(
    min_value=-(2**200), max_value=INT64_MIN - 1)
nul_texts = st.builds(_nul, texts, texts)
surrogates = st.builds(_surrogate, texts, st.integers(0xD800, 0xDFFF))
bad_dates = st.sampled_from([
    "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59Z", "0001-01-01", "9999-12-31", "1969-12-31", "0000-00-00",
    "99999-01-01", "-0001-01-01"])
overlong = st.integers(300, 20_000).map(lambda n: "ø" * n)
deep = st.builds(Deep, st.integers(33, 3_000), st.booleans())
odd_floats = st.sampled_from([float("inf"), float("-inf"), float("nan")])
bad_values = st.one_of(huge_ints, nul_texts, surrogates, bad_dates, overlong, deep, odd_floats)


def _always_refused_in_json(value: Any) -> bool:
    if isinstance(value, Deep):
        return True
    if isinstance(value, float):
        return True
    if isinstance(value, int):
        return True
    return isinstance(value, str) and ("\x00" in value or any(
        0xD800 <= ord(c) <= 0xDFFF for c in value))


def _as_text(value: Any, limit: int | None = None) -> str:
    """The value as text; ``limit`` keeps a URL within what a client sends (64 KB)."""
    text = value.text() if isinstance(value, Deep) else str(value)
    return text[:limit]


def _encode(value: str) -> str:
    """Percent-encoded UTF-8 (a lone surrogate as the bytes it would have)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _json_body(value: Any, fields: list[str], field: str | None) -> bytes:
    if isinstance(value, Deep):
        inner = value.text()
        if field is None:
            return inner.encode()
        return (json.dumps({field: "@"}).replace('"@"', inner)).encode()
    if field is None:
        return json.dumps(value).encode("utf-8", "surrogatepass")
    return json.dumps({field: value}).encode("utf-8", "surrogatepass")


def _body_fields(route: APIRoute) -> list[str]:
    params = route.dependant.body_params
    if len(params) == 1:
        annotation = params[0].field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return list(annotation.model_fields)
    return [p.alias for p in params]


def _typed_queries(route: APIRoute) -> frozenset[str]:
    """Query parameters that take a number, a date or time, or one of fixed choices."""
    return frozenset(q.alias for q in route.dependant.query_params
                     if re.search(r"int|date|Literal", repr(q.field_info.annotation)))


def _is_form(route: APIRoute) -> bool:
    if route.path in ("/s/e", "/c/{consent_org}/consent"):
        return False
    return not route.path.startswith("/api/")


@dataclass
class Target:
    route: APIRoute
    method: str
    client: TestClient
    values: dict[str, str]
    params: list[str]
    queries: list[str]
    body_names: list[str]
    typed: frozenset[str]  # declared query parameters that are not free text

    @property
    def page(self) -> bool:
        return not self.route.include_in_schema or self.route.path.startswith(PAGE_PREFIXES) or (
            self.route.path.startswith("/c/") and self.method == "GET") or (
            self.route.path.startswith("/c/") and "newsletter" in self.route.path)


def _drive(target: Target, where: str, name: str | None, value: Any) -> None:
    route, method = target.route, target.method
    values = dict(target.values)
    query = ""
    body: bytes | None = None
    headers = {"accept": "application/json"}
    must_refuse = False
    if where == "path" and name is not None:
        values[name] = _as_text(value, URL_TEXT)
        must_refuse = "\x00" in values[name] or len(values[name]) > MAX_URL_TEXT
    path = PARAM.sub(lambda m: _encode(values[m.group(1)]), route.path)
    if where == "query" and name is not None:
        query = "?" + _encode(name) + "=" + _encode(_as_text(value, URL_TEXT))
        # every bad value is out of range, not a number, not a date or not one of the choices
        text = _as_text(value, URL_TEXT)
        must_refuse = "\x00" in text or len(text) > MAX_URL_TEXT or name in target.typed
    if where == "body":
        if _is_form(route):
            body = ("=".join((_encode(name or "email"), _encode(_as_text(value))))).encode()
            headers["content-type"] = "application/x-www-form-urlencoded"
            must_refuse = "\x00" in _as_text(value)
        else:
            body = _json_body(value, _body_fields(route), name)
            plain = route.path in ("/s/e", "/c/{consent_org}/consent")
            headers["content-type"] = "text/plain" if plain else "application/json"
            must_refuse = _always_refused_in_json(value)
    res = target.client.request(method, path + query, content=body, headers=headers)
    label = f"{method} {route.path} {where} {name!r}={_as_text(value)[:60]!r}"
    assert res.status_code < 500, f"{label}: server error {res.status_code}: {res.text[:300]}"
    if must_refuse:
        assert 400 <= res.status_code < 500, f"{label}: not refused: {res.status_code}"
    if res.status_code >= 400 and route.path != "/s/e":
        kind = res.headers.get("content-type", "")
        if target.page:
            assert kind.startswith((PROBLEM, "text/html")), f"{label}: {kind}"
        else:
            assert kind == PROBLEM, f"{label}: {kind}: {res.text[:200]}"
            problem = res.json()
            assert problem["status"] == res.status_code and problem["type"].startswith(
                "/problems/")
            if res.status_code == 422:
                assert problem.get("errors"), f"{label}: a 422 names no field: {problem}"
    elif route.path == "/s/e" and res.status_code >= 400:
        assert res.headers.get("x-vern-error"), f"{label}: refusal without a reason"


def _driver(target: Target, wheres: list[str]) -> Any:
    """A Hypothesis test of one route and method: where, which field, what value."""

    @per_route
    @given(where=st.sampled_from(wheres), data=st.data(), value=bad_values)
    def drive(where: str, data: st.DataObject, value: Any) -> None:
        name: str | None
        if where == "path":
            name = data.draw(st.sampled_from(target.params))
        elif where == "query":
            name = data.draw(st.sampled_from(target.queries))
        elif _is_form(target.route):
            name = data.draw(st.sampled_from(target.body_names))
        else:  # one field of the body, or the whole body
            name = data.draw(st.none() | st.sampled_from(target.body_names))
        _drive(target, where, name, value)

    return drive


def _caller(route: APIRoute, whos: list[Who], personas: Personas) -> Who:
    access = _access(route)
    assert access is not None, f"{route.path}: no access rule"
    if access.kind == "public":
        return whos[0]
    if access.kind == "partial":
        return next(w for w in whos if w.name == "alice")
    allowed = [w for w in whos if w.kind != "anonymous" and access.perms <= w.perms]
    assert allowed, f"{route.path}: no persona holds {access.perms}"
    in_a = [w for w in allowed if w.org_id == personas.tenant_a]
    return (in_a or allowed)[0]


@pytest.fixture(autouse=True)
def _refusals_counted_at_once(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("VERN_STATS_FLUSH_INTERVAL_MS", "0")
    stats_settings.cache_clear()
    yield
    stats_settings.cache_clear()


def test_no_route_answers_out_of_range_input_with_a_server_error(
    app: Any, db: Database, settings: Settings, personas: Personas
) -> None:
    factories = _samples()
    whos = _who(personas)
    routes = sorted(api_routes(app), key=lambda r: (r.path, sorted(r.methods)))
    assert len(routes) >= 20
    driven = 0
    for route in routes:
        params = PARAM.findall(route.path)
        queries = [q.alias for q in route.dependant.query_params] + list(EXTRA_QUERY)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            who = _caller(route, whos, personas)
            values = {p: factories[p](db, personas, settings).value for p in params}
            client = _client_for(who, app, db, settings, personas)
            target = Target(route, method, client, values, params, queries,
                            _body_fields(route) or list(FORM_FIELDS), _typed_queries(route))
            wheres = ["query"] + (["path"] if params else []) + (
                ["body"] if method in ("POST", "PUT", "PATCH", "DELETE") else [])
            _driver(target, wheres)()
            client.close()
            driven += 1
    assert driven >= len(routes)


def test_the_json_depth_check_agrees_with_a_parser() -> None:
    """``json_depth_over`` against a plain count, for nested arrays and objects mixed with
    strings that hold brackets."""
    from vern.core.inputs import MAX_JSON_DEPTH, json_depth_over

    def nest(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.lists(inner, max_size=3) | st.dictionaries(
            st.text(alphabet="[]{}ab", max_size=3), inner, max_size=3)

    @hypothesis_settings(max_examples=200, deadline=None, database=None)
    @given(st.recursive(st.none() | st.text(alphabet="[]{}\"\\ab", max_size=6), nest,
                        max_leaves=60))
    def agree(value: Any) -> None:
        text = json.dumps(value)

        def depth(v: Any) -> int:
            if isinstance(v, list):
                return 1 + max((depth(x) for x in v), default=0)
            if isinstance(v, dict):
                return 1 + max((depth(x) for x in v.values()), default=0)
            return 0

        for limit in (1, 2, 3, MAX_JSON_DEPTH):
            assert json_depth_over(text.encode(), limit) == (depth(value) > limit), text

    agree()
