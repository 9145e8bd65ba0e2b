"""The canonical form of an audit record: the bytes its leaf hash is taken over.

Canonical form of a record: the JSON array of ``FIELDS`` (compact separators, ASCII), with the
sealed personal blob as hex and ``details`` as the stored JSON text. A log file's line *is* this
array, so a line's leaf hash is ``SHA-256(0x00 || line)`` without parsing. Also here: a record's
time (microseconds since the epoch) and its time-ordered id.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

FIELDS = (
    "seq", "id", "ts", "source", "org_id", "actor_user_id", "actor_token_id", "actor_ref",
    "key_id", "personal", "ip_index", "net_index", "action", "resource", "outcome",
    "request_id", "client_event_id", "details",
)
SEQ, PERSONAL = 0, 9
PERSONAL_CONTEXT = "audit_events.personal"
_PERSONAL_AD = PERSONAL_CONTEXT.encode()
# Built once (``json.dumps`` with options builds an encoder per call): ASCII, compact separators.
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_DRAFT_FIELDS = FIELDS[2:]  # a draft: every column but ``seq`` and ``id``


def now_us() -> int:
    return time.time_ns() // 1000


def us_to_datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def datetime_to_us(value: datetime) -> int:
    """Microseconds since the epoch, exactly (no float in between)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return (value - _EPOCH) // _ONE_US


def canonical(values: Sequence[Any]) -> bytes:
    """The bytes a record's leaf hash is taken over (``values`` in ``FIELDS`` order)."""
    v = list(values)
    p = v[PERSONAL]
    if p is not None:
        v[PERSONAL] = bytes(p).hex()
    return _dumps(v).encode()


_details_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def canonical_details(details: dict[str, Any] | None) -> str | None:
    if details is None:
        return None
    return _details_encoder(details)


def _quote(value: str) -> str:
    """The JSON string of ``value`` (ASCII, as ``json.dumps`` writes it); anything but a str is
    refused - a column of the canonical line holds text or null."""
    if type(value) is not str:
        raise TypeError(f"expected text, got {type(value).__name__}")
    return _quote_str(value)


_quote_str = json.JSONEncoder().encode


def _fragment(cache: dict[tuple[Any, ...], str], values: tuple[Any, ...]) -> str:
    """``values`` (strings or None) as they appear inside a canonical line, comma-separated -
    made once per distinct tuple (bounded cache): the columns that repeat from record to record
    (organisation, actor, key, address indexes, action)."""
    found = ",".join("null" if v is None else _quote(v) for v in values)
    if len(cache) > 4096:
        cache.clear()
    cache[values] = found
    return found


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def fast_ids(n: int) -> list[str]:
    """``n`` time-ordered UUIDs (version 7 layout: 48-bit milliseconds, version, 74 random
    bits), from one read of the system's random source."""
    ms = f"{(time.time_ns() // 1_000_000) & ((1 << 48) - 1):012x}"
    prefix = f"{ms[:8]}-{ms[8:]}-7"
    return ids_from(prefix, os.urandom(10 * n).hex())


def ids_from(prefix: str, rnd: str) -> list[str]:
    """The ids of ``fast_ids``: ``prefix`` (time and version) and 20 hex digits of random
    bytes per id (of which 74 bits are used)."""
    variant = _VARIANT
    return [f"{prefix}{rnd[i:i + 3]}-{variant[rnd[i + 3]]}{rnd[i + 4:i + 7]}-{rnd[i + 7:i + 19]}"
            for i in range(0, len(rnd) - 19, 20)]

