"""New records of an append, from drafts to stored rows: the loop that seals each draft's
personal data, gives it its position and id, makes its canonical line and hashes it into the
tree (``seal_records``), and the way the rows reach the database (``insert_rows``).

A draft is a tuple of ``_DRAFT_FIELDS`` (every column but ``seq`` and ``id``), see
``vern.audit.chain.AuditLog.append_drafts``. This is the trail's hot loop: per record it does the
least it can, in plain Python on ``hashlib`` and ``cryptography``; recorded vectors
(``tests/audit/recorded/``) keep its bytes fixed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from hashlib import sha256
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from vern.audit.canonical import _DRAFT_FIELDS, _PERSONAL_AD, FIELDS, _fragment, _quote
from vern.audit.merkle import Frontier

TILE_HEIGHTS = frozenset({8, 16})
_INSERT_SQL = (f"INSERT INTO audit_events ({', '.join(FIELDS)}) "  # noqa: S608 - constants
               f"VALUES ({', '.join('?' for _ in FIELDS)})")
# Text, not binary: the server takes rows off a text COPY in groups of about 64 KiB while they
# arrive (a binary COPY only every 1,000 rows), so it inserts while this process seals and hashes.
_COPY_SQL = f"COPY audit_events ({', '.join(FIELDS)}) FROM STDIN"
_COPY_TYPES = ["int8", "text", "int8", *["text"] * 6, "bytea", *["text"] * 8]
Emit = Callable[[tuple[Any, ...]], Any]
# Ready JSON of the columns that repeat from record to record (``_fragment``), two caches.
Fragments = tuple[dict[tuple[Any, ...], str], dict[tuple[Any, ...], str]]


def _bad_draft(i: int, draft: tuple[Any, ...]) -> TypeError:
    """The error for a draft with a column of the wrong type, naming the column."""
    if type(draft[0]) is not int:
        return TypeError(f"draft {i}: ts must be an integer, not {type(draft[0]).__name__}")
    for name, value in zip(_DRAFT_FIELDS, draft, strict=False):
        if name not in ("ts", "personal") and value is not None and type(value) is not str:
            return TypeError(f"draft {i}: {name} must be text or null, not {type(value).__name__}")
    return TypeError(f"draft {i}: a column of the wrong type")


def _draft_line(seq: int, rid: str, d: tuple[Any, ...], hx: str | None,
                fragments: Fragments) -> bytes:
    """The canonical line (``canonical``) of draft ``d`` at position ``seq`` with id ``rid`` and
    its sealed personal data as hex ``hx``, put together from the JSON of each column: the
    columns that repeat come from two small caches of ready fragments. A column of the wrong
    type raises TypeError."""
    quote = _quote
    frag_a, frag_b = fragments
    key_a, key_b = d[1:7], d[8:11]
    resource, outcome, request_id, event_id, details = d[11:16]
    sealed = "null" if hx is None else f'"{hx}"'
    if type(d[0]) is not int:
        raise TypeError("ts")
    fa = frag_a.get(key_a) or _fragment(frag_a, key_a)
    fb = frag_b.get(key_b) or _fragment(frag_b, key_b)
    return (
        f"[{seq},{quote(rid)},{d[0]},{fa},{sealed},{fb},"
        f"{'null' if resource is None else quote(resource)},"
        f"{'null' if outcome is None else quote(outcome)},"
        f"{'null' if request_id is None else quote(request_id)},"
        f"{'null' if event_id is None else quote(event_id)},"
        f"{'null' if details is None else quote(details)}]"
    ).encode()


def seal_records(  # noqa: PLR0917 - the hot loop's state
    drafts: Iterable[tuple[Any, ...]], ids: Sequence[str], seq: int, nonces: bytes | None,
    frontier: Frontier, tiles: list[tuple[int, int, bytes]], lines: list[bytes], emit: Emit,
    fragments: Fragments | None = None,
) -> int:
    """The append's loop: per draft (see ``AuditLog.append_drafts``), seal the
    personal data with the next 12 bytes of ``nonces`` (none: ``personal`` is sealed already),
    make the canonical line of ``(seq, id, *columns)`` (appended to ``lines``), hash it into
    ``frontier`` (completed subtrees of ``TILE_HEIGHTS`` go to ``tiles``) and hand the row (the
    columns of ``FIELDS``) to ``emit``. Returns the next position."""
    frags = fragments if fragments is not None else ({}, {})
    heights, nodes = frontier.heights, frontier.nodes
    watched = TILE_HEIGHTS
    ad = _PERSONAL_AD
    size = frontier.size
    for i, d in enumerate(drafts):
        plain = d[7]
        if plain is None:
            blob = hx = None
        elif nonces is not None:
            kid = d[17]
            nonce = nonces[12 * i:12 * i + 12]
            blob = b"\x01" + kid + nonce + d[16].encrypt(nonce, plain, ad + kid)
            hx = blob.hex()
        else:
            blob = plain
            hx = bytes(blob).hex()
        rid = ids[i]
        try:
            line = _draft_line(seq, rid, d, hx, frags)
        except TypeError:
            raise _bad_draft(i, d) from None
        lines.append(line)
        # Frontier append (inlined ``Frontier.append``): RFC 9162 leaf and node hashes.
        node = sha256(b"\x00" + line).digest()
        h = 0
        while heights and heights[-1] == h:
            node = sha256(b"\x01" + nodes.pop() + node).digest()
            heights.pop()
            h += 1
            if h in watched:
                tiles.append((h, size >> h, node))
        heights.append(h)
        nodes.append(node)
        size += 1
        emit((seq, rid, *d[:7], blob, *d[8:16]))
        seq += 1
    frontier.size = size
    return seq


def insert_rows(conn: Connection, make: Callable[[Emit], None],
                integrity: type[BaseException]) -> None:
    """Insert the rows that ``make`` hands to the ``emit`` it is given, without SQLAlchemy per
    record: on PostgreSQL the rows stream into a ``COPY`` while they are made (the server inserts
    while this thread seals), on SQLite they go to one ``executemany`` once all are made. The
    driver's ``integrity`` error is raised as SQLAlchemy's ``IntegrityError``."""
    dbapi = conn.connection.driver_connection
    params: list[tuple[Any, ...]] = []
    cursor: Any = dbapi.cursor()  # type: ignore[union-attr]
    copy_cm: Any = None
    if conn.dialect.name == "postgresql":
        copy_cm = cursor.copy(_COPY_SQL)
        copy = copy_cm.__enter__()
        copy.set_types(_COPY_TYPES)
        emit = copy.write_row
    else:
        emit = params.append
    try:
        make(emit)
        if copy_cm is not None:
            done, copy_cm = copy_cm, None
            done.__exit__(None, None, None)  # the server reports errors here
        else:
            cursor.executemany(_INSERT_SQL, params)
    except BaseException as exc:
        if copy_cm is not None:
            with contextlib.suppress(Exception):
                copy_cm.__exit__(type(exc), exc, exc.__traceback__)
        if isinstance(exc, integrity):
            raise IntegrityError(_INSERT_SQL, None, exc) from exc
        raise
    finally:
        cursor.close()
