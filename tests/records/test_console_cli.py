"""The records console for the vendor, and ``vern records`` on the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.cli_run import Ran, vern
from tests.conftest import Personas
from tests.records.helpers import fill_vendor
from vern.accounts import service as accounts
from vern.accounts.roles import OrgKind
from vern.core.db import Database, Scope


def test_the_console_lists_missing_fields_publishes_and_diffs(db: Database, personas: Personas,
                                                             login: Any) -> None:
    erik = login(personas.erik)
    page = erik.get("/console/records?lang=en")
    assert page.status_code == 200
    assert "30(1)(a) contact details of the data protection officer" in page.text
    fill_vendor(db, personas)
    assert "The record of processing is complete." in erik.get("/console/records?lang=en").text
    csrf = erik.headers["X-CSRF-Token"]
    refused = erik.post("/console/records/entries", data={"csrf_token": csrf, "key": "crm",
                                                          "name_nb": "CRM", "name_en": "CRM",
                                                          "purpose_keys": ["ingen"]})
    assert refused.status_code == 422 and "no such purpose in the consent register" in refused.text
    for _ in range(2):
        assert erik.post("/console/records/documents", data={"csrf_token": csrf, "kind": "record"},
                         follow_redirects=False).status_code == 303
    assert erik.post("/console/records/entries", follow_redirects=False, data={
        "csrf_token": csrf, "key": "support", "name_nb": "Brukerstøtte", "name_en": "Support",
        "purpose_keys": ["newsletter"], "subjects": ["support_requesters"],
        "own_tables": "users"}).status_code == 303
    assert erik.post("/console/records/documents", data={"csrf_token": csrf, "kind": "record"},
                     follow_redirects=False).status_code == 303
    versions = erik.get("/console/records/documents/record?from=1&to=2&lang=en")
    assert versions.status_code == 200 and "<ins>+Support</ins>" in versions.text
    pdf = erik.get("/console/records/documents/record/2?format=pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    exported = erik.get("/api/v1/records/export?format=json&controller=customers")
    assert len(exported.json()["controllers"]) == 2
    dave = login(personas.dave)
    assert dave.post("/console/records/documents", data={"csrf_token": dave.headers["X-CSRF-Token"],
                                                         "kind": "record"}).status_code == 403


def _run(args: list[str], env: dict[str, str]) -> Ran:
    return vern(args, env)


def test_records_check_names_what_is_missing_and_export_writes_files(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    env.update({"VERN_ENV": "dev", "VERN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
                "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit"), "VERN_DATA_DIR": str(tmp_path / "data"),
                "COLUMNS": "200"})
    assert _run(["init"], env).returncode == 0
    assert _run(["tenant", "create", "--name", "Fjellheim barnehage", "--slug", "fjellheim"],
                env).returncode == 0
    res = _run(["records", "check"], env)
    assert res.returncode == 1 and "no vendor organisation" in res.stderr
    database = Database(env["VERN_DATABASE_URL"])
    with database.transaction(Scope.system("test vendor")) as session:
        accounts.create_organisation(session, name="Solstrand Læring AS", slug="solstrand",
                                     kind=OrgKind.VENDOR, actor=None)
    database.dispose()
    res = _run(["records", "check"], env)
    assert res.returncode == 1
    assert "30(1)(a) contact details of the data protection officer" in res.stdout
    assert "30(2)(a) contact details of the controller" in res.stdout
    assert "mandatory fields missing" in res.stderr
    out = tmp_path / "record.pdf"
    res = _run(["records", "export", "--format", "pdf", "--out", str(out)], env)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes().startswith(b"%PDF")
    res = _run(["records", "export", "--format", "json", "--controller", "fjellheim"], env)
    assert json.loads(res.stdout)["records"][0]["controllers"][0]["name"] == "Fjellheim barnehage"
    res = _run(["records", "export", "--format", "xml"], env)
    assert res.returncode == 1 and "format" in res.stderr
