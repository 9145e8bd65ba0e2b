"""Every input is bounded where it enters: JSON depth, integer ranges, dates, NUL bytes and lone
surrogates in bodies, query strings and paths. Each case here was a 500 (issue 13); the answer
must be a 4xx problem naming the field, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import Personas, make_api_token, session_cookie_for
from tests.consent.helpers import setup_org
from tests.stats.helpers import make_site
from vern.accounts.deps import session_cookie_name
from vern.accounts.roles import Role
from vern.core.config import Settings, stats_settings
from vern.core.db import Database

PROBLEM = "application/problem+json"
HUGE = 2**70
DEEP = 2_000


@pytest.fixture(autouse=True)
def _refusals_counted_at_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refused public posts are counted by the statistics writer; write them at once."""
    monkeypatch.setenv("VERN_STATS_FLUSH_INTERVAL_MS", "0")
    stats_settings.cache_clear()
    yield
    stats_settings.cache_clear()


@pytest.fixture
def anon(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def alice(app: Any, db: Database, settings: Settings, personas: Personas) -> Iterator[TestClient]:
    """Tenant A's administrator, signed in with a session (MFA done)."""
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as c:
        token, csrf = session_cookie_for(db, personas.alice)
        c.cookies.set(session_cookie_name(settings), token)
        c.headers["X-CSRF-Token"] = csrf
        yield c


@pytest.fixture
def dave(app: Any, db: Database, settings: Settings, personas: Personas) -> Iterator[TestClient]:
    """The vendor's security officer (reads every organisation's trail, checkpoints and proofs)."""
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as c:
        token, csrf = session_cookie_for(db, personas.dave)
        c.cookies.set(session_cookie_name(settings), token)
        c.headers["X-CSRF-Token"] = csrf
        yield c


@pytest.fixture
def product(app: Any, db: Database, personas: Personas) -> Iterator[TestClient]:
    """Tenant A's product: an API token with the tenant admin role."""
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as c:
        c.headers["Authorization"] = "Bearer " + make_api_token(db, personas.tenant_a,
                                                                Role.TENANT_ADMIN)
        yield c


def _problem(res: Any, field: str | None = None, status: int | None = None) -> dict[str, Any]:
    assert 400 <= res.status_code < 500, f"{res.status_code}: {res.text[:300]}"
    if status is not None:
        assert res.status_code == status, res.text[:300]
    assert res.headers["content-type"] == PROBLEM, res.headers["content-type"]
    body: dict[str, Any] = res.json()
    if field is not None:
        fields = [e["field"] for e in body.get("errors", [])]
        assert field in fields, f"{field!r} not named in {fields}: {body}"
    return body


def _deep(depth: int, *, closed: bool = True) -> str:
    """``depth`` nested arrays; unclosed, a parser still descends ``depth`` levels."""
    return "[" * depth + ("]" * depth if closed else "")


# -- JSON nesting ------------------------------------------------------------------------------


def test_a_deeply_nested_beacon_is_refused(anon: TestClient, db: Database,
                                           personas: Personas) -> None:
    site = make_site(db, personas.tenant_a)
    body = f'{{"s": "{site}", "u": "/", "r": ' + _deep(1_950, closed=False)
    res = anon.post("/s/e", content=body, headers={"content-type": "text/plain"})
    assert res.status_code == 400, res.status_code
    assert res.headers["x-vern-error"] == "too-deep"


def test_a_deeply_nested_banner_post_is_refused(anon: TestClient, db: Database,
                                                personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    body = ('{"subject": "besok-0001", "version": 1, "method": "gpc", "choices": '
            + _deep(DEEP, closed=False))
    res = anon.post("/c/fjellheim/consent", content=body, headers={"content-type": "text/plain"})
    _problem(res, "body", 422)
    assert res.headers["x-vern-error"] == "too-deep"


def test_a_deeply_nested_api_body_is_refused_by_depth(product: TestClient) -> None:
    for nested in (_deep(40), _deep(DEEP), _deep(DEEP, closed=False)):
        res = product.post("/api/v1/audit/events", content='{"events": ' + nested + "}",
                           headers={"content-type": "application/json"})
        body = _problem(res, "body", 422)
        assert body["errors"][0]["code"] == "too-deep"


def test_moderate_nesting_is_still_accepted(product: TestClient) -> None:
    details: Any = {"fjell": "heim"}
    for _ in range(10):
        details = {"nivå": details}
    res = product.post("/api/v1/audit/events", json={"events": [{
        "id": "ev-1", "time": "2026-01-31T12:00:00Z", "action": "child.read",
        "details": details}]})
    assert res.status_code == 202, res.text


# -- integers beyond 64 bits -------------------------------------------------------------------


def test_a_huge_notice_version_is_refused(product: TestClient, db: Database,
                                          personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    res = product.post("/api/v1/consent/besok-0001", json={
        "choices": {"statistics": "granted"}, "notice_version": HUGE})
    _problem(res, "notice_version", 422)


def test_a_huge_notice_version_in_the_public_page_is_refused(anon: TestClient, db: Database,
                                                             personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    res = anon.get("/c/fjellheim/notice/privacy", params={"version": HUGE},
                   headers={"accept": "application/json"})
    assert 400 <= res.status_code < 500, res.status_code


def test_a_huge_banner_version_is_refused(anon: TestClient, db: Database,
                                          personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    body = json.dumps({"subject": "besok-0001", "version": HUGE, "method": "banner-accept",
                       "choices": {"statistics": True, "marketing": True}})
    _problem(anon.post("/c/fjellheim/consent", content=body), "version", 422)


@pytest.mark.parametrize(("path", "field"), [
    ("/api/v1/audit/proofs/inclusion?record_id=x&tree_size=" + str(HUGE), "tree_size"),
    ("/api/v1/audit/proofs/consistency?old=" + str(HUGE), "old"),
    ("/api/v1/audit/proofs/consistency?old=1&new=" + str(HUGE), "new"),
])
def test_huge_proof_sizes_are_refused(dave: TestClient, path: str, field: str) -> None:
    _problem(dave.get(path), field, 422)


def test_a_cursor_with_a_huge_number_is_refused(alice: TestClient) -> None:
    cursor = base64.urlsafe_b64encode(f"{HUGE}:x".encode()).decode().rstrip("=")
    _problem(alice.get("/api/v1/audit/events", params={"cursor": cursor}), "cursor", 422)


def test_a_huge_token_lifetime_is_refused(alice: TestClient) -> None:
    _problem(alice.post("/api/v1/tokens", json={"name": "x", "role": "member", "days": HUGE}),
             "days", 422)


# -- dates out of range ------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z",
                                  "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z"])
def test_an_ingested_time_out_of_range_is_refused(product: TestClient, when: str) -> None:
    res = product.post("/api/v1/audit/events", json={"events": [{
        "id": "ev-1", "time": when, "action": "child.read"}]})
    _problem(res, "events.0.time", 422)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                                  "0001-01-01", "9999-12-31"])
@pytest.mark.parametrize("name", ["since", "until"])
def test_an_audit_search_time_out_of_range_is_refused(alice: TestClient, when: str,
                                                      name: str) -> None:
    _problem(alice.get("/api/v1/audit/events", params={name: when}), name, 422)


@pytest.mark.parametrize("until", ["0001-01-01", "9999-12-31"])
def test_a_statistics_end_out_of_range_is_refused(alice: TestClient, db: Database,
                                                  personas: Personas, until: str) -> None:
    site = make_site(db, personas.tenant_a)
    for what in ("report", "export.csv"):
        res = alice.get(f"/api/v1/stats/sites/{site}/{what}", params={"until": until})
        _problem(res, "until", 422)


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_consent_feed_start_out_of_range_is_refused(product: TestClient, since: str) -> None:
    _problem(product.get("/api/v1/consent/changes", params={"since": since}), "since", 422)


# -- NUL bytes and lone surrogates -------------------------------------------------------------


def test_nul_in_the_public_consent_post_is_refused(anon: TestClient, db: Database,
                                                   personas: Personas) -> None:
    setup_org(db, personas.tenant_a)
    for subject in ("besok\u0000001", "besok\ud800001"):
        body = json.dumps({"subject": subject, "version": 1, "method": "banner-accept",
                           "choices": {"statistics": True, "marketing": True}})
        _problem(anon.post("/c/fjellheim/consent", content=body), "subject", 422)
    body = json.dumps({"subject": "besok-0001", "version": 1, "method": "banner-accept",
                       "choices": {"statistics": True, "marketing\u0000": True}})
    _problem(anon.post("/c/fjellheim/consent", content=body), "choices", 422)


def test_nul_in_the_public_consent_path_is_refused(anon: TestClient) -> None:
    body = json.dumps({"subject": "besok-0001", "version": 1, "method": "banner-accept",
                       "choices": {}})
    _problem(anon.post("/c/fjell%00heim/consent", content=body), "consent_org", 422)


def test_nul_and_surrogates_in_a_beacon_are_refused(anon: TestClient, db: Database,
                                                    personas: Personas) -> None:
    site = make_site(db, personas.tenant_a)
    for field, value in (("s", site[:-1] + "\u0000"), ("s", site[:-1] + "\ud800"),
                         ("r", "https://x\u0000.example.com/"), ("u", "/\ud800")):
        beacon = {"s": site, "u": "/", "r": "", field: value}
        res = anon.post("/s/e", content=json.dumps(beacon))
        assert res.status_code == 400, (field, res.status_code)
        assert res.headers["x-vern-error"] == "bad-text", (field, res.headers)


@pytest.mark.parametrize(("path", "field"), [
    ("/api/v1/users/%00", "user_id"),
    ("/api/v1/rights/requests/ab%00cd", "rights_request_id"),
    ("/api/v1/consent/besok%000001/history", "consent_subject"),
    ("/api/v1/consent/besok%000001", "consent_subject"),
    ("/api/v1/stats/sites/%00/report", "stats_site"),
    ("/api/v1/audit/proofs/inclusion?record_id=%00", "record_id"),
    ("/api/v1/audit/events?resource=child%00", "resource"),
    ("/api/v1/audit/events?actor=%00", "actor"),
    ("/api/v1/rights/requests?status=%00", "status"),
    ("/api/v1/consent/besok-0001?purpose=%00", "purpose"),
])
def test_nul_in_paths_and_query_strings_is_refused(alice: TestClient, path: str,
                                                   field: str) -> None:
    _problem(alice.get(path), field, 422)


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/users", {"email": "a\u0000@example.com", "name": "Åse", "role": "member"}, "email"),
    ("/api/v1/users", {"email": "ase@example.com", "name": "\ud800", "role": "member"}, "name"),
    ("/api/v1/tokens", {"name": "ci\u0000", "role": "member"}, "name"),
    ("/api/v1/session/org", {"org_id": "\u0000"}, "org_id"),
    ("/api/v1/rights/requests", {"kind": "access", "identities": {"email": "a\u0000@example.com"},
                                 "verification": "attested"}, "identities.email"),
    ("/api/v1/rights/check", {"identities": {"e\u0000mail": "ase@example.com"}}, "identities"),
    ("/api/v1/stats/sites", {"name": "Nett\u0000", "domain": "www.example.com"}, "name"),
    ("/api/v1/consent/purposes", {"key": "k\u0000", "kind": "other", "legal_basis": "a",
                                  "name_nb": "x", "name_en": "x"}, "key"),
    ("/api/v1/consent/besok-0001/withdraw", {"purposes": ["stat\u0000"]}, "purposes.0"),
    ("/api/v1/consent/newsletter/customers", {"email": "a\u0000@example.com"}, "email"),
])
def test_nul_and_surrogates_in_api_bodies_are_refused(alice: TestClient, path: str,
                                                      body: dict[str, Any], field: str) -> None:
    res = alice.request("PUT" if path.endswith("/org") else "POST", path,
                        content=json.dumps(body), headers={"content-type": "application/json"})
    _problem(res, field, 422)


