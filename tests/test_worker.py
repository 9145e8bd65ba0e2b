"""The worker runs each due job once per interval, and never twice at the same time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.core.worker import Job, WorkerJob, run_due, status


def test_a_job_runs_when_due_and_not_again_before_its_interval(db: Database,
                                                                settings: Settings) -> None:
    calls: list[str] = []
    job = Job("test.tick", timedelta(hours=1), lambda _d, _s: calls.append("x"))
    assert run_due(db, settings, [job]) == ["test.tick"]
    assert run_due(db, settings, [job]) == []
    assert calls == ["x"]
    row = next(r for r in status(db) if r.name == "test.tick")
    assert row.runs == 1
    assert row.lease_until is None


def test_a_failing_job_is_recorded_and_does_not_stop_the_others(db: Database,
                                                                  settings: Settings) -> None:
    def boom(_d: Database, _s: Settings) -> None:
        raise RuntimeError("disk full")

    calls: list[str] = []
    jobs = [Job("test.boom", timedelta(minutes=5), boom),
            Job("test.ok", timedelta(minutes=5), lambda _d, _s: calls.append("ok"))]
    assert run_due(db, settings, jobs) == ["test.boom", "test.ok"]
    assert calls == ["ok"]
    rows = {r.name: r for r in status(db)}
    assert rows["test.boom"].last_error == "RuntimeError: disk full"
    assert rows["test.ok"].last_error is None


def test_a_claimed_job_is_not_run_by_a_second_worker(db: Database, settings: Settings) -> None:
    from vern.core.db import utcnow

    with db.transaction(Scope.system("test")) as session:
        session.add(WorkerJob(name="test.busy", runs=0,
                              lease_until=utcnow() + timedelta(minutes=5)))
    calls: list[str] = []
    job = Job("test.busy", timedelta(seconds=1), lambda _d, _s: calls.append("x"))
    assert run_due(db, settings, [job]) == []
    assert calls == []


def test_a_job_error_with_unstorable_text_is_recorded_and_the_next_job_still_runs(
        db: Database, settings: Settings) -> None:
    def bad(_d: Database, _s: Settings) -> None:
        raise ValueError("ugyldig verdi 'a\x00b' i feltet")

    calls: list[str] = []
    jobs = [Job("test.nul", timedelta(minutes=5), bad),
            Job("test.next", timedelta(minutes=5), lambda _d, _s: calls.append("ok"))]
    assert run_due(db, settings, jobs) == ["test.nul", "test.next"]
    assert calls == ["ok"]
    rows = {r.name: r for r in status(db)}
    assert rows["test.nul"].last_error == "ValueError: ugyldig verdi 'a%00b' i feltet"
    assert rows["test.nul"].lease_until is None and rows["test.next"].runs == 1


def test_a_worker_round_that_fails_does_not_end_the_worker(
        db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from vern.core import worker

    rounds: list[int] = []

    def failing(_d: Database, _s: Settings) -> list[str]:
        rounds.append(1)
        raise RuntimeError("database gone")

    monkeypatch.setattr(worker, "run_due", failing)
    worker.run_forever(db, settings, tick=0.0, max_ticks=3)
    assert len(rounds) == 3
