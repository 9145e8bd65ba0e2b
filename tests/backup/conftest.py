"""Fixtures of the backup tests: backup settings in the test's own directories, and a private
PostgreSQL cluster (Debian's binaries, a temporary data directory, a loopback port of its own,
WAL archived by pgBackRest) - the machine's shared PostgreSQL is never reconfigured."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests import services
from tests.conftest import make_settings
from vern.backup import pgbackrest
from vern.core.config import BackupSettings, Settings
from vern.core.crypto import KeyRing, install_keyring
from vern.core.db import Database, import_models

PASSPHRASE = "Nordlys over Lofoten, kryptert"  # a fictional test passphrase


def sqlite_backup_settings(base: Path) -> BackupSettings:
    return BackupSettings(dir=base / "backups", offsite_dir=base / "offsite",
                          scratch_dir=base / "scratch")


@dataclass
class PrivatePg:
    base: Path
    cluster: pgbackrest.Cluster
    bs: BackupSettings
    settings: Settings
    database: Database


def _need_tools() -> Path:
    if shutil.which("pgbackrest") is None:
        services.unavailable("pgBackRest is not installed (Debian package pgbackrest)")
    try:
        return pgbackrest.pg_bin(BackupSettings())
    except pgbackrest.BackupError as exc:
        services.unavailable(str(exc))
    raise AssertionError("unreachable")


@pytest.fixture
def private_pg() -> Iterator[PrivatePg]:
    """A PostgreSQL cluster of the test's own with Vern's schema in database ``vern``, archiving
    WAL through pgBackRest to two repositories (two paths)."""
    binaries = _need_tools()
    if os.geteuid() == 0:
        user: str | None = "postgres"
    else:
        user = None
    base = Path(tempfile.mkdtemp(prefix="vern-pgbackrest-", dir="/tmp"))
    base.chmod(0o711)
    data = base / "pg" / "data"
    pgbackrest.give_to(base / "pg", user, 0o700)
    pgbackrest.give_to(base / "s", user, 0o700)
    for sub in ("backups", "offsite", "scratch"):
        pgbackrest.give_to(base / sub, user, 0o711)
    port = pgbackrest.free_port()
    bs = BackupSettings(dir=base / "backups", offsite_dir=base / "offsite", scratch_dir=base / "scratch",
                        pg_data=data, pg_port=port, pg_socket=base / "s", os_user=user, pg_bin=binaries,
                        cipher_pass=PASSPHRASE, pgbackrest_config=base / "conf" / "pgbackrest.conf")
    argv = [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--no-sync"]
    done = subprocess.run(pgbackrest.as_user(user, argv),  # noqa: S603 - Debian's initdb
                          capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"initdb failed: {done.stderr}")
    cluster = pgbackrest.Cluster(data, port, user, binaries, base / "s")
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/vern"
    settings = make_settings(url, base, data_dir=base)
    pgbackrest.write_config(bs, settings)
    cluster.configure(archive_mode="on", wal_level="replica", max_wal_senders="2", fsync="off",
                      archive_command=pgbackrest.archive_command(bs, settings))
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
        yield PrivatePg(base, cluster, bs, settings, database)
    finally:
        if database is not None:
            database.dispose()
        cluster.stop(mode="immediate")  # thrown away: no wait for the last WAL's archiving
        shutil.rmtree(base, ignore_errors=True)
