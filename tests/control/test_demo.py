"""The demo's internal control loads once and shows an overdue task and a pending change."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import Personas
from vern.control import demo, posture, service
from vern.core.db import Database, Scope


def test_demo_loads_once(db: Database, personas: Personas) -> None:
    orgs = {"solstrand": personas.vendor, "fjellheim": personas.tenant_a,
            "havbris": personas.tenant_b}
    demo.load_demo(db, orgs)
    demo.load_demo(db, orgs)
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        assert len(service.list_tasks(session)) == 10
        kinds = [i["kind"] for i in posture.items(session, datetime.now(UTC), "en")]
        assert kinds == ["control_task_overdue", "change_request_pending"]
        assert len(service.list_risks(session)) == 1
        assert len(service.list_media(session)) == 1
        assert [r.kind for r in service.personnel(session)].count("supplier") == 1