def test_nul_in_an_ingested_record_is_refused(product: TestClient) -> None:
    res = product.post("/api/v1/audit/events", json={"events": [{
        "id": "ev-1", "time": "2026-01-31T12:00:00Z", "action": "child.read",
        "resource": "child:\u0000", "details": {"note\u0000": "x"}}]})
    body = _problem(res, "events.0.resource", 422)
    assert "events.0.details" in [e["field"] for e in body["errors"]]


def test_nul_in_a_sign_in_form_is_refused(anon: TestClient) -> None:
    res = anon.post("/login", data={"email": "ase\u0000@example.com", "password": "x"},
                    headers={"accept": "application/json"})
    assert res.status_code == 422, res.status_code
    res = anon.post("/api/v1/session", json={"email": "ase\u0000@example.com", "password": "x"})
    _problem(res, "email", 422)


def test_text_with_escaped_backslashes_and_norwegian_letters_still_passes(
        product: TestClient) -> None:
    """``\\\\u0000`` is a backslash and the letters u0000, not a NUL; ``\\u00f8`` is ø."""
    raw = ('{"events": [{"id": "ev-1", "time": "2026-01-31T12:00:00Z", "action": "child.read",'
           ' "resource": "sti\\\\u0000 bl\\u00e5b\\u00e6r"}]}')
    res = product.post("/api/v1/audit/events", content=raw,
                       headers={"content-type": "application/json"})
    assert res.status_code == 202, res.text


