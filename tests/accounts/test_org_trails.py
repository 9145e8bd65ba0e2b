"""No organisation's id in another customer's audit trail: switching organisations used to write
the previous organisation's id into the next one's trail (``auth.org_switched``), so a customer
could learn which other customers a consultant - or the vendor's staff - work for."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.conftest import Personas
from vern.accounts import service
from vern.audit.models import AuditEvent
from vern.core.db import Database, Scope


def _leaks(db: Database, personas: Personas) -> list[tuple[str, str, str]]:
    """(trail, action, foreign id) for every customer record naming another organisation."""
    orgs = {personas.vendor, personas.tenant_a, personas.tenant_b}
    with db.transaction(Scope.system("test read")) as session:
        rows = session.execute(
            select(AuditEvent.org_id, AuditEvent.action, AuditEvent.resource, AuditEvent.details)
        ).all()
    found = []
    for row in rows:
        if row.org_id not in (personas.tenant_a, personas.tenant_b):
            continue
        text = f"{row.resource or ''} {row.details or ''}"
        found += [(row.org_id, row.action, other) for other in orgs - {row.org_id} if other in text]
    return found


def test_switching_organisations_names_only_the_trails_own_organisation(
    login: Any, personas: Personas, db: Database, settings: Any
) -> None:
    with db.transaction(Scope.system("test: a consultant for both schools")) as session:
        service.add_membership(session, user_id=personas.bob.user_id, org_id=personas.tenant_b,
                               role="member", actor=None)
    bob = login(personas.bob)
    assert bob.put("/api/v1/session/org", json={"org_id": personas.tenant_b}).status_code == 200
    assert bob.put("/api/v1/session/org", json={"org_id": personas.tenant_a}).status_code == 200
    from tests.matrix.samples_access import actor_of, grant
    from vern.accounts.roles import OrgKind

    for org, admin in ((personas.tenant_a, personas.alice), (personas.tenant_b, personas.carol)):
        grant(db, personas, actor_of(personas.dave, OrgKind.VENDOR), org, approve_by=admin)
    dave = login(personas.dave)
    for org in (personas.tenant_a, personas.tenant_b, personas.vendor):
        assert dave.put("/api/v1/session/org", json={"org_id": org}).status_code == 200

    assert _leaks(db, personas) == []
    with db.transaction(Scope.system("test read")) as session:
        trail = session.execute(
            select(AuditEvent.org_id, AuditEvent.action, AuditEvent.actor_user_id)
            .where(AuditEvent.action.in_(("auth.org_switched", "auth.org_left")))
        ).all()
    # Both ends of every switch are recorded, each in its own organisation's trail.
    dave_moves = [(r.org_id, r.action) for r in trail if r.actor_user_id == personas.dave.user_id]
    assert sorted(dave_moves) == sorted([
        (personas.vendor, "auth.org_left"), (personas.tenant_a, "auth.org_switched"),
        (personas.tenant_a, "auth.org_left"), (personas.tenant_b, "auth.org_switched"),
        (personas.tenant_b, "auth.org_left"), (personas.vendor, "auth.org_switched"),
    ])
