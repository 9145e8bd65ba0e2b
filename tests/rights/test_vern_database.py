"""The engine's bookkeeping on each engine Vern's own database runs on (SQLite, PostgreSQL):
PostgreSQL reads the requests outside a transaction and writes a part's rows as one statement, so
the same runs are checked there - alone, in a batch, in chunks, and resumed after a crash."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import Personas, create_personas, make_settings
from tests.rights.conftest import file_request, request_row
from tests.rights.test_resume import Crash, _erase, _latest_request, _product, _state
from vern.audit.models import AuditEvent
from vern.core.db import Database, Scope
from vern.datamap.connect import forget
from vern.datamap.loader import load_map
from vern.notify.models import OutboxMessage
from vern.rights import demo, service
from vern.rights.models import LedgerEntry, Part, Task


@pytest.fixture
def people(db: Database, tmp_path: Path) -> Personas:
    return create_personas(db, make_settings(db.url, tmp_path))


def _books(db: Database, request_id: str) -> tuple[list[LedgerEntry], list[Part], list[Task], list[str], int]:
    with db.transaction(Scope.system("test")) as session:
        entries = list(session.scalars(select(LedgerEntry).where(LedgerEntry.request_id == request_id)))
        parts = list(session.scalars(select(Part).where(Part.request_id == request_id)))
        tasks = list(session.scalars(select(Task).where(Task.request_id == request_id)))
        actions = list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.resource == f"rights_request:{request_id}")
                .order_by(AuditEvent.ts)
            )
        )
        mail = session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "rights.done")
        )
        session.expunge_all()
    return entries, parts, tasks, actions, mail or 0


def _check_done(db: Database, request_id: str) -> None:
    entries, parts, tasks, actions, mail = _books(db, request_id)
    (entry,) = entries
    (part,) = parts
    assert entry.done_at is not None and entry.rows >= 5 and entry.match_hashes["tables"]
    assert part.status == "done" and part.rows_done > 0 and part.rows_done <= part.rows_found
    assert tasks and all(t.status == "done" and t.plan is None and t.rows_done == t.rows_total for t in tasks)
    assert actions[-2:] == ["rights.request.start", "rights.request.complete"]
    assert mail >= 1
    assert request_row(db, request_id).status == "done"


@pytest.mark.parametrize("batch_rows", [4, 500], ids=["in-chunks", "one-transaction"])
def test_an_erasure_is_booked_the_same_on_every_engine(
    db: Database, people: Personas, tmp_path: Path, batch_rows: int
) -> None:
    url = _product(tmp_path, "product.db", people)
    email = demo.person(1, random.Random(7))["email"]
    request_id, status = _erase(db, people, url, email, batch_rows=batch_rows)
    assert status == "done"
    _check_done(db, request_id)
    forget(url)


def test_a_batch_of_erasures_and_an_access_request_is_booked_per_request(
    db: Database, people: Personas, tmp_path: Path
) -> None:
    url = _product(tmp_path, "product.db", people)
    rng = random.Random(7)
    emails = [demo.person(i, rng)["email"] for i in range(1, 4)]
    erasures = [file_request(db, people.tenant_a, "erasure", {"email": e}) for e in emails]
    access = file_request(db, people.tenant_a, "access", {"email": demo.person(5, rng)["email"]})
    done = service.run_batch(
        db, [*erasures, access], data_map=load_map(demo.map_text()), urls={"laerbar.main": url}
    )
    assert set(done.values()) == {"done"}
    for request_id in erasures:
        _check_done(db, request_id)
    assert request_row(db, access).status == "done"
    forget(url)


@pytest.mark.parametrize("batch_rows", [4, 500], ids=["in-chunks", "one-transaction"])
def test_a_crash_at_every_step_then_a_resume_finishes_once(
    db: Database, people: Personas, tmp_path: Path, batch_rows: int
) -> None:
    email = demo.person(1, random.Random(7))["email"]
    reference = _product(tmp_path, "reference.db", people)
    steps: list[str] = []
    _erase(db, people, reference, email, on_step=steps.append, batch_rows=batch_rows)
    expected = _state(reference)
    for k, step in enumerate(steps):
        url = _product(tmp_path, f"crash{k}.db", people)
        seen: list[str] = []

        def die_at(name: str, k: int = k, seen: list[str] = seen) -> None:
            if len(seen) == k:
                raise Crash(name)
            seen.append(name)

        with pytest.raises(Crash):
            _erase(db, people, url, email, on_step=die_at, batch_rows=batch_rows)
        request_id = _latest_request(db)
        status = service.run(
            db,
            request_id,
            data_map=load_map(demo.map_text()),
            urls={"laerbar.main": url},
            resume=True,
            batch_rows=batch_rows,
        )
        assert status == "done", step
        assert _state(url) == expected, f"crash at step {k} ({step})"
        entries, _parts, _tasks, _actions, _mail = _books(db, request_id)
        assert len(entries) == 1 and entries[0].done_at is not None, step
        forget(url)


def test_a_plan_that_fails_to_commit_leaves_the_product_unchanged(
    db: Database, people: Personas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite commits the plan before the product statements start")
    from sqlalchemy.orm import Session

    from vern.rights import engine

    def lost(session: Session) -> None:
        session.rollback()
        session.close()
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(engine, "_commit_and_close", lost)
    url = _product(tmp_path, "product.db", people)
    before = _state(url)
    email = demo.person(1, random.Random(7))["email"]
    with pytest.raises(RuntimeError, match="the disk is full"):
        _erase(db, people, url, email, batch_rows=500)
    assert _state(url) == before  # the product statements were rolled back
    request_id = _latest_request(db)
    assert request_row(db, request_id).status == "queued"
    monkeypatch.undo()
    status = service.run(db, request_id, data_map=load_map(demo.map_text()), urls={"laerbar.main": url})
    assert status == "done"
    _check_done(db, request_id)
    forget(url)


def test_a_product_commit_that_fails_fails_the_part_and_the_retry_finishes(
    db: Database, people: Personas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import Future
    from typing import Any

    from sqlalchemy import Connection
    from sqlalchemy.exc import OperationalError

    from vern.rights import engine

    real = engine._COMMITTER

    class FailingProductCommits:
        def submit(self, fn: Any, *args: Any) -> Future[None]:
            if getattr(fn, "__self__", None).__class__ is Connection:  # a product COMMIT
                fn.__self__.rollback()
                failed: Future[None] = Future()
                failed.set_exception(OperationalError("COMMIT", {}, Exception("disk I/O error")))
                return failed
            return real.submit(fn, *args)

    monkeypatch.setattr(engine, "_COMMITTER", FailingProductCommits())
    url = _product(tmp_path, "product.db", people)
    before = _state(url)
    email = demo.person(1, random.Random(7))["email"]
    request_id, status = _erase(db, people, url, email, batch_rows=500)
    assert status == "partial"
    assert _state(url) == before
    entries, parts, _tasks, actions, _mail = _books(db, request_id)
    assert [p.status for p in parts] == ["failed"] and "disk I/O error" in (parts[0].error or "")
    assert entries[0].done_at is None and "rights.part.fail" in actions
    monkeypatch.undo()
    with db.transaction(Scope.tenant(people.tenant_a)) as session:
        service.retry(session, request_id, actor_user_id=None)
    status = service.run(db, request_id, data_map=load_map(demo.map_text()), urls={"laerbar.main": url})
    assert status == "done"
    _check_done(db, request_id)
    forget(url)


@pytest.mark.parametrize("kind", ["access", "erasure"])
def test_the_last_failed_attempt_tells_staff_on_either_engine(
    db: Database, people: Personas, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finish of a request whose attempts are used up looks up and mails staff inside the
    run's bookkeeping transaction (on PostgreSQL, within its pipeline)."""
    from vern.core.config import rights_settings

    monkeypatch.setenv("VERN_RIGHTS_RETRY_MAX_ATTEMPTS", "1")
    rights_settings.cache_clear()
    try:
        request_id = file_request(db, people.tenant_a, kind, {"email": "kari.nordmann@example.com"})
        missing = f"sqlite:///{tmp_path / 'ingen' / 'slik.db'}"  # a database that cannot be opened
        status = service.run(db, request_id, data_map=load_map(demo.map_text()),
                             urls={"laerbar.main": missing})
    finally:
        rights_settings.cache_clear()
    assert status == "partial"
    with db.transaction(Scope.system("test")) as session:
        told = session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "rights.retries_exhausted"))
        actions = set(session.scalars(select(AuditEvent.action).where(
            AuditEvent.resource == f"rights_request:{request_id}")))
    assert told == 2  # the customer's admin and the vendor's privacy officer
    assert {"rights.request.partial", "rights.request.retries_exhausted"} <= actions
    forget(missing)
