"""The demo: a learning platform with fictional people, its map, and two finished requests."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from tests.conftest import Personas
from vern.core.db import Database, Scope
from vern.datamap.connect import forget
from vern.rights import demo
from vern.rights.models import Package, RightsRequest


def test_the_demo_leaves_a_finished_access_and_erasure_request(
    sqlite_db: Database, world: Personas, tmp_path: Path
) -> None:
    orgs = {"solstrand": world.vendor, "fjellheim": world.tenant_a, "havbris": world.tenant_b}

    demo.load_demo(sqlite_db, orgs, folder=tmp_path)
    demo.load_demo(sqlite_db, orgs, folder=tmp_path)  # loading twice changes nothing

    with sqlite_db.transaction(Scope.system("test")) as session:
        found = sorted((r.kind, r.status) for r in session.scalars(select(RightsRequest)))
        packages = list(session.scalars(select(Package)))
    assert found == [("access", "done"), ("erasure", "done")]
    assert len(packages) == 1
    forget(f"sqlite:///{tmp_path / 'laerbar.db'}")
