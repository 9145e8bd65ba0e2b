"""Sign-in locks that cannot be turned against the person (issue 13): failures are counted per
account and source network, with a ceiling per account over all networks, and a browser holding
a device cookie of the account has a bucket of its own. Time is moved with a test clock (no
sleeping); every attacker address is on a reserved documentation network."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.accounts.helpers import audit_details
from tests.conftest import PASSWORD, Persona, Personas, make_settings, user_row
from tests.console.helpers import csrf_of, sign_in_with_forms
from vern.accounts import security, service
from vern.core.db import Database, utcnow

WRONG = "feil passord igjen og igjen"
HOME = "198.51.100.7"  # the person's usual network


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(service, "utcnow", fake)
    return fake


@pytest.fixture
def proxied(db: Database, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The app behind a trusted proxy on loopback, so each request names its own source."""
    from vern.app.web import create_app

    return create_app(make_settings(db.url, tmp_path, trusted_proxies=["127.0.0.0/8"]), db)


@pytest.fixture
def attacker(proxied) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(proxied, client=("127.0.0.1", 40001)) as c:
        yield c


@pytest.fixture
def browser(proxied) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """The person's own browser (keeps its cookies)."""
    with TestClient(proxied, client=("127.0.0.1", 40002)) as c:
        yield c


def attempt(client: TestClient, persona: Persona, password: str, source: str) -> int:
    res = client.post("/api/v1/session", json={"email": persona.email, "password": password},
                      headers={"X-Forwarded-For": source})
    return res.status_code


def networks(prefix: str = "2001:db8") -> Iterator[str]:
    """An endless supply of addresses, each in another /64 (a rotating attacker)."""
    n = 0
    while True:
        n += 1
        yield f"{prefix}:{n:x}::66"


def fresh_attempt(client: TestClient, persona: Persona, source: str) -> tuple[int, int]:
    """The person from a new device (no cookies): (status, Retry-After or 0)."""
    client.cookies.clear()
    res = client.post("/api/v1/session", json={"email": persona.email, "password": PASSWORD},
                      headers={"X-Forwarded-For": source})
    return res.status_code, int(res.headers.get("retry-after", "0"))


def test_failures_from_elsewhere_do_not_lock_the_security_officer_out(
    attacker: TestClient, browser: TestClient, personas: Personas, clock: Clock, db: Database
) -> None:
    """The finding: five wrong passwords from anywhere used to lock the account everywhere."""
    dave = personas.dave
    for _ in range(service.ACCOUNT_FAILURES_BEFORE_LOCK):
        assert attempt(attacker, dave, WRONG, "192.0.2.66") == 401
    assert attempt(attacker, dave, PASSWORD, "192.0.2.66") == 429  # that network is locked
    assert fresh_attempt(browser, dave, HOME)[0] == 200
    scopes = [d["scope"] for d in audit_details(db, "auth.lock_started")]
    assert scopes == ["account-network"]


def test_addresses_in_one_ipv6_64_share_the_account_lock(
    attacker: TestClient, personas: Personas, clock: Clock
) -> None:
    bob = personas.bob
    for n in range(service.ACCOUNT_FAILURES_BEFORE_LOCK):
        assert attempt(attacker, bob, WRONG, f"2001:db8:7:7::{n + 1:x}") == 401
    assert attempt(attacker, bob, PASSWORD, "2001:db8:7:7:ffff:1:2:3") == 429
    assert attempt(attacker, bob, PASSWORD, "2001:db8:7:8::1") == 200  # the next /64


