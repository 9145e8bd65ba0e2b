"""Internal control over the API, on SQLite and PostgreSQL: tasks, evidence, four-eyes, risks,
DPIAs, change requests, personnel export, media log, framework coverage, posture items."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from tests.conftest import Personas
from tests.control.helpers import PDF, make_task
from vern.audit.models import AuditEvent
from vern.control import posture, service
from vern.core.db import Database, Scope


def _actions(db: Database, prefix: str) -> list[str]:
    with db.transaction(Scope.system("test read audit")) as session:
        return [a for a in session.scalars(select(AuditEvent.action)) if a.startswith(prefix)]


def test_seed_loads_the_catalogue_once_with_due_dates_and_mappings(
        db: Database, personas: Personas, login: Any) -> None:
    dave = login(personas.dave)
    res = dave.post("/api/v1/control/seed", json={})
    assert res.status_code == 200, res.text
    made = res.json()["created"]
    keys = {t["key"] for t in made}
    assert {"risk_assessment", "security_audit", "management_review", "change_review",
            "contingency_test", "deviation_review", "access_review", "document_security",
            "restore_drill", "penetration_test"} == keys
    today = date.today()
    by_key = {t["key"]: t for t in made}
    assert by_key["access_review"]["recurrence"] == "quarterly"
    assert by_key["access_review"]["due_on"] == service.add_months(today, 3).isoformat()
    assert by_key["penetration_test"]["due_on"] == service.add_months(today, 12).isoformat()
    assert all(t["owner_user_id"] == personas.dave.user_id for t in made)
    again = dave.post("/api/v1/control/seed", json={})
    assert again.json()["created"] == []
    detail = dave.get(f"/api/v1/control/tasks/{by_key['restore_drill']['id']}").json()
    assert {"framework": "iso27001-2022", "requirement": "8.13"} in detail["mappings"]
    assert {"framework": "nsm-grunnprinsipper", "requirement": "2.9"} in detail["mappings"]
    assert "control.seed" in _actions(db, "control.")


def test_completing_an_overdue_task_with_evidence(db: Database, personas: Personas,
                                                  login: Any) -> None:
    due = date.today() - timedelta(days=10)
    task_id = make_task(db, personas, due_on=due)
    dave = login(personas.dave)
    listed = dave.get("/api/v1/control/tasks", params={"overdue": "true"}).json()["tasks"]
    assert [t["id"] for t in listed] == [task_id] and listed[0]["overdue"]
    up = dave.post(f"/api/v1/control/tasks/{task_id}/evidence/file",
                   files={"file": ("tilgangsliste.pdf", PDF, "application/pdf")},
                   data={"title": "Tilgangsliste"})
    assert up.status_code == 201, up.text
    assert up.json()["size"] == len(PDF) and up.json()["content_type"] == "application/pdf"
    link = dave.post(f"/api/v1/control/tasks/{task_id}/evidence/link",
                     json={"title": "Sak", "url": "https://intern.solstrand.example.com/sak/12"})
    assert link.status_code == 201
    rec = dave.post(f"/api/v1/control/tasks/{task_id}/evidence/record",
                    json={"title": "Sjekkpunkt", "record_kind": "audit_checkpoint",
                          "record_ref": "checkpoint 4711"})
    assert rec.status_code == 201
    done = dave.post(f"/api/v1/control/tasks/{task_id}/complete",
                     json={"note": "Gjennomgått, to kontoer fjernet"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["overdue"] is False
    assert body["due_on"] == service.next_due("quarterly", due, date.today()).isoformat()
    [completion] = body["completions"]
    assert completion["due_on"] == due.isoformat()
    assert completion["completed_by"] == personas.dave.user_id
    assert {e["completion_id"] for e in body["evidence"]} == {completion["id"]}
    got = dave.get(f"/api/v1/control/evidence/{up.json()['id']}/file")
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert "attachment" in got.headers["content-disposition"]
    acts = _actions(db, "control.")
    assert {"control.evidence.add", "control.task.complete", "control.evidence.read"} <= set(acts)


def test_evidence_is_checked_for_type_content_and_size(db: Database, personas: Personas,
                                                       login: Any) -> None:
    task_id = make_task(db, personas, due_on=date.today())
    dave = login(personas.dave)
    url = f"/api/v1/control/tasks/{task_id}/evidence/file"
    cases = [
        (("x.exe", b"MZ\x90\x00", "application/x-msdownload"), "is not accepted"),
        (("fake.pdf", b"<html>not a pdf</html>", "application/pdf"), "does not match"),
        (("big.txt", b"a" * (service.MAX_EVIDENCE_BYTES + 1), "text/plain"), "larger than"),
        (("bad.json", b"{nope", "application/json"), "does not match"),
    ]
    for file, message in cases:
        res = dave.post(url, files={"file": file})
        assert res.status_code == 422, res.text
        [err] = res.json()["errors"]
        assert err["field"] == "file" and message in err["message"]
    bad_link = dave.post(f"/api/v1/control/tasks/{task_id}/evidence/link",
                         json={"title": "x", "url": "javascript:alert(1)"})
    assert bad_link.status_code == 422 and bad_link.json()["errors"][0]["field"] == "url"
    bad_rec = dave.post(f"/api/v1/control/tasks/{task_id}/evidence/record",
                        json={"title": "x", "record_kind": "change_request",
                              "record_ref": "no-such-change"})
    assert bad_rec.status_code == 422 and bad_rec.json()["errors"][0]["field"] == "record_ref"


def test_deleting_evidence_needs_a_second_person(db: Database, personas: Personas,
                                                 login: Any) -> None:
    task_id = make_task(db, personas, due_on=date.today())
    dave, erik = login(personas.dave), login(personas.erik)
    ev = dave.post(f"/api/v1/control/tasks/{task_id}/evidence/file",
                   files={"file": ("notat.txt", "Gjennomgang utført".encode(), "text/plain")}
                   ).json()
    asked = dave.post(f"/api/v1/control/evidence/{ev['id']}/delete-request",
                      json={"reason": "Feil fil lastet opp"})
    assert asked.status_code == 200 and asked.json()["delete_requested_by"] == personas.dave.user_id
    self_ok = dave.post(f"/api/v1/control/evidence/{ev['id']}/delete-approve")
    assert self_ok.status_code == 403
    assert "cannot approve" in self_ok.json()["detail"]
    assert dave.get(f"/api/v1/control/evidence/{ev['id']}/file").status_code == 200
    ok = erik.post(f"/api/v1/control/evidence/{ev['id']}/delete-approve")
    assert ok.status_code == 200, ok.text
    assert ok.json()["deleted_by"] == personas.erik.user_id
    assert dave.get(f"/api/v1/control/evidence/{ev['id']}/file").status_code == 404
    acts = _actions(db, "control.evidence.delete")
    assert sorted(acts) == ["control.evidence.delete_approve", "control.evidence.delete_request"]


def test_an_api_token_cannot_take_part_in_four_eyes(db: Database, personas: Personas,
                                                    api_token: Any, app: Any) -> None:
    from starlette.testclient import TestClient

    from vern.accounts.roles import Role

    token = api_token(personas.vendor, Role.SECURITY_OFFICER)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        res = c.post("/api/v1/control/changes", json={
            "title": "t", "description": "d", "risk": "r", "rollback": "b"})
    assert res.status_code == 403 and "signed-in person" in res.json()["detail"]


def test_change_requests_need_another_person_to_approve(db: Database, personas: Personas,
                                                        login: Any) -> None:
    dave, erik = login(personas.dave), login(personas.erik)
    res = dave.post("/api/v1/control/changes", json={
        "title": "Øk max_connections på produksjonsdatabasen",
        "description": "max_connections fra 100 til 200", "risk": "Mer minnebruk",
        "rollback": "Sett tilbake til 100 og start på nytt"})
    assert res.status_code == 201 and res.json()["status"] == "pending"
    change_id = res.json()["id"]
    early = dave.post(f"/api/v1/control/changes/{change_id}/implement", json={})
    assert early.status_code == 409
    own = dave.post(f"/api/v1/control/changes/{change_id}/approve", json={"note": "ok"})
    assert own.status_code == 403
    assert own.json()["detail"] == ("The author of a change request cannot approve it; "
                                    "another person must")
    assert dave.get(f"/api/v1/control/changes/{change_id}").json()["status"] == "pending"
    ok = erik.post(f"/api/v1/control/changes/{change_id}/approve", json={"note": "Sett over"})
    assert ok.status_code == 200 and ok.json()["status"] == "approved"
    assert ok.json()["decided_by"] == personas.erik.user_id
    done = dave.post(f"/api/v1/control/changes/{change_id}/implement", json={"note": "Utført"})
    assert done.json()["status"] == "implemented"
    assert [h["action"] for h in done.json()["history"]] == ["filed", "approved", "implemented"]
    missing = dave.post("/api/v1/control/changes", json={
        "title": "x", "description": "y", "risk": "z", "rollback": "  "})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "rollback"
    assert "control.change.approve" in _actions(db, "control.change")


def test_risk_register_and_measures(db: Database, personas: Personas, login: Any) -> None:
    dave = login(personas.dave)
    res = dave.post("/api/v1/control/risks", json={
        "asset": "Elevdatabase", "threat": "illegitimate_access", "likelihood_before": 3,
        "consequence_before": 4, "likelihood_after": 1, "consequence_after": 4,
        "owner_user_id": personas.erik.user_id})
    assert res.status_code == 201, res.text
    risk = res.json()
    assert risk["before"] == {"likelihood": 3, "consequence": 4, "score": 12, "level": "high"}
    assert risk["after"]["score"] == 4 and risk["after"]["level"] == "medium"
    m = dave.post(f"/api/v1/control/risks/{risk['id']}/measures",
                  json={"text": "MFA for alle administratorer", "status": "in_progress"})
    measure = m.json()["measures"][0]
    assert measure["status"] == "in_progress"
    done = dave.patch(f"/api/v1/control/measures/{measure['id']}", json={"status": "done"})
    assert done.json()["measures"][0]["status"] == "done"
    bad = dave.post("/api/v1/control/risks", json={
        "asset": "X", "threat": "illegitimate_access", "likelihood_before": 5,
        "consequence_before": 2})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "likelihood_before"
    bad_owner = dave.post("/api/v1/control/risks", json={
        "asset": "X", "threat": "disappearance", "likelihood_before": 1,
        "consequence_before": 2, "owner_user_id": personas.alice.user_id})
    assert bad_owner.status_code == 422 and bad_owner.json()["errors"][0]["field"] == "owner"


def test_dpia_versions_and_exports(db: Database, personas: Personas, login: Any) -> None:
    erik = login(personas.erik)
    res = erik.post("/api/v1/control/dpias", json={
        "processing": "Læringsanalyse for elever",
        "content": {"context": {"overview": "Analyse av elevenes progresjon"},
                    "risks": {"illegitimate_access": {"severity": 3, "likelihood": 2,
                                                      "measures": "Tilgangsstyring"}}}})
    assert res.status_code == 201, res.text
    dpia = res.json()
    assert dpia["version"] == 1 and dpia["structure"] == "CNIL PIA"
    assert set(dpia["content"]) == {"context", "principles", "risks", "validation"}
    v2 = erik.put(f"/api/v1/control/dpias/{dpia['id']}", json={"content": {
        "context": {"overview": "Analyse av progresjon, aggregert"},
        "validation": {"decision": "accepted_with_actions", "dpo_opinion": "Godkjent"}}})
    assert v2.json()["version"] == 2 and v2.json()["versions"] == [2, 1]
    first = erik.get(f"/api/v1/control/dpias/{dpia['id']}", params={"version": 1}).json()
    assert first["content"]["context"]["overview"] == "Analyse av elevenes progresjon"
    assert first["content"]["risks"]["illegitimate_access"]["severity"] == 3
    html = erik.get(f"/api/v1/control/dpias/{dpia['id']}/export.html", params={"lang": "en"})
    assert html.status_code == 200 and "Analyse av progresjon, aggregert" in html.text
    assert "Fundamental principles" in html.text
    bad = erik.put(f"/api/v1/control/dpias/{dpia['id']}", json={"content": {
        "risks": {"unwanted_change": {"severity": 7}}}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "content.risks.unwanted_change.severity"
    unknown = erik.put(f"/api/v1/control/dpias/{dpia['id']}", json={"content": {"extra": {}}})
    assert unknown.json()["errors"][0]["field"] == "content.extra"


def test_personnel_flags_and_export(db: Database, personas: Personas, login: Any) -> None:
    dave = login(personas.dave)
    people = dave.get("/api/v1/control/personnel").json()["people"]
    assert {p["user_id"] for p in people} == {personas.dave.user_id, personas.erik.user_id}
    assert all("confidentiality_agreement" in p["missing"] for p in people)
    me = dave.post("/api/v1/control/personnel", json={"user_id": personas.dave.user_id,
                                                      "function": "Sikkerhetsleder"}).json()
    last_month = (date.today() - timedelta(days=30)).isoformat()
    assert dave.post(f"/api/v1/control/personnel/{me['id']}/nda", json={
        "signed_on": last_month, "version": "2026-1"}).status_code == 200
    for name in ("Information security", "Privacy and data protection"):
        assert dave.post(f"/api/v1/control/personnel/{me['id']}/trainings", json={
            "name": name, "completed_on": last_month}).status_code == 201
    sup = dave.post("/api/v1/control/personnel", json={
        "name": "Sigrid Strand", "supplier": "Driftspartner AS", "function": "Driftstekniker"})
    assert sup.status_code == 201
    future = dave.post(f"/api/v1/control/personnel/{sup.json()['id']}/nda", json={
        "signed_on": (date.today() + timedelta(days=3)).isoformat(), "version": "1"})
    assert future.status_code == 422 and future.json()["errors"][0]["field"] == "signed_on"
    not_staff = dave.post("/api/v1/control/personnel", json={"user_id": personas.alice.user_id})
    assert not_staff.status_code == 422 and not_staff.json()["errors"][0]["field"] == "user_id"
    res = dave.get("/api/v1/control/personnel/export", params={"format": "csv"})
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/csv")
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(res.text))}
    assert set(rows) == {"Dag Dahle", "Erik Eide", "Sigrid Strand"}
    assert rows["Dag Dahle"]["missing"] == ""
    assert rows["Dag Dahle"]["nda_version"] == "2026-1"
    assert rows["Dag Dahle"]["email"] == personas.dave.email
    assert rows["Dag Dahle"]["kind"] == "vendor"
    assert rows["Sigrid Strand"]["organisation"] == "Driftspartner AS"
    assert rows["Sigrid Strand"]["kind"] == "supplier"
    assert "confidentiality_agreement" in rows["Sigrid Strand"]["missing"]
    assert "training:Information security" in rows["Erik Eide"]["missing"]
    data = dave.get("/api/v1/control/personnel/export", params={"format": "json"}).json()
    dag = next(p for p in data["people"] if p["name"] == "Dag Dahle")
    assert dag["nda_signed_on"] == last_month and len(dag["trainings"]) == 2
    assert _actions(db, "control.personnel.export") == ["control.personnel.export"] * 2


def test_media_log_needs_a_witness_other_than_the_doer(db: Database, personas: Personas,
                                                       login: Any) -> None:
    dave = login(personas.dave)
    body = {"device": "Lenovo ThinkPad T14 NVMe", "serial": "S4EWNX0R123456", "method": "purge",
            "done_on": date.today().isoformat(), "done_by": personas.dave.user_id,
            "witness": personas.dave.user_id}
    same = dave.post("/api/v1/control/media", json=body)
    assert same.status_code == 422 and same.json()["errors"][0]["field"] == "witness"
    ok = dave.post("/api/v1/control/media", json={**body, "witness": personas.erik.user_id})
    assert ok.status_code == 201, ok.text
    [row] = dave.get("/api/v1/control/media").json()["media"]
    assert row["serial"] == "S4EWNX0R123456" and row["witness"] == personas.erik.user_id
    bad = dave.post("/api/v1/control/media", json={**body, "method": "shred"})
    assert bad.status_code == 422


def test_framework_coverage_lists_covering_controls_and_uncovered_requirements(
        db: Database, personas: Personas, login: Any) -> None:
    dave = login(personas.dave)
    fws = {f["key"]: f for f in dave.get("/api/v1/control/frameworks").json()["frameworks"]}
    assert len(fws["iso27001-2022"]["requirements"]) == 93
    assert fws["iso27001-2022"]["requirements"][0] == {
        "id": "5.1", "title": "Policies for information security", "title_nb": None,
        "group": "5", "group_title": "Organizational controls"}
    assert len(fws["nsm-grunnprinsipper"]["requirements"]) == 21
    task_id = make_task(db, personas, due_on=date.today())
    assert dave.post(f"/api/v1/control/tasks/{task_id}/mappings", json={
        "framework": "iso27001-2022", "requirement": "5.18"}).status_code == 201
    dave.post(f"/api/v1/control/tasks/{task_id}/evidence/link",
              json={"title": "Liste", "url": "https://intern.solstrand.example.com/t"})
    bad = dave.post(f"/api/v1/control/tasks/{task_id}/mappings", json={
        "framework": "iso27001-2022", "requirement": "9.99"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "requirement"
    cov = dave.get("/api/v1/control/frameworks/iso27001-2022").json()
    row = next(r for r in cov["requirements"] if r["id"] == "5.18")
    assert row["covered"] and row["controls"][0]["id"] == task_id
    assert row["controls"][0]["evidence"] == 1
    assert "5.18" not in cov["uncovered"] and "5.1" in cov["uncovered"]
    assert len(cov["uncovered"]) == 92


def test_posture_items_list_overdue_soon_due_and_pending_changes(
        db: Database, personas: Personas, login: Any) -> None:
    today = date.today()
    late = make_task(db, personas, title="Risk assessment", recurrence="yearly",
                     due_on=today - timedelta(days=1))
    soon = make_task(db, personas, title="Gjenopprettingsøvelse", due_on=today + timedelta(days=5))
    make_task(db, personas, title="Langt fram", due_on=today + timedelta(days=60))
    login(personas.dave).post("/api/v1/control/changes", json={
        "title": "Ny brannmurregel", "description": "d", "risk": "r", "rollback": "b"})
    now = datetime.now(UTC)
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        found = posture.items(session, now, "nb")
        english = posture.items(session, now, "en")
    assert [i["href"] for i in found[:2]] == [f"/console/control/tasks/{late}",
                                               f"/console/control/tasks/{soon}"]
    assert found[0] == {"kind": "control_task_overdue", "title": "Risikovurdering",
                        "due_at": datetime.combine(today, time.min, UTC), "overdue": True,
                        "href": f"/console/control/tasks/{late}"}
    assert found[1]["overdue"] is False and found[1]["kind"] == "control_task_due"
    assert found[2]["kind"] == "change_request_pending" and found[2]["due_at"] is None
    assert "Ny brannmurregel" in found[2]["title"]
    assert english[0]["title"] == "Risk assessment"
    assert len(found) == 3


def test_customers_and_support_cannot_change_internal_control(
        db: Database, personas: Personas, login: Any) -> None:
    alice = login(personas.alice)
    assert alice.get("/api/v1/control/tasks").status_code == 403
    assert alice.get("/console/control", follow_redirects=False).status_code == 403
    json.dumps({})
