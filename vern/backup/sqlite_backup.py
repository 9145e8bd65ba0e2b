"""SQLite backups through the online backup API (``sqlite3.Connection.backup``).

A backup is a consistent copy of the whole database as it was when the copy was taken (its
stated recovery point), with the ``data_keys`` table emptied (keys are backed up apart, see
``vern.backup.keys``), written with a manifest (recovery point, rows per table, SHA-256) to the
backup directory and to the off-site directory. Retention by age: every backup of the last
``pitr_days`` days, and the first backup of each ISO week for ``weekly_weeks`` weeks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from vern.core.db import utcnow

PREFIX = "vern-"


@dataclass
class SqliteBackup:
    label: str
    recovery_point: datetime
    size_bytes: int
    sha256: str
    counts: dict[str, int]
    paths: list[Path] = field(default_factory=list)


def label_for(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S%fZ")


def counts_of(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    # S608 is wrong here: names from sqlite_master, quoted
    return {n: int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}  # noqa: S608


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    tmp.replace(dst)


def take(source: Path, dirs: list[Path]) -> SqliteBackup:
    """Copy the live database ``source`` into the first of ``dirs``, then to the others."""
    first = dirs[0]
    first.mkdir(parents=True, exist_ok=True)
    moment = utcnow()
    label = label_for(moment)
    target = first / f"{PREFIX}{label}.sqlite"
    partial = target.with_name(target.name + ".partial")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(partial)
    try:
        # One step: the whole database under one read transaction - a consistent copy as of now.
        moment = utcnow()
        src.backup(dst, pages=-1)
        counts = counts_of(dst)
        counts["data_keys"] = 0
        with contextlib.suppress(sqlite3.OperationalError):  # a database without keys
            dst.execute("DELETE FROM data_keys")
            dst.commit()
        dst.execute("VACUUM")  # the deleted keys' pages are gone from the file too
        dst.commit()
    finally:
        src.close()
        dst.close()
    os.chmod(partial, 0o600)
    partial.replace(target)
    digest = _sha256(target)
    backup = SqliteBackup(label, moment, target.stat().st_size, digest, counts, [target])
    manifest = json.dumps({"label": label, "recovery_point": moment.isoformat(),
                           "size_bytes": backup.size_bytes, "sha256": digest, "counts": counts})
    (first / f"{PREFIX}{label}.json").write_text(manifest)
    for other in dirs[1:]:
        other.mkdir(parents=True, exist_ok=True)
        copy = other / target.name
        _copy(target, copy)
        (other / f"{PREFIX}{label}.json").write_text(manifest)
        backup.paths.append(copy)
    return backup


def listing(dirs: list[Path]) -> list[SqliteBackup]:
    """Every backup found in any of ``dirs`` (newest first), with the copies that exist."""
    found: dict[str, SqliteBackup] = {}
    for directory in dirs:
        if not directory.exists():
            continue
        for manifest in directory.glob(f"{PREFIX}*.json"):
            try:
                data: dict[str, Any] = json.loads(manifest.read_text())
            except (OSError, ValueError):
                continue
            file = manifest.with_suffix(".sqlite")
            if not file.exists():
                continue
            entry = found.get(data["label"])
            if entry is None:
                entry = found[data["label"]] = SqliteBackup(
                    data["label"], datetime.fromisoformat(data["recovery_point"]),
                    int(data["size_bytes"]), data["sha256"], dict(data["counts"]))
            entry.paths.append(file)
    return sorted(found.values(), key=lambda b: b.label, reverse=True)


def pick(dirs: list[Path], label: str | None = None, at: datetime | None = None) -> SqliteBackup | None:
    """The backup named ``label``; or the newest at or before ``at``; or the newest."""
    for backup in listing(dirs):
        if label is not None:
            if backup.label == label:
                return backup
        elif at is None or backup.recovery_point <= at:
            return backup
    return None


def good_copy(backup: SqliteBackup) -> Path:
    """The first copy whose SHA-256 is the manifest's (a damaged copy is passed over)."""
    for path in backup.paths:
        if _sha256(path) == backup.sha256:
            return path
    raise ValueError(f"backup {backup.label}: no copy matches its SHA-256")


def restore_file(backup: SqliteBackup, target: Path) -> Path:
    """Copy a checked backup to ``target.restoring`` (the caller reconciles keys, then moves it)."""
    source = good_copy(backup)
    staging = target.with_name(target.name + ".restoring")
    _copy(source, staging)
    return staging


def expired(backups: list[SqliteBackup], pitr_days: int, weekly_weeks: int,
            now: datetime | None = None) -> list[SqliteBackup]:
    """The backups retention lets go: older than ``pitr_days`` and not the first of their ISO
    week within ``weekly_weeks`` weeks. The newest backup is always kept."""
    now = now or utcnow()
    keep_daily = now - timedelta(days=pitr_days)
    keep_weekly = now - timedelta(weeks=weekly_weeks)
    first_of_week: dict[tuple[int, int], str] = {}
    for b in sorted(backups, key=lambda b: b.label):
        week = b.recovery_point.isocalendar()[:2]
        first_of_week.setdefault((week[0], week[1]), b.label)
    newest = max((b.label for b in backups), default=None)
    out = []
    for b in backups:
        if b.label == newest or b.recovery_point >= keep_daily:
            continue
        week = b.recovery_point.isocalendar()[:2]
        if b.recovery_point >= keep_weekly and first_of_week[(week[0], week[1])] == b.label:
            continue
        out.append(b)
    return out


def remove(backup: SqliteBackup) -> None:
    for path in backup.paths:
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
