"""Benchmark of the data lifecycle (issue 19), on SQLite (a file, WAL) and PostgreSQL.

* retention: ``vern.retention.service.run`` - the worker's own run, every rule of Vern's own
  data, in batches of about ``service.BATCH`` (50,000) rows (one transaction each: the rows and
  the run's counts and cursor) -
  over ``auth_throttles`` holding 10,000,000 expired rows (``--quick``: 200,000) and a tenth as
  many that are not expired. ``bare``: the same rows, generated again, removed by one bare
  ``DELETE FROM auth_throttles WHERE updated_at < :cutoff`` in one transaction, timed the same
  way; ratio = retention rows/s / bare rows/s (goal ≥ 0.5). The rows are generated inside the
  database (recursive CTE / generate_series); PostgreSQL is vacuumed before each timed part.
* backup and restore (``backup_s``, ``restore_s``, ``backup_mib``) come from ``bench/backup.py``,
  which the backups part of issue 19 adds: ``merge_backup_figures`` below takes them from its
  ``measure(quick: bool)`` (a 1 GB database; ``--quick`` 32 MB), per database and at the top
  level (PostgreSQL's figures through pgBackRest).

    .venv/bin/python bench/lifecycle.py            # full: 10 million expired rows
    .venv/bin/python bench/lifecycle.py --quick    # 200,000 expired rows, under a minute
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VERN_ENV", "test")  # known development secrets; nothing here is real

from vern.accounts.models import AuthThrottle  # noqa: E402
from vern.core.config import Settings  # noqa: E402
from vern.core.crypto import KeyRing, install_keyring  # noqa: E402
from vern.core.db import Database, import_models  # noqa: E402
from vern.retention import service  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BATCH = service.BATCH


@contextmanager
def postgres_url() -> Iterator[str]:
    name = f"vern_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def fill(database: Database, expired: int, fresh: int, now: datetime) -> None:
    """``expired`` rows ten days old and ``fresh`` rows of now, generated inside the database,
    with the timestamps exactly as Vern stores them (written once through the ORM type)."""
    old, new = now - timedelta(days=10), now
    with database.engine.begin() as conn:
        conn.execute(AuthThrottle.__table__.insert(), [
            {"key": "probe-old", "failures": 1, "locks": 0, "updated_at": old},
            {"key": "probe-new", "failures": 1, "locks": 0, "updated_at": new}])
        old_raw, new_raw = (conn.scalar(select(AuthThrottle.__table__.c.updated_at).where(
            AuthThrottle.__table__.c.key == f"probe-{k}")) for k in ("old", "new"))
        conn.execute(text("DELETE FROM auth_throttles WHERE key LIKE 'probe-%'"))
        if database.engine.dialect.name == "sqlite":
            gen = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :n) "
                   "INSERT INTO auth_throttles (key, failures, locks, updated_at) "
                   "SELECT :prefix || printf('%010d', x), 1, 0, :at FROM c")
        else:
            gen = ("INSERT INTO auth_throttles (key, failures, locks, updated_at) "
                   "SELECT :prefix || lpad(x::text, 10, '0'), 1, 0, CAST(:at AS timestamptz) "
                   "FROM generate_series(1, :n) AS x")
        conn.execute(text(gen), {"n": expired, "prefix": "e-", "at": old_raw})
        if fresh:
            conn.execute(text(gen), {"n": fresh, "prefix": "f-", "at": new_raw})


def settle(database: Database) -> None:
    if database.engine.dialect.name == "postgresql":
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE auth_throttles"))
    else:
        with database.engine.begin() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


def count(database: Database) -> int:
    with database.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(AuthThrottle)) or 0)


def measure(url: str, tmp: Path, expired: int) -> dict[str, Any]:
    fresh = expired // 10
    settings = Settings(env="test", database_url=url, audit_log_dir=tmp / "audit")
    database = Database(url)
    database.create_all()
    install_keyring(KeyRing(database.engine, settings.master_key_bytes))
    now = datetime.now(UTC)
    out: dict[str, Any] = {"expired_rows": expired, "fresh_rows": fresh, "batch": BATCH}
    try:
        service.run(database, settings, now=now, trigger="cli")  # a worker is a long-lived process
        fill(database, expired, fresh, now)
        settle(database)
        started = time.perf_counter()
        sizes: list[int] = []
        run = service.run(database, settings, now=now, trigger="cli", batch=BATCH,
                          on_batch=lambda rule, n: sizes.append(n) if rule == "auth_throttles" else None)
        retention_s = time.perf_counter() - started
        done = int(run.counts["auth_throttles"]["done"])
        out["batches"] = len(sizes)
        out["largest_batch"] = max(sizes)
        assert done == expired, (done, expired)
        assert count(database) == fresh
        with database.engine.begin() as conn:
            conn.execute(text("DELETE FROM auth_throttles"))
        settle(database)
        fill(database, expired, fresh, now)
        settle(database)
        cutoff = now - timedelta(days=1)
        started = time.perf_counter()
        with database.engine.begin() as conn:
            gone = conn.execute(AuthThrottle.__table__.delete().where(
                AuthThrottle.updated_at < cutoff)).rowcount
        bare_s = time.perf_counter() - started
        assert gone == expired, (gone, expired)
    finally:
        database.dispose()
    out["retention_s"] = round(retention_s, 3)
    out["bare_delete_s"] = round(bare_s, 3)
    out["retention_rows_per_s"] = round(expired / retention_s)
    out["bare_delete_rows_per_s"] = round(expired / bare_s)
    out["retention_ratio_to_delete"] = round(bare_s / retention_s, 3)
    return out


def merge_backup_figures(result: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Add ``backup_s``, ``restore_s`` and ``backup_mib`` per database from ``bench/backup.py``
    (its ``measure(quick)``), when that benchmark exists; nothing is invented when it does not."""
    path = ROOT / "bench" / "backup.py"
    if not path.exists():
        return result
    spec = importlib.util.spec_from_file_location("vern_bench_backup", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    measured = module.measure(quick)
    keys = ("backup_s", "restore_s", "backup_mib")
    for engine in ("sqlite", "postgresql"):
        figures = measured.get(engine) or {}
        result.setdefault(engine, {}).update({k: v for k, v in figures.items() if k in keys})
    result.update({k: measured[k] for k in keys})  # PostgreSQL's where it ran, else SQLite's
    result["backup_database_mib"] = measured["database_mib"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    expired = 200_000 if args.quick else 10_000_000
    import_models()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = measure(f"sqlite:///{tmp}/vern.db", Path(tmp), expired)
        if postgres_reachable():
            with postgres_url() as url:
                result["postgresql"] = measure(url, Path(tmp), expired)
        else:
            result["postgresql"] = {"skipped": "PostgreSQL not reachable on 127.0.0.1:5432"}
    result = merge_backup_figures(result, args.quick)
    if args.quick:
        print(f"quick run: {expired:,} expired rows (the full run: 10,000,000)")
    print(json.dumps({**result, "quick": args.quick,
                      "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}))


if __name__ == "__main__":
    main()
