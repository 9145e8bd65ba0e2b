"""TOTP (RFC 6238) and recovery codes: the window, no reuse, who must enrol, guessing limits."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.accounts.helpers import actions, audit_details, end_locks, password_step, wrong_code
from tests.conftest import Persona, Personas, add_persona
from vern.accounts import security, service
from vern.accounts.models import RecoveryCode
from vern.accounts.roles import Role
from vern.core.config import Settings
from vern.core.db import Database, Scope

SECRET = security.new_totp_secret()
NOW = 1_800_000_015.0  # 15 s into a 30 s step


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_a_code_from_the_neighbouring_steps_is_accepted(offset: int) -> None:
    code = security.totp_now(SECRET, NOW + offset * 30)
    assert security.totp_match(SECRET, code, last_step=None, at=NOW) == int(NOW // 30) + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_a_code_two_or_more_steps_away_is_refused(offset: int) -> None:
    code = security.totp_now(SECRET, NOW + offset * 30)
    assert security.totp_match(SECRET, code, last_step=None, at=NOW) is None


def test_a_step_at_or_before_the_last_accepted_one_is_refused() -> None:
    step = int(NOW // 30)
    current = security.totp_now(SECRET, NOW)
    earlier = security.totp_now(SECRET, NOW - 30)
    assert security.totp_match(SECRET, current, last_step=step, at=NOW) is None
    assert security.totp_match(SECRET, earlier, last_step=step, at=NOW) is None
    later = security.totp_now(SECRET, NOW + 30)
    assert security.totp_match(SECRET, later, last_step=step, at=NOW) == step + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_malformed_codes_are_refused(code: str) -> None:
    assert security.totp_match(SECRET, code, last_step=None, at=NOW) is None


def test_a_code_is_never_accepted_twice(app, personas: Personas) -> None:  # type: ignore[no-untyped-def]
    code = security.totp_now(personas.alice.totp_secret or "")
    with TestClient(app) as first, TestClient(app) as second:
        password_step(first, personas.alice)
        assert first.post("/api/v1/session/mfa", json={"code": code}).status_code == 200
        password_step(second, personas.alice)
        replay = second.post("/api/v1/session/mfa", json={"code": code})
        assert replay.status_code == 422
        assert replay.json()["errors"][0]["field"] == "code"
        assert second.get("/api/v1/me").json()["code"] == "mfa-required"


def new_user(db: Database, settings: Settings, org_id: str, role: Role, *, name: str = "Kari Nordmann",
             email: str = "kari.nordmann@example.com") -> Persona:
    password = "tyttebær og multer i lia"
    with db.transaction(Scope.system("test")) as session:
        user = service.create_user(session, settings, email=email, name=name, org_id=org_id,
                                   role=role.value, password=password, actor=None)
        return Persona(name, user.id, email, org_id, role, None, password)


def _enrol(client: TestClient) -> tuple[str, list[str]]:
    begun = client.post("/api/v1/me/mfa")
    assert begun.status_code == 200, begun.text
    secret = begun.json()["secret"]
    assert begun.json()["otpauth_uri"].startswith("otpauth://totp/")
    wrong = client.post("/api/v1/me/mfa/confirm", json={"code": wrong_code(secret)})
    assert wrong.status_code == 422
    confirmed = client.post("/api/v1/me/mfa/confirm",
                            json={"code": security.totp_now(secret)})
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


@pytest.mark.parametrize(
    "where", [("tenant_a", Role.TENANT_ADMIN), ("vendor", Role.SUPPORT), ("vendor", Role.AUDITOR)],
)
def test_privileged_users_must_enrol_before_anything_else(
    app, db: Database, settings: Settings, personas: Personas, where: tuple[str, Role]  # type: ignore[no-untyped-def]
) -> None:
    kari = new_user(db, settings, getattr(personas, where[0]), where[1])
    with TestClient(app) as client:
        step = password_step(client, kari)
        assert step["mfa_enrolment_required"] is True
        assert step["mfa_required"] is False
        refused = client.get("/api/v1/me")
        assert refused.status_code == 403
        assert refused.json()["code"] == "mfa-enrolment-required"
        _enrol(client)
        assert client.get("/api/v1/me").status_code == 200
    with TestClient(app) as again:
        assert password_step(again, kari)["mfa_required"] is True
        assert again.get("/api/v1/me").json()["code"] == "mfa-required"


def test_members_are_offered_mfa_but_not_forced(
    app, db: Database, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    with TestClient(app) as client:
        step = password_step(client, personas.bob)
        assert step == {**step, "mfa_required": False, "mfa_enrolment_required": False}
        assert client.get("/api/v1/me").status_code == 200
        secret, _codes = _enrol(client)
    with TestClient(app) as again:
        assert password_step(again, personas.bob)["mfa_required"] is True
        ok = again.post("/api/v1/session/mfa", json={"code": security.totp_now(secret, time.time() + 30)})
        assert ok.status_code == 200, ok.text
    assert "auth.mfa_enabled" in actions(db)


def test_promoting_a_member_without_mfa_ends_their_sessions_until_they_enrol(
    app, login, db: Database, settings: Settings, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    bob = login(personas.bob)
    alice = login(personas.alice)
    res = alice.put(f"/api/v1/users/{personas.bob.user_id}/role",
                    json={"role": "tenant_admin", "need": "Vikarierer som styrer"})
    assert res.status_code == 202, res.text  # a privileged role waits for a second admin
    assert bob.get("/api/v1/me").status_code == 200
    anne = login(add_persona(db, settings, personas, "anne", "Anne Aas",
                             "anne.aas@fjellheim.example.com", personas.tenant_a,
                             Role.TENANT_ADMIN))
    approved = anne.post(f"/api/v1/access/requests/{res.json()['pending_request']}/approve",
                         json={})
    assert approved.status_code == 200, approved.text
    assert bob.get("/api/v1/me").status_code == 401
    with TestClient(app) as client:
        assert password_step(client, personas.bob)["mfa_enrolment_required"] is True


def test_recovery_codes_are_stored_hashed_and_work_once(
    app, db: Database, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    with TestClient(app) as client:
        password_step(client, personas.bob)
        _secret, codes = _enrol(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    with db.transaction(Scope.system("test read")) as session:
        stored = list(session.scalars(select(RecoveryCode.code_hash)
                                      .where(RecoveryCode.user_id == personas.bob.user_id)))
    assert len(stored) == 10
    for code in codes:
        assert all(code not in h and code.replace("-", "") not in h for h in stored)
    with TestClient(app) as client:
        password_step(client, personas.bob)
        used = client.post("/api/v1/session/mfa", json={"code": codes[0].upper()})
        assert used.status_code == 200, used.text
    with TestClient(app) as client:
        password_step(client, personas.bob)
        assert client.post("/api/v1/session/mfa", json={"code": codes[0]}).status_code == 422
        assert client.post("/api/v1/session/mfa", json={"code": codes[1]}).status_code == 200
    assert [d.get("method") for d in audit_details(db, "auth.mfa_passed")] == [
        "recovery-code", "recovery-code"]


def test_guessing_codes_leads_to_a_temporary_lock(
    app, db: Database, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    secret = personas.alice.totp_secret or ""
    with TestClient(app) as client:
        password_step(client, personas.alice)
        for _ in range(service.MFA_FAILURES_BEFORE_LOCK):
            res = client.post("/api/v1/session/mfa", json={"code": wrong_code(secret)})
            assert res.status_code == 422
        locked = client.post("/api/v1/session/mfa", json={"code": security.totp_now(secret)})
        assert locked.status_code == 429
        assert locked.json()["code"] == "temporarily-locked"
        assert 0 < int(locked.headers["retry-after"]) <= 30
    with TestClient(app) as other:  # a new sign-in does not reset the count
        password_step(other, personas.alice)
        assert other.post("/api/v1/session/mfa",
                          json={"code": security.totp_now(secret)}).status_code == 429
        end_locks(db, "mfa")
        assert other.post("/api/v1/session/mfa",
                          json={"code": security.totp_now(secret)}).status_code == 200
    trail = actions(db, "auth.")
    assert trail.count("auth.mfa_failed") == service.MFA_FAILURES_BEFORE_LOCK
    assert trail.count("auth.mfa_locked") == 2
    assert [d["scope"] for d in audit_details(db, "auth.lock_started")] == ["mfa"]
