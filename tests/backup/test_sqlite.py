"""SQLite backups: the online backup API, two copies, a stated recovery point, keys kept apart,
a shredded person unreadable after restoring an older backup, the drill recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text

from tests.backup.conftest import sqlite_backup_settings
from tests.conftest import create_personas, make_settings
from vern.accounts.models import User
from vern.audit.models import AuditEvent
from vern.backup import service, sqlite_backup
from vern.backup.models import BackupRun, RestoreDrill
from vern.core.crypto import KeyRing, install_keyring, keyring
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import Conflict


def _emails(database: Database, master: bytes) -> dict[str, str | None]:
    install_keyring(KeyRing(database.engine, master))
    with database.transaction(Scope.system("test read")) as session:
        return {u.id: u.email.value for u in session.scalars(select(User))}


def test_backup_two_copies_without_keys_then_list(sqlite_db: Database, tmp_path: Path) -> None:
    settings = make_settings(sqlite_db.url, tmp_path)
    bs = sqlite_backup_settings(tmp_path)
    create_personas(sqlite_db, settings)
    before = utcnow()
    run = service.run_backup(sqlite_db, settings, bs)
    assert run.ok and run.copies == 2
    assert run.recovery_point is not None and before <= run.recovery_point <= utcnow()
    listed = service.backups(sqlite_db, settings, bs)
    assert [b.label for b in listed] == [run.label]
    assert len(listed[0].copies) == 2
    assert {Path(p).parent.parent for p in listed[0].copies} == {bs.base(settings), bs.offsite(settings)}
    for path in listed[0].copies:
        copy = Database(f"sqlite:///{path}")
        with copy.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM data_keys")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 5
        copy.dispose()
    keys_dir = bs.base(settings) / "keys"
    assert len(list(keys_dir.glob("keys-*.json"))) == 1
    assert len(list((bs.offsite(settings) / "keys").glob("keys-*.json"))) == 1
    with sqlite_db.transaction(Scope.system("test")) as session:
        runs = {r.kind: r for r in session.scalars(select(BackupRun))}
        assert (runs["data"].detail or {})["counts"]["users"] == 5
        assert (runs["keys"].detail or {})["keys"] >= 5
        actions = set(session.scalars(select(AuditEvent.action)))
    assert {"backup.data_backup", "backup.keys_backup"} <= actions


def test_shredded_person_stays_unreadable_after_restoring_an_older_backup(
        sqlite_db: Database, tmp_path: Path) -> None:
    settings = make_settings(sqlite_db.url, tmp_path)
    bs = sqlite_backup_settings(tmp_path)
    people = create_personas(sqlite_db, settings)
    old = service.run_backup(sqlite_db, settings, bs)
    # Bjørn is erased after the backup: his data key is destroyed.
    with sqlite_db.transaction(Scope.system("test erasure")) as session:
        bob = session.get(User, people.bob.user_id)
        assert bob is not None
        keyring().shred(session, bob.key_id)
    target = tmp_path / "restored.db"
    restored = service.restore(sqlite_db, settings, bs, label=old.label, target=target)
    assert restored.recovery_point == old.recovery_point
    assert restored.key_source == "live"
    copy = Database(f"sqlite:///{target}")
    emails = _emails(copy, settings.master_key_bytes)
    copy.dispose()
    assert emails[people.bob.user_id] is None
    assert emails[people.alice.user_id] == "alice.aasen@fjellheim.example.com"
    # The same from the key backup alone (the live database gone): take a new one after the
    # shredding, then restore the old data backup.
    service.run_backup(sqlite_db, settings, bs)
    other = tmp_path / "restored2.db"
    state = service._key_state(None, bs, settings)
    assert state[0].startswith("key backup")
    sqlite_backup_restore = service.restore(sqlite_db, settings, bs, label=old.label, target=other)
    assert sqlite_backup_restore.label == old.label
    copy = Database(f"sqlite:///{other}")
    assert _emails(copy, settings.master_key_bytes)[people.bob.user_id] is None
    copy.dispose()
    install_keyring(KeyRing(sqlite_db.engine, settings.master_key_bytes))


def test_restore_onto_the_live_database_needs_force(sqlite_db: Database, tmp_path: Path) -> None:
    settings = make_settings(sqlite_db.url, tmp_path)
    bs = sqlite_backup_settings(tmp_path)
    people = create_personas(sqlite_db, settings)
    run = service.run_backup(sqlite_db, settings, bs)
    with pytest.raises(Conflict, match="live database"):
        service.restore(sqlite_db, settings, bs, label=run.label)
    with sqlite_db.engine.begin() as conn:
        conn.execute(text("DELETE FROM memberships WHERE user_id = :u"), {"u": people.erik.user_id})
        conn.execute(text("DELETE FROM users WHERE id = :u"), {"u": people.erik.user_id})
    service.restore(sqlite_db, settings, bs, label=run.label, force=True)
    live = Database(sqlite_db.url)
    emails = _emails(live, settings.master_key_bytes)
    live.dispose()
    assert emails[people.erik.user_id] == "erik.eide@solstrand.example.com"


def test_drill_restores_checks_and_records(sqlite_db: Database, tmp_path: Path) -> None:
    settings = make_settings(sqlite_db.url, tmp_path)
    bs = sqlite_backup_settings(tmp_path)
    create_personas(sqlite_db, settings)
    service.run_backup(sqlite_db, settings, bs)
    result = service.verify(sqlite_db, settings, bs)
    assert result.ok, result.problem
    assert result.audit_ok
    assert result.counts["users"] == {"backup": 5, "restored": 5}
    assert "vern rights replay" in result.hint
    assert not any(bs.scratch(settings).iterdir())
    state = service.status(sqlite_db)
    assert state["last_verified"] is not None and state["last_verified"].label == result.label
    # A damaged copy: the other copy is used; both damaged: the drill fails and says so.
    backup = sqlite_backup.listing(service._dirs(bs, settings, "sqlite"))[0]
    backup.paths[0].write_bytes(b"not a database")
    assert service.verify(sqlite_db, settings, bs).ok
    backup.paths[1].write_bytes(b"not a database")
    failed = service.verify(sqlite_db, settings, bs)
    assert not failed.ok and "SHA-256" in (failed.problem or "")
    with sqlite_db.transaction(Scope.system("test")) as session:
        drills = list(session.scalars(select(RestoreDrill).order_by(RestoreDrill.at)))
    assert [d.ok for d in drills] == [True, True, False]


def test_retention_keeps_five_days_and_one_a_week_for_four_weeks() -> None:
    from datetime import timedelta

    now = utcnow()
    made = [sqlite_backup.SqliteBackup(sqlite_backup.label_for(now - timedelta(days=d)),
                                       now - timedelta(days=d), 1, "", {}) for d in range(0, 40)]
    gone = {round((now - b.recovery_point).total_seconds() / 86400)
            for b in sqlite_backup.expired(made, 5, 4, now)}
    kept = set(range(40)) - gone
    assert set(range(6)) <= kept
    assert all(d <= 28 for d in kept)
    weeks: dict[tuple[int, int], list[int]] = {}
    for d in kept - set(range(6)):
        week = (now - timedelta(days=d)).isocalendar()
        weeks.setdefault((week[0], week[1]), []).append(d)
    assert all(len(days) == 1 for days in weeks.values())  # one a week before the five days
    assert len(weeks) >= 3
    # the one kept is the week's first backup
    for (_y, _w), [d] in weeks.items():
        assert (now - timedelta(days=d + 1)).isocalendar()[1] != _w or d + 1 > 39
