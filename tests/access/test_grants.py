"""Vendor access to a customer: only through a grant the customer's administrator approved, for a
stated purpose and period; it ends at once when revoked or past its end; the customer sees every
grant and every access made under it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from starlette.testclient import TestClient

from tests.conftest import Personas
from vern.access.models import AccessGrant
from vern.audit import service as audit
from vern.core.db import Database, Scope, utcnow
from vern.notify import service as notify


def _ask(client: TestClient, org_id: str, **overrides: Any) -> Any:
    body = {"org_id": org_id, "purpose": "support",
            "reason": "Kunden melder at eksport av tilgangsforespørsler feiler (sak 4711)",
            "ends_at": (utcnow() + timedelta(hours=4)).isoformat()} | overrides
    return client.post("/api/v1/access/grants", json=body)


def _field(res: Any) -> str:
    return str(res.json()["errors"][0]["field"])


def test_bad_grant_requests_are_refused_with_the_field(login: Any, personas: Personas) -> None:
    erik = login(personas.erik)
    now = utcnow()
    missing_reason = _ask(erik, personas.tenant_a, reason="  ")
    assert missing_reason.status_code == 422 and _field(missing_reason) == "reason"
    no_end = _ask(erik, personas.tenant_a, ends_at=None)
    assert no_end.status_code == 422 and _field(no_end) == "ends_at"
    backwards = _ask(erik, personas.tenant_a, starts_at=(now + timedelta(hours=5)).isoformat(),
                     ends_at=(now + timedelta(hours=2)).isoformat())
    assert backwards.status_code == 422 and _field(backwards) == "ends_at"
    assert "after the start" in backwards.json()["detail"]
    too_long = _ask(erik, personas.tenant_a, ends_at=(now + timedelta(days=31)).isoformat())
    assert too_long.status_code == 422 and "at most 30 days" in too_long.json()["detail"]
    unknown = _ask(erik, personas.tenant_a, purpose="curiosity")
    assert unknown.status_code == 422 and "purpose" in unknown.text
    no_customer = _ask(erik, personas.vendor)
    assert no_customer.status_code == 422 and _field(no_customer) == "org_id"
    # A customer's administrator asks nobody for access to their own data.
    assert _ask(login(personas.alice), personas.tenant_b).status_code == 403


def test_staff_reach_a_customer_only_while_its_approved_grant_is_in_force(
    login: Any, db: Database, personas: Personas
) -> None:
    erik, alice, carol = login(personas.erik), login(personas.alice), login(personas.carol)
    # Without a grant: not even by switching.
    refused = erik.put("/api/v1/session/org", json={"org_id": personas.tenant_a})
    assert refused.status_code == 403
    asked = _ask(erik, personas.tenant_a)
    assert asked.status_code == 201, asked.text
    grant_id = asked.json()["id"]
    assert asked.json()["state"] == "pending"
    # Pending is not approved.
    assert erik.put("/api/v1/session/org", json={"org_id": personas.tenant_a}).status_code == 403

    # The customer's administrator sees it; another customer does not.
    listed = alice.get("/api/v1/access/grants").json()["items"]
    assert [(g["id"], g["grantee_user_id"], g["purpose"]) for g in listed] == [
        (grant_id, personas.erik.user_id, "support")]
    assert carol.get(f"/api/v1/access/grants/{grant_id}").status_code == 404
    assert carol.post(f"/api/v1/access/grants/{grant_id}/approve", json={}).status_code == 404
    approved = alice.post(f"/api/v1/access/grants/{grant_id}/approve", json={})
    assert approved.status_code == 200 and approved.json()["state"] == "active"

    assert erik.put("/api/v1/session/org", json={"org_id": personas.tenant_a}).status_code == 200
    inside = erik.get("/api/v1/rights/requests")
    assert inside.status_code == 200, inside.text
    # The customer sees every access made under the grant, tagged with it.
    audit.flush_writer()
    detail = alice.get(f"/api/v1/access/grants/{grant_id}").json()
    paths = {a["resource"] for a in detail["accesses"]}
    assert "/api/v1/rights/requests" in paths
    assert all(a["actor_user_id"] == personas.erik.user_id for a in detail["accesses"])

    # Revoked: the very next request is refused (no job, no sign-out needed).
    assert alice.post(f"/api/v1/access/grants/{grant_id}/revoke").json()["state"] == "revoked"
    assert erik.get("/api/v1/rights/requests").status_code == 403
    assert "org.read" not in erik.get("/api/v1/me").text  # /me itself needs org.read
    assert erik.put("/api/v1/session/org", json={"org_id": personas.vendor}).status_code == 200


def test_an_expired_grant_ends_access_at_once(login: Any, db: Database,
                                              personas: Personas) -> None:
    erik, alice = login(personas.erik), login(personas.alice)
    grant_id = _ask(erik, personas.tenant_a).json()["id"]
    alice.post(f"/api/v1/access/grants/{grant_id}/approve", json={})
    assert erik.put("/api/v1/session/org", json={"org_id": personas.tenant_a}).status_code == 200
    assert erik.get("/api/v1/rights/requests").status_code == 200
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        session.execute(update(AccessGrant).where(AccessGrant.id == grant_id)
                        .values(ends_at=utcnow() - timedelta(seconds=1)))
    assert erik.get("/api/v1/rights/requests").status_code == 403
    assert alice.get(f"/api/v1/access/grants/{grant_id}").json()["state"] == "expired"
    # An ended grant cannot be approved again.
    again = alice.post(f"/api/v1/access/grants/{grant_id}/approve", json={})
    assert again.status_code == 409


def test_a_refusal_needs_a_note_and_every_step_is_audited(login: Any, db: Database,
                                                         personas: Personas) -> None:
    from sqlalchemy import select

    from vern.audit.models import AuditEvent

    erik, alice = login(personas.erik), login(personas.alice)
    grant_id = _ask(erik, personas.tenant_a, purpose="incident").json()["id"]
    bare = alice.post(f"/api/v1/access/grants/{grant_id}/refuse", json={})
    assert bare.status_code == 422 and _field(bare) == "note"
    refused = alice.post(f"/api/v1/access/grants/{grant_id}/refuse",
                         json={"note": "Ta kontakt med oss på telefon først"})
    assert refused.json()["state"] == "refused"
    with db.transaction(Scope.system("test read")) as session:
        trail = session.execute(select(AuditEvent.org_id, AuditEvent.action, AuditEvent.actor_user_id)
                                .where(AuditEvent.resource == f"access_grant:{grant_id}")).all()
    assert sorted((r.org_id, r.action, r.actor_user_id) for r in trail) == sorted([
        (personas.tenant_a, "access.grant.requested", personas.erik.user_id),
        (personas.tenant_a, "access.grant.refused", personas.alice.user_id),
    ])


def test_the_customer_page_lists_grants_and_the_accesses_under_them(
    login: Any, personas: Personas
) -> None:
    erik, alice = login(personas.erik), login(personas.alice)
    grant_id = _ask(erik, personas.tenant_a).json()["id"]
    page = alice.get("/console/access")
    assert page.status_code == 200 and "Erik Eide" in page.text
    assert f"/console/access/grants/{grant_id}" in page.text
    alice.post(f"/console/access/grants/{grant_id}/approve", data={})
    erik.put("/api/v1/session/org", json={"org_id": personas.tenant_a})
    assert erik.get("/console/rights").status_code == 200
    audit.flush_writer()
    detail = alice.get(f"/console/access/grants/{grant_id}")
    assert detail.status_code == 200 and "/console/rights" in detail.text
    # Vendor staff see their own grants on their page, without the customer's people.
    erik.put("/api/v1/session/org", json={"org_id": personas.vendor})
    mine = erik.get("/console/access")
    assert "Fjellheim barnehage" in mine.text and "Alice" not in mine.text


def test_the_customers_administrators_are_told_of_a_request_by_mail(
    mailer: notify.MemoryMailer, login: Any, db: Database, personas: Personas
) -> None:
    grant_id = _ask(login(personas.erik), personas.tenant_a).json()["id"]
    notify.deliver_pending(db)
    mail = mailer.last_to(personas.alice.email)
    assert mail is not None
    assert "Erik Eide" in mail.body and "sak 4711" in mail.body
    assert f"/console/access/grants/{grant_id}" in mail.body
    assert mailer.last_to(personas.bob.email) is None  # members are not asked
    assert mailer.last_to(personas.carol.email) is None  # nor another customer


def test_the_staff_member_is_told_by_mail_when_the_grant_is_decided(
    mailer: notify.MemoryMailer, login: Any, db: Database, personas: Personas
) -> None:
    erik, alice = login(personas.erik), login(personas.alice)
    approved_id = _ask(erik, personas.tenant_a).json()["id"]
    refused_id = _ask(erik, personas.tenant_a, purpose="incident").json()["id"]
    notify.deliver_pending(db)
    assert mailer.last_to(personas.erik.email) is None  # asking is not a decision
    assert alice.post(f"/api/v1/access/grants/{approved_id}/approve",
                      json={}).status_code == 200
    notify.deliver_pending(db)
    approved = mailer.last_to(personas.erik.email)
    assert alice.post(f"/api/v1/access/grants/{refused_id}/refuse",
                      json={"note": "Ring oss før dere logger inn"}).status_code == 200
    notify.deliver_pending(db)
    refused = mailer.last_to(personas.erik.email)
    assert approved is not None and refused is not None
    assert "Fjellheim barnehage" in approved.subject and "godkjent" in approved.subject
    assert "/console/access" in approved.body
    assert "avslått" in refused.subject and "Ring oss før dere logger inn" in refused.body
