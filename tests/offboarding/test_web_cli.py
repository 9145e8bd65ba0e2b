"""Offboarding through the API as the vendor's staff and the customer's administrator would use
it, and the certificate checked by ``vern offboarding verify-certificate`` in a real process."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from sqlalchemy import select
from starlette.testclient import TestClient

from tests.cli_run import vern
from tests.conftest import Personas
from vern.audit.models import AuditEvent
from vern.core.db import Database, Scope
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
    before = alice.get("/api/v1/end-of-contract").json()["end_of_contract"]
    assert before["status"] == "approved" and before["export_url"] is None
    assert alice.get(f"/api/v1/end-of-contract/{before['id']}/export").status_code == 409
    export = dave.post(f"/api/v1/offboarding/{ob}/export")
    assert export.status_code == 200
    with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
        names = archive.namelist()
        assert {"data.json", "summary.html", "manifest.json"} <= set(names)
        assert "csv/vern.vern.memberships.csv" in names
    _customer_downloads(db, personas, login, ob, export.content)
    assert dave.get(f"/api/v1/offboarding/{ob}").json()["status"] == "approved"
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
    # Alice and Bjørn belong to tenant A alone: their accounts are erased (with their
    # memberships) before the tables are emptied.
    assert body["status"] == "deleted" and body["accounts"] == {"erased": 2, "kept_membership_removed": 0}
    assert body["deleted"]["vern.memberships"] == 0
    assert alice.get("/api/v1/end-of-contract").status_code == 401  # her account is gone
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
    cert.write_text(body["certificate"].replace('"erased":2', '"erased":0'))
    forged = vern([*cli, str(cert)], env)
    assert forged.returncode == 1 and "not valid" in forged.stderr


def _customer_downloads(db: Database, personas: Personas, login, ob: str,  # type: ignore[no-untyped-def]
                        made: bytes) -> None:
    """Tenant A's administrator downloads the export (API and console) during the notice period;
    each download is in tenant A's audit trail; tenant B's administrator gets 404, tenant A's
    member 403, and the vendor's staff cannot use the customer's download."""
    alice: TestClient = login(personas.alice)
    mine = alice.get("/api/v1/end-of-contract")
    assert mine.status_code == 200, mine.text
    ref = mine.json()["end_of_contract"]["id"]
    assert ref != ob  # the customer's reference, not the vendor's id
    assert mine.json()["end_of_contract"]["export_url"] == f"/api/v1/end-of-contract/{ref}/export"
    assert alice.get(f"/api/v1/end-of-contract/{ob}/export").status_code == 404
    got = alice.get(f"/api/v1/end-of-contract/{ref}/export")
    assert got.status_code == 200 and got.content == made
    assert got.headers["content-type"] == "application/zip"
    page = alice.get("/console/end-of-contract")
    assert page.status_code == 200 and f"/console/end-of-contract/{ref}/export" in page.text
    again = alice.get(f"/console/end-of-contract/{ref}/export")
    assert again.status_code == 200 and again.content == made
    carol: TestClient = login(personas.carol)
    assert carol.get(f"/api/v1/end-of-contract/{ref}/export").status_code == 404
    assert carol.get(f"/console/end-of-contract/{ref}/export").status_code == 404
    assert carol.get("/api/v1/end-of-contract").json() == {"end_of_contract": None}
    bob: TestClient = login(personas.bob)
    assert bob.get(f"/api/v1/end-of-contract/{ref}/export").status_code == 403
    dave: TestClient = login(personas.dave)
    assert dave.get(f"/api/v1/end-of-contract/{ref}/export").status_code == 403
    with db.transaction(Scope.system("test: the customer's trail")) as session:
        downloads = session.scalars(select(AuditEvent).where(
            AuditEvent.org_id == personas.tenant_a,
            AuditEvent.action == "offboarding.export_downloaded")).all()
        assert len(downloads) == 2
        assert {r.actor_user_id for r in downloads} == {personas.alice.user_id}
        assert all(r.resource == f"offboarding:{ob}" for r in downloads)
