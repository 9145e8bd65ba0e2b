"""The API rate limit (issue 13): per token or person once the caller is resolved, per source
network (/64 for IPv6) for everything that resolves to no one, so that spelling the header
differently, sending a random token per request or a junk header beside the cookie never gets
a fresh bucket; and what happens when the shared Redis goes away and comes back (a Redis this
test starts on its own port, never the shared one)."""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests import services
from tests.conftest import PASSWORD, Personas, make_api_token, make_settings, session_cookie_for
from vern.accounts.roles import Role
from vern.app.web import create_app
from vern.core.db import Database
from vern.core.ratelimit import network_of


def test_networks_are_the_ipv6_64_and_the_ipv4_address() -> None:
    assert network_of("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64"
    assert network_of("2001:db8:1:2::1") == network_of("2001:db8:1:2:ffff::9")
    assert network_of("2001:db8:1:3::1") != network_of("2001:db8:1:2::1")
    assert network_of("192.0.2.10") == "192.0.2.10/32"
    assert network_of("192.0.2.11") != network_of("192.0.2.10")
    assert network_of("::ffff:192.0.2.10") == "192.0.2.10/32"
    assert network_of(None) == "unknown"
    assert network_of("testclient") == "testclient"


def _app(db: Database, tmp: Path, **overrides: object):  # type: ignore[no-untyped-def]
    return create_app(make_settings(db.url, tmp, trusted_proxies=["127.0.0.0/8"], **overrides), db)


@pytest.fixture
def strict(db: Database, tmp_path: Path) -> Iterator[TestClient]:
    """3 requests a minute per identity and per unauthenticated network, behind a trusted proxy
    on loopback so that each request can name its own source address."""
    app = _app(db, tmp_path, rate_limit_api="3/minute", rate_limit_api_unauthenticated="3/minute")
    with TestClient(app, client=("127.0.0.1", 41000)) as client:
        yield client


def _me(client: TestClient, source: str, **headers: str) -> int:
    return client.get("/api/v1/me", headers={"X-Forwarded-For": source, **headers}).status_code


def test_a_token_has_one_bucket_however_the_header_is_spelt(
    strict: TestClient, db: Database, personas: Personas
) -> None:
    token = make_api_token(db, personas.tenant_a, Role.TENANT_ADMIN)
    spellings = [f"Bearer {token}", f"bearer {token}", f"Bearer    {token}", f"BEARER {token}   "]
    for n, auth in enumerate(spellings[:3]):
        assert _me(strict, f"192.0.2.{n + 1}", authorization=auth) == 200
    res = strict.get("/api/v1/me", headers={"X-Forwarded-For": "192.0.2.9",
                                            "authorization": spellings[3]})
    assert res.status_code == 429
    assert res.json()["code"] == "rate-limited"
    assert 0 < int(res.headers["retry-after"]) <= 61
    # Another token of the same organisation has its own bucket.
    other = make_api_token(db, personas.tenant_a, Role.TENANT_ADMIN)
    assert _me(strict, "192.0.2.9", authorization=f"Bearer {other}") == 200


def test_random_bogus_tokens_share_their_network_bucket(strict: TestClient) -> None:
    for _ in range(3):
        assert _me(strict, "192.0.2.20",
                   authorization=f"Bearer vt_{secrets.token_urlsafe(32)}") == 401
    for auth in (f"Bearer vt_{secrets.token_urlsafe(32)}", "Bearer", "Basic Zm9vOmJhcg==",
                 f"Token {secrets.token_hex(8)}", ""):
        assert _me(strict, "192.0.2.20", authorization=auth) == 429
    assert _me(strict, "192.0.2.21", authorization="Bearer nothing") == 401  # another network


def test_a_valid_token_is_not_stopped_by_its_networks_bogus_traffic(
    strict: TestClient, db: Database, personas: Personas
) -> None:
    for _ in range(3):
        assert _me(strict, "192.0.2.30", authorization=f"Bearer {secrets.token_hex(16)}") == 401
    assert _me(strict, "192.0.2.30", authorization="Bearer junk") == 429
    token = make_api_token(db, personas.tenant_a, Role.MEMBER)
    assert _me(strict, "192.0.2.30", authorization=f"Bearer {token}") == 200


def test_junk_basic_headers_beside_a_session_cookie_count_for_the_person(
    strict: TestClient, db: Database, personas: Personas
) -> None:
    cookie, _csrf = session_cookie_for(db, personas.bob)
    strict.cookies.set("vern_session", cookie)
    for n in range(3):
        junk = f"Basic {secrets.token_urlsafe(12)}"
        assert _me(strict, f"192.0.2.{40 + n}", authorization=junk) == 200
    assert _me(strict, "192.0.2.50", authorization=f"Basic {secrets.token_urlsafe(12)}") == 429
    assert _me(strict, "192.0.2.51") == 429  # the same person without the junk header
    # A second session of the same person shares the bucket; another person does not.
    second, _ = session_cookie_for(db, personas.bob)
    strict.cookies.set("vern_session", second)
    assert _me(strict, "192.0.2.52") == 429
    alice, _ = session_cookie_for(db, personas.alice)
    strict.cookies.set("vern_session", alice)
    assert _me(strict, "192.0.2.52") == 200


def test_addresses_in_one_ipv6_64_share_a_bucket(strict: TestClient) -> None:
    for host in ("1", "2", "abcd:ef01:2345:6789"):
        assert _me(strict, f"2001:db8:5:6:0:0:0:{host}" if ":" not in host
                   else f"2001:db8:5:6:{host}") == 401
    assert _me(strict, "2001:db8:5:6:ffff:ffff:ffff:fffe") == 429
    assert _me(strict, "2001:db8:5:7::1") == 401  # the neighbouring /64


def test_sign_in_is_limited_per_ipv6_64(db: Database, tmp_path: Path,
                                        personas: Personas) -> None:
    app = _app(db, tmp_path, rate_limit_signin="2/minute")
    with TestClient(app, client=("127.0.0.1", 41001)) as client:
        for host in ("::1", "::2"):
            res = client.post("/api/v1/session",
                              json={"email": personas.bob.email, "password": PASSWORD},
                              headers={"X-Forwarded-For": f"2001:db8:9:9{host}"})
            assert res.status_code == 200
        res = client.post("/api/v1/session",
                          json={"email": personas.bob.email, "password": PASSWORD},
                          headers={"X-Forwarded-For": "2001:db8:9:9:1234::3"})
        assert res.status_code == 429 and res.json()["code"] == "rate-limited"


# -- Redis outage --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server of this test alone, on a free loopback port, keeping nothing on disk."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            services.unavailable("redis-server is not installed")
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary, loopback only
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(100):  # bounded: at most 10 s
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail("the test's own redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_redis_outage_falls_back_to_per_process_limits_and_sharing_resumes(
    db: Database, tmp_path: Path, personas: Personas, own_redis: OwnRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}"
    # Two processes of one deployment, sharing the limits through the test's Redis.
    apps = [_app(db, tmp_path, rate_limit_storage_url=url, rate_limit_api_unauthenticated="4/minute")
            for _ in range(2)]
    for app in apps:
        app.state.limiter.retry_seconds = 0.0  # try Redis again at once (default: 5 s)
    token = make_api_token(db, personas.tenant_a, Role.MEMBER)
    with TestClient(apps[0], client=("127.0.0.1", 42001)) as one, \
            TestClient(apps[1], client=("127.0.0.1", 42002)) as two:
        # Shared: two requests on each process use up the network's four.
        for client in (one, two):
            assert [_me(client, "192.0.2.60") for _ in range(2)] == [401, 401]
        assert _me(one, "192.0.2.60") == 429
        assert _me(two, "192.0.2.60") == 429

        own_redis.stop()
        with caplog.at_level(logging.WARNING, logger="vern.core.ratelimit"):
            # No 500: each process limits on its own, with the same limit.
            for client in (one, two):
                assert [_me(client, "192.0.2.61") for _ in range(4)] == [401] * 4
                assert _me(client, "192.0.2.61") == 429
            assert _me(one, "192.0.2.62", authorization=f"Bearer {token}") == 200
            signin = two.post("/api/v1/session",
                              json={"email": personas.bob.email, "password": PASSWORD},
                              headers={"X-Forwarded-For": "192.0.2.63"})
            assert signin.status_code == 200  # sign-in stays open (its locks are in the database)
            two.cookies.clear()
        assert "rate-limit storage not reachable" in caplog.text
        assert url not in caplog.text and "192.0.2" not in caplog.text
        for app in apps:
            assert app.state.limiter.is_degraded
            errors = app.state.limiter.registry.get_sample_value(
                "vern_rate_limit_storage_errors_total")
            assert errors is not None and errors >= 1
            assert app.state.limiter.registry.get_sample_value("vern_rate_limit_degraded") == 1

        own_redis.start()  # the same port, empty
        for client in (one, two):
            assert [_me(client, "192.0.2.64") for _ in range(2)] == [401, 401]
        assert _me(two, "192.0.2.64") == 429  # shared again: the other process's two count
        for app in apps:
            assert not app.state.limiter.is_degraded
            assert app.state.limiter.registry.get_sample_value("vern_rate_limit_degraded") == 0


@pytest.mark.parametrize("name", ["VERN_RATE_LIMIT_SIGNIN", "VERN_RATE_LIMIT_API",
                                  "VERN_RATE_LIMIT_API_UNAUTHENTICATED"])
def test_a_limit_that_is_not_a_rate_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    from vern.core.config import ConfigError, get_settings

    monkeypatch.setenv("VERN_ENV", "test")
    monkeypatch.setenv(name, "lots per minute")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as info:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert str(info.value).startswith(f"{name}: ")
    assert "'10/minute'" in str(info.value)


def test_public_api_routes_count_on_their_network(db: Database, tmp_path: Path,
                                                  personas: Personas) -> None:
    app = _app(db, tmp_path, rate_limit_api_unauthenticated="2/minute")
    with TestClient(app, client=("127.0.0.1", 41002)) as client:
        for _ in range(2):
            res = client.post("/api/v1/session", json={"email": personas.bob.email,
                                                        "password": "feil passord igjen"},
                              headers={"X-Forwarded-For": "192.0.2.70"})
            assert res.status_code == 401
        res = client.post("/api/v1/session", json={"email": personas.bob.email,
                                                    "password": PASSWORD},
                          headers={"X-Forwarded-For": "192.0.2.70"})
        assert res.status_code == 429 and res.json()["code"] == "rate-limited"
        assert client.get("/healthz").status_code == 200  # outside the API: not counted
