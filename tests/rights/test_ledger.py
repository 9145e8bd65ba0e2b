"""The erasure ledger survives a restore of a product database from an old backup."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from tests.conftest import Personas
from tests.rights.conftest import file_request
from vern.core.db import Database, utcnow
from vern.datamap.connect import engine_for, forget
from vern.datamap.loader import load_map
from vern.rights import demo, ledger, service
from vern.rights.runtime import secret


def _state(url: str) -> dict[str, list[str]]:
    with engine_for(url).connect() as conn:
        return {
            t.name: sorted(repr(tuple(r)) for r in conn.execute(select(t)))
            for t in demo.metadata.sorted_tables
        }


def test_it_reapplies_erasures_after_a_restore_from_backup(
    sqlite_db: Database, world: Personas, tmp_path: Path
) -> None:
    path = tmp_path / "product.db"
    url = f"sqlite:///{path}"
    engine = engine_for(url)
    demo.create_product(engine)
    people = demo.fill(engine, [world.tenant_a, world.tenant_b], people_per_tenant=6)
    forget(url)
    shutil.copy(path, tmp_path / "backup.db")  # last night's backup
    data_map = load_map(demo.map_text())
    since = utcnow() - timedelta(minutes=1)
    for person in (people[1], people[4], people[7]):
        request_id = file_request(sqlite_db, person["school_id"], "erasure", {"email": person["email"]})
        assert service.run(sqlite_db, request_id, data_map=data_map, urls={"laerbar.main": url}) == "done"
    erased = _state(url)
    forget(url)
    shutil.copy(tmp_path / "backup.db", path)  # the restore brings the people back
    assert _state(url) != erased

    result = ledger.replay(sqlite_db, data_map, "main", since, secret=secret(), urls={"laerbar.main": url})

    assert _state(url) == erased
    assert result.rows > 0 and "users" in result.tables
    again = ledger.replay(
        sqlite_db, data_map, "laerbar.main", since, secret=secret(), urls={"laerbar.main": url}
    )
    assert again.rows == 0 and _state(url) == erased
    forget(url)


def test_it_replays_nothing_from_before_the_given_time(
    sqlite_db: Database, world: Personas, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'product.db'}"
    demo.create_product(engine_for(url))
    people = demo.fill(engine_for(url), [world.tenant_a], people_per_tenant=3)
    data_map = load_map(demo.map_text())
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": people[0]["email"]})
    service.run(sqlite_db, request_id, data_map=data_map, urls={"laerbar.main": url})

    result = ledger.replay(
        sqlite_db,
        data_map,
        "main",
        utcnow() + timedelta(minutes=1),
        secret=secret(),
        urls={"laerbar.main": url},
    )

    assert (result.entries, result.rows) == (0, 0)
    forget(url)
