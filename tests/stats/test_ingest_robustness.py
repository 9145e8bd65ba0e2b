"""The statistics writer under bad input and a failing database, on SQLite and PostgreSQL: one
unstorable page view never stops the others (every tenant's), the buffer's bound holds, a full
buffer never holds a beacon without limit."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select, text
from starlette.testclient import TestClient

from tests.conftest import Personas
from tests.stats.helpers import FIREFOX, make_site
from vern.core import quarantine
from vern.core.config import StatsSettings
from vern.core.db import Database, Scope, utcnow
from vern.core.quarantine import WriteQuarantine
from vern.stats import ingest
from vern.stats.ingest import Ingestor
from vern.stats.models import StatsEvent
from vern.stats.rollup import PageView


def _held(db: Database, **overrides: Any) -> Ingestor:
    """An ingestor whose writer never runs on its own: the test decides when to flush."""
    settings = StatsSettings(flush_interval_ms=60_000, flush_max_events=10**6, **overrides)
    ingestor = Ingestor(db, settings)
    ingestor._ensure_thread = lambda: None  # type: ignore[method-assign]
    return ingestor


def _body(site: str, path: str) -> bytes:
    return json.dumps({"s": site, "u": path}).encode()


def _paths(db: Database) -> list[tuple[str, str]]:
    with db.transaction(Scope.system("test read")) as session:
        return sorted((str(org), str(path)) for org, path in
                      session.execute(select(StatsEvent.org_id, StatsEvent.path)))


def _view(org: str, site: str, path: str, n: int = 0, at: datetime | None = None) -> PageView:
    return PageView(org, site, at or utcnow(), f"besøkende{n:04d}", path, "(direct)", "Firefox",
                    "Linux", "desktop")


def test_a_lone_surrogate_beacon_does_not_stop_page_views_of_other_tenants(
    app: Any, db: Database, personas: Personas
) -> None:
    site_a = make_site(db, personas.tenant_a)
    site_b = make_site(db, personas.tenant_b, domain="www.havbris.example.com")
    bad = b'{"s":"' + site_a.encode() + b'","u":"/\\ud800"}'  # the tester's beacon, as sent
    with TestClient(app, base_url="http://testserver", client=("195.159.103.82", 40000)) as c:
        first = c.post("/s/e", content=bad, headers={"content-type": "text/plain",
                                                      "user-agent": FIREFOX})
        # Refused at the door or taken and made storable; never a failure that stays behind.
        assert first.status_code in (204, 400), first.text
        for n in range(3):
            res = c.post("/s/e", content=_body(site_b, f"/timeplan/{n}"),
                         headers={"content-type": "text/plain", "user-agent": FIREFOX})
            assert res.status_code == 204
        res = c.post("/s/e", content=_body(site_a, "/meny"),
                     headers={"content-type": "text/plain", "user-agent": FIREFOX})
        assert res.status_code == 204
    stored = _paths(db)
    assert [p for o, p in stored if o == personas.tenant_b] == [f"/timeplan/{n}" for n in range(3)]
    assert "/meny" in [p for o, p in stored if o == personas.tenant_a]
    assert ingest.ingestor_for(db).buffered == 0


def test_unstorable_text_is_escaped_at_the_writer(db: Database, personas: Personas) -> None:
    site = make_site(db, personas.tenant_a)
    ing = _held(db)
    ing._add(_view(personas.tenant_a, site, "/\ud800", 1))  # past the intake's checks
    ing._add(_view(personas.tenant_a, site, "/a\x00b", 2))
    ing._add(_view(personas.tenant_a, site, "/kalender", 3))
    assert ing.flush() == 3
    assert [p for _, p in _paths(db)] == ["/%ED%A0%80", "/a%00b", "/kalender"]


def test_a_page_view_the_database_refuses_is_quarantined_and_the_batch_written(
    db: Database, personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer makes text storable first; to see a page view the database refuses all the
    # same, that step is left out here.
    monkeypatch.setattr(ingest, "storable", lambda value: value)
    site_a = make_site(db, personas.tenant_a)
    site_b = make_site(db, personas.tenant_b, domain="www.havbris.example.com")
    ing = _held(db)
    before = quarantine.counted(ingest.WRITER, "quarantined")
    for n in range(6):
        ing._add(_view(personas.tenant_b, site_b, f"/timeplan/{n}", n))
    ing._add(_view(personas.tenant_a, site_a, "/\ud800", 99))
    for n in range(6, 9):
        ing._add(_view(personas.tenant_a, site_a, f"/meny/{n}", n))
    assert ing.flush() == 9
    assert ing.buffered == 0 and ing.quarantined == 1
    assert quarantine.counted(ingest.WRITER, "quarantined") == before + 1
    stored = _paths(db)
    assert len(stored) == 9 and all(p != "/\ud800" for _, p in stored)
    with db.transaction(Scope.system("test read")) as session:
        [row] = session.scalars(select(WriteQuarantine)).all()
        assert row.writer == "stats.beacon" and row.org_id == personas.tenant_a
        assert "UnicodeEncodeError" in row.reason
        record = json.loads(row.record)
        assert record["path"] == "/%ED%A0%80" and "visitor" not in record
    ing._add(_view(personas.tenant_b, site_b, "/etterpå", 50))
    assert ing.flush() == 1  # nothing stays behind


def test_the_buffer_bound_holds_while_the_database_fails(
    db: Database, personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_site(db, personas.tenant_a)
    ing = _held(db, buffer_max_events=10, buffer_wait_seconds=0.05)
    before = quarantine.counted(ingest.WRITER, "dropped")
    for n in range(10):
        ing.accept(_body(site, f"/side/{n}"), "195.159.103.0", FIREFOX)
    real_apply = ingest.rollup.apply

    def apply_while_beacons_arrive(session: Any, views: Any, gap: Any) -> None:
        # While the batch is being written the buffer is empty and beacons keep coming.
        for n in range(7):
            ing.accept(_body(site, f"/ny/{n}"), "195.159.103.0", FIREFOX)
        session.execute(text("SELECT * FROM stats_events_away"))  # the database fails

    monkeypatch.setattr(ingest.rollup, "apply", apply_while_beacons_arrive)
    for _ in range(3):
        with pytest.raises(Exception, match="stats_events_away"):
            ing.flush()
        assert ing.buffered <= 10
    assert ing.buffered == 10 and ing.failures == 3
    assert ing.dropped == 21
    assert quarantine.counted(ingest.WRITER, "dropped") == before + 21
    monkeypatch.setattr(ingest.rollup, "apply", real_apply)
    assert ing.flush() == 10
    assert len(_paths(db)) == 10


def test_a_full_buffer_holds_a_beacon_a_bounded_time_then_drops_and_counts(
    db: Database, personas: Personas
) -> None:
    site = make_site(db, personas.tenant_a)
    ing = _held(db, buffer_max_events=10, buffer_wait_seconds=0.2)
    for n in range(10):
        ing.accept(_body(site, f"/side/{n}"), "195.159.103.0", FIREFOX)
    done = threading.Event()

    def more() -> None:
        for n in range(50):
            ing.accept(_body(site, f"/ny/{n}"), "195.159.103.0", FIREFOX)
        done.set()

    started = time.monotonic()
    threading.Thread(target=more, daemon=True).start()
    assert done.wait(10), "a full buffer must not hold beacons without limit"
    assert time.monotonic() - started < 3  # one bounded wait, not one per beacon
    assert ing.buffered == 10 and ing.dropped == 50 and ing.blocked == 50
    assert ing.flush() == 10
    ing.accept(_body(site, "/etter"), "195.159.103.0", FIREFOX)  # room again: taken
    assert ing.buffered == 1
