"""A crash or kill at any point, then a restart, finishes the request with every row of the person
handled exactly once and no other person's row touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from tests.conftest import Personas
from tests.rights.conftest import file_request, request_row
from vern.core.db import Database, Scope
from vern.datamap.connect import engine_for, forget
from vern.datamap.loader import load_map
from vern.rights import demo, service
from vern.rights.models import LedgerEntry

ROOT = Path(__file__).resolve().parents[2]


class Crash(BaseException):
    """Stands in for the process dying: nothing after it runs, no handler catches it."""


def _product(tmp_path: Path, name: str, world: Personas) -> str:
    url = f"sqlite:///{tmp_path / name}"
    engine = engine_for(url)
    demo.create_product(engine)
    demo.fill(engine, [world.tenant_a, world.tenant_b], people_per_tenant=6)
    return url


def _state(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with engine_for(url).connect() as conn:
        return {
            t.name: sorted((tuple(map(repr, r)) for r in conn.execute(select(t))), key=repr)
            for t in demo.metadata.sorted_tables
        }


def _erase(database: Database, world: Personas, url: str, email: str, **kwargs: Any) -> tuple[str, str]:
    request_id = file_request(database, world.tenant_a, "erasure", {"email": email})
    status = service.run(
        database,
        request_id,
        data_map=load_map(demo.map_text()),
        urls={"laerbar.main": url},
        **({"batch_rows": 4} | kwargs),
    )
    return request_id, status


@pytest.mark.parametrize("batch_rows", [4, 500], ids=["in-chunks", "one-transaction"])
def test_it_finishes_exactly_once_after_a_crash_at_every_step(
    sqlite_db: Database, world: Personas, tmp_path: Path, batch_rows: int
) -> None:
    email = demo.person(1, __import__("random").Random(7))["email"]
    reference = _product(tmp_path, "reference.db", world)
    steps: list[str] = []
    reference_id, _ = _erase(sqlite_db, world, reference, email, on_step=steps.append, batch_rows=batch_rows)
    expected = _state(reference)
    expected_counts = _counts(sqlite_db, reference_id)
    assert expected_counts["summary"]["laerbar.main"][0] > 0  # the person has rows to count
    # in chunks: several product transactions, so crashes land between them; in one: the plan,
    # the product transaction, and checkpoint with finish together
    assert len(steps) >= (8 if batch_rows == 4 else 5), steps

    for k, step in enumerate(steps):
        url = _product(tmp_path, f"crash{k}.db", world)

        seen: list[str] = []

        def die_at(name: str, k: int = k, seen: list[str] = seen) -> None:
            if len(seen) == k:
                raise Crash(name)
            seen.append(name)

        with pytest.raises(Crash):
            _erase(sqlite_db, world, url, email, on_step=die_at, batch_rows=batch_rows)
        request_id = _latest_request(sqlite_db)
        # the claim commits together with the plans: before them nothing has changed; in one
        # transaction, the checkpoint commits with the finish
        planned = any(name.startswith("planned:") for name in [*seen, step])
        finished = batch_rows == 500 and k == len(steps) - 1
        status = request_row(sqlite_db, request_id).status
        assert status == ("queued" if not planned else "done" if finished else "running"), step

        status = service.run(
            sqlite_db,
            request_id,
            data_map=load_map(demo.map_text()),
            urls={"laerbar.main": url},
            resume=True,
            batch_rows=batch_rows,
        )

        assert status == "done", step
        assert _state(url) == expected, f"crash at step {k} ({step})"
        summary = request_row(sqlite_db, request_id).summary
        assert summary is not None and summary["databases"]["laerbar.main"]["status"] == "done", step
        with sqlite_db.transaction(Scope.system("test")) as session:
            entries = session.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.request_id == request_id)
            )
        assert entries == 1  # one ledger entry per erased person and database
        # the counts are those of a run that never crashed: nothing counted twice or lost
        assert _counts(sqlite_db, request_id) == expected_counts, f"crash at step {k} ({step})"
        forget(url)


def _counts(database: Database, request_id: str) -> dict[str, Any]:
    """Every row count a request keeps: the summary's, its parts', its ledger entries' and the
    progress."""
    from vern.rights.models import Part, RightsRequest

    with database.transaction(Scope.system("test")) as session:
        req = session.get(RightsRequest, request_id)
        assert req is not None and req.summary is not None
        parts = session.execute(
            select(Part.database, Part.rows_found, Part.rows_done).where(Part.request_id == request_id)
        ).all()
        ledger = session.execute(
            select(LedgerEntry.database, LedgerEntry.rows).where(LedgerEntry.request_id == request_id)
        ).all()
        return {
            "summary": {
                name: (db["rows_found"], db["rows_done"]) for name, db in req.summary["databases"].items()
            },
            "rows_found": req.summary["rows_found"],
            "parts": sorted(tuple(p) for p in parts),
            "ledger": sorted(tuple(e) for e in ledger),
            "progress": (req.progress_done, req.progress_total),
        }


def _latest_request(database: Database) -> str:
    from vern.rights.models import RightsRequest

    with database.transaction(Scope.system("test")) as session:
        found = session.scalar(select(RightsRequest.id).order_by(RightsRequest.received_at.desc()).limit(1))
    assert found is not None
    return found


KILLER = textwrap.dedent("""
    import os, signal, sys
    from vern.core.config import get_settings
    from vern.core.crypto import KeyRing, install_keyring
    from vern.datamap.loader import load_map
    from vern.core.db import Database
    from vern.rights import demo, service

    vern_url, product_url, request_id, kill_at = sys.argv[1:5]
    database = Database(vern_url)
    install_keyring(KeyRing(database.engine, get_settings().master_key_bytes))
    seen = []

    def step(name):
        if len(seen) == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)
        seen.append(name)

    service.run(database, request_id, data_map=load_map(demo.map_text()),
                urls={"laerbar.main": product_url}, on_step=step, batch_rows=4)
