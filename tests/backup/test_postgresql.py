"""PostgreSQL backups with the real pgBackRest against a private PostgreSQL cluster: two
encrypted repositories, WAL archived, restore into a scratch data directory (also to a point in
time), rows checked, keys reconciled, the drill recorded."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from tests.backup.conftest import PrivatePg
from tests.conftest import create_personas
from vern.accounts.models import User
from vern.backup import pgbackrest, service
from vern.backup.models import BackupRun, RestoreDrill
from vern.core.crypto import KeyRing, install_keyring, keyring
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import Conflict


def _read(pg: PrivatePg, data: object, sql: str) -> list[tuple[object, ...]]:
    cluster = pgbackrest.Cluster(data, pgbackrest.free_port(), pg.cluster.user, pg.cluster.bin,  # type: ignore[arg-type]
                                 pg.base / "s2")
    pgbackrest.give_to(pg.base / "s2", pg.cluster.user, 0o700)
    url = pgbackrest.url_on_port(pg.database.url, cluster.port)
    with pgbackrest.running(cluster, "-c archive_mode=off"):
        cluster.wait_promoted(url)
        restored = Database(url)
        install_keyring(KeyRing(restored.engine, pg.settings.master_key_bytes))
        try:
            if sql == "emails":
                with restored.transaction(Scope.system("test read")) as session:
                    return [(u.id, u.email.value) for u in session.scalars(select(User))]
            with restored.engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql))]
        finally:
            restored.dispose()
            install_keyring(KeyRing(pg.database.engine, pg.settings.master_key_bytes))


def test_backup_restore_pitr_and_keys(private_pg: PrivatePg) -> None:
    pg = private_pg
    people = create_personas(pg.database, pg.settings)
    run = service.run_backup(pg.database, pg.settings, pg.bs, full=True)
    assert run.ok and run.copies == 2, run.error
    assert run.detail and run.detail["counts"]["users"] == 5
    listed = service.backups(pg.database, pg.settings, pg.bs)
    assert {b.copies[0] for b in listed} == {"repo1", "repo2"}
    # Encrypted: the repository's files are not readable without the passphrase.
    conf = pg.bs.config_path(pg.settings).read_text()
    assert "repo1-cipher-type=aes-256-cbc" in conf and "repo2-cipher-type=aes-256-cbc" in conf
    assert "repo1-retention-full=28" in conf and "repo1-retention-archive=6" in conf

    # After the backup: Bjørn is erased (key destroyed), a new row is written.
    with pg.database.transaction(Scope.system("test erasure")) as session:
        bob = session.get(User, people.bob.user_id)
        assert bob is not None
        keyring().shred(session, bob.key_id)
    with pg.database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE drill_marks (n int)"))
        conn.execute(text("INSERT INTO drill_marks VALUES (1)"))
    time.sleep(1.1)
    between = utcnow()
    time.sleep(1.1)
    with pg.database.engine.begin() as conn:
        conn.execute(text("INSERT INTO drill_marks VALUES (2)"))
        conn.execute(text("SELECT pg_switch_wal()"))
    pgbackrest.run(pg.bs, pg.settings, "check")  # waits until the WAL is archived

    # Point in time: restore to `between` - row 1 is there, row 2 not.
    target = pg.base / "restored"
    done = service.restore(pg.database, pg.settings, pg.bs, at=between, target=target)
    assert done.recovery_point == between
    assert _read(pg, target, "SELECT n FROM drill_marks ORDER BY n") == [(1,)]
    # The backup as it was taken, before the erasure: it still held Bjørn's key, which the
    # restore destroys again from the live key state.
    old = pg.base / "restored-old"
    done = service.restore(pg.database, pg.settings, pg.bs, label=run.label, target=old)
    assert done.keys["destroyed"] == 1
    assert _read(pg, old, "SELECT count(*) FROM pg_tables WHERE tablename = 'drill_marks'") == [(0,)]
    emails: dict[object, object] = dict(_read(pg, old, "emails"))  # type: ignore[arg-type]
    assert emails[people.bob.user_id] is None
    assert emails[people.alice.user_id] == "alice.aasen@fjellheim.example.com"

    # Onto the live data directory: refused without force.
    with pytest.raises(Conflict, match="live database"):
        service.restore(pg.database, pg.settings, pg.bs, target=pg.bs.pg_data)


def test_drill_on_postgresql_is_recorded(private_pg: PrivatePg) -> None:
    pg = private_pg
    create_personas(pg.database, pg.settings)
    service.run_backup(pg.database, pg.settings, pg.bs, full=True)
    result = service.verify(pg.database, pg.settings, pg.bs)
    assert result.ok, result.problem
    assert result.audit_ok
    assert result.counts["users"]["restored"] == 5
    with pg.database.transaction(Scope.system("test")) as session:
        drill = session.scalar(select(RestoreDrill))
        assert drill is not None and drill.ok and drill.engine == "postgresql"
        runs = list(session.scalars(select(BackupRun).where(BackupRun.kind == "data")))
    assert len(runs) == 1
    state = service.status(pg.database)
    assert state["last_backup"].label == runs[0].label
    assert state["window_end"] is not None
    assert state["window_end"] <= utcnow() + timedelta(seconds=1)
