"""A customer with a single administrator can get a second one: the second person for a role
request in a customer's organisation is another of its administrators or the vendor's staff who
administer customers (``tenants.manage``) - never whoever asked, nor the person the role is for.
The vendor's staff see only the pending requests, not the customer's data, and the customer's
administrators are told of the decision."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import PASSWORD, Personas
from tests.matrix.samples_access import actor_of
from vern.access import service as access
from vern.accounts import service as accounts
from vern.accounts.roles import OrgKind, Role, permissions
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.notify import service as notify


def _add_second_admin(alice: TestClient) -> tuple[str, str]:
    """Alice, tenant A's only administrator, adds Per as an administrator: it waits."""
    added = alice.post("/api/v1/users", json={
        "email": "per.hansen@fjellheim.example.com", "name": "Per Hansen",
        "role": "tenant_admin", "password": PASSWORD, "need": "Nestleder fra januar"})
    assert added.status_code == 202, added.text
    assert added.json()["role"] == "member"
    return added.json()["id"], added.json()["pending_request"]


def test_a_single_admin_customer_gets_a_second_admin_approved_by_vendor_staff(
    login: Any, db: Database, personas: Personas, mailer: notify.MemoryMailer
) -> None:
    alice, dave = login(personas.alice), login(personas.dave)
    per_id, request_id = _add_second_admin(alice)
    # Alice asked for it: she cannot approve it, and nobody else in her organisation can.
    own = alice.post(f"/api/v1/access/requests/{request_id}/approve", json={})
    assert own.status_code == 403 and own.json()["code"] == "self-approval"
    # The vendor's security officer sees the pending request - only what deciding needs.
    listed = dave.get("/api/v1/access/customer-requests")
    assert listed.status_code == 200, listed.text
    [item] = [r for r in listed.json()["items"] if r["id"] == request_id]
    assert item["org_id"] == personas.tenant_a and item["org_name"] == "Fjellheim barnehage"
    assert (item["for_name"], item["role"], item["need"], item["requested_by_name"]) == (
        "Per Hansen", "tenant_admin", "Nestleder fra januar", "Alice Aasen")
    assert per_id not in listed.text and personas.alice.user_id not in listed.text
    # Dave has no grant from tenant A: its data stays out of reach while he decides.
    assert dave.get(f"/api/v1/users/{per_id}").status_code in (403, 404)
    approved = dave.post(f"/api/v1/access/customer-requests/{request_id}/approve", json={})
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    # Per holds the role; the request is no longer listed.
    assert alice.get(f"/api/v1/users/{per_id}").json()["role"] == "tenant_admin"
    assert request_id not in dave.get("/api/v1/access/customer-requests").text
    again = dave.post(f"/api/v1/access/customer-requests/{request_id}/approve", json={})
    assert again.status_code == 409
    # The customer's trail names the approver and that they approved as the vendor's staff.
    events = alice.get("/api/v1/audit/events",
                       params={"action": "access.role_request.approved"}).json()["items"]
    [event] = [e for e in events if e["resource"] == f"access_role_request:{request_id}"]
    assert event["actor_user_id"] == personas.dave.user_id
    assert event["details"]["decided_by"] == personas.dave.user_id
    assert event["details"]["as_vendor_staff"] == {"org_id": personas.vendor,
                                                   "role": "security_officer"}
    changed = alice.get("/api/v1/audit/events",
                        params={"action": "membership.role_changed"}).json()["items"]
    assert any(e["resource"] == f"user:{per_id}"
               and e["details"]["approved_by"] == personas.dave.user_id for e in changed)
    # The customer's administrator and Per are told, through the outbox, who decided.
    notify.deliver_pending(db)
    for address in (personas.alice.email, "per.hansen@fjellheim.example.com"):
        mail = mailer.last_to(address)
        assert mail is not None and mail.kind == "access.role_by_vendor_decided"
        assert "Dag Dahle" in mail.body and "Per Hansen" in mail.body


def test_vendor_staff_without_tenants_manage_and_other_customers_are_refused(
    login: Any, personas: Personas
) -> None:
    alice = login(personas.alice)
    _per_id, request_id = _add_second_admin(alice)
    # The privacy officer asks customers for access but does not administer them.
    erik = login(personas.erik)
    assert erik.get("/api/v1/access/customer-requests").status_code == 403
    assert erik.post(f"/api/v1/access/customer-requests/{request_id}/approve",
                     json={}).status_code == 403
    # Another customer's administrator: not her organisation's request, not her route.
    carol = login(personas.carol)
    assert carol.post(f"/api/v1/access/requests/{request_id}/approve",
                      json={}).status_code == 404
    assert carol.post(f"/api/v1/access/customer-requests/{request_id}/approve",
                      json={}).status_code == 403
    assert carol.get("/api/v1/access/customer-requests").status_code == 403
    # The customer's own administrator does not use the vendor's route either.
    assert alice.get("/api/v1/access/customer-requests").status_code == 403
    assert alice.post(f"/api/v1/access/customer-requests/{request_id}/approve",
                      json={}).status_code == 403
    assert alice.get(f"/api/v1/users/{_per_id}").json()["role"] == "member"