def test_a_rotating_trickle_only_slows_a_person_without_a_device_cookie(
    attacker: TestClient, browser: TestClient, personas: Personas, clock: Clock
) -> None:
    """A few wrong passwords every quarter of an hour, each burst from another network, and
    again the moment any lock ends: the person on a new device always gets in, at worst after
    one short wait when the ceiling is reached."""
    dave = personas.dave
    sources = networks()

    def burst() -> None:
        source = next(sources)
        for _ in range(service.ACCOUNT_FAILURES_BEFORE_LOCK):
            assert attempt(attacker, dave, WRONG, source) in (401, 429)

    rounds = service.ACCOUNT_CEILING_FAILURES // service.ACCOUNT_FAILURES_BEFORE_LOCK + 2
    waits: list[int] = []
    for _ in range(rounds):
        clock.advance(15 * 60)
        burst()
        waited = 0
        while True:
            status, retry_after = fresh_attempt(browser, dave, HOME)
            if status == 200:
                break
            assert status == 429
            assert 0 < retry_after <= service.ACCOUNT_CEILING_LOCK_MAX.total_seconds()
            waited += retry_after
            assert waited <= 15 * 60, "the attacker keeps the person out"
            clock.advance(retry_after)
            burst()  # the attacker strikes again as soon as the lock ends
        waits.append(waited)
    assert sum(1 for w in waits if w) == 1  # slowed once, when the ceiling was reached
    assert max(waits) <= service.ACCOUNT_CEILING_LOCK_BASE.total_seconds()


def _device_cookie(client: TestClient) -> str:
    value = client.cookies.get("vern_device")
    assert value, "no device cookie was set"
    return value


def _reach_ceiling(attacker: TestClient, persona: Persona) -> None:
    sources = networks("2001:db8:c")
    failures = 0
    while failures < service.ACCOUNT_CEILING_FAILURES:
        source = next(sources)
        for _ in range(service.ACCOUNT_FAILURES_BEFORE_LOCK):
            assert attempt(attacker, persona, WRONG, source) == 401
            failures += 1


def test_the_ceiling_stops_many_networks_but_not_the_person_with_a_device_cookie(
    attacker: TestClient, browser: TestClient, personas: Personas, clock: Clock, db: Database
) -> None:
    bob = personas.bob
    assert attempt(browser, bob, PASSWORD, HOME) == 200  # an earlier sign-in on this browser
    cookie = _device_cookie(browser)
    browser.cookies.delete("vern_session")
    _reach_ceiling(attacker, bob)
    # Even the right password from yet another network is refused while the ceiling holds.
    assert attempt(attacker, bob, PASSWORD, "203.0.113.200") == 429
    assert fresh_attempt(attacker, bob, "203.0.113.201")[0] == 429
    assert "account" in [d["scope"] for d in audit_details(db, "auth.lock_started")]
    # The person's browser presents its device cookie: its own bucket, not locked.
    browser.cookies.set("vern_device", cookie)
    assert attempt(browser, bob, PASSWORD, "203.0.113.202") == 200
    assert audit_details(db, "auth.signin")  # and it is a real sign-in
    # A changed or borrowed cookie is worth nothing: the attempt is an untrusted one.
    body, _sig = cookie.rsplit(".", 1)
    for forged in (f"{body}.{'A' * 43}", cookie.replace(bob.user_id, personas.alice.user_id)):
        browser.cookies.clear()
        browser.cookies.set("vern_device", forged)
        assert attempt(browser, bob, PASSWORD, HOME) == 429
    browser.cookies.clear()
    browser.cookies.set("vern_device", cookie)  # bob's cookie does not open alice's ceiling
    _reach_ceiling(attacker, personas.alice)
    assert attempt(browser, personas.alice, PASSWORD, HOME) == 429
    # The ceiling ends by itself.
    clock.advance(service.ACCOUNT_CEILING_LOCK_BASE.total_seconds() + 1)
    assert fresh_attempt(attacker, bob, "203.0.113.203")[0] == 200


def test_a_device_cookie_is_not_stopped_by_its_own_network_being_locked(
    attacker: TestClient, browser: TestClient, personas: Personas, clock: Clock
) -> None:
    bob = personas.bob
    assert attempt(browser, bob, PASSWORD, HOME) == 200
    cookie = _device_cookie(browser)
    for _ in range(service.SOURCE_FAILURES_BEFORE_LOCK):  # someone on the same network
        assert attempt(attacker, bob, WRONG, HOME) in (401, 429)
    assert fresh_attempt(attacker, bob, HOME)[0] == 429
    browser.cookies.clear()
    browser.cookies.set("vern_device", cookie)
    assert attempt(browser, bob, PASSWORD, HOME) == 200


