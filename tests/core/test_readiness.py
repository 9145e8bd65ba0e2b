"""``/readyz`` says whether the database takes writes, and the process recovers by itself when a
read-only database takes writes again (PostgreSQL: ``default_transaction_read_only``; SQLite: the
file made read-only), with the request records of the read-only time written afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from starlette.testclient import TestClient

from tests import services
from tests.conftest import create_personas, make_settings, sign_in
from vern.app.web import create_app
from vern.audit import service as audit_service
from vern.audit.models import AuditEvent
from vern.core.crypto import KeyRing, install_keyring
from vern.core.db import Database, Scope, import_models


@contextmanager
def _postgres() -> Iterator[tuple[str, Callable[[bool], None]]]:
    with services.postgres_database("vern_ro") as url:
        name = url.rsplit("/", 1)[1]
        admin = create_engine(services.PG_ADMIN, isolation_level="AUTOCOMMIT")

        def read_only(on: bool) -> None:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only '
                                  f"= {'on' if on else 'off'}"))
                if on:  # as a fail-over to a standby would: every session starts again
                    conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      "WHERE datname = :n AND pid <> pg_backend_pid()"),
                                 {"n": name})

        try:
            yield url, read_only
        finally:
            read_only(False)
            admin.dispose()


@contextmanager
def _sqlite(tmp_path: Path) -> Iterator[tuple[str, Callable[[bool], None]]]:
    path = tmp_path / "vern.db"
    as_root = os.geteuid() == 0
    chattr = shutil.which("chattr")
    if as_root and chattr is None:
        pytest.skip("running as root without chattr: no way to make a file read-only for root")
    files: list[Path] = []

    def read_only(on: bool) -> None:
        nonlocal files
        if on:
            files = [p for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
        for file in files:
            if not file.exists():
                continue
            if as_root:  # permissions do not bind root; the immutable flag does
                assert chattr is not None
                subprocess.run([chattr, "+i" if on else "-i", str(file)], check=True)  # noqa: S603
            else:
                file.chmod(0o444 if on else 0o644)

    try:
        yield f"sqlite:///{path}", read_only
    finally:
        read_only(False)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_readyz_is_false_while_the_database_is_read_only_and_everything_recovers_after(
    kind: str, tmp_path: Path
) -> None:
    import_models()
    maker = _sqlite(tmp_path) if kind == "sqlite" else _postgres()
    with maker as (url, read_only):
        database = Database(url)
        database.create_all()
        settings = make_settings(url, tmp_path)
        install_keyring(KeyRing(database.engine, settings.master_key_bytes))
        personas = create_personas(database, settings)
        app = create_app(settings, database)
        try:
            with TestClient(app, base_url="http://testserver") as client:
                sign_in(client, personas.alice)
                assert client.get("/readyz").status_code == 200
                audit_service.flush_writer()

                read_only(True)
                res = client.get("/readyz")
                assert res.status_code == 503, res.text
                assert "writes" in res.json()["detail"]
                client.get("/healthz", headers={"x-request-id": "mens-skrivebeskyttet"})
                time.sleep(0.3)  # the writer tries (and fails) meanwhile

                read_only(False)
                assert client.get("/readyz").status_code == 200
                res = client.get("/api/v1/audit/events")
                assert res.status_code == 200, res.text
                audit_service.flush_writer(20)
                with database.transaction(Scope.system("test read")) as session:
                    recorded = session.scalars(select(AuditEvent.resource).where(
                        AuditEvent.request_id == "mens-skrivebeskyttet")).all()
                assert recorded == ["/healthz"]  # written once writes came back, not lost
        finally:
            database.dispose()


def test_readyz_is_ready_on_a_writable_database(client: TestClient) -> None:
    res = client.get("/readyz")
    assert res.status_code == 200 and res.json() == {"status": "ready"}