# -- declared lengths, form numbers, nested text -----------------------------------------------


def test_a_declared_length_of_thousands_of_digits_is_over_the_limit() -> None:
    """Converting 5,000 digits to an int raises in Python; the length is over the limit."""
    import asyncio

    from vern.app.web import _body_within
    from vern.stats.routes import take_beacon

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST"}
    digits = "9" * 5_000
    assert asyncio.run(_body_within(scope, {"content-length": digits}, receive, 1024)) is None
    assert asyncio.run(_body_within(scope, {"content-length": "12"}, receive, 1024)) is receive

    class Counting:
        settings = stats_settings()
        skipped = 0
        reasons: list[str] = []  # noqa: RUF012 - one test's tally

        def reject(self, endpoint: str, reason: str) -> None:
            self.reasons.append(reason)

    async def read(limit: int) -> bytes | None:
        raise AssertionError("a body declared too large is not read")

    counting = Counting()
    status, reason = asyncio.run(take_beacon(
        counting, "198.51.100.0", [(b"content-length", digits.encode())], read))  # type: ignore[arg-type]
    assert (status, reason, counting.reasons) == (413, "too-large", ["too-large"])


def test_a_form_number_of_thousands_of_digits_is_refused(
        app: Any, db: Database, settings: Settings, personas: Personas) -> None:
    from tests.matrix.samples_rights import rights_request_in_a

    request_id = rights_request_in_a(db, personas, settings).value
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as c:
        token, csrf = session_cookie_for(db, personas.alice)
        c.cookies.set(session_cookie_name(settings), token)
        res = c.post(f"/console/rights/requests/{request_id}/extend",
                     data={"months": "9" * 5_000, "reason": "Mange saker", "csrf_token": csrf},
                     headers={"X-CSRF-Token": csrf})
    assert res.status_code == 422, res.status_code


