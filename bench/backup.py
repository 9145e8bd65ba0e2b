# ruff: noqa: E501 - SQL text of this script's own constants
"""Benchmark of backups of Vern's own database: backup and restore time and size for a Vern
database of 1 GB (``--quick``: 32 MB), on SQLite and on PostgreSQL.

* SQLite: ``vern.backup.service.run_backup`` (online backup API, the data keys emptied and the
  file vacuumed, a SHA-256, a second copy in the off-site directory, then the key backup) and
  ``service.restore`` into another file (copy checked against its SHA-256, keys put back).
* PostgreSQL: a private cluster (Debian's binaries, a temporary data directory, a loopback port,
  WAL archived by pgBackRest), a full backup to each of the two encrypted repositories (zstd),
  then ``service.restore`` into a scratch data directory, including starting it, waiting for the
  end of recovery and reconciling the keys.

The database is filled with statistics events (``stats_events``, random paths so that they do
not compress away) until its size is reached. ``backup_mib``: the size of one copy as stored
(SQLite: the file; PostgreSQL: repo1's share of the backup, compressed and encrypted).

    .venv/bin/python bench/backup.py            # 1 GB
    .venv/bin/python bench/backup.py --quick    # 32 MB, a private cluster without disk
                                                # flushes, pgBackRest bundling: under 30 s

The last line is one JSON object: ``backup_s``, ``restore_s``, ``backup_mib`` (PostgreSQL's when
pgBackRest is installed, else SQLite's), and the same under ``sqlite`` and ``postgresql``.
``measure(quick)`` returns that object (``bench/lifecycle.py`` calls it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VERN_ENV", "test")  # known development secrets; nothing here is real

from vern.backup import pgbackrest, service  # noqa: E402
from vern.core.config import BackupSettings, Settings  # noqa: E402
from vern.core.crypto import KeyRing, install_keyring  # noqa: E402
from vern.core.db import Database, import_models  # noqa: E402

MIB = 1 << 20
ORG = "00000000-0000-4000-8000-00000000b001"


def _fill_sqlite(database: Database, target_bytes: int) -> None:
    path = Path(database.engine.url.database or "")
    with database.engine.begin() as conn:
        conn.execute(text("INSERT INTO organisations (id, name, slug, kind, created_at) "
                          "VALUES (:id, 'Benk barnehage', 'benk', 'tenant', CURRENT_TIMESTAMP)"), {"id": ORG})
    while path.stat().st_size < target_bytes:
        with database.engine.begin() as conn:
            conn.execute(text(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000) "
                "INSERT INTO stats_events (org_id, site_id, at, visit_id, path, referrer, browser, os, device) "
                "SELECT :org, 'site', CURRENT_TIMESTAMP, lower(hex(randomblob(16))), "
                "'/' || lower(hex(randomblob(40))), 'example.com', 'Firefox', 'Linux', 'desktop' FROM n"),
                {"org": ORG})


def _fill_postgres(database: Database, target_bytes: int) -> None:
    with database.engine.begin() as conn:
        conn.execute(text("INSERT INTO organisations (id, name, slug, kind, created_at) "
                          "VALUES (:id, 'Benk barnehage', 'benk', 'tenant', now())"), {"id": ORG})
    while True:
        with database.engine.begin() as conn:
            size = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0)
            if size >= target_bytes:
                return
            conn.execute(text(
                "INSERT INTO stats_events (org_id, site_id, at, visit_id, path, referrer, browser, os, device) "
                "SELECT :org, 'site', now(), md5(random()::text), "
                "'/' || md5(random()::text) || md5(random()::text) || md5(random()::text), "
                "'example.com', 'Firefox', 'Linux', 'desktop' FROM generate_series(1, 50000)"), {"org": ORG})


def _settings(url: str, base: Path) -> Settings:
    return Settings(env="test", database_url=url, data_dir=base, audit_log_dir=base / "audit")


def measure_sqlite(target_bytes: int) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="vern-bench-backup-"))
    try:
        import_models()
        database = Database(f"sqlite:///{base / 'vern.db'}")
        database.create_all()
        settings = _settings(database.url, base)
        install_keyring(KeyRing(database.engine, settings.master_key_bytes))
        _fill_sqlite(database, target_bytes)
        size = (base / "vern.db").stat().st_size
        bs = BackupSettings(dir=base / "backups", offsite_dir=base / "offsite", scratch_dir=base / "scratch")
        started = time.perf_counter()
        run = service.run_backup(database, settings, bs)
        backup_s = time.perf_counter() - started
        started = time.perf_counter()
        service.restore(database, settings, bs, label=run.label, target=base / "restored.db")
        restore_s = time.perf_counter() - started
        database.dispose()
        return {"database_mib": round(size / MIB, 1), "backup_s": round(backup_s, 2),
                "restore_s": round(restore_s, 2), "backup_mib": round(run.size_bytes / MIB, 1),
                "copies": run.copies}
    finally:
        shutil.rmtree(base, ignore_errors=True)


# The quick run's private cluster: a smoke run that must stay under a minute on a shared machine.
# Its throw-away cluster skips the disk flushes (fsync, full-page images after the backup's
# checkpoint) and pgBackRest bundles the cluster's small files into a few repository files, so
# the two full backups, the restore and removing the directories afterwards do not wait on a few
# thousand small writes and flushes. The full run keeps Vern's own configuration.
QUICK_CLUSTER = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                 "wal_level": "replica", "max_wal_size": "1GB"}
QUICK_PGBACKREST = ("repo1-bundle=y", "repo2-bundle=y")


def _quick_config(path: Path) -> None:
    """Vern's pgbackrest.conf with the quick run's additions in its [global] section."""
    lines = path.read_text().splitlines()
    at = lines.index("[global]") + 1
    path.write_text("\n".join(lines[:at] + list(QUICK_PGBACKREST) + lines[at:]) + "\n")


def _remove_later(base: Path) -> None:
    """Remove the benchmark's directories without waiting (not part of what is measured)."""
    subprocess.Popen(["rm", "-rf", str(base)], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure_postgresql(target_bytes: int, quick: bool = False) -> dict[str, Any] | None:
    if shutil.which("pgbackrest") is None:
        return None
    binaries = pgbackrest.pg_bin(BackupSettings())
    user = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="vern-bench-pgbackrest-", dir="/tmp"))
    base.chmod(0o711)
    for sub in ("pg", "s", "backups", "offsite", "scratch"):
        pgbackrest.give_to(base / sub, user, 0o711 if sub in ("backups", "offsite", "scratch") else 0o700)
    data = base / "pg" / "data"
    port = pgbackrest.free_port()
    bs = BackupSettings(dir=base / "backups", offsite_dir=base / "offsite", scratch_dir=base / "scratch",
                        pg_data=data, pg_port=port, pg_socket=base / "s", os_user=user, pg_bin=binaries,
                        cipher_pass="benk-passfrase-ikke-hemmelig",
                        pgbackrest_config=base / "conf" / "pgbackrest.conf")
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/vern"
    settings = _settings(url, base)
    subprocess.run(pgbackrest.as_user(user, [str(binaries / "initdb"), "-D", str(data), "-U", "postgres",
                                             "--auth=trust", "--no-sync"]),
                   capture_output=True, check=True, timeout=300)
    cluster = pgbackrest.Cluster(data, port, user, binaries, base / "s")
    config = pgbackrest.write_config(bs, settings)
    cluster.configure(archive_mode="on", wal_level="replica", max_wal_size="4GB",
                      archive_command=pgbackrest.archive_command(bs, settings))
    if quick:
        cluster.configure(**QUICK_CLUSTER)
        _quick_config(config)
    database: Database | None = None
    try:
        cluster.start()
        # The stanza before any WAL is archived: a failed archive_command makes PostgreSQL wait
        # a minute before it tries again.
        pgbackrest.run(bs, settings, "stanza-create")
        admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
                              isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE vern"))
        admin.dispose()
        import_models()
        database = Database(url)
        database.create_all()
        install_keyring(KeyRing(database.engine, settings.master_key_bytes))
        _fill_postgres(database, target_bytes)
        with database.engine.connect() as conn:
            size = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0)
        started = time.perf_counter()
        run = service.run_backup(database, settings, bs, full=True)
        backup_s = time.perf_counter() - started
        started = time.perf_counter()
        service.restore(database, settings, bs, label=run.label, target=base / "restored")
        restore_s = time.perf_counter() - started
        per_copy = run.size_bytes / max(run.copies, 1)
        return {"database_mib": round(size / MIB, 1), "backup_s": round(backup_s, 2),
                "restore_s": round(restore_s, 2), "backup_mib": round(per_copy / MIB, 1),
                "copies": run.copies}
    finally:
        if database is not None:
            database.dispose()
        cluster.stop()
        if quick:
            _remove_later(base)
        else:
            shutil.rmtree(base, ignore_errors=True)


def measure(quick: bool) -> dict[str, Any]:
    """Backup and restore of a 1 GB Vern database (quick: 32 MB) on SQLite and PostgreSQL."""
    target = (32 if quick else 1024) * MIB
    sqlite = measure_sqlite(target)
    postgresql = measure_postgresql(target, quick)
    top = postgresql or sqlite
    return {"quick": quick, "database_mib": 32 if quick else 1024, "backup_s": top["backup_s"],
            "restore_s": top["restore_s"], "backup_mib": top["backup_mib"],
            "sqlite": sqlite, "postgresql": postgresql}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 32 MB database instead of 1 GB")
    args = parser.parse_args()
    result = measure(args.quick)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
