"""``vern audit …`` run as an operator would: the same command in process, on a real SQLite file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text, update

from tests.audit.helpers import audit_log, fill
from tests.cli_run import Ran, vern
from tests.conftest import make_settings
from vern.audit.models import AuditEvent
from vern.core.db import Database


def run(args: list[str], env: dict[str, str]) -> Ran:
    return vern(["audit", *args], env)


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


def test_witness_quarantine_and_key_from_the_command_line(
    sqlite_db: Database, tmp_path: Path
) -> None:
    settings = make_settings(sqlite_db.url, tmp_path)
    fill(audit_log(sqlite_db, settings), sqlite_db, 60)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    env.update({"VERN_ENV": "test", "VERN_DATABASE_URL": sqlite_db.url,
                "VERN_AUDIT_LOG_DIR": str(settings.audit_log_dir), "COLUMNS": "300"})

    none = run(["witness"], env)
    assert none.returncode == 1 and "VERN_AUDIT_WITNESS_DIR" in none.stderr
    env["VERN_AUDIT_WITNESS_DIR"] = str(tmp_path / "witness")
    done = run(["witness"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "witness" / "checkpoint.json").read_text())["size"] == 60
    key = run(["public-key"], env)
    assert "C2SP verifier key: 127.0.0.1:8000/audit+" in key.stdout

    with sqlite_db.engine.begin() as conn:  # a record slipped in behind Vern's back
        row = conn.execute(select(AuditEvent).where(AuditEvent.seq == 5)).one()._asdict()
        row.update(id="00000000-0000-7000-8000-00000000beef", seq=None, mac=None,
                   client_event_id=None)
        conn.execute(insert(AuditEvent).values(**row))
    sealed = run(["seal"], env)
    assert sealed.returncode == 1 and "1 pending records quarantined" in sealed.stderr
    listed = run(["quarantined"], env)
    assert "00000000-0000-7000-8000-00000000beef" in listed.stdout and "no MAC" in listed.stdout
    bad = run(["verify"], env)
    assert bad.returncode == 1 and "quarantined" in bad.stderr
@pytest.mark.parametrize(
    ("column", "value", "named"),
    [
        ("root", "'3q2+7w=='", "audit_checkpoints row at tree size 40: column root holds text"),
        ("signature", "'ikke en signatur'", "tree size 40: column signature holds text"),
        ("ts", "'i går'", "tree size 40: column ts holds text"),
        ("tree_size", "'førti'", "(tree_size 'førti'): column tree_size holds text"),
        ("root", "x'00ff'", "tree size 40: column root holds 2 bytes, not 32"),
    ],
)
def test_verify_reports_a_wrongly_typed_checkpoint_column_without_a_traceback(
    sqlite_db: Database, tmp_path: Path, column: str, value: str, named: str
) -> None:
    settings = make_settings(sqlite_db.url, tmp_path)
    fill(audit_log(sqlite_db, settings), sqlite_db, 40)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    env.update({"VERN_ENV": "test", "VERN_DATABASE_URL": sqlite_db.url,
                "VERN_AUDIT_LOG_DIR": str(settings.audit_log_dir), "COLUMNS": "300"})
    assert run(["verify"], env).returncode == 0
    with sqlite_db.engine.begin() as conn:  # SQLite keeps a value of any type in any column
        conn.execute(text(f"UPDATE audit_checkpoints SET {column} = {value} "  # noqa: S608
                          "WHERE tree_size = 40"))

    bad = run(["verify"], env)

    assert bad.returncode == 1, bad.stdout
    assert "Traceback" not in bad.stderr, bad.stderr
    assert "verification failed" in bad.stderr and named in " ".join(bad.stderr.split()), bad.stderr
