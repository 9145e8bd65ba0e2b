"""Several machines append to one trail, each to its own log directory: verification reads all
of them, and lines an interrupted append left on one machine are cut off even after another
machine has committed their positions."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

from tests.audit.helpers import audit_log, fill, rows
from vern.audit import retention
from vern.audit.chain import AuditLog
from vern.audit.verify import verify
from vern.core.config import Settings
from vern.core.db import Database, utcnow


def _machines(db: Database, settings: Settings, tmp_path: Path) -> tuple[AuditLog, AuditLog]:
    a = settings.model_copy(update={"audit_log_dir": tmp_path / "a"})
    b = settings.model_copy(update={"audit_log_dir": tmp_path / "b"})
    return audit_log(db, a), audit_log(db, b)


def _newest(directory: Path) -> Path:
    return sorted(directory.glob("audit-*.jsonl"))[-1]


def test_verification_reads_the_directories_of_every_machine(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    a, b = _machines(db, settings, tmp_path)
    fill(a, db, 60)
    fill(b, db, 60)
    a.append(rows(a, db, 30))
    b.seal_pending(force_checkpoint=True)
    dirs = [tmp_path / "a", tmp_path / "b"]

    report = verify(db, settings, directories=dirs)

    assert report.ok, report.problem
    assert report.checked == 150 and report.files == 2
    alone = verify(db, settings, directories=dirs[:1]).problem
    assert alone is not None and alone.seq == 60 and "missing from the log file" in alone.message


def test_lines_left_on_one_machine_are_cut_after_another_took_their_places(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    a, b = _machines(db, settings, tmp_path)
    fill(a, db, 120)
    committed = _newest(tmp_path / "a").read_bytes()
    # Machine a dies between writing the lines of records 120..139 and committing them.
    template = json.loads(committed.splitlines()[0])
    stale = []
    for seq in range(120, 140):
        template[0] = seq
        stale.append(json.dumps(template, separators=(",", ":")).encode())
    stale.append(json.dumps({"checkpoint": {"size": 140, "root": "00" * 32, "ts": 1,
                                            "key_id": "x", "signature": "00"}}).encode())
    with open(_newest(tmp_path / "a"), "ab") as fh:
        fh.write(b"\n".join(stale) + b"\n")
    # Machine b commits those positions with its own records meanwhile.
    fill(b, db, 30)
    # Machine a starts again: its first append cuts the lines that were never committed.
    again = audit_log(db, settings.model_copy(update={"audit_log_dir": tmp_path / "a"}))
    again.append(rows(again, db, 10))
    again.seal_pending(force_checkpoint=True)

    text = _newest(tmp_path / "a").read_bytes()
    assert text.startswith(committed) and b'"root": "' + b"00" * 32 not in text
    assert text.count(b"\n") == committed.count(b"\n") + 10 + 1  # its records and a checkpoint
    report = verify(db, settings, directories=[tmp_path / "a", tmp_path / "b"])
    assert report.ok, report.problem
    assert report.checked == 160


def test_a_line_in_two_machines_files_alike_counts_once(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    a, b = _machines(db, settings, tmp_path)
    fill(a, db, 40)
    fill(b, db, 20)
    # Machine a wrote the same record at the same position as b did (its own append of it
    # was not committed; b sealed the record at that place next).
    first_of_b = _newest(tmp_path / "b").read_bytes().splitlines()[0]
    assert first_of_b.startswith(b"[40,")
    with open(_newest(tmp_path / "a"), "ab") as fh:
        fh.write(first_of_b + b"\n")
    fill(a, db, 10)

    report = verify(db, settings, directories=[tmp_path / "a", tmp_path / "b"])

    assert report.ok, report.problem
    assert report.checked == 70


def test_retention_reaches_the_log_files_of_every_machine(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    a, b = _machines(db, settings, tmp_path)
    fill(a, db, 40)
    fill(b, db, 40)
    # Machine b's file is from a day long past (renamed to stand for it).
    old = tmp_path / "b" / "audit-2001-05-17.jsonl"
    _newest(tmp_path / "b").rename(old)
    middle = utcnow()
    time.sleep(0.01)
    fill(a, db, 20)
    later = middle + timedelta(days=settings.audit_retention_days)
    # The retention job runs on machine a's worker: the records go, and a's old files.
    result = retention.expire(db, settings.model_copy(update={"audit_log_dir": tmp_path / "a"}),
                              now=later)
    assert result.boundary == 80 and old.exists()

    # Machine b's next append (in a process started after) removes b's old file.
    again = audit_log(db, settings.model_copy(update={"audit_log_dir": tmp_path / "b"}))
    again.append(rows(again, db, 5))

    assert not old.exists()
    report = verify(db, settings, directories=[tmp_path / "a", tmp_path / "b"])
    assert report.ok, report.problem
    assert report.start == 80 and report.checked == 25
