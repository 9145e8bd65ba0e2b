"""The log files are written ahead of the commit: a failed commit or write leaves them as they
were, and the lines an interrupted append left are named by verification and cut off by the next
append."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.audit.helpers import audit_log, fill, rows
from vern.audit import logfile
from vern.audit.chain import AuditLog
from vern.audit.logfile import LineWrite, trim_uncommitted
from vern.audit.models import AuditEvent
from vern.audit.verify import verify
from vern.core.config import Settings
from vern.core.db import Database


def _file(settings: Settings) -> Path:
    files = sorted(Path(settings.audit_log_dir).glob("audit-*.jsonl"))
    assert len(files) == 1
    return files[0]


def _count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(AuditEvent)) or 0)


@pytest.fixture
def trail(db: Database, settings: Settings) -> AuditLog:
    log = audit_log(db, settings)
    fill(log, db, 120)
    return log


def test_a_commit_that_fails_leaves_the_file_as_it_was(
    db: Database, settings: Settings, trail: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _file(settings).read_bytes()
    batch = rows(trail, db, 30)

    def refuse(dbapi_connection: object) -> None:
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(db.engine.dialect, "do_commit", refuse)
    with pytest.raises(RuntimeError, match="the disk is full"):
        trail.append(batch)
    monkeypatch.undo()
    assert _file(settings).read_bytes() == before
    assert _count(db) == 120
    trail.append(batch)
    assert verify(db, settings).ok
    assert _count(db) == 150


def test_a_write_that_fails_rolls_the_append_back(
    db: Database, settings: Settings, trail: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _file(settings).read_bytes()
    real_write = logfile.os.write
    calls = {"n": 0}

    def half_then_fail(fd: int, data: memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 1:  # part of the lines reach the file, then the disk gives up
            return real_write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(logfile.os, "write", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        trail.append(rows(trail, db, 30))
    monkeypatch.undo()
    assert _file(settings).read_bytes() == before
    assert _count(db) == 120
    assert verify(db, settings).ok


def _interrupted_append(settings: Settings, n: int, first_seq: int) -> bytes:
    """Lines as an append writes them before its commit, of an append whose process died."""
    template = json.loads(_file(settings).read_text().splitlines()[0])
    lines = []
    for seq in range(first_seq, first_seq + n):
        template[0] = seq
        lines.append(json.dumps(template, separators=(",", ":")).encode())
    checkpoint = {"checkpoint": {"size": first_seq + n, "root": "00" * 32, "ts": 1,
                                 "key_id": "x", "signature": "00"}}
    lines.append(json.dumps(checkpoint).encode())
    data = b"\n".join(lines) + b"\n"
    with open(_file(settings), "ab") as fh:
        fh.write(data)
    return data


def test_lines_of_an_interrupted_append_are_named_then_cut_off(
    db: Database, settings: Settings, trail: AuditLog
) -> None:
    committed = _file(settings).read_bytes()
    _interrupted_append(settings, 300, 120)  # more than one 64 KiB chunk of the tail
    problem = verify(db, settings).problem
    assert problem is not None and problem.where.startswith("audit-")

    # A new process: its first append cuts them off before it writes its own lines.
    fresh = audit_log(db, settings)
    fresh.append(rows(fresh, db, 10))
    text = _file(settings).read_bytes()
    assert text.startswith(committed)
    assert text.count(b"\n") == committed.count(b"\n") + 10
    report = verify(db, settings)
    assert report.ok, report.problem
    assert report.checked == 130


def test_only_uncommitted_lines_are_cut(tmp_path: Path) -> None:
    path = tmp_path / "audit-2026-12-01.jsonl"
    kept = b'[0,"a"]\n[1,"b"]\n{"checkpoint":{"size":2}}\n[2,"c"]\n'
    path.write_bytes(kept + b'[3,"d"]\n{"checkpoint":{"size":4}}\n[4,"e"')
    assert trim_uncommitted(tmp_path, 3, 2, fsync=False) == 3
    assert path.read_bytes() == kept
    assert trim_uncommitted(tmp_path, 3, 2, fsync=False) == 0
    # A checkpoint the database never stored over committed records is cut as well.
    path.write_bytes(kept + b'{"checkpoint":{"size":3}}\n')
    assert trim_uncommitted(tmp_path, 3, 2, fsync=False) == 1
    assert path.read_bytes() == kept
    # A line that is not the trail's own is left for verification to name.
    path.write_bytes(kept + b"not a record\n")
    assert trim_uncommitted(tmp_path, 3, 2, fsync=False) == 0


def test_a_write_reports_where_it_started_and_ended(tmp_path: Path) -> None:
    path = tmp_path / "audit-2026-12-01.jsonl"
    path.write_bytes(b"[0]\n")
    write = LineWrite(path, b"[1]\n[2]\n", fsync=True)
    write.wait_written()
    write.finish()
    assert (write.offset, write.end) == (4, 12)
    write = LineWrite(path, b"[3]\n", fsync=False)
    write.undo()
    assert path.read_bytes() == b"[0]\n[1]\n[2]\n"


def test_a_write_begun_before_the_checkpoint_takes_its_line_after(tmp_path: Path) -> None:
    """The records' lines go out at once; the checkpoint's line (known once the tree is
    hashed) follows them, and only then is the file complete - or cut whole on undo."""
    path = tmp_path / "audit-2026-12-01.jsonl"
    path.write_bytes(b"[0]\n")
    write = LineWrite(path, b"[1]\n[2]\n", fsync=True, rest=True)
    write.add(b'{"checkpoint":{"size":3}}\n')
    with pytest.raises(RuntimeError, match="complete already"):
        write.add(b"[9]\n")
    write.wait_written()
    write.finish()
    assert path.read_bytes() == b'[0]\n[1]\n[2]\n{"checkpoint":{"size":3}}\n'
    assert (write.offset, write.end) == (4, path.stat().st_size)
    # Given nothing more, the write ends with the records' lines.
    write = LineWrite(path, b"[3]\n", fsync=False, rest=True)
    write.add(b"")
    write.wait_written()
    write.finish()
    assert path.read_bytes().endswith(b"}\n[3]\n")
    # An append that fails before the checkpoint's line is known: the lines are cut again.
    before = path.read_bytes()
    write = LineWrite(path, b"[4]\n[5]\n", fsync=False, rest=True)
    write.undo()
    assert path.read_bytes() == before


def test_a_sync_that_fails_after_the_commit_is_logged_not_raised(
    db: Database, settings: Settings, trail: AuditLog, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The records are committed: raising would make the caller append them a second time."""
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(logfile.os, "fsync", broken)
    log = audit_log(db, settings, fsync_files=True)
    with caplog.at_level("ERROR", logger="vern.audit.chain"):
        log.append(rows(log, db, 5))
    monkeypatch.undo()
    assert "could not be synced" in caplog.text
    assert _count(db) == 125
    assert verify(db, settings).ok
