"""``vern audit …`` run as an operator would: a real process on a real SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import update

from tests.audit.helpers import audit_log, fill
from tests.conftest import make_settings
from vern.audit.models import AuditEvent
from vern.db import Database


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "vern.cli", "audit", *args], env=env, capture_output=True,
        text=True, timeout=120, check=False)


def test_verify_and_prove_from_the_command_line(sqlite_db: Database, tmp_path: Path) -> None:
    settings = make_settings(sqlite_db.url, tmp_path)
    fill(audit_log(sqlite_db, settings), sqlite_db, 120)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    env.update({"VERN_ENV": "test", "VERN_DATABASE_URL": sqlite_db.url,
                "VERN_AUDIT_LOG_DIR": str(settings.audit_log_dir), "COLUMNS": "200"})

    ok = run(["verify"], env)
    assert ok.returncode == 0, ok.stderr
    assert "120 records" in ok.stdout

    proof = run(["prove", "--seq", "33"], env)
    assert proof.returncode == 0, proof.stderr
    saved = tmp_path / "proof.json"
    saved.write_text(proof.stdout)
    assert json.loads(proof.stdout)["seq"] == 33
    assert run(["prove", "--check", str(saved)], env).returncode == 0
    forged = json.loads(proof.stdout)
    forged["leaf_data"] = forged["leaf_data"].replace("page.read", "page.none")
    saved.write_text(json.dumps(forged))
    assert run(["prove", "--check", str(saved)], env).returncode == 1

    with sqlite_db.engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 64).values(resource="/elsewhere"))
    bad = run(["verify"], env)
    assert bad.returncode == 1
    assert "record seq 64" in bad.stderr and "database" in bad.stderr
