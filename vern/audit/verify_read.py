"""What ``vern audit verify`` reads, and what it reports.

The trail's two copies as verification reads them: the database's signed checkpoints and rows
(every column of the trail's own tables checked for its type first, so that a wrongly typed
value is reported, not a crash), the log files' lines (the files of several machines merged in
``seq`` order), and the file lock that pauses appends on this host while they are read. The
report (``Report``, ``Problem``) is filled by the exact pass (``vern.audit.verify_exact``) or
the fast pass (``vern.audit.verify``).
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import json
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select, text

from vern.audit.chain import FIELDS
from vern.audit.logfile import FILE_PREFIX
from vern.audit.models import AuditEvent, AuditHead
from vern.core.db import Database


@dataclass(frozen=True)
class Checkpoint:
    tree_size: int
    root: bytes
    ts: int
    key_id: str
    signature: bytes
    frontier: bytes | None
    where: str  # "database" or "file:line"


@dataclass
class Problem:
    seq: int | None
    record_id: str | None
    where: str
    message: str

    def __str__(self) -> str:
        what = (f"record seq {self.seq}" if self.seq is not None
                else "record" if self.record_id else "log")
        if self.record_id:
            what += f" (id {self.record_id})"
        return f"{what} in {self.where}: {self.message}"


@dataclass
class Report:
    checked: int = 0
    checkpoints: int = 0
    files: int = 0
    start: int = 0
    tree_size: int = 0
    pending: int = 0
    unsigned: int = 0
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None


class FileEntry:
    __slots__ = ("file", "line", "n", "seq")

    def __init__(self, seq: int, line: bytes, file: str, n: int) -> None:
        self.seq = seq
        self.line = line
        self.file = file
        self.n = n

    @property
    def where(self) -> str:
        return f"{self.file}:{self.n}"


class Stop(Exception):
    """Ends a pass at its first problem (it is in the report by then)."""


class BadRow(Exception):
    """A row of the trail's own tables holds a value of the wrong type (SQLite keeps whatever it
    is given): verification fails naming the row and the column, instead of crashing on it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(None, None, "database", message)


# audit_checkpoints: (column, kind, exact length of a byte value or None)
_CHECKPOINT_COLUMNS = (
    ("tree_size", int, None), ("root", bytes, 32), ("ts", int, None), ("key_id", str, None),
    ("signature", bytes, 64), ("frontier", bytes, None),
)
_KIND_NAMES = {int: "an integer", bytes: "bytes", str: "text", float: "a real number",
               type(None): "NULL"}


def _kind(value: Any) -> Any:
    if isinstance(value, bytearray | memoryview):
        return bytes
    return bool if isinstance(value, bool) else type(value)


def _checked(value: Any, name: str, kind: type, length: int | None, row: str) -> Any:
    got = _kind(value)
    if got is not kind:
        raise BadRow(f"{row}: column {name} holds {_KIND_NAMES.get(got, got.__name__)}, "
                      f"not {_KIND_NAMES[kind]}")
    if kind is bytes:
        value = bytes(value)
        if length is not None and len(value) != length:
            raise BadRow(f"{row}: column {name} holds {len(value)} bytes, not {length}")
    return value


def _db_checkpoints(conn: Connection) -> list[Checkpoint]:
    """The signed checkpoints in the database, each column checked for its type first (read as
    the driver gives them, so that a wrongly typed value is reported, not a crash)."""
    found: list[Checkpoint] = []
    for n, raw in enumerate(conn.execute(text(
            "SELECT tree_size, root, ts, key_id, signature, frontier FROM audit_checkpoints")), 1):
        size = raw[0]
        row = (f"audit_checkpoints row at tree size {size}" if _kind(size) is int
               else f"audit_checkpoints row {n} (tree_size {str(size)[:40]!r})")
        values: list[Any] = [
            None if name == "frontier" and value is None else _checked(value, name, kind, length, row)
            for (name, kind, length), value in zip(_CHECKPOINT_COLUMNS, raw, strict=True)
        ]
        size_, root, ts, key_id, signature, frontier = values
        found.append(Checkpoint(size_, root, ts, key_id, signature, frontier, "database"))
    found.sort(key=lambda cp: cp.tree_size)
    return found


def _checked_head(head: Any) -> None:
    if head is None:
        return
    for name in ("tree_size", "retained_from"):
        _checked(getattr(head, name), name, int, None, "audit_head")