""")


@pytest.mark.parametrize("kill_at", [2, 3, 4, 6])
def test_it_finishes_after_the_process_is_killed(
    sqlite_db: Database, world: Personas, tmp_path: Path, kill_at: int
) -> None:
    email = demo.person(2, __import__("random").Random(7))["email"]
    reference = _product(tmp_path, "reference.db", world)
    _erase(sqlite_db, world, reference, email)
    expected = _state(reference)
    url = _product(tmp_path, "killed.db", world)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": email})

    env = os.environ | {"VERN_ENV": "test", "PYTHONPATH": str(ROOT)}
    child = subprocess.run(  # noqa: S603 - our own code
        [sys.executable, "-c", KILLER, sqlite_db.url, url, request_id, str(kill_at)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert child.returncode == -signal.SIGKILL, child.stderr
    assert request_row(sqlite_db, request_id).status == "running"  # killed after the plans
    status = service.run(
        sqlite_db,
        request_id,
        data_map=load_map(demo.map_text()),
        urls={"laerbar.main": url},
        resume=True,
        batch_rows=4,
    )
    assert status == "done"
    assert _state(url) == expected
    forget(url)
    create_engine(url).dispose()


def test_a_database_lost_during_erasure_fails_its_part_and_the_retry_finishes(
    sqlite_db: Database, world: Personas, tmp_path: Path
) -> None:
    email = demo.person(3, __import__("random").Random(7))["email"]
    reference = _product(tmp_path, "reference.db", world)
    _erase(sqlite_db, world, reference, email)
    expected = _state(reference)
    url = _product(tmp_path, "flaky.db", world)
    path = tmp_path / "flaky.db"

    def lose_it(name: str) -> None:
        if name.startswith("planned:"):
            forget(url)
            path.rename(tmp_path / "away.db")  # the server is gone (an empty file answers instead)

    request_id, status = _erase(sqlite_db, world, url, email, on_step=lose_it)

    req = request_row(sqlite_db, request_id)
    assert status == "partial" and req.error == "not reached: laerbar.main"
    assert req.summary is not None and "does not exist" in req.summary["databases"]["laerbar.main"]["error"]
    forget(url)
    path.unlink()
    (tmp_path / "away.db").rename(path)
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        service.retry(session, request_id, actor_user_id=world.alice.user_id)
    status = service.run(
        sqlite_db, request_id, data_map=load_map(demo.map_text()), urls={"laerbar.main": url}, batch_rows=4
    )
    assert status == "done"
    assert _state(url) == expected
    forget(url)


def test_a_batch_run_ends_exactly_like_running_each_request_alone(
    sqlite_db: Database, world: Personas, tmp_path: Path
) -> None:
    rng = __import__("random").Random(7)
    emails = [demo.person(i, rng)["email"] for i in (1, 2, 4)]
    data_map = load_map(demo.map_text())
    alone = _product(tmp_path, "alone.db", world)
    alone_ids = [_erase(sqlite_db, world, alone, email)[0] for email in emails]
    batched = _product(tmp_path, "batched.db", world)
    ids = [file_request(sqlite_db, world.tenant_a, "erasure", {"email": e}) for e in emails]
    ids.append(file_request(sqlite_db, world.tenant_a, "access", {"email": emails[0]}))
    ids.append(file_request(sqlite_db, world.tenant_a, "restriction", {"email": emails[1]}))
    ids.append(file_request(sqlite_db, world.tenant_a, "erasure", {"email": emails[2]}, approve=False))

    results = service.run_batch(sqlite_db, ids, data_map=data_map, urls={"laerbar.main": batched})

    assert [results[i] for i in ids[:5]] == ["done"] * 5
    assert results[ids[5]].startswith("skipped: the request is awaiting_approval")
    assert _state(batched) == _state(alone)
    with sqlite_db.transaction(Scope.system("test")) as session:

        def ledger(request_ids: list[str]) -> list[tuple[str, int]]:
            return sorted(
                (e.table_name, e.rows)
                for e in session.scalars(select(LedgerEntry).where(LedgerEntry.request_id.in_(request_ids)))
            )

        assert ledger(ids[:3]) == ledger(alone_ids)
    forget(alone)
    forget(batched)


def test_one_failing_person_in_a_batch_fails_only_their_request(
    sqlite_db: Database, world: Personas, tmp_path: Path
) -> None:
    from sqlalchemy import text

    rng = __import__("random").Random(7)
    emails = [demo.person(i, rng)["email"] for i in (1, 2, 4)]
    url = _product(tmp_path, "strict.db", world)
    with engine_for(url).begin() as conn:  # the product refuses to change person 2's messages
        conn.execute(
            text(
                "CREATE TRIGGER keep_messages BEFORE UPDATE ON messages WHEN OLD.sender_id = 2 "
                "BEGIN SELECT RAISE(ABORT, 'messages of user 2 are locked'); END"
            )
        )
    ids = [file_request(sqlite_db, world.tenant_a, "erasure", {"email": e}) for e in emails]

    results = service.run_batch(
        sqlite_db, ids, data_map=load_map(demo.map_text()), urls={"laerbar.main": url}
    )

    assert [results[i] for i in ids] == ["done", "partial", "done"]
    summary = request_row(sqlite_db, ids[1]).summary
    assert summary is not None and "locked" in summary["databases"]["laerbar.main"]["error"]
    forget(url)


def test_a_runner_that_read_a_request_before_another_claimed_it_does_nothing(
    sqlite_db: Database, world: Personas, tmp_path: Path
) -> None:
    from vern.rights.engine import Engine
    from vern.rights.runtime import secret

    email = demo.person(1, __import__("random").Random(7))["email"]
    url = _product(tmp_path, "race.db", world)
    data_map = load_map(demo.map_text())
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": email})
    late = Engine(sqlite_db, data_map, secret(), urls={"laerbar.main": url})
    jobs, skipped = service._load_jobs(late, [request_id], resume=False, strict=True)
    assert not skipped and jobs[0].status == "queued"

    # meanwhile another runner claims the request and finishes it
    assert service.run(sqlite_db, request_id, data_map=data_map, urls={"laerbar.main": url}) == "done"
    finished = _state(url)
    with sqlite_db.transaction(Scope.system("test")) as session:
        entries = session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.request_id == request_id)
        )

    late.process(jobs)  # reads the erased rows, then finds the request changed: claims nothing

    assert not jobs[0].claimed
    assert request_row(sqlite_db, request_id).status == "done"
    assert _state(url) == finished
    with sqlite_db.transaction(Scope.system("test")) as session:
        assert entries == session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.request_id == request_id)
        )
    forget(url)


def _publish(database: Database) -> None:
    from vern.datamap.service import publish_map

    with database.transaction(Scope.system("test map")) as session:
        publish_map(session, demo.map_text(), source="laerbar.yaml")


def _age(database: Database, request_id: str, seconds: float) -> None:
    """Move the request's last run back in time (the wait before a retry is measured from it)."""
    from datetime import timedelta

    from vern.rights.models import RightsRequest

    with database.transaction(Scope.system("test")) as session:
        req = session.get(RightsRequest, request_id)
        assert req is not None and req.heartbeat_at is not None
        req.heartbeat_at = req.heartbeat_at - timedelta(seconds=seconds)


