"""The registry's demo data loads, and loads only once."""

from __future__ import annotations

from tests.conftest import Personas
from vern.core.db import Database, Scope
from vern.vendor import demo
from vern.vendor import service as vendor


def test_demo_data_loads_once(db: Database, personas: Personas) -> None:
    orgs = {"solstrand": personas.vendor, "fjellheim": personas.tenant_a,
            "havbris": personas.tenant_b}
    for _ in range(2):
        demo.load_demo(db, orgs)
    with db.transaction(Scope.system("test")) as session:
        subs = vendor.list_subprocessors(session)
        assert [s.key for s in subs] == ["datacentre", "support", "cloud"]
        assert len(vendor.list_maintenance(session)) == 1
        assert vendor.officers(session).security is not None
        assert any(m.status == "in_place" for m in vendor.list_measures(session))
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        assert len(vendor.customer_notices(session)) == 3
    with db.transaction(Scope.tenant(personas.tenant_b)) as session:
        assert len(vendor.customer_notices(session)) == 2