def test_overlong_text_inside_a_body_is_refused_by_name(alice: TestClient) -> None:
    res = alice.post("/api/v1/rights/check", json={"identities": {"email": "å" * 5_000}})
    _problem(res, "identities.email", 422)
    res = alice.post("/api/v1/rights/check", json={"identities": {"e" * 100: "a@example.com"}})
    fields = [e["field"] for e in _problem(res, status=422)["errors"]]
    assert fields and all(f.startswith("identities.") for f in fields), fields


# -- the rules themselves ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "code"), [
    ('{"a": NaN}', "number-range"), ('{"a": [Infinity]}', "number-range"), ('{"a": 1e400}', "number-range"),
    ('{"a": 9223372036854775808}', "number-range"), ('{"a": -9223372036854775809}', "number-range"),
    ('{"a": "\\udc00"}', "bad-text"), ('{"a": "x\\ud83d"}', "bad-text"),
    ('{"a\\u0000": 1}', "bad-text"), ('{"a": ["\\u0000"]}', "bad-text"),
    ("[" * 33 + "]" * 33, "too-deep"), ("{" * 40, "too-deep"),
])
def test_json_out_of_bounds_is_refused(text: str, code: str) -> None:
    from vern.core.errors import InvalidInput
    from vern.core.inputs import loads

    with pytest.raises(InvalidInput) as refused:
        loads(text.encode())
    assert refused.value.errors[0].code == code, refused.value.errors


@pytest.mark.parametrize("text", [
    '{"a": "NaN and Infinity as words"}', '{"a": 9223372036854775807, "b": -9223372036854775808}',
    '{"a": "\\ud83d\\ude00 bl\\u00e5b\\u00e6r"}', '{"a": "\\\\u0000 is text"}',
    '{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{"}',
    "[" * 32 + "]" * 32, '{"a": 1.5e300, "b": "1234567890123456789012345"}',
])
def test_json_within_bounds_is_taken(text: str) -> None:
    from vern.core.inputs import loads

    assert loads(text.encode()) == json.loads(text)


def test_times_are_bounded_before_any_conversion() -> None:
    from datetime import UTC, datetime

    from pydantic import TypeAdapter, ValidationError

    from vern.core.inputs import AwareMoment, Day, Moment

    moment = TypeAdapter(Moment)
    assert moment.validate_python("1970-01-01T00:00:00+01:00") == datetime(
        1969, 12, 31, 23, 0, tzinfo=UTC)  # the year is checked as given, then made UTC
    assert moment.validate_python("2026-05-17T12:00:00") == datetime(2026, 5, 17, 12, tzinfo=UTC)
    for bad in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z"):
        with pytest.raises(ValidationError):
            moment.validate_python(bad)
    with pytest.raises(ValidationError, match="UTC offset"):
        TypeAdapter(AwareMoment).validate_python("2026-05-17T12:00:00")
    with pytest.raises(ValidationError):
        TypeAdapter(Day).validate_python("9999-12-31")


def test_overlong_path_parameters_and_query_values_are_refused_by_name(alice: TestClient) -> None:
    long = "x" * 2_001
    _problem(alice.get(f"/api/v1/users/{long}"), "user_id", 422)
    _problem(alice.get("/api/v1/rights/requests", params={"status": long}), "status", 422)
    assert alice.get("/api/v1/rights/requests", params={"status": "x" * 2_000}).status_code == 200


def test_long_form_texts_are_left_to_their_fields(alice: TestClient) -> None:
    """A form body is not a URL: a long notice text is still taken."""
    res = alice.post("/console/consent/notices", data={
        "kind": "privacy", "title_nb": "Personvern", "title_en": "Privacy",
        "body_nb": "Vi tar vare på opplysningene dine. " * 200, "body_en": "We care. " * 300},
        follow_redirects=False)
    assert res.status_code == 303, res.text[:300]