def test_unknown_and_the_vendors_own_requests_are_not_found_and_refusal_needs_a_note(
    login: Any, db: Database, settings: Settings, personas: Personas
) -> None:
    dave = login(personas.dave)
    assert dave.post("/api/v1/access/customer-requests/4f1c2b7e-0000-4000-8000-000000000000"
                     "/approve", json={}).status_code == 404
    # A request of the vendor's own organisation is decided by its own officers, not here.
    erik = actor_of(personas.erik, OrgKind.VENDOR)
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        own = access.request_role(session, actor=erik, role=Role.SECURITY_OFFICER.value,
                                  need="Vikar for sikkerhetsleder").id
    assert dave.post(f"/api/v1/access/customer-requests/{own}/approve",
                     json={}).status_code == 404
    alice = login(personas.alice)
    per_id, request_id = _add_second_admin(alice)
    no_note = dave.post(f"/api/v1/access/customer-requests/{request_id}/refuse", json={})
    assert no_note.status_code == 422 and no_note.json()["errors"][0]["field"] == "note"
    refused = dave.post(f"/api/v1/access/customer-requests/{request_id}/refuse",
                        json={"note": "Ring oss fra registrert nummer først"})
    assert refused.status_code == 200 and refused.json()["status"] == "refused"
    assert alice.get(f"/api/v1/users/{per_id}").json()["role"] == "member"


def test_vendor_staff_never_approve_a_request_that_is_for_them_or_that_they_made(
    db: Database, settings: Settings, personas: Personas
) -> None:
    """Dave is also a member of tenant A and asks there to be its administrator: as the vendor's
    staff he may not approve it; nor a request he filed for someone else."""
    with db.transaction(Scope.system("test membership")) as session:
        accounts.add_membership(session, user_id=personas.dave.user_id,
                                org_id=personas.tenant_a, role=Role.MEMBER.value, actor=None)
    dave_in_a = accounts.Actor(
        org_id=personas.tenant_a, org_kind=OrgKind.TENANT, role=Role.MEMBER,
        perms=permissions(Role.MEMBER, org_kind=OrgKind.TENANT, home=True),
        user_id=personas.dave.user_id, person_id=personas.dave.user_id)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        mine = access.request_role(session, actor=dave_in_a, role=Role.TENANT_ADMIN.value,
                                   need="Vil hjelpe barnehagen").id
    dave = actor_of(personas.dave, OrgKind.VENDOR)
    with pytest.raises(access.SelfApprovalForbidden), \
            db.transaction(Scope.tenant(personas.tenant_a)) as session:
        access.decide_role_request(session, mine, approve=True, actor=dave)
    # Bob's own request for the role: Alice (the single admin) or the vendor's staff decide.
    bob = actor_of(personas.bob, OrgKind.TENANT)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        bobs = access.request_role(session, actor=bob, role=Role.TENANT_ADMIN.value,
                                   need="Ansvar for foreldreportalen").id
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        row = access.decide_role_request(session, bobs, approve=True, actor=dave)
        assert row.status == "approved" and row.decided_by == personas.dave.user_id
        assert accounts.get_member(session, personas.bob.user_id)[1].role == "tenant_admin"


def test_the_vendors_access_page_lists_customers_requests_with_buttons(
    login: Any, personas: Personas
) -> None:
    alice = login(personas.alice)
    per_id, request_id = _add_second_admin(alice)
    dave = login(personas.dave)
    page = dave.get("/console/access")
    assert page.status_code == 200
    assert "Per Hansen" in page.text and "Nestleder fra januar" in page.text
    assert f"/console/access/customer-requests/{request_id}/approve" in page.text
    assert f"/console/access/customer-requests/{request_id}/refuse" in page.text
    # Neither the customer's own page nor the privacy officer's shows the section.
    assert "customer-requests" not in alice.get("/console/access").text
    assert "customer-requests" not in login(personas.erik).get("/console/access").text
    done = dave.post(f"/console/access/customer-requests/{request_id}/approve", data={},
                     follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("done=role-approve")
    assert alice.get(f"/api/v1/users/{per_id}").json()["role"] == "tenant_admin"
    assert "Per Hansen" not in dave.get("/console/access").text
