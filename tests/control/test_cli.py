"""``vern control …`` as an operator runs it: the same commands in process, against a real SQLite file."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import date, timedelta
from pathlib import Path

from tests.cli_run import Ran, vern
from tests.conftest import create_personas, make_settings
from tests.control.helpers import PDF, make_task
from vern.core.db import Database


def run(args: list[str], env: dict[str, str]) -> Ran:
    return vern(args, env)


def test_seed_list_complete_export_and_media_log(sqlite_db: Database, tmp_path: Path) -> None:
    personas = create_personas(sqlite_db, make_settings(sqlite_db.url, tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    env.update({"VERN_ENV": "test", "VERN_DATABASE_URL": sqlite_db.url, "COLUMNS": "200",
                "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit"),
                "VERN_DATA_DIR": str(tmp_path / "data")})
    dave, erik = personas.dave.email, personas.erik.email

    res = run(["control", "seed", "--owner", dave], env)
    assert res.returncode == 0, res.stderr
    assert "10 task(s) loaded" in res.stdout
    assert "0 task(s) loaded" in run(["control", "seed", "--owner", dave], env).stdout
    bad = run(["control", "seed", "--owner", "alice.aasen@fjellheim.example.com"], env)
    assert bad.returncode == 1 and "--owner" in bad.stderr

    late = make_task(sqlite_db, personas, title="Tilgangskontroll Q3",
                     due_on=date.today() - timedelta(days=4))
    overdue = json.loads(run(["control", "tasks", "list", "--overdue", "--json"], env).stdout)
    assert [t["id"] for t in overdue] == [late]
    evidence = tmp_path / "rapport.pdf"
    evidence.write_bytes(PDF)
    done = run(["control", "tasks", "complete", late, "--by", erik, "--note", "Utført",
                "--file", str(evidence)], env)
    assert done.returncode == 0, done.stderr
    assert "next due" in done.stdout
    assert json.loads(run(["control", "tasks", "list", "--overdue", "--json"], env).stdout) == []
    wrong = tmp_path / "falsk.pdf"
    wrong.write_text("ikke en pdf")
    refused = run(["control", "tasks", "complete", late, "--by", erik, "--file", str(wrong)], env)
    assert refused.returncode == 1 and "file: content does not match" in refused.stderr

    same = run(["control", "media", "log", "--device", "Samsung SSD 870", "--serial", "S6PTNZ0R1",
                "--method", "destroy", "--by", dave, "--witness", dave], env)
    assert same.returncode == 1 and "witness" in same.stderr
    ok = run(["control", "media", "log", "--device", "Samsung SSD 870", "--serial", "S6PTNZ0R1",
              "--method", "destroy", "--by", dave, "--witness", erik], env)
    assert ok.returncode == 0, ok.stderr
    assert "S6PTNZ0R1" in run(["control", "media", "list"], env).stdout

    exported = run(["control", "personnel", "export", "--format", "csv"], env)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert {r["name"] for r in rows} == {"Dag Dahle", "Erik Eide"}
    assert all("confidentiality_agreement" in r["missing"] for r in rows)
    assert run(["control", "risks"], env).returncode == 0
