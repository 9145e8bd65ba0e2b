"""Offboarding through the API as the vendor's staff and the customer's administrator would use
it, and the certificate checked by ``vern offboarding verify-certificate`` in a real process."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from starlette.testclient import TestClient

from tests.cli_run import vern
from tests.conftest import Personas
from vern.core.db import Database
from vern.core.worker import discover_jobs, run_due


def test_api_two_people_confirmation_and_certificate(db: Database, personas: Personas, login,  # type: ignore[no-untyped-def]
                                                     tmp_path: Path) -> None:
    dave: TestClient = login(personas.dave)
    erik: TestClient = login(personas.erik)
    alice: TestClient = login(personas.alice)
    bad = dave.post("/api/v1/offboarding", json={"org_id": personas.tenant_a, "notice_days": 9999})
    assert bad.status_code == 422 and "notice_days" in bad.text
    res = dave.post("/api/v1/offboarding", json={"org_id": personas.tenant_a, "notice_days": 30,
                                                 "reason": "Avtalen løper ut"})
    assert res.status_code == 201, res.text
    ob = res.json()["id"]
    assert alice.get(f"/api/v1/offboarding/{ob}").status_code == 403
    refused = dave.post(f"/api/v1/offboarding/{ob}/approve")
    assert refused.status_code == 409 and "cannot approve" in refused.json()["detail"]
    assert erik.post(f"/api/v1/offboarding/{ob}/approve").json()["status"] == "approved"
    export = dave.post(f"/api/v1/offboarding/{ob}/export")
    assert export.status_code == 200
    with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
        assert "vern/memberships.json" in archive.namelist()
    early = dave.post(f"/api/v1/offboarding/{ob}/delete")
    assert early.status_code == 409 and "notice period" in early.json()["detail"]
    assert alice.post("/api/v1/offboarding/confirm").status_code == 200
    started = dave.post(f"/api/v1/offboarding/{ob}/delete")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "deleting"  # ten steps now, the worker does the rest
    assert run_due(db, dave.app.state.settings, [j for j in discover_jobs()
                                                 if j.name == "offboarding.work"]) == ["offboarding.work"]
    done = dave.get(f"/api/v1/offboarding/{ob}")
    body = done.json()
    assert body["status"] == "deleted" and body["deleted"]["vern.memberships"] == 2
    page = dave.get(f"/console/offboarding/{ob}")
    assert page.status_code == 200 and body["certificate"].split("\n")[0] in page.text
    listing = dave.get("/console/offboarding")
    assert listing.status_code == 200 and "Fjellheim barnehage" in listing.text
    # Tenant B still has its members.
    carol: TestClient = login(personas.carol)
    assert carol.get("/console").status_code == 200

    cert = tmp_path / "certificate.txt"
    cert.write_text(body["certificate"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    env.update({"VERN_ENV": "test", "VERN_DATABASE_URL": db.url, "VERN_DATA_DIR": str(tmp_path)})
    cli = ["offboarding", "verify-certificate"]
    ok = vern([*cli, str(cert)], env)
    assert ok.returncode == 0, ok.stderr
    assert "certificate valid" in ok.stdout and personas.tenant_a in ok.stdout
    cert.write_text(body["certificate"].replace('"vern.memberships":2', '"vern.memberships":0'))
    forged = vern([*cli, str(cert)], env)
    assert forged.returncode == 1 and "not valid" in forged.stderr
