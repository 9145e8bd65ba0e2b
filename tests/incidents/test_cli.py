"""``vern incidents`` as a person would run it: the same command in process, on a real SQLite file."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from tests.cli_run import Ran, vern
from vern.accounts import service as accounts
from vern.accounts.roles import OrgKind
from vern.core.config import DEV_MASTER_KEY
from vern.core.crypto import KeyRing, install_keyring
from vern.core.db import Database, Scope


def run(args: list[str], env: dict[str, str]) -> Ran:
    return vern(["incidents", *args], env)


def test_a_breach_is_registered_refused_without_awareness_and_shown(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vern.db'}"
    database = Database(url)
    database.create_all()
    install_keyring(KeyRing(database.engine, base64.urlsafe_b64decode(DEV_MASTER_KEY)))
    with database.transaction(Scope.system("test")) as session:
        accounts.create_organisation(session, name="Solstrand Læring AS", slug="solstrand",
                                     kind=OrgKind.VENDOR, actor=None)
        accounts.create_organisation(session, name="Fjellheim barnehage", slug="fjellheim",
                                     kind=OrgKind.TENANT, actor=None)
    database.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")} | {
        "VERN_ENV": "test", "VERN_DATABASE_URL": url, "COLUMNS": "200",
        "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit")}

    refused = run(["new", "--title", "Feilsendt liste", "--breach", "--customer", "fjellheim"], env)
    assert refused.returncode == 2
    assert "aware_at" in refused.stderr
    unknown = run(["new", "--title", "X", "--breach", "--aware-at", "2026-12-06T08:00+01:00",
                   "--customer", "finnes-ikke"], env)
    assert unknown.returncode == 2 and "--customer" in unknown.stderr

    made = run(["new", "--title", "Feilsendt liste", "--breach", "--aware-at",
                "2026-12-06T08:00+01:00", "--customer", "fjellheim"], env)
    assert made.returncode == 0, made.stderr
    incident_id = made.stdout.strip().rsplit(" ", 1)[-1]
    listed = run(["list"], env)
    assert "Feilsendt liste" in listed.stdout and "#1" in listed.stdout
    shown = json.loads(run(["show", incident_id], env).stdout)
    assert shown["aware_at"] == "2026-12-06T07:00:00+00:00"
    assert [c["customer"] for c in shown["clocks"]] == ["Fjellheim barnehage"]
    notified = run(["notify", incident_id], env)
    assert notified.returncode == 2 and "Art. 33(3)" in notified.stderr
