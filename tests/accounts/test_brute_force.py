"""Password guessing: temporary, growing locks per account and per source address that end by
themselves; a correct password during a lock is refused; everything is in the audit trail."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import update
from starlette.testclient import TestClient

from tests.accounts.helpers import account_throttle, actions, audit_details, end_locks
from tests.conftest import PASSWORD, Personas
from vern.accounts import service
from vern.accounts.models import AuthThrottle
from vern.core.config import Settings
from vern.core.db import Database, Scope

WRONG = "feil passord igjen og igjen"


def _try(client: TestClient, email: str, password: str) -> int:
    return client.post("/api/v1/session", json={"email": email, "password": password}).status_code


def _fail_until_locked(client: TestClient, email: str) -> None:
    for _ in range(service.ACCOUNT_FAILURES_BEFORE_LOCK):
        assert _try(client, email, WRONG) == 401


def test_repeated_failures_lock_the_account_temporarily(
    client: TestClient, db: Database, personas: Personas
) -> None:
    email = personas.bob.email
    _fail_until_locked(client, email)
    locked = client.post("/api/v1/session", json={"email": email, "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.headers["content-type"] == "application/problem+json"
    assert locked.json()["code"] == "temporarily-locked"
    assert 0 < int(locked.headers["retry-after"]) <= 30
    assert "Set-Cookie" not in locked.headers
    trail = actions(db)
    assert trail.count("auth.signin_failed") == service.ACCOUNT_FAILURES_BEFORE_LOCK
    assert trail.count("auth.signin_locked") == 1
    assert [d["scope"] for d in audit_details(db, "auth.lock_started")] == ["account-network"]


def test_a_lock_ends_by_itself(client: TestClient, db: Database, personas: Personas) -> None:
    _fail_until_locked(client, personas.bob.email)
    assert _try(client, personas.bob.email, PASSWORD) == 429
    end_locks(db, "acct")
    assert _try(client, personas.bob.email, PASSWORD) == 200


def test_each_new_lock_lasts_longer_up_to_a_cap(
    client: TestClient, db: Database, settings: Settings, personas: Personas
) -> None:
    email = personas.bob.email
    waits = []
    for _ in range(3):
        _fail_until_locked(client, email)
        res = client.post("/api/v1/session", json={"email": email, "password": PASSWORD})
        waits.append(int(res.headers["retry-after"]))
        end_locks(db, "acct")
    assert waits[0] <= 30 < waits[1] <= 60 < waits[2] <= 120
    key = service.account_network_key(settings, email, "testclient")
    with db.transaction(Scope.system("test clock")) as session:  # a long, steady attack later
        session.execute(update(AuthThrottle).where(AuthThrottle.key == key).values(locks=100))
    _fail_until_locked(client, email)
    res = client.post("/api/v1/session", json={"email": email, "password": PASSWORD})
    assert res.status_code == 429
    assert 60 < int(res.headers["retry-after"]) <= service.ACCOUNT_LOCK_MAX.total_seconds()


def test_a_successful_sign_in_clears_the_account_count(
    client: TestClient, db: Database, settings: Settings, personas: Personas
) -> None:
    email = personas.bob.email
    for _ in range(service.ACCOUNT_FAILURES_BEFORE_LOCK - 1):
        assert _try(client, email, WRONG) == 401
    assert account_throttle(db, settings, email) is not None
    assert _try(client, email, PASSWORD) == 200
    assert account_throttle(db, settings, email) is None
    assert _try(client, email, WRONG) == 401
    assert _try(client, email, PASSWORD) == 200


def test_failures_are_forgotten_after_a_day(
    client: TestClient, db: Database, settings: Settings, personas: Personas
) -> None:
    email = personas.bob.email
    for _ in range(service.ACCOUNT_FAILURES_BEFORE_LOCK - 1):
        assert _try(client, email, WRONG) == 401
    row = account_throttle(db, settings, email)
    assert row is not None
    with db.transaction(Scope.system("test clock")) as session:
        session.execute(update(AuthThrottle).where(AuthThrottle.key == row.key)
                        .values(updated_at=row.updated_at - timedelta(hours=25)))
    assert _try(client, email, WRONG) == 401  # counts as the first failure again
    assert _try(client, email, PASSWORD) == 200


def test_an_unknown_account_is_locked_the_same_way(client: TestClient, db: Database,
                                                   personas: Personas) -> None:
    _fail_until_locked(client, "ingen.her@example.com")
    assert _try(client, "ingen.her@example.com", WRONG) == 429
    assert _try(client, personas.bob.email, PASSWORD) == 200  # other accounts are not affected


def test_many_failures_from_one_address_lock_that_address(
    app, db: Database, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    attacker = TestClient(app, client=("192.0.2.66", 40000))
    colleague = TestClient(app, client=("198.51.100.7", 40000))
    with attacker, colleague:
        for n in range(service.SOURCE_FAILURES_BEFORE_LOCK):  # spread over many accounts
            assert _try(attacker, f"person{n}@example.com", WRONG) == 401
        blocked = attacker.post("/api/v1/session",
                                json={"email": personas.bob.email, "password": PASSWORD})
        assert blocked.status_code == 429
        assert 0 < int(blocked.headers["retry-after"]) <= 60
        assert _try(colleague, personas.bob.email, PASSWORD) == 200
        end_locks(db, "src")
        assert _try(attacker, personas.bob.email, PASSWORD) == 200
    assert "source" in [d["scope"] for d in audit_details(db, "auth.lock_started")]


def test_a_disabled_account_is_refused_like_a_wrong_password(
    login, client: TestClient, db: Database, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    alice = login(personas.alice)
    assert alice.post(f"/api/v1/users/{personas.bob.user_id}/disable").status_code == 200
    res = client.post("/api/v1/session", json={"email": personas.bob.email, "password": PASSWORD})
    assert res.status_code == 401
    assert res.json()["detail"] == "Wrong e-mail address or password"
    assert audit_details(db, "auth.signin_failed")[-1] == {"reason": "disabled"}


def test_the_sign_in_endpoint_is_rate_limited_per_address(
    db: Database, tmp_path, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    from tests.conftest import make_settings
    from vern.app.web import create_app

    strict = make_settings(db.url, tmp_path, rate_limit_signin="3/minute")
    address = f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"  # limiter is per process
    with TestClient(create_app(strict, db), client=(address, 1)) as client:
        for _ in range(3):
            assert _try(client, personas.bob.email, PASSWORD) == 200
        res = client.post("/api/v1/session", json={"email": personas.bob.email,
                                                    "password": PASSWORD})
        assert res.status_code == 429
        assert res.json()["code"] == "rate-limited"
        assert 0 < int(res.headers["retry-after"]) <= 60


def test_guessing_the_current_password_from_a_session_is_limited_and_recorded(
    login, client: TestClient, db: Database, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    bob = login(personas.bob)
    for _ in range(service.ACCOUNT_FAILURES_BEFORE_LOCK):
        res = bob.post("/api/v1/me/password", json={"current_password": WRONG,
                                                     "new_password": "solskinn over fjorden"})
        assert res.status_code == 422
        assert res.json()["errors"][0]["field"] == "current_password"
    locked = bob.post("/api/v1/me/password", json={"current_password": PASSWORD,
                                                    "new_password": "solskinn over fjorden"})
    assert locked.status_code == 429
    assert _try(client, personas.bob.email, PASSWORD) == 429  # the same account count
    trail = actions(db, "user.password_change")
    assert trail.count("user.password_change_failed") == service.ACCOUNT_FAILURES_BEFORE_LOCK
    assert trail.count("user.password_change_locked") == 1
    end_locks(db, "acct")
    assert bob.post("/api/v1/me/password", json={
        "current_password": PASSWORD, "new_password": "solskinn over fjorden"}).status_code == 204
