"""Settings that reach across customers or weaken a strict default are the vendor's: one case per
such setting, refused (403) to a customer admin - through the customer's own route and the
vendor's - and accepted from vendor staff, with the change recorded in both organisations' trails.

The settings: ``product_tenant_key`` (which of the product's rows a customer's requests reach),
``approve_erasure: false`` and ``approve_rectification: false`` (approval skipped)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.conftest import Personas, session_cookie_for
from vern.accounts.deps import session_cookie_name
from vern.audit.models import AuditEvent
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.rights import service

VENDOR_ONLY: list[tuple[str, Any]] = [
    ("product_tenant_key", "fjellheim-i-laerbar"),
    ("approve_erasure", False),
    ("approve_rectification", False),
]


def _client(app: Any, db: Database, settings: Settings, persona: Any) -> TestClient:
    client = TestClient(app, base_url="http://testserver", follow_redirects=False)
    token, csrf = session_cookie_for(db, persona)
    client.cookies.set(session_cookie_name(settings), token)
    client.headers["X-CSRF-Token"] = csrf
    return client


def _policy(db: Database, org_id: str) -> service.EffectivePolicy:
    with db.transaction(Scope.tenant(org_id)) as session:
        return service.policy_for(session, org_id)


@pytest.mark.parametrize(("field", "value"), VENDOR_ONLY)
def test_a_customer_admin_is_refused_and_vendor_staff_may_change_it(  # noqa: PLR0917 - fixtures
    app: Any, db: Database, settings: Settings, personas: Personas, field: str, value: Any
) -> None:
    before = _policy(db, personas.tenant_a)
    alice = _client(app, db, settings, personas.alice)
    own = alice.put("/api/v1/rights/policy", json={field: value})
    assert own.status_code == 403, own.text
    assert own.json()["errors"][0]["field"] == field
    vendor_route = f"/api/v1/rights/tenants/{personas.tenant_a}/policy"
    assert alice.put(vendor_route, json={field: value}).status_code == 403
    carol = _client(app, db, settings, personas.carol)
    assert carol.put(vendor_route, json={field: value}).status_code == 403
    assert _policy(db, personas.tenant_a) == before

    dave = _client(app, db, settings, personas.dave)
    res = dave.put(vendor_route, json={field: value})
    assert res.status_code == 200, res.text
    assert res.json()[field] == value
    assert getattr(_policy(db, personas.tenant_a), field) == value

    with db.transaction(Scope.system("test read")) as session:
        trail = session.execute(
            select(AuditEvent.org_id, AuditEvent.action, AuditEvent.details, AuditEvent.actor_user_id)
            .where(AuditEvent.action.like("rights.%policy.update"))
        ).all()
    in_tenant = [r for r in trail if r.org_id == personas.tenant_a]
    in_vendor = [r for r in trail if r.org_id == personas.vendor]
    assert [r.actor_user_id for r in in_tenant] == [personas.dave.user_id]
    assert [r.actor_user_id for r in in_vendor] == [personas.dave.user_id]
    assert personas.vendor not in (in_tenant[0].details or "")
    assert personas.tenant_b not in (in_tenant[0].details or "")
    for client in (alice, carol, dave):
        client.close()


def test_a_customer_admin_may_still_require_approval_again(
    app: Any, db: Database, settings: Settings, personas: Personas
) -> None:
    """Tightening is the customer's choice; only loosening is the vendor's."""
    dave = _client(app, db, settings, personas.dave)
    assert dave.put(f"/api/v1/rights/tenants/{personas.tenant_a}/policy",
                    json={"approve_erasure": False}).status_code == 200
    alice = _client(app, db, settings, personas.alice)
    res = alice.put("/api/v1/rights/policy", json={"approve_erasure": True})
    assert res.status_code == 200 and res.json()["approve_erasure"] is True
    assert alice.put("/api/v1/rights/policy", json={"approve_erasure": False}).status_code == 403
    dave.close()
    alice.close()


def test_vendor_staff_cannot_map_a_customer_to_another_customers_key(
    app: Any, db: Database, settings: Settings, personas: Personas
) -> None:
    dave = _client(app, db, settings, personas.dave)
    route = f"/api/v1/rights/tenants/{personas.tenant_a}/policy"
    # Tenant B has no explicit key, so its id is its key.
    res = dave.put(route, json={"product_tenant_key": personas.tenant_b})
    assert res.status_code == 409 and res.json()["errors"][0]["field"] == "product_tenant_key"
    assert dave.put(f"/api/v1/rights/tenants/{personas.tenant_b}/policy",
                    json={"product_tenant_key": "havbris-7"}).status_code == 200
    assert dave.put(route, json={"product_tenant_key": "havbris-7"}).status_code == 409
    assert _policy(db, personas.tenant_a).product_tenant_key == personas.tenant_a
    assert dave.get(f"/api/v1/rights/tenants/{personas.vendor}/policy").status_code == 404
    dave.close()