def _flaky_erasure(
    database: Database, world: Personas, tmp_path: Path, email: str
) -> tuple[str, str, Path, Path]:
    """An erasure left partial: its database went away after the plan was stored."""
    url = _product(tmp_path, "flaky.db", world)
    path, away = tmp_path / "flaky.db", tmp_path / "away.db"

    def lose_it(name: str) -> None:
        if name.startswith("planned:"):
            forget(url)
            path.rename(away)  # the server is gone (an empty file answers instead)

    request_id, status = _erase(database, world, url, email, on_step=lose_it, batch_rows=500)
    assert status == "partial"
    return request_id, url, path, away


def test_the_worker_retries_a_partial_request_with_backoff_until_its_database_is_back(
    sqlite_db: Database, world: Personas, tmp_path: Path, mailer: Any
) -> None:
    from vern.rights.service import retry_backoff, run_pending

    _publish(sqlite_db)
    email = demo.person(3, __import__("random").Random(7))["email"]
    reference = _product(tmp_path, "reference.db", world)
    reference_id, _ = _erase(sqlite_db, world, reference, email, batch_rows=500)
    expected, expected_counts = _state(reference), _counts(sqlite_db, reference_id)
    request_id, url, path, away = _flaky_erasure(sqlite_db, world, tmp_path, email)
    urls = {"laerbar.main": url}

    run_pending(sqlite_db, urls=urls)  # the wait after the first attempt is not over
    assert request_row(sqlite_db, request_id).status == "partial"
    assert request_row(sqlite_db, request_id).attempts == 1

    _age(sqlite_db, request_id, retry_backoff(1).total_seconds() + 1)
    run_pending(sqlite_db, urls=urls)  # retried, the database is still away
    req = request_row(sqlite_db, request_id)
    assert (req.status, req.attempts) == ("partial", 2)

    _age(sqlite_db, request_id, retry_backoff(1).total_seconds() + 1)  # the wait has doubled
    run_pending(sqlite_db, urls=urls)
    assert request_row(sqlite_db, request_id).attempts == 2

    forget(url)
    path.unlink()
    away.rename(path)  # the database is back
    _age(sqlite_db, request_id, retry_backoff(2).total_seconds() + 1)
    results = dict(run_pending(sqlite_db, urls=urls))

    assert results[request_id] == "done"
    assert request_row(sqlite_db, request_id).status == "done"
    assert _state(url) == expected
    got = _counts(sqlite_db, request_id)
    assert {k: v for k, v in got.items() if k != "progress"} == {
        k: v for k, v in expected_counts.items() if k != "progress"
    }
    assert not [m for m in mailer.sent if "could not be completed" in m.subject.lower()
                or "kunne ikke fullføres" in m.subject]
    forget(url)


