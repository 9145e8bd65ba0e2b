"""The trail end to end on SQLite and PostgreSQL: recorded in the caller's transaction, sealed in
order, in the database and the files, verified, and every kind of tampering named."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update

from tests.audit.helpers import audit_log, fill, rows
from tests.conftest import Personas
from vern.audit import proofs, retention, service
from vern.audit.chain import AuditLog
from vern.audit.models import AuditEvent
from vern.audit.verify import verify
from vern.core.config import AuditSettings, Settings
from vern.core.context import RequestContext, reset_request, set_request
from vern.core.crypto import keyring
from vern.core.db import Database, Scope, utcnow


def _files(settings: Settings) -> list[Path]:
    return sorted(Path(settings.audit_log_dir).glob("audit-*.jsonl"))


def _rewrite_file(settings: Settings, change: Callable[[list[str]], list[str]]) -> None:
    path = _files(settings)[0]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(change(lines)) + "\n")


@pytest.fixture
def trail(db: Database, settings: Settings) -> AuditLog:
    log = audit_log(db, settings)
    fill(log, db, 230)
    return log


def test_a_fresh_trail_verifies_in_the_database_and_the_files(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    report = verify(db, settings)
    assert report.ok, report.problem
    assert report.checked == 230
    assert report.checkpoints >= 4
    assert report.unsigned == 0
    assert len(_files(settings)) == 1


def _record_then_fail(db: Database) -> None:
    session_failed = False
    try:
        with db.transaction(Scope.system("test")) as session:
            service.record(session, "thing.rolled_back", org_id=None)
            raise RuntimeError("the change failed")
    except RuntimeError:
        session_failed = True
    assert session_failed


def test_a_record_written_in_a_callers_transaction_commits_with_it_and_is_sealed_later(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    token = set_request(RequestContext("req-1", "198.51.100.23", "Firefox", "POST", "/x"))
    try:
        with db.transaction(Scope.system("test")) as session:
            service.record(session, "thing.changed", org_id=None, resource="thing:1",
                           details={"old": "a", "new": "b"})
        _record_then_fail(db)
    finally:
        reset_request(token)
    with db.transaction(Scope.system("read")) as session:
        found = session.scalars(select(AuditEvent).where(AuditEvent.action.like("thing.%"))).all()
        assert [(e.action, e.seq) for e in found] == [("thing.changed", None)]
        assert b"198.51.100.23" not in (found[0].personal or b"")  # sealed, not in clear
    trail.seal_pending(force_checkpoint=True)
    report = verify(db, settings)
    assert report.ok and report.checked == 231 and report.pending == 0


def test_changing_a_record_in_the_database_names_it(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    with db.engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 77).values(outcome="failure"))
    report = verify(db, settings)
    assert report.problem is not None
    assert report.problem.seq == 77 and report.problem.where == "database"


def test_removing_inserting_or_reordering_in_the_database_is_named(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    with db.engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq == 120))
    problem = verify(db, settings).problem
    assert problem is not None and problem.seq == 120 and "missing" in problem.message

    with db.engine.begin() as conn:  # put a forged record in the gap
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 121).values(seq=120))
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 122).values(seq=121))
    problem = verify(db, settings).problem
    assert problem is not None and problem.seq in (120, 121, 122)

    with db.engine.begin() as conn:  # a record appended behind the signer's back
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 229).values(seq=5000))
    problem = verify(db, settings, files=False).problem
    assert problem is not None


def test_swapping_two_records_in_the_database_is_named(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    with db.engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 30).values(seq=-1))
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 31).values(seq=30))
        conn.execute(update(AuditEvent).where(AuditEvent.seq == -1).values(seq=31))
    problem = verify(db, settings).problem
    assert problem is not None and problem.seq == 30


def test_changing_removing_or_reordering_the_log_file_is_named(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    original = _files(settings)[0].read_text()

    _rewrite_file(settings, lambda ls: [ln.replace('"page.read"', '"page.none"', 1)
                                        if ln.startswith("[42,") else ln for ln in ls])
    problem = verify(db, settings).problem
    assert problem is not None and problem.seq == 42 and problem.where.startswith("audit-")

    _files(settings)[0].write_text(original)
    _rewrite_file(settings, lambda ls: [ln for ln in ls if not ln.startswith("[99,")])
    problem = verify(db, settings).problem
    assert problem is not None and problem.seq == 99 and "missing" in problem.message

    _files(settings)[0].write_text(original)

    def swap(ls: list[str]) -> list[str]:
        i = next(n for n, ln in enumerate(ls) if ln.startswith("[10,"))
        ls[i], ls[i + 1] = ls[i + 1], ls[i]
        return ls

    _rewrite_file(settings, swap)
    problem = verify(db, settings).problem
    assert problem is not None and problem.seq in (10, 11)

    _files(settings)[0].write_text(original)

    def insert(ls: list[str]) -> list[str]:  # a forged record 51 before the real one
        i = next(n for n, ln in enumerate(ls) if ln.startswith("[51,"))
        return [*ls[:i], ls[i].replace("page.read", "page.fake", 1), *ls[i:]]

    _rewrite_file(settings, insert)
    problem = verify(db, settings).problem
    assert problem is not None and problem.seq == 51 and problem.where.startswith("audit-")

    _files(settings)[0].write_text(original)
    forged = '[230' + original.splitlines()[0][2:]  # a plausible next record, never written
    _files(settings)[0].write_text(original + forged + "\n")
    problem = verify(db, settings).problem
    assert problem is not None and problem.seq == 230 and "inserted" in problem.message

    _files(settings)[0].write_text(original)
    assert verify(db, settings).ok


def test_a_forged_checkpoint_is_refused(db: Database, settings: Settings, trail: AuditLog) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_checkpoints SET root = :r WHERE tree_size = "
                          "(SELECT min(tree_size) FROM audit_checkpoints)"), {"r": b"\x00" * 32})
    problem = verify(db, settings).problem
    assert problem is not None and "bad signature" in problem.message


def test_shredding_a_persons_key_keeps_the_trail_verifiable(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    with db.transaction(Scope.system("read")) as session:
        key_id = session.scalar(select(AuditEvent.key_id).where(AuditEvent.seq == 3))
    assert key_id is not None
    with db.transaction(Scope.system("erase")) as session:
        keyring().shred(session, key_id)
    keyring().forget_cached()
    assert verify(db, settings).ok
    from vern.audit.query import view

    with db.transaction(Scope.system("read")) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.seq == 3))
        assert event is not None
        shown = view(event)
    assert shown["personal_erased"] and shown["ip"] is None


def test_proofs_of_inclusion_and_consistency_check_against_the_signed_checkpoints(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    signer = proofs.signer_for(settings)
    for seq in (0, 57, 229):
        proof = proofs.inclusion(db, seq=seq)
        assert proofs.check_inclusion(proof, signer)
        forged = {**proof, "leaf_data": proof["leaf_data"].replace("page.read", "page.gone")}
        assert not proofs.check_inclusion(forged, signer)
    with db.engine.connect() as conn:
        sizes = [r[0] for r in conn.execute(text("SELECT tree_size FROM audit_checkpoints "
                                                 "ORDER BY tree_size"))]
    for old in sizes:
        assert proofs.check_consistency(proofs.consistency(db, old=old), signer)


def test_retention_removes_old_records_and_the_rest_still_verifies(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    middle = utcnow()
    time.sleep(0.01)
    fill(trail, db, 60)  # newer records, kept
    later = middle + timedelta(days=settings.audit_retention_days)
    result = retention.expire(db, settings, now=later)
    assert result.boundary == 230 and result.records == 230
    report = verify(db, settings)
    assert report.ok, report.problem
    assert report.start == result.boundary
    proof = proofs.inclusion(db, seq=report.tree_size - 1)
    assert proofs.check_inclusion(proof, proofs.signer_for(settings))
    assert retention.expire(db, settings, now=later).records == 0  # idempotent


def test_an_ingest_batch_is_all_or_nothing(db: Database, settings: Settings, trail: AuditLog) -> None:
    batch = rows(trail, db, 3)
    batch[2]["action"] = None  # refused by the database
    with pytest.raises(Exception):  # noqa: B017, PT011 - any database error
        trail.append(batch)
    report = verify(db, settings)
    assert report.ok and report.checked == 230


def test_the_writer_makes_a_producer_wait_when_full_and_flushes_on_stop(
    db: Database, settings: Settings
) -> None:
    log = AuditLog(db, settings, AuditSettings(queue_max=10, batch_max=4, flush_seconds=0.05,
                                               queue_wait_seconds=30, fsync_files=False))
    writer = service.Writer(db, settings, log=log)
    calls = 60

    def produce() -> None:
        for i in range(calls):
            writer.put(service._Request(service.now_us(), "GET", f"/p/{i}", 200, None, None,
                                        None, "203.0.113.5", "curl", f"r{i}", 1.0))

    producer = threading.Thread(target=produce)
    producer.start()  # the queue holds 10: the producer must wait for the writer
    writer.start()
    producer.join(30)
    writer.stop()
    assert writer.blocked > 0
    report = verify(db, settings)
    assert report.ok and report.checked == calls and report.unsigned == 0


def test_requests_close_together_are_written_in_one_append(
    db: Database, settings: Settings
) -> None:
    log = AuditLog(db, settings, AuditSettings(linger_seconds=1.0, fsync_files=False))
    writer = service.Writer(db, settings, log=log)
    appends: list[int] = []
    real = log.append_drafts

    def counting(drafts: Any, keys: Any, **kwargs: Any) -> Any:
        drafts = list(drafts)
        appends.append(len(drafts))
        return real(drafts, keys, **kwargs)

    log.append_drafts = counting  # type: ignore[method-assign]
    writer.start()
    for i in range(5):  # one request every 10 ms, as a user clicking through the console does
        writer.put(service._Request(service.now_us(), "GET", f"/p/{i}", 200, None, None,
                                    None, "203.0.113.5", "curl", f"r{i}", 1.0))
        time.sleep(0.01)
    writer.flush()
    writer.stop()
    assert appends[0] == 5
    assert sum(appends) == 5
    assert verify(db, settings).checked == 5


def test_the_writer_functions_are_safe_without_a_writer() -> None:
    service.stop_writer()
    service.flush_writer()
    before = service.unrecorded
    service.record_request(method="GET", path="/", status=200, actor_user_id=None,
                           actor_token_id=None, org_id=None, client_ip=None, user_agent=None,
                           request_id=None, duration_ms=0.1)
    assert service.unrecorded == before + 1


def test_a_file_line_is_the_canonical_record(db: Database, settings: Settings, trail: AuditLog) -> None:
    first = _files(settings)[0].read_text().splitlines()[0]
    values = json.loads(first)
    assert values[0] == 0 and values[12] == "page.read"
    assert "192.0.2.10" not in _files(settings)[0].read_text()


def test_an_erased_persons_later_records_are_sealed_under_the_months_key(
    db: Database, settings: Settings, personas: Personas
) -> None:
    from vern.accounts.models import User

    with db.transaction(Scope.system("erase")) as session:
        user = session.get(User, personas.bob.user_id)
        assert user is not None
        keyring().shred(session, user.key_id)
        bob_key = user.key_id
    token = set_request(RequestContext("r", "192.0.2.33", "Firefox", "GET", "/"))
    try:
        with db.transaction(Scope.system("after erasure")) as session:
            service.record(session, "user.erased", org_id=personas.tenant_a,
                           actor_user_id=personas.bob.user_id)
    finally:
        reset_request(token)
    with db.transaction(Scope.system("read")) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "user.erased"))
        assert event is not None and event.key_id not in (None, bob_key)


def test_a_checkpoint_removed_from_the_database_is_named_from_the_file(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_checkpoints WHERE tree_size = "
                          "(SELECT min(tree_size) FROM audit_checkpoints)"))
    problem = verify(db, settings).problem
    assert problem is not None and "missing from the database" in problem.message


def test_concurrent_ingest_batches_with_the_same_new_actors_all_land(
    db: Database, settings: Settings, personas: Personas
) -> None:
    from datetime import UTC, datetime

    from vern.audit.ingest import IngestEvent, ingest

    def batch(k: int) -> list[IngestEvent]:
        return [IngestEvent(id=f"c{k}-{i}", time=datetime.now(UTC), action="page.read",
                            actor=f"new-{i % 7}", ip=f"192.0.2.{i % 9 + 1}", resource=f"p:{i}")
                for i in range(40)]

    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            ingest(db, settings, org_id=personas.tenant_a, token_id=None, events=batch(k))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert verify(db, settings).ok
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM audit_events WHERE source = 'ingest' "
                                   "AND seq IS NOT NULL")).scalar_one()
    assert stored == 160
