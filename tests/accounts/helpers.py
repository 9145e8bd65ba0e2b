"""Small helpers shared by the accounts tests (reading rows, audit actions, moving time)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import select, update
from starlette.testclient import TestClient

from tests.conftest import Persona
from vern.accounts import security, service
from vern.accounts.models import AuthThrottle
from vern.audit.models import AuditEvent
from vern.core.config import Settings
from vern.core.db import Database, Scope, utcnow


def actions(db: Database, prefix: str = "auth.") -> list[str]:
    """Audit actions recorded so far, oldest first."""
    with db.transaction(Scope.system("test read")) as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action.startswith(prefix))
                               .order_by(AuditEvent.ts, AuditEvent.id))
        return [r.action for r in rows]


def audit_details(db: Database, action: str) -> list[dict[str, object]]:
    with db.transaction(Scope.system("test read")) as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(AuditEvent.ts, AuditEvent.id))
        return [_details(r.details) for r in rows]


def _details(stored: object) -> dict[str, object]:
    """Audit details are kept as canonical JSON text."""
    if stored is None:
        return {}
    return dict(json.loads(stored) if isinstance(stored, str) else stored)  # type: ignore[arg-type]


def end_locks(db: Database, kind: str | None = None) -> None:
    """Move time forward past every temporary lock (of one kind: acct, src, mfa)."""
    with db.transaction(Scope.system("test clock")) as session:
        stmt = update(AuthThrottle).values(locked_until=utcnow() - timedelta(seconds=1))
        if kind is not None:
            stmt = stmt.where(AuthThrottle.key.startswith(f"{kind}:"))
        session.execute(stmt)


def throttle(db: Database, settings: Settings, kind: str, value: str) -> AuthThrottle | None:
    with db.transaction(Scope.system("test read")) as session:
        row = session.get(AuthThrottle, service._throttle_key(settings, kind, value))
        if row is not None:
            session.expunge(row)
        return row


def account_throttle(db: Database, settings: Settings, email: str,
                     ip: str = "testclient") -> AuthThrottle | None:
    """The failure count of one account from one source network (TestClient's default)."""
    with db.transaction(Scope.system("test read")) as session:
        row = session.get(AuthThrottle, service.account_network_key(settings, email, ip))
        if row is not None:
            session.expunge(row)
        return row


def wrong_code(secret: str) -> str:
    """A six-digit code that is not valid in the current window."""
    now = time.time()
    valid = {security.totp_now(secret, now + d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)


def password_step(client: TestClient, persona: Persona, password: str | None = None) -> dict:  # type: ignore[type-arg]
    """The first sign-in step only; sets the CSRF header for the session's writes."""
    res = client.post("/api/v1/session",
                      json={"email": persona.email, "password": password or persona.password})
    assert res.status_code == 200, res.text
    client.headers["X-CSRF-Token"] = res.json()["csrf_token"]
    return res.json()  # type: ignore[no-any-return]