def test_after_the_last_automatic_attempt_staff_are_told_and_the_worker_stops(
    sqlite_db: Database, world: Personas, tmp_path: Path, mailer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vern.audit.models import AuditEvent
    from vern.core.config import rights_settings
    from vern.rights.service import retry_backoff, run_pending

    monkeypatch.setenv("VERN_RIGHTS_RETRY_MAX_ATTEMPTS", "2")
    rights_settings.cache_clear()
    try:
        _publish(sqlite_db)
        email = demo.person(3, __import__("random").Random(7))["email"]
        request_id, url, _path, _away = _flaky_erasure(sqlite_db, world, tmp_path, email)
        urls = {"laerbar.main": url}
        assert not [m for m in mailer.sent if m.to == world.alice.email]

        _age(sqlite_db, request_id, retry_backoff(1).total_seconds() + 1)
        run_pending(sqlite_db, urls=urls)  # the second and last attempt fails too

        req = request_row(sqlite_db, request_id)
        assert (req.status, req.attempts) == ("partial", 2)
        told = {m.to for m in mailer.sent if m.subject in (
            "A request could not be completed", "En forespørsel kunne ikke fullføres")}
        # the customer's admin and the vendor's privacy officer; not the other customer's admin
        assert {world.alice.email, world.erik.email} <= told
        assert world.carol.email not in told
        with sqlite_db.transaction(Scope.system("test")) as session:
            assert session.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "rights.request.retries_exhausted",
                AuditEvent.resource == f"rights_request:{request_id}")) == 1

        _age(sqlite_db, request_id, 30 * 86_400)
        run_pending(sqlite_db, urls=urls)  # no attempts left: it waits for staff
        assert request_row(sqlite_db, request_id).attempts == 2
        forget(url)
    finally:
        rights_settings.cache_clear()
