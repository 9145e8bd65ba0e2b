"""Server-side sessions: idle and absolute timeouts, sign out (everywhere), cookie flags, CSRF."""

from __future__ import annotations

import base64
import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from tests.accounts.helpers import actions
from tests.conftest import Personas, create_personas, sign_in
from vern.accounts.models import AuthSession
from vern.accounts.roles import Role
from vern.app.web import create_app
from vern.core.config import Settings
from vern.core.db import Database, Scope, utcnow


def _age_sessions(db: Database, user_id: str, *, idle: timedelta, age: timedelta) -> None:
    now = utcnow()
    with db.transaction(Scope.system("test clock")) as session:
        session.execute(update(AuthSession).where(AuthSession.user_id == user_id)
                        .values(last_seen_at=now - idle, created_at=now - age))


def _last_seen(db: Database, user_id: str) -> list[timedelta]:
    with db.transaction(Scope.system("test read")) as session:
        seen = session.scalars(select(AuthSession.last_seen_at)
                               .where(AuthSession.user_id == user_id))
        return [utcnow() - s for s in seen]


def test_a_session_idle_for_over_an_hour_has_ended(
    client: TestClient, db: Database, personas: Personas
) -> None:
    sign_in(client, personas.bob)
    _age_sessions(db, personas.bob.user_id, idle=timedelta(minutes=61), age=timedelta(hours=2))
    res = client.get("/api/v1/me")
    assert res.status_code == 401
    assert res.json()["code"] == "unauthenticated"


def test_activity_keeps_a_session_alive(client: TestClient, db: Database,
                                        personas: Personas) -> None:
    sign_in(client, personas.bob)
    _age_sessions(db, personas.bob.user_id, idle=timedelta(minutes=50), age=timedelta(hours=3))
    assert client.get("/api/v1/me").status_code == 200
    assert _last_seen(db, personas.bob.user_id)[0] < timedelta(minutes=1)
    _age_sessions(db, personas.bob.user_id, idle=timedelta(minutes=50), age=timedelta(hours=4))
    assert client.get("/api/v1/me").status_code == 200


def test_a_session_older_than_a_day_has_ended_even_when_active(
    client: TestClient, db: Database, personas: Personas
) -> None:
    sign_in(client, personas.bob)
    _age_sessions(db, personas.bob.user_id, idle=timedelta(minutes=1),
                  age=timedelta(hours=24, minutes=1))
    assert client.get("/api/v1/me").status_code == 401


def test_signing_out_revokes_the_session_on_the_server(
    client: TestClient, db: Database, personas: Personas
) -> None:
    sign_in(client, personas.bob)
    cookie = client.cookies["vern_session"]
    res = client.delete("/api/v1/session")
    assert res.status_code == 204
    assert "vern_session" not in client.cookies
    client.cookies.set("vern_session", cookie)  # a copy of the old cookie is worthless
    assert client.get("/api/v1/me").status_code == 401
    assert "auth.signout" in actions(db)


