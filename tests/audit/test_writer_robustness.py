"""The request-record writer under bad input and a failing database, on SQLite and PostgreSQL:
unstorable text is escaped, a refused record is set aside and the rest written, a full queue
never hangs a request, and what cannot be written at shutdown is spilled and taken in later."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from starlette.testclient import TestClient

from vern.audit import request_records, service
from vern.audit.chain import AuditLog
from vern.audit.models import AuditEvent
from vern.audit.verify import verify
from vern.core import quarantine
from vern.core.config import AuditSettings, Settings
from vern.core.db import Database, Scope
from vern.core.quarantine import WriteQuarantine


def _request(path: str, i: int = 0, ip: str = "203.0.113.5") -> service._Request:
    return service._Request(service.now_us(), "GET", path, 200, None, None, None, ip,
                            "Mozilla/5.0 (test)", f"r{i}", 1.0)


def _resources(db: Database) -> list[str]:
    with db.transaction(Scope.system("test read")) as session:
        return list(session.scalars(select(AuditEvent.resource).where(
            AuditEvent.action == "http.request").order_by(AuditEvent.seq)))


def _quarantined(db: Database) -> list[WriteQuarantine]:
    with db.transaction(Scope.system("test read")) as session:
        rows = list(session.scalars(select(WriteQuarantine)))
        session.expunge_all()
        return rows


def _writer(db: Database, settings: Settings, **overrides: Any) -> service.Writer:
    values: dict[str, Any] = {"flush_seconds": 0.05, "linger_seconds": 0.0, "fsync_files": False}
    values.update(overrides)
    return service.Writer(db, settings, log=AuditLog(db, settings, AuditSettings(**values)))


def test_a_nul_in_the_path_is_recorded_escaped_and_later_requests_are_still_recorded(
    client: TestClient, db: Database, settings: Settings
) -> None:
    assert client.get("/x%00").status_code == 422  # refused at the boundary, and still recorded
    service.flush_writer()
    for _ in range(3):
        client.get("/healthz")
    service.flush_writer()
    resources = _resources(db)
    assert "/x%00" in resources  # faithful: the bytes the client sent
    assert resources.count("/healthz") == 3
    assert service.current_writer() is not None and service.current_writer().queue.qsize() == 0
    report = verify(db, settings)
    assert report.ok, report


def test_a_record_the_database_refuses_is_quarantined_and_the_rest_of_its_batch_written(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Text is made storable before it reaches the database; to see what happens with a record
    # the database refuses all the same, that step is left out here.
    monkeypatch.setattr(request_records, "storable", lambda value: value)
    writer = _writer(db, settings)
    before = quarantine.counted(service.WRITER, "quarantined")
    for i in range(9):
        writer.put(_request(f"/side/{i}", i))
    writer.put(_request("/\ud800", 99, ip="198.51.100.77"))  # no database stores a lone surrogate
    for i in range(9, 12):
        writer.put(_request(f"/side/{i}", i))
    writer.start()
    writer.flush()
    writer.put(_request("/etterpå", 100))
    writer.flush()
    writer.stop()
    resources = _resources(db)
    assert sorted(resources) == sorted([f"/side/{i}" for i in range(12)] + ["/etterpå"])
    assert writer.quarantined == 1
    assert quarantine.counted(service.WRITER, "quarantined") == before + 1
    [row] = _quarantined(db)
    assert row.writer == "audit.request" and "UnicodeEncodeError" in row.reason
    record = json.loads(row.record)
    assert record["path"] == "/%ED%A0%80" and record["request_id"] == "r99"
    assert "198.51.100.77" not in row.record and "Mozilla" not in row.record
    assert record["ip_index"] == writer.log.sealer.ip_index("198.51.100.77")
    [qfile] = Path(settings.audit_log_dir).glob("quarantine-*.jsonl")
    line = json.loads(qfile.read_text().splitlines()[0])
    assert line["quarantined"]["request_id"] == "r99" and "UnicodeEncodeError" in line["reason"]
    assert "198.51.100.77" not in qfile.read_text()
    report = verify(db, settings)  # the quarantine file is not part of the trail
    assert report.ok and report.checked == 13, report


def test_a_full_queue_makes_a_request_wait_a_bounded_time_then_drops_and_counts(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    writer = _writer(db, settings, queue_max=10, queue_wait_seconds=0.2)  # never started
    before = quarantine.counted(service.WRITER, "dropped")
    done = threading.Event()

    def produce() -> None:
        for i in range(40):
            writer.put(_request(f"/p/{i}", i, ip="192.0.2.99"))
        done.set()

    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="vern.audit"):
        threading.Thread(target=produce, daemon=True).start()
        assert done.wait(10), "a full queue must not hold requests without limit"
    elapsed = time.monotonic() - started
    assert elapsed < 3  # one bounded wait, not one per request
    assert writer.queue.qsize() == 10 and writer.dropped == 30
    assert quarantine.counted(service.WRITER, "dropped") == before + 30
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "dropped" in logged and "192.0.2.99" not in logged and "/p/" not in logged


def test_stopping_with_a_full_queue_does_not_hang(db: Database, settings: Settings) -> None:
    writer = _writer(db, settings, queue_max=10, queue_wait_seconds=0.0, stop_grace_seconds=0.5)
    with db.engine.begin() as conn:  # the database refuses every write (a real failure)
        conn.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    try:
        writer.start()
        for i in range(30):
            writer.put(_request(f"/p/{i}", i))
        started = time.monotonic()
        writer.stop(timeout=20)
        assert time.monotonic() - started < 10
        assert not writer._thread.is_alive()
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))


def test_records_unwritable_at_shutdown_are_spilled_sealed_and_taken_in_at_the_next_start(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    directory = Path(settings.audit_log_dir)
    writer = _writer(db, settings, stop_grace_seconds=0.3)
    writer.start()
    writer.flush()  # the writer's first append made the trail's head
    with db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    try:
        for i in range(7):
            writer.put(_request(f"/side/{i}", i, ip="198.51.100.23"))
        with caplog.at_level(logging.ERROR, logger="vern.audit"):
            writer.stop(timeout=20)
        assert not writer._thread.is_alive() and writer.spilled == 7
        assert any("7 request records spilled" in r.getMessage() for r in caplog.records)
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    [spilled] = directory.glob("spill-*.jsonl")
    raw = spilled.read_bytes()
    assert b"198.51.100.23" not in raw and b"/side/" not in raw  # sealed, not in clear
    assert _resources(db) == []

    again = _writer(db, settings)
    again.start()
    again.flush()
    again.stop()
    assert sorted(_resources(db)) == [f"/side/{i}" for i in range(7)]
    assert not list(directory.glob("spill-*"))
    report = verify(db, settings)
    assert report.ok and report.checked == 7, report


def test_metrics_show_what_the_writers_dropped() -> None:
    from vern.app.web import Metrics

    quarantine.count("test.writer", "dropped", 3)
    quarantine.count("test.writer", "quarantined", 2)
    registry = Metrics().registry
    assert registry.get_sample_value("vern_writer_dropped_total", {"writer": "test.writer"}) >= 3
    assert registry.get_sample_value("vern_writer_quarantined_total",
                                     {"writer": "test.writer"}) >= 2


def test_quarantined_records_are_removed_with_the_audit_retention(
    db: Database, settings: Settings
) -> None:
    from datetime import timedelta

    from vern.audit import retention
    from vern.core.db import utcnow

    assert quarantine.quarantine(db, "test.writer", "ValueError", {"path": "/gammel"})
    directory = Path(settings.audit_log_dir)
    directory.mkdir(parents=True, exist_ok=True)
    old_file = directory / "quarantine-2020-01-01.jsonl"
    old_file.write_text("{}\n")
    today_file = service.quarantine_file(directory)
    today_file.write_text("{}\n")
    assert retention.expire(db, settings).quarantined == 0  # nothing old enough yet
    assert len(_quarantined(db)) == 1 and today_file.exists() and not old_file.exists()
    later = utcnow() + timedelta(days=settings.audit_retention_days + 1)
    assert retention.expire(db, settings, now=later).quarantined == 1
    assert _quarantined(db) == [] and not today_file.exists()


def test_text_of_ingested_and_service_records_is_made_storable(
    db: Database, settings: Settings
) -> None:
    from datetime import UTC, datetime

    from vern.audit.ingest import IngestEvent, ingest

    events = [IngestEvent(id=f"e{i}", time=datetime.now(UTC), action="elev.les",
                          actor=actor, resource=resource, ip="192.0.2.7")
              for i, (actor, resource) in enumerate([
                  ("elev-1\x00", "elev:1001\x00"), ("elev-2", "elev:\x00\x00"), ("elev-3", "elev:3")])]
    assert ingest(db, settings, org_id="org-test", token_id=None, events=events)["accepted"] == 3
    with db.transaction(Scope.system("test write")) as session:
        service.record(session, "test.endre", org_id=None, resource="konto:\x00x")
    service.seal_now(db, settings)
    with db.transaction(Scope.system("test read")) as session:
        stored = set(session.execute(select(AuditEvent.actor_ref, AuditEvent.resource)).all())
    assert stored == {("elev-1%00", "elev:1001%00"), ("elev-2", "elev:%00%00"),
                      ("elev-3", "elev:3"), (None, "konto:%00x")}
    assert verify(db, settings).ok