def read_state(conn: Connection) -> tuple[Any, list[Checkpoint], int]:
    """The ``audit_head`` row (its columns checked), the database's signed checkpoints (sorted
    by size) and how many records wait for their position."""
    head = conn.execute(select(AuditHead).where(AuditHead.id == 1)).first()
    _checked_head(head)
    checkpoints = _db_checkpoints(conn)
    pending = int(conn.scalar(
        select(func.count()).select_from(AuditEvent).where(
            AuditEvent.seq.is_(None), AuditEvent.quarantine.is_(None))
    ) or 0)
    return head, checkpoints, pending


def tree_size_now(conn: Connection) -> int:
    """The head's tree size as it is now (appends may have run since the pass began)."""
    return conn.scalar(select(AuditHead.tree_size).where(AuditHead.id == 1)) or 0


def _file_entries(directory: Path, checkpoints: list[Checkpoint], *,
                  label: bool = False) -> Iterator[FileEntry]:
    for path in sorted(directory.glob(f"{FILE_PREFIX}*.jsonl")):
        name = str(path) if label else path.name
        with open(path, "rb", buffering=1 << 20) as fh:
            for n, raw in enumerate(fh, 1):
                line = raw[:-1] if raw[-1:] == b"\n" else raw
                if not line:
                    continue
                if line[:1] == b"{":
                    where = f"{name}:{n}"
                    try:
                        cp = json.loads(line)["checkpoint"]
                        checkpoints.append(Checkpoint(
                            int(cp["size"]), bytes.fromhex(cp["root"]), int(cp["ts"]),
                            str(cp["key_id"]), bytes.fromhex(cp["signature"]),
                            bytes.fromhex(cp.get("frontier") or ""), where,
                        ))
                    except (ValueError, KeyError, TypeError):
                        yield FileEntry(-1, line, name, n)
                    continue
                try:
                    seq = int(line[1:line.find(b",")])
                except ValueError:
                    seq = -1
                yield FileEntry(seq, line, name, n)


def db_rows(database: Database, start: int, end: int) -> Generator[tuple[Any, ...], None, None]:
    """Rows in ``FIELDS`` order with the sealed personal data already as lowercase hex, so that a
    row serialises to its canonical form as it is."""
    hexed = ("CASE WHEN personal IS NULL THEN NULL ELSE lower(hex(personal)) END"
             if database.engine.dialect.name == "sqlite" else "encode(personal, 'hex')")
    cols = ", ".join(hexed if f == "personal" else f for f in FIELDS)
    sql = (f"SELECT {cols} FROM audit_events "  # noqa: S608 - fixed column names and ints
           f"WHERE seq >= {int(start)} AND seq < {int(end)} ORDER BY seq")
    raw = database.engine.raw_connection()
    try:
        if database.engine.dialect.name == "postgresql":
            cur = raw.driver_connection.cursor(name="vern_audit_verify")  # type: ignore[union-attr]
            cur.itersize = 20_000
        else:
            cur = raw.cursor()
            cur.arraysize = 20_000
        try:
            cur.execute(sql)
            while True:
                rows = cur.fetchmany(20_000)
                if not rows:
                    break
                yield from rows
        finally:
            cur.close()
    finally:
        raw.close()


def merged_entries(directories: Sequence[Path],
                    checkpoints: list[Checkpoint]) -> Iterator[FileEntry]:
    """The lines of every directory in ``seq`` order. Each machine's directory holds the lines
    of the appends made there, in ``seq`` order; together they hold every record once."""
    if len(directories) == 1:
        return _file_entries(directories[0], checkpoints)
    return _once(heapq.merge(*(_file_entries(d, checkpoints, label=True) for d in directories),
                             key=lambda entry: entry.seq))


def _once(entries: Iterator[FileEntry]) -> Iterator[FileEntry]:
    """A line found in two machines' files alike (the same record at the same position: an
    append that wrote it on one machine and did not commit, the same record sealed at the same
    place by the next append on another) counts once; any other repetition is left to fail."""
    last: FileEntry | None = None
    for entry in entries:
        if last is not None and entry.seq >= 0 and entry.seq == last.seq \
                and entry.line == last.line:
            continue
        last = entry
        yield entry


@contextlib.contextmanager
def appends_paused_all(directories: Sequence[Path]) -> Iterator[None]:
    """``appends_paused`` for each directory (appends on this host; another host's appends
    are ordered by the database alone, see ``vern.audit.chain``)."""
    with contextlib.ExitStack() as stack:
        for directory in sorted(set(directories)):
            stack.enter_context(appends_paused(directory))
        yield


@contextlib.contextmanager
def appends_paused(directory: Path) -> Iterator[None]:
    lock_path = directory / ".lock"
    if not lock_path.exists():
        yield
        return
    with open(lock_path, "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