def test_signing_out_everywhere_ends_every_session_of_the_user(
    login, db: Database, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    laptop, phone, alice = login(personas.bob), login(personas.bob), login(personas.alice)
    assert phone.get("/api/v1/me").status_code == 200
    assert laptop.post("/api/v1/session/everywhere").status_code == 204
    assert laptop.get("/api/v1/me").status_code == 401
    assert phone.get("/api/v1/me").status_code == 401
    assert alice.get("/api/v1/me").status_code == 200  # other people are not affected
    assert "auth.signout_everywhere" in actions(db)


def test_changing_the_password_ends_the_other_sessions(
    login, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    laptop, phone = login(personas.bob), login(personas.bob)
    res = laptop.post("/api/v1/me/password", json={
        "current_password": personas.bob.password, "new_password": "sommerfugl i vinterland"})
    assert res.status_code == 204, res.text
    assert laptop.get("/api/v1/me").status_code == 200
    assert phone.get("/api/v1/me").status_code == 401


def test_the_session_cookie_is_http_only_and_same_site_lax_in_dev(
    client: TestClient, personas: Personas
) -> None:
    res = client.post("/api/v1/session", json={"email": personas.bob.email,
                                                "password": personas.bob.password})
    cookie = res.headers["set-cookie"]
    assert cookie.startswith("vern_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie


def production_settings(db: Database, tmp: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "production", "database_url": db.url,
        "secret_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "master_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "rate_limit_signin": "1000/minute", "rate_limit_api": "100000/minute",
        "audit_log_dir": tmp / "audit",
        # Production needs a mail transport; a loopback port nothing listens on keeps mail queued.
        "smtp_url": "smtp://127.0.0.1:9", "mail_from": "personvern@solstrand.example.com",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_in_production_the_cookie_is_secure_with_the_host_prefix(
    db: Database, tmp_path: Path
) -> None:
    settings = production_settings(db, tmp_path)
    app = create_app(settings, db)  # installs the production master key
    people = create_personas(db, settings)
    with TestClient(app, base_url="https://vern.example.com") as client:
        res = client.post("/api/v1/session", json={"email": people.bob.email,
                                                    "password": people.bob.password})
        assert res.status_code == 200, res.text
        cookie = res.headers["set-cookie"]
        assert cookie.startswith("__Host-vern_session=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Path=/" in cookie and "Domain" not in cookie
        client.headers["X-CSRF-Token"] = res.json()["csrf_token"]
        assert client.get("/api/v1/me").status_code == 200
        assert client.delete("/api/v1/session").status_code == 204
        assert client.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("post", "/api/v1/session/everywhere", None),
     ("delete", "/api/v1/session", None),
     ("post", "/api/v1/me/password", {"current_password": "x", "new_password": "y"}),
     ("post", "/api/v1/users", {"email": "a@example.com", "name": "A", "role": "member"})],
)
def test_cookie_authenticated_writes_need_the_csrf_token(
    login, personas: Personas, method: str, path: str, body: dict | None  # type: ignore[no-untyped-def, type-arg]
) -> None:
    alice = login(personas.alice)
    good = alice.headers.pop("X-CSRF-Token")
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}, {"X-CSRF-Token": ""}):
        res = alice.request(method.upper(), path, json=body, headers=headers)
        assert res.status_code == 403, (headers, res.text)
        assert res.json()["code"] == "csrf-failed"
    assert alice.get("/api/v1/me").status_code == 200  # reads need no token
    alice.headers["X-CSRF-Token"] = good
    assert alice.get("/api/v1/me").status_code == 200


def test_a_form_post_may_carry_the_csrf_token_as_a_field(
    login, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    bob = login(personas.bob)
    token = bob.headers.pop("X-CSRF-Token")
    assert bob.post("/api/v1/session/everywhere", data={"csrf_token": "wrong"}).status_code == 403
    assert bob.post("/api/v1/session/everywhere", data={"csrf_token": token}).status_code == 204


def test_bearer_token_writes_need_no_csrf_token(
    client: TestClient, api_token, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    token = api_token(personas.tenant_a, Role.TENANT_ADMIN)
    res = client.post("/api/v1/users", headers={"Authorization": f"Bearer {token}"},
                      json={"email": "kari.nordmann@fjellheim.example.com",
                            "name": "Kari Nordmann", "role": "member"})
    assert res.status_code == 201, res.text


def test_a_session_from_before_sign_in_cannot_be_fixed_by_an_attacker(
    app, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    """A cookie value chosen by someone else is ignored; signing in always makes a new one."""
    with TestClient(app) as client:
        client.cookies.set("vern_session", "vs_chosen-by-the-attacker")
        assert client.get("/api/v1/me").status_code == 401
        res = client.post("/api/v1/session", json={"email": personas.bob.email,
                                                    "password": personas.bob.password})
        assert res.headers["set-cookie"].startswith("vern_session=vs_")
        assert "vs_chosen-by-the-attacker" not in res.headers["set-cookie"]
