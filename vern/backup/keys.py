"""The data keys, backed up apart from the data with a short retention, and put back after a
restore so that no destroyed key comes back.

A data backup may hold a key that was destroyed after it was taken (a person erased since).
After any restore the key table is made to agree with the newest key state - the live table when
it can be read, else the newest key backup: a key destroyed there is destroyed in the restored
database, a key unknown there is destroyed too (strictest default), a key destroyed in the
restored database stays destroyed. Nothing here can bring a destroyed key back.

Key backups hold the keys wrapped by the master key, never in clear.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, update

from vern.core.crypto import DataKey
from vern.core.db import utcnow

PREFIX = "keys-"


def snapshot(engine: Engine) -> list[dict[str, Any]]:
    """Every row of ``data_keys`` (wrapped keys base64, times ISO)."""
    with engine.connect() as conn:
        rows = conn.execute(select(DataKey.id, DataKey.subject_ref, DataKey.wrapped_key,
                                   DataKey.created_at, DataKey.destroyed_at)).all()
    return [{
        "id": r.id, "subject_ref": r.subject_ref,
        "wrapped_key": base64.b64encode(r.wrapped_key).decode() if r.wrapped_key else None,
        "created_at": r.created_at.isoformat() if r.created_at else None,
        "destroyed_at": r.destroyed_at.isoformat() if r.destroyed_at else None,
    } for r in rows]


def write(rows: list[dict[str, Any]], label: str, dirs: list[Path]) -> list[Path]:
    """``keys-<label>.json`` in every directory (mode 0600)."""
    body = json.dumps({"label": label, "taken_at": utcnow().isoformat(), "keys": rows},
                      separators=(",", ":")).encode()
    written = []
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{PREFIX}{label}.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
        written.append(path)
    return written


def newest(dirs: list[Path]) -> tuple[str, list[dict[str, Any]]] | None:
    """The newest key backup readable in any of ``dirs``: (label, rows)."""
    found: dict[str, Path] = {}
    for directory in dirs:
        for path in directory.glob(f"{PREFIX}*.json") if directory.exists() else ():
            found.setdefault(path.stem.removeprefix(PREFIX), path)
    for label in sorted(found, reverse=True):
        try:
            data = json.loads(found[label].read_bytes())
        except (OSError, ValueError):
            continue
        return label, list(data["keys"])
    return None


def prune(dirs: list[Path], keep_days: int, now: datetime | None = None) -> int:
    """Delete key backups older than ``keep_days`` days, always keeping the newest one."""
    cutoff = (now or utcnow()) - timedelta(days=keep_days)
    gone = 0
    for directory in dirs:
        paths = sorted(directory.glob(f"{PREFIX}*.json")) if directory.exists() else []
        for path in paths[:-1]:
            if datetime.fromtimestamp(path.stat().st_mtime, tz=cutoff.tzinfo) < cutoff:
                path.unlink()
                gone += 1
    return gone


def reconcile(engine: Engine, state: list[dict[str, Any]]) -> dict[str, int]:
    """Make the restored database's ``data_keys`` agree with the newest key state ``state``.

    Returns counts: ``destroyed`` (keys alive in the restore that the state has destroyed or does
    not know), ``added`` (keys of the state the restore lacks), ``kept``."""
    by_id = {row["id"]: row for row in state}
    counts = {"destroyed": 0, "added": 0, "kept": 0}
    now = utcnow()
    with engine.begin() as conn:
        present = {r.id: r.wrapped_key for r in conn.execute(select(DataKey.id, DataKey.wrapped_key))}
        for key_id, wrapped in present.items():
            known = by_id.get(key_id)
            if wrapped is not None and (known is None or known["wrapped_key"] is None):
                destroyed_at = (datetime.fromisoformat(known["destroyed_at"])
                                if known is not None and known["destroyed_at"] else now)
                conn.execute(update(DataKey).where(DataKey.id == key_id)
                             .values(wrapped_key=None, destroyed_at=destroyed_at))
                counts["destroyed"] += 1
            else:
                counts["kept"] += 1
        missing = [row for key_id, row in by_id.items() if key_id not in present]
        for i in range(0, len(missing), 500):
            conn.execute(insert(DataKey), [{
                "id": row["id"], "subject_ref": row["subject_ref"],
                "wrapped_key": base64.b64decode(row["wrapped_key"]) if row["wrapped_key"] else None,
                "created_at": datetime.fromisoformat(row["created_at"]) if row["created_at"] else now,
                "destroyed_at": datetime.fromisoformat(row["destroyed_at"]) if row["destroyed_at"] else None,
            } for row in missing[i:i + 500]])
        counts["added"] = len(missing)
    return counts
