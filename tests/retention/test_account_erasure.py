"""A Vern account can be erased, not only disabled or removed: its data key is destroyed, so
its name and e-mail are nowhere readable and its audit records' personal fields are erased,
while the trail verifies. The last security officer and an organisation's last administrator
are refused with the reason. API, console and CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from starlette.testclient import TestClient

from tests.cli_run import vern
from tests.conftest import Personas, make_settings, user_row
from tests.console.helpers import csrf_of
from vern.accounts import service as accounts
from vern.audit.chain import open_personal
from vern.audit.models import AuditEvent
from vern.audit.service import seal_now
from vern.audit.verify import verify
from vern.core.crypto import PII, Encrypted, keyring
from vern.core.db import Base, Database, Scope


def _readable(db: Database, needles: list[str]) -> list[str]:
    found = []
    lowered = [n.lower().encode() for n in needles]
    with db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(select(text("*")).select_from(text(f'"{table}"'))).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    raw = (bytes(value) if isinstance(value, (bytes, memoryview))
                           else str(value).encode()).lower()
                    found += [f"{table}.{column}" for n in lowered if n in raw]
    with db.transaction(Scope.system("test: open every sealed column")) as session:
        for mapper in Base.registry.mappers:
            for column in [c for c in mapper.columns if isinstance(c.type, Encrypted)]:
                for value in session.scalars(select(column).where(column.is_not(None))):
                    if isinstance(value, PII) and value.value is not None:
                        found += [f"{mapper.class_.__tablename__}.{column.key} (opened)"
                                  for n in needles if n.lower() in value.value.lower()]
    return found


def test_an_erased_account_is_readable_nowhere_and_the_trail_verifies(
        client: TestClient, personas: Personas, login, db: Database,  # type: ignore[no-untyped-def]
        tmp_path: Path) -> None:
    settings = make_settings(db.url, tmp_path)
    bob = personas.bob  # Bjørn Bakken, a member of Fjellheim
    member = login(bob)
    assert member.get("/api/v1/me").status_code == 200  # an audit record with his address
    admin = login(personas.alice)
    answer = admin.post(f"/api/v1/users/{bob.user_id}/erase")
    assert answer.status_code == 200, answer.text
    assert member.get("/api/v1/me").status_code == 401  # his session ended
    seal_now(db, settings)
    assert _readable(db, ["Bjørn Bakken", bob.email]) == []
    with db.transaction(Scope.system("test")) as session:
        blobs = list(session.scalars(select(AuditEvent.personal).where(
            AuditEvent.actor_user_id == bob.user_id, AuditEvent.personal.is_not(None))))
        assert blobs and all(open_personal(b) == {"erased": "1"} for b in blobs)
        assert accounts.find_user_by_email(session, settings, bob.email) is None
    assert user_row(db, bob.user_id).disabled_at is not None
    assert verify(db, settings).ok


def test_the_last_administrator_and_the_last_security_officer_are_kept(
        client: TestClient, personas: Personas, login, db: Database) -> None:  # type: ignore[no-untyped-def]
    # the vendor's only security officer, erased by the operator from the CLI: refused
    with db.transaction(Scope.tenant(personas.vendor)) as session, \
            pytest.raises(accounts.Conflict, match="security officer"):
        accounts.erase_user(session, user_id=personas.dave.user_id, actor=None)
    # Havbris's only administrator, erased by a vendor's CLI: refused with the reason
    with db.transaction(Scope.tenant(personas.tenant_b)) as session, \
            pytest.raises(accounts.Conflict, match="administrator"):
        accounts.erase_user(session, user_id=personas.carol.user_id, actor=None)
    admin = login(personas.alice)
    own = admin.post(f"/api/v1/users/{personas.alice.user_id}/erase")
    assert own.status_code == 403
    other = admin.post(f"/api/v1/users/{personas.carol.user_id}/erase")  # another customer's
    assert other.status_code == 404
    confirm = admin.get(f"/console/users/{personas.bob.user_id}/erase")
    assert confirm.status_code == 200
    assert f'action="/console/users/{personas.bob.user_id}/erase"' in confirm.text
    page = admin.post(f"/console/users/{personas.bob.user_id}/erase",
                      data={"csrf_token": csrf_of(confirm.text)}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/console/users?done=erased"
    assert user_row(db, personas.bob.user_id).email_index == f"erased:{personas.bob.user_id}"


def test_the_cli_erases_an_account(db: Database, personas: Personas, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    env |= {"VERN_ENV": "test", "VERN_DATABASE_URL": db.url, "COLUMNS": "200",
            "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit"), "VERN_DATA_DIR": str(tmp_path / "data")}
    res = vern(["user", "erase", "--email", personas.bob.email, "--org", "fjellheim"], env)
    assert res.returncode == 0, res.stderr
    keyring().forget_cached()  # the test's key ring cached the key before the command destroyed it
    assert user_row(db, personas.bob.user_id).email.value is None
    refused = vern(["user", "erase", "--email", personas.carol.email, "--org", "havbris"], env)
    assert refused.returncode == 1 and "administrator" in refused.stderr
