"""The ingest buffer: bounded (intake waits for the writer, within a limit), a failed batch is
kept and written later, and the beacon's fast path records its traffic per batch in the audit trail."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from sqlalchemy import func, select, text
from starlette.testclient import TestClient

from tests.conftest import Personas
from tests.stats.helpers import FIREFOX, make_site
from vern.audit.models import AuditEvent
from vern.audit.service import flush_writer
from vern.core.config import StatsSettings
from vern.core.db import Database, Scope
from vern.stats.ingest import Ingestor
from vern.stats.models import StatsDaily, StatsEvent


def _held(db: Database, **overrides: Any) -> Ingestor:
    """An ingestor whose writer never runs on its own: the test decides when to flush."""
    settings = StatsSettings(flush_interval_ms=60_000, flush_max_events=10**6, **overrides)
    ingestor = Ingestor(db, settings)
    ingestor._ensure_thread = lambda: None  # type: ignore[method-assign]
    return ingestor


def _body(site: str, n: int) -> bytes:
    return json.dumps({"s": site, "u": f"/side/{n}"}).encode()


def _stored(db: Database) -> int:
    with db.transaction(Scope.system("test read")) as session:
        return int(session.scalar(select(func.count()).select_from(StatsEvent)) or 0)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_full_buffer_makes_intake_wait_for_the_writer(db: Database, personas: Personas) -> None:
    site = make_site(db, personas.tenant_a)
    ing = _held(db, buffer_max_events=10, buffer_wait_seconds=10)
    for n in range(10):
        ing.accept(_body(site, n), "195.159.103.0", FIREFOX)
    done = threading.Event()
    waiter = threading.Thread(
        target=lambda: (ing.accept(_body(site, 10), "195.159.103.0", FIREFOX), done.set()))
    waiter.start()
    assert not done.wait(0.3), "the eleventh page view must wait for room"
    assert ing.buffered == 10 and ing.blocked == 1
    assert ing.flush() == 10
    assert done.wait(5)
    waiter.join(5)
    assert ing.flush() == 1
    assert _stored(db) == 11


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_waiting_for_room_does_not_block_the_event_loop(db: Database, personas: Personas) -> None:
    site = make_site(db, personas.tenant_a)
    ing = _held(db, buffer_max_events=10, buffer_wait_seconds=10)
    for n in range(10):
        ing.accept(_body(site, n), "195.159.103.0", FIREFOX)

    async def scenario() -> list[str]:
        events: list[str] = []
        task = asyncio.create_task(ing.accept_async(_body(site, 10), "195.159.103.0", FIREFOX))
        for _ in range(5):  # the loop keeps running other work while the beacon waits
            await asyncio.sleep(0.02)
            events.append("tick")
        assert not task.done()
        await asyncio.to_thread(ing.flush)
        assert await asyncio.wait_for(task, 5) is True
        events.append("accepted")
        return events

    assert asyncio.run(scenario()) == ["tick"] * 5 + ["accepted"]
    ing.flush()
    assert _stored(db) == 11


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_batch_that_cannot_be_written_is_kept_and_written_later(
        db: Database, personas: Personas) -> None:
    site = make_site(db, personas.tenant_a)
    ing = _held(db)
    for n in range(5):
        ing.accept(_body(site, n), "195.159.103.0", FIREFOX)
    with db.engine.begin() as conn:  # the database refuses the write (a real failure)
        conn.execute(text("ALTER TABLE stats_events RENAME TO stats_events_away"))
    with pytest.raises(Exception, match="stats_events"):
        ing.flush()
    assert ing.buffered == 5 and ing.failures == 1
    ing.accept(_body(site, 5), "195.159.103.0", FIREFOX)
    with db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE stats_events_away RENAME TO stats_events"))
    assert ing.flush() == 6
    assert _stored(db) == 6
    with db.transaction(Scope.system("test read")) as session:
        assert session.scalar(select(StatsDaily.pageviews)) == 6  # nothing counted twice


def test_the_beacon_takes_the_fast_path_and_is_audited_per_batch(
        app: Any, db: Database, personas: Personas) -> None:
    from vern.audit.query import view

    site = make_site(db, personas.tenant_a)
    with TestClient(app, base_url="http://testserver", client=("195.159.103.82", 40000)) as c:
        for n in range(3):
            res = c.post("/s/e", content=_body(site, n),
                         headers={"content-type": "text/plain", "user-agent": FIREFOX})
            assert res.status_code == 204
        assert c.post("/s/e", content=b"{", headers={"user-agent": FIREFOX}).status_code == 400
        assert c.post("/s/e", content=_body(site, 9),
                      headers={"user-agent": "Googlebot/2.1"}).status_code == 204
        c.get("/healthz")
        flush_writer()
    with db.transaction(Scope.system("test read")) as session:
        events = session.scalars(select(AuditEvent)).all()
        requests = [e.resource for e in events if e.action == "http.request"]
        batches = [view(e) for e in events if e.action == "stats.beacons_received"]
    assert "/healthz" in requests  # ordinary requests are recorded one by one
    assert "/s/e" not in requests  # beacons are not: they are counted per batch
    assert sum(b["details"]["new"]["page_views"] for b in batches) == 3
    assert sum(b["details"]["new"]["bots"] for b in batches) == 1
    assert {b["org_id"] for b in batches} == {personas.tenant_a}
    assert all(b["ip"] is None and b["user_agent"] is None for b in batches)