def test_an_abused_device_cookie_is_locked_on_its_own(
    attacker: TestClient, browser: TestClient, personas: Personas, clock: Clock, db: Database
) -> None:
    bob = personas.bob
    assert attempt(browser, bob, PASSWORD, HOME) == 200
    cookie = _device_cookie(browser)
    browser.cookies.clear()
    browser.cookies.set("vern_device", cookie)
    for n in range(service.DEVICE_FAILURES_BEFORE_LOCK):  # from anywhere: the cookie counts
        assert attempt(browser, bob, WRONG, f"203.0.113.{n + 10}") == 401
    assert attempt(browser, bob, PASSWORD, "203.0.113.99") == 429
    assert audit_details(db, "auth.lock_started")[-1]["scope"] == "device"
    assert audit_details(db, "auth.signin_locked")[-1]["device"] is True
    # The cookie's failures do not count on the account: a new device still signs in.
    assert fresh_attempt(attacker, bob, "203.0.113.98")[0] == 200
    clock.advance(service.DEVICE_LOCK_BASE.total_seconds() + 1)  # the lock ends by itself
    browser.cookies.clear()
    browser.cookies.set("vern_device", cookie)
    assert attempt(browser, bob, PASSWORD, HOME) == 200


def test_the_device_cookie_comes_after_the_second_step_and_expires(
    proxied, browser: TestClient, personas: Personas, clock: Clock, db: Database  # type: ignore[no-untyped-def]
) -> None:
    dave = personas.dave
    res = browser.post("/api/v1/session", json={"email": dave.email, "password": PASSWORD},
                       headers={"X-Forwarded-For": HOME})
    assert res.status_code == 200 and res.json()["mfa_required"] is True
    assert "vern_device" not in browser.cookies  # the password alone is not a sign-in
    browser.headers["X-CSRF-Token"] = res.json()["csrf_token"]
    assert dave.totp_secret is not None
    mfa = browser.post("/api/v1/session/mfa",
                       json={"code": security.totp_now(dave.totp_secret, time.time())})
    assert mfa.status_code == 200, mfa.text
    header = next(v for v in mfa.headers.get_list("set-cookie") if v.startswith("vern_device="))
    assert "HttpOnly" in header and "SameSite=strict" in header and "Path=/" in header
    cookie = _device_cookie(browser)
    assert dave.email not in cookie  # it names the account by id only
    settings = proxied.state.settings
    user = user_row(db, dave.user_id)
    assert service.trusted_device(settings, cookie, user) is not None
    assert service.trusted_device(settings, cookie, user_row(db, personas.erik.user_id)) is None
    clock.advance(service.DEVICE_COOKIE_MAX_AGE.total_seconds() + 60)
    assert service.trusted_device(settings, cookie, user) is None  # expired


def test_the_console_sign_in_sets_the_device_cookie_and_honours_it(
    attacker: TestClient, browser: TestClient, personas: Personas, clock: Clock
) -> None:
    for persona in (personas.bob, personas.dave):  # without and with the second step
        browser.cookies.clear()
        sign_in_with_forms(browser, persona)
        assert _device_cookie(browser)
    browser.cookies.clear()
    sign_in_with_forms(browser, personas.bob)
    bob_cookie = _device_cookie(browser)
    _reach_ceiling(attacker, personas.bob)
    browser.cookies.clear()
    page = browser.get("/login")
    form = {"email": personas.bob.email, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    assert browser.post("/login", data=form, follow_redirects=False).status_code == 429
    browser.cookies.set("vern_device", bob_cookie)
    assert browser.post("/login", data=form, follow_redirects=False).status_code == 303
