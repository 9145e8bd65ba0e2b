"""``vern backup`` run as a user would (the same commands in process, a real SQLite file), the
status API and the console page for the vendor's staff, and the customers' line on their
overview."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.testclient import TestClient

from tests.backup.conftest import sqlite_backup_settings
from tests.cli_run import Ran, vern
from tests.conftest import Personas
from vern.backup import service
from vern.core.config import Settings
from vern.core.db import Database


def run(args: list[str], env: dict[str, str]) -> Ran:
    return vern(args, env)


def test_backup_commands(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    env.update({"VERN_ENV": "dev", "VERN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
                "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit"), "VERN_DATA_DIR": str(tmp_path / "data"),
                "VERN_BACKUP_OFFSITE_DIR": str(tmp_path / "offsite"), "COLUMNS": "200"})
    assert run(["init"], env).returncode == 0
    made = run(["tenant", "create", "--name", "Fjellheim barnehage", "--slug", "fjellheim"], env)
    assert made.returncode == 0
    res = run(["backup", "run"], env)
    assert res.returncode == 0, res.stderr
    assert "2 copies" in res.stdout and "recovery point" in res.stdout
    label = res.stdout.split()[1].rstrip(":")
    listing = run(["backup", "list"], env)
    assert label in listing.stdout and str(tmp_path / "offsite") in listing.stdout.replace("\n", "")
    drill = run(["backup", "verify"], env)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "passed" in drill.stdout and "audit trail verified" in drill.stdout
    assert "vern rights replay" in drill.stdout
    refused = run(["backup", "restore", "--label", label], env)
    assert refused.returncode == 2 and "--force" in refused.stderr
    res = run(["backup", "restore", "--label", label, "--target", str(tmp_path / "copy.db")], env)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "copy.db").exists()
    bad = run(["backup", "restore", "--at", "igår"], env)
    assert bad.returncode == 2 and "--at" in bad.stderr


def test_status_api_console_and_customer_line(  # noqa: PLR0917 - fixtures
        db: Database, settings: Settings, personas: Personas, login, tmp_path: Path,  # type: ignore[no-untyped-def]
        monkeypatch) -> None:
    if db.engine.dialect.name == "sqlite":
        bs = sqlite_backup_settings(tmp_path)
        monkeypatch.setattr("vern.backup.service.backup_settings", lambda: bs)
        service.run_backup(db, settings, bs)
        service.verify(db, settings, bs)
    dave: TestClient = login(personas.dave)
    res = dave.get("/api/v1/backup/status")
    assert res.status_code == 200
    body = res.json()
    page = dave.get("/console/backup")
    assert page.status_code == 200
    alice: TestClient = login(personas.alice)
    overview = alice.get("/console")
    assert alice.get("/api/v1/backup/status").status_code == 403
    if db.engine.dialect.name == "sqlite":
        assert body["last_backup"]["copies"] == 2
        assert body["last_verified_restore"]["audit_ok"] is True
        assert "Last verified restore" in page.text or "Siste kontrollerte" in page.text
        assert "backup-line" in overview.text and "none has been taken" not in overview.text
    else:
        assert body["last_backup"] is None
        assert "none has been taken" in overview.text or "ingen er tatt" in overview.text
