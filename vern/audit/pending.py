"""Records written inside other domains' transactions, waiting for their position in the tree.

``vern.audit.service.record`` adds a record with ``seq`` null and a MAC (``pending_mac``) in the
caller's own transaction. The next append screens the pending records (``screen``: a MAC that is
missing or does not verify, a time out of order, and the record is quarantined instead of
sealed) and gives the others the next positions in the tree (``number_pending``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, Table, bindparam, text, update

from vern.audit.canonical import FIELDS, SEQ, canonical, now_us, us_to_datetime
from vern.audit.drafts import TILE_HEIGHTS
from vern.audit.merkle import Frontier, leaf_hash
from vern.audit.models import AuditEvent
from vern.core.db import Database

_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]
_mac_keys: dict[bytes, bytes] = {}


def pending_mac_key(secret: bytes) -> bytes:
    """The key of the MAC a writing process puts on a pending record: HKDF-SHA256 of the secret
    key (salt ``vern-audit``, info ``pending record mac v1``) - never stored in the database."""
    found = _mac_keys.get(secret)
    if found is None:
        found = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"vern-audit",
                     info=b"pending record mac v1").derive(secret)
        if len(_mac_keys) > 8:
            _mac_keys.clear()
        _mac_keys[secret] = found
    return found


def pending_mac(key: bytes, values: Sequence[Any]) -> str:
    """HMAC-SHA256 (hex) of a pending record: its canonical form (``values`` in ``FIELDS``
    order) with ``seq`` null, the position it does not have yet."""
    v = list(values)
    v[SEQ] = None
    return hmac.new(key, canonical(v), hashlib.sha256).hexdigest()


def screen(pending: Sequence[Sequence[Any]], sealed_ts: int, *, key: bytes, skew_seconds: float,
           ) -> tuple[list[Sequence[Any]], list[tuple[str, str]], int]:
    """The pending records (``FIELDS`` and ``mac``, in time order) that may be sealed,
    ``(reason, id)`` of those that may not, and the newest sealed time after them. Refused:
    no MAC or one that does not verify (written or changed by someone without the secret
    key), a time more than ``skew_seconds`` before the newest record sealed from the
    pending queue (``sealed_ts``) or after now. ``key``: ``pending_mac_key`` of the secret key."""
    skew = int(skew_seconds * 1_000_000)
    latest = now_us() + skew
    ok: list[Sequence[Any]] = []
    refused: list[tuple[str, str]] = []
    for row in pending:
        fields, mac = row[:len(FIELDS)], row[len(FIELDS)]
        ts = int(fields[2])
        if mac is None:
            reason = "no MAC: not written by Vern's record()"
        elif not hmac.compare_digest(str(mac), pending_mac(key, fields)):
            reason = "the MAC does not verify: changed, or written without the secret key"
        elif sealed_ts and ts < sealed_ts - skew:
            reason = (f"time goes backwards: {us_to_datetime(ts).isoformat()} is "
                      f"{(sealed_ts - ts) / 1e6:.0f} s before the newest sealed record "
                      f"({us_to_datetime(sealed_ts).isoformat()})")
        elif ts > latest:
            reason = f"time in the future: {us_to_datetime(ts).isoformat()}"
        else:
            ok.append(fields)
            sealed_ts = max(sealed_ts, ts)
            continue
        refused.append((reason[:200], str(fields[1])))
    return ok, refused, sealed_ts


def number_pending(conn: Connection, rows: Sequence[Sequence[Any]], seq: int, *,
                   frontier: Frontier, tiles: list[tuple[int, int, bytes]],
                   lines: list[bytes]) -> int:
    """Give the screened pending ``rows`` the positions from ``seq`` on, in their order: their
    canonical lines go to ``lines``, their leaves into ``frontier`` (completed subtrees of
    ``TILE_HEIGHTS`` to ``tiles``) and their positions to the database. Returns the next
    position."""
    if not rows:
        return seq
    sealed: list[dict[str, Any]] = []
    made: list[bytes] = []
    for row in rows:
        fields = list(row)
        fields[SEQ] = seq
        line = canonical(fields)
        made.append(line)
        sealed.append({"b_id": fields[1], "b_seq": seq})
        seq += 1
    lines.extend(made)
    frontier.watch = TILE_HEIGHTS
    frontier.on_node = lambda h, i, n: tiles.append((h, i, n))
    for line in made:
        frontier.append(leaf_hash(line))
    frontier.on_node = None
    conn.execute(
        update(_EVENTS)
        .where(_EVENTS.c.id == bindparam("b_id"))
        .values(seq=bindparam("b_seq")),
        sealed,
    )
    return seq


def pending_count(database: Database) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(
            text("SELECT count(*) FROM audit_events WHERE seq IS NULL AND quarantine IS NULL")
        ).scalar_one())
