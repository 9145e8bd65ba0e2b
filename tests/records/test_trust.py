"""The trust page: each customer's users see their own customer only; downloads are audited; the
administrator signs the agreement there."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from tests.conftest import Personas
from tests.records.helpers import fill_vendor
from vern.audit.models import AuditEvent
from vern.core.db import Database, Scope
from vern.records import documents
from vern.trust import service as trust


def _share(db: Database, personas: Personas, org_ids: list[str], title: str) -> str:
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        row = trust.upload_file(session, org_id=personas.vendor, title=title,
                                filename="../pentest 2026.pdf", content_type="application/pdf",
                                content=b"%PDF-1.4 rapport", actor_user_id=personas.dave.user_id)
        file_id = row.id
    trust.share_file(db, vendor_org_id=personas.vendor, file_id=file_id, org_ids=org_ids,
                     actor_user_id=personas.dave.user_id)
    return file_id


def test_each_customer_sees_only_its_own_trust_page_and_files(db: Database, personas: Personas,
                                                               login: Any) -> None:
    fill_vendor(db, personas)
    documents.publish_dpa(db, org_id=personas.tenant_a, actor_user_id=None)
    _share(db, personas, [personas.tenant_a], "Penetrasjonstest 2026")
    alice, carol = login(personas.alice), login(personas.carol)
    page_a = alice.get("/api/v1/trust").json()
    assert page_a["organisation"] == "Fjellheim barnehage"
    assert [f["title"] for f in page_a["files"]] == ["Penetrasjonstest 2026"]
    assert page_a["agreement"]["pending"]["version"] == 1
    assert {s["name"] for s in page_a["subprocessors"]} == {"Fjorddrift AS", "Postbud Inc."}
    page_b = carol.get("/api/v1/trust").json()
    assert page_b["files"] == [] and page_b["agreement"]["pending"] is None
    share_id = page_a["files"][0]["id"]
    assert carol.get(f"/api/v1/trust/files/{share_id}").status_code == 404
    assert carol.get(f"/api/v1/trust/agreements/{page_a['agreement']['pending']['id']}").status_code == 404
    res = alice.get(f"/api/v1/trust/files/{share_id}")
    assert res.status_code == 200 and res.content == b"%PDF-1.4 rapport"
    assert res.headers["content-disposition"] == 'attachment; filename="pentest_2026.pdf"'
    with db.transaction(Scope.system("test audit")) as session:
        found = session.scalars(select(AuditEvent).where(AuditEvent.action == "trust.file_downloaded")).all()
    assert [(e.org_id, e.actor_user_id) for e in found] == [(personas.tenant_a, personas.alice.user_id)]


def test_vendor_staff_and_other_roles_have_no_trust_page(db: Database, personas: Personas,
                                                        login: Any) -> None:
    assert login(personas.dave).get("/api/v1/trust").status_code == 403
    bob = login(personas.bob)
    assert bob.get("/api/v1/trust").status_code == 200
    assert bob.get("/trust", follow_redirects=False).headers["location"] == "/console/trust"


def test_the_admin_signs_in_the_console_and_a_member_cannot(db: Database, personas: Personas,
                                                           login: Any) -> None:
    fill_vendor(db, personas)
    documents.publish_dpa(db, org_id=personas.tenant_a, actor_user_id=None)
    alice = login(personas.alice)
    pending = alice.get("/api/v1/trust").json()["agreement"]["pending"]
    bob = login(personas.bob)
    denied = bob.post(f"/api/v1/trust/agreements/{pending['id']}/signature",
                      json={"signer_name": "Bjørn Bakken", "signed_on": date.today().isoformat()})
    assert denied.status_code == 403
    refused = alice.post(f"/console/trust/agreements/{pending['id']}/sign",
                         data={"csrf_token": alice.headers["X-CSRF-Token"], "signer_name": "",
                               "signed_on": date.today().isoformat()})
    assert refused.status_code == 422
    assert "uten navnet" in refused.text or "without the signer" in refused.text
    done = alice.post(f"/console/trust/agreements/{pending['id']}/sign", follow_redirects=False,
                      data={"csrf_token": alice.headers["X-CSRF-Token"], "signer_name": "Alice Aasen",
                            "signed_on": date.today().isoformat()})
    assert done.status_code == 303
    status = alice.get("/api/v1/trust").json()["agreement"]
    assert status["signed"]["signer_name"] == "Alice Aasen" and status["pending"] is None
    assert alice.get(f"/console/trust/agreements/{pending['id']}?format=pdf").content.startswith(b"%PDF")


def test_the_api_refuses_a_signature_without_a_date_naming_the_field(db: Database, personas: Personas,
                                                                    login: Any) -> None:
    fill_vendor(db, personas)
    documents.publish_dpa(db, org_id=personas.tenant_a, actor_user_id=None)
    erik = login(personas.erik)
    res = erik.post(f"/api/v1/records/tenants/{personas.tenant_a}/signature",
                    json={"signer_name": "Alice Aasen"})
    assert res.status_code == 422
    assert res.json()["errors"][0]["field"] == "signed_on"
    res = erik.post(f"/api/v1/records/tenants/{personas.tenant_a}/signature",
                    json={"signer_name": "Alice Aasen", "signed_on": "2026-01-05"})
    assert res.status_code == 200 and res.json()["status"] == "signed"


def test_a_withdrawn_file_leaves_the_trust_page_and_its_download_answers_404(
        db: Database, personas: Personas, login: Any) -> None:
    fill_vendor(db, personas)
    api_file = _share(db, personas, [personas.tenant_a, personas.tenant_b], "Penetrasjonstest 2026")
    console_file = _share(db, personas, [personas.tenant_a], "ISO 27001-sertifikat")
    alice, carol = login(personas.alice), login(personas.carol)
    shares = {f["title"]: f["id"] for f in alice.get("/api/v1/trust").json()["files"]}
    carol_share = carol.get("/api/v1/trust").json()["files"][0]["id"]
    assert alice.get(f"/console/trust/download/{shares['Penetrasjonstest 2026']}").status_code == 200

    # A customer's administrator may not withdraw the vendor's file.
    assert alice.post(f"/api/v1/trust/files/{api_file}/withdraw").status_code == 403
    dave = login(personas.dave)
    res = dave.post(f"/api/v1/trust/files/{api_file}/withdraw")
    assert res.status_code == 200 and res.json() == {"id": api_file, "withdrawn": True}
    assert dave.post(f"/api/v1/trust/files/{api_file}/withdraw").status_code == 404
    erik = login(personas.erik)
    done = erik.post(f"/console/trust/files/{console_file}/withdraw", follow_redirects=False,
                     data={"csrf_token": erik.headers["X-CSRF-Token"]})
    assert done.status_code == 303 and done.headers["location"] == "/console/records#files"

    assert alice.get("/api/v1/trust").json()["files"] == []
    assert carol.get("/api/v1/trust").json()["files"] == []
    for client, share in ((alice, shares["Penetrasjonstest 2026"]), (alice, shares["ISO 27001-sertifikat"]),
                          (carol, carol_share)):
        assert client.get(f"/console/trust/download/{share}").status_code == 404
        assert client.get(f"/api/v1/trust/files/{share}").status_code == 404
    listing = erik.get("/console/records").text
    assert "trukket tilbake" in listing or "withdrawn on" in listing
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        events = list(session.scalars(select(AuditEvent).where(
            AuditEvent.action == "trust.file_withdrawn")))
    assert sorted(e.resource for e in events) == sorted([f"trust_file:{api_file}",
                                                          f"trust_file:{console_file}"])
    assert {e.actor_user_id for e in events} == {personas.dave.user_id, personas.erik.user_id}
