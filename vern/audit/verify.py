"""Checking the whole trail: every record in the database and in the log files, against the
signed checkpoints.

The database and the files are read side by side in ``seq`` order. Each record's leaf hash is
recomputed from its content and the tree is rebuilt; at each checkpoint the root must equal the
signed one. Where the two copies disagree, the checkpoint decides which one was changed, so the
first bad record is named with its place (database row or file and line). A record removed,
inserted, changed or moved in either copy is found; if both copies were changed the same way, the
range between two checkpoints that no longer matches its signature is named.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import json
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select, text

from vern.audit import verify_fast
from vern.audit.chain import FIELDS, Signer, _dumps
from vern.audit.logfile import FILE_PREFIX
from vern.audit.merkle import Frontier, leaf_hash
from vern.audit.models import AuditEvent, AuditHead
from vern.audit.witness import check_trail
from vern.core.config import Settings
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


class _FileEntry:
    __slots__ = ("file", "line", "n", "seq")

    def __init__(self, seq: int, line: bytes, file: str, n: int) -> None:
        self.seq = seq
        self.line = line
        self.file = file
        self.n = n

    @property
    def where(self) -> str:
        return f"{self.file}:{self.n}"


class _Stop(Exception):
    pass


class _BadRow(Exception):
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
        raise _BadRow(f"{row}: column {name} holds {_KIND_NAMES.get(got, got.__name__)}, "
                      f"not {_KIND_NAMES[kind]}")
    if kind is bytes:
        value = bytes(value)
        if length is not None and len(value) != length:
            raise _BadRow(f"{row}: column {name} holds {len(value)} bytes, not {length}")
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


def _file_entries(directory: Path, checkpoints: list[Checkpoint], *,
                  label: bool = False) -> Iterator[_FileEntry]:
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
                        yield _FileEntry(-1, line, name, n)
                    continue
                try:
                    seq = int(line[1:line.find(b",")])
                except ValueError:
                    seq = -1
                yield _FileEntry(seq, line, name, n)


def _db_rows(database: Database, start: int, end: int) -> Generator[tuple[Any, ...], None, None]:
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


def _merged_entries(directories: Sequence[Path],
                    checkpoints: list[Checkpoint]) -> Iterator[_FileEntry]:
    """The lines of every directory in ``seq`` order. Each machine's directory holds the lines
    of the appends made there, in ``seq`` order; together they hold every record once."""
    if len(directories) == 1:
        return _file_entries(directories[0], checkpoints)
    return _once(heapq.merge(*(_file_entries(d, checkpoints, label=True) for d in directories),
                             key=lambda entry: entry.seq))


def _once(entries: Iterator[_FileEntry]) -> Iterator[_FileEntry]:
    """A line found in two machines' files alike (the same record at the same position: an
    append that wrote it on one machine and did not commit, the same record sealed at the same
    place by the next append on another) counts once; any other repetition is left to fail."""
    last: _FileEntry | None = None
    for entry in entries:
        if last is not None and entry.seq >= 0 and entry.seq == last.seq \
                and entry.line == last.line:
            continue
        last = entry
        yield entry


@contextlib.contextmanager
def _appends_paused_all(directories: Sequence[Path]) -> Iterator[None]:
    """``_appends_paused`` for each directory (appends on this host; another host's appends
    are ordered by the database alone, see ``vern.audit.chain``)."""
    with contextlib.ExitStack() as stack:
        for directory in sorted(set(directories)):
            stack.enter_context(_appends_paused(directory))
        yield


@contextlib.contextmanager
def _appends_paused(directory: Path) -> Iterator[None]:
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


def verify(database: Database, settings: Settings, *, files: bool = True,
           fast: bool = True, directories: Sequence[Path] | None = None) -> Report:
    """Check the trail; ``report.problem`` names the first bad record (None when all is well).

    ``directories``: the audit log directories of every machine that appends (default:
    ``VERN_AUDIT_LOG_DIR`` alone); their lines are read together, in ``seq`` order.

    The fast pass (``vern.audit.verify_fast``) runs first (one directory only); only when it
    finds anything amiss does the exact pass below run, to name the first bad record and where
    it is."""
    dirs = list(directories) if directories else [Path(settings.audit_log_dir)]
    report: Report | None = None
    if fast and len(dirs) == 1:
        try:
            report = _fast(database, settings, files, dirs[0])
        except _BadRow as bad:
            return Report(problem=bad.problem)
    if report is None:
        report = Report()
        closers: list[Callable[[], None]] = []
        try:
            with contextlib.suppress(_Stop):
                _verify(database, settings, files, report, closers, dirs)
        except _BadRow as bad:
            report.problem = bad.problem
        finally:
            for close in closers:
                close()
    if report.problem is None:
        _evidence(database, settings, report)
    return report


def _evidence(database: Database, settings: Settings, report: Report) -> None:
    """What the records and checkpoints alone cannot show: pending records that sealing
    refused (quarantined), and a trail shorter than, or not consistent with, the newest
    checkpoint a witness kept (``vern.audit.witness``)."""

    with database.engine.connect() as conn:
        quarantined = conn.execute(
            select(AuditEvent.id, AuditEvent.quarantine)
            .where(AuditEvent.quarantine.is_not(None), AuditEvent.seq.is_(None))
            .order_by(AuditEvent.ts).limit(1)).first()
        if quarantined is not None:
            n = conn.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.quarantine.is_not(None), AuditEvent.seq.is_(None))) or 0
            report.problem = Problem(
                None, quarantined.id, "database",
                f"not sealed, quarantined: {quarantined.quarantine} ({n} quarantined records: "
                "`vern audit quarantined` lists them)")
            return
    problem, note = check_trail(database, settings, Signer(settings))
    if problem is not None:
        report.problem = Problem(None, None, "the database and files", problem)
    elif note:
        report.notes.append(note)


def _fast(  # noqa: PLR0911, PLR0912, PLR0915 - every check gives up the same way
    database: Database, settings: Settings, check_files: bool, directory: Path | None = None,
) -> Report | None:
    """The fast pass: a report when everything is in order, None when the exact pass must look."""

    signer = Signer(settings)
    directory = directory if directory is not None else Path(settings.audit_log_dir)
    with _appends_paused(directory), database.engine.connect() as conn:
        head = conn.execute(select(AuditHead).where(AuditHead.id == 1)).first()
        _checked_head(head)
        db_cps = {cp.tree_size: cp for cp in _db_checkpoints(conn)}
        pending = int(conn.scalar(
            select(func.count()).select_from(AuditEvent).where(
                AuditEvent.seq.is_(None), AuditEvent.quarantine.is_(None))
        ) or 0)
    tree_size = head.tree_size if head is not None else 0
    start = head.retained_from if head is not None else 0
    for cp in db_cps.values():
        if not signer.verify(cp.key_id, cp.tree_size, bytes(cp.root), cp.ts,
                             bytes(cp.signature)):
            return None
    seed = None
    report = Report(tree_size=tree_size, start=start, pending=pending)
    if start > 0:
        anchor = db_cps.get(start)
        if anchor is None or anchor.frontier is None:
            return None
        if Frontier.decode(start, anchor.frontier).root() != bytes(anchor.root):
            return None
        seed = (start, bytes(anchor.frontier))
        report.notes.append(f"records before {start} were removed by retention")
    signed = {s: bytes(cp.root) for s, cp in db_cps.items() if start < s <= tree_size}
    if check_files:
        report.files = len(list(directory.glob(f"{FILE_PREFIX}*.jsonl")))
        if report.files == 0 and tree_size > start:
            return None
    doubt, file_cps, after = verify_fast.scan(
        database.url, start=start, end=tree_size, seed=seed, checkpoints=signed,
        directory=directory if check_files else None)
    if doubt is not None:
        return None
    if after:
        # Lines past the head read at the start: newer appends, so the database must have
        # them by now (an append writes its lines and commits under the lock taken here, and
        # cuts them off again if its commit fails; lines read before such a cut-off send this
        # to the exact pass).
        with _appends_paused(directory), database.engine.connect() as conn:
            now_size = conn.scalar(select(AuditHead.tree_size).where(AuditHead.id == 1)) or 0
        if after != list(range(tree_size, tree_size + len(after))) or after[-1] >= now_size:
            return None
    seen: set[bytes] = set()
    for _name, _seq, line in file_cps:
        if line in seen:
            continue
        seen.add(line)
        try:
            cp = json.loads(line)["checkpoint"]
            size, root, ts = int(cp["size"]), bytes.fromhex(cp["root"]), int(cp["ts"])
            key_id, signature = str(cp["key_id"]), bytes.fromhex(cp["signature"])
        except (ValueError, KeyError, TypeError):
            return None
        if size < start:
            continue
        if not signer.verify(key_id, size, root, ts, signature):
            return None
        known = db_cps.get(size)
        if known is not None and (bytes(known.root) != root or known.ts != ts):
            return None
        if known is None and size <= tree_size:
            return None
    with database.engine.connect() as conn:
        now_size = conn.scalar(select(AuditHead.tree_size).where(AuditHead.id == 1)) or 0
        beyond = conn.execute(select(AuditEvent.seq).where(
            AuditEvent.seq >= max(now_size, tree_size)).limit(1)).first()
        below = conn.execute(select(AuditEvent.seq).where(AuditEvent.seq < start)
                             .limit(1)).first() if start > 0 else None
    if beyond is not None or below is not None:
        return None
    report.checked = tree_size - start
    report.checkpoints = len(signed)
    last = max((s for s in signed), default=start)
    report.unsigned = tree_size - last
    return report


def _verify(  # noqa: PLR0912, PLR0915, PLR0917 - one pass over both copies
    database: Database, settings: Settings, check_files: bool, report: Report,
    closers: list[Callable[[], None]], directories: Sequence[Path],
) -> None:
    signer = Signer(settings)

    def fail(seq: int | None, rid: str | None, where: str, message: str) -> None:
        report.problem = Problem(seq, rid, where, message)
        raise _Stop

    with _appends_paused_all(directories), database.engine.connect() as conn:
        # Under the append lock: the head read here and the files agree (a writer commits and
        # writes its lines while holding it exclusively).
        head = conn.execute(select(AuditHead).where(AuditHead.id == 1)).first()
        _checked_head(head)
        db_cps = _db_checkpoints(conn)
        report.pending = int(conn.scalar(
            select(func.count()).select_from(AuditEvent).where(
                AuditEvent.seq.is_(None), AuditEvent.quarantine.is_(None))
        ) or 0)
    tree_size = head.tree_size if head is not None else 0
    report.tree_size = tree_size

    checkpoints: dict[int, Checkpoint] = {}
    for cp in db_cps:
        if not signer.verify(cp.key_id, cp.tree_size, cp.root, cp.ts, cp.signature):
            fail(None, None, "database", f"checkpoint at size {cp.tree_size}: bad signature")
        checkpoints[cp.tree_size] = cp

    # Where verification starts: 0, or the checkpoint retention kept as the anchor.
    start = head.retained_from if head is not None else 0
    frontier = Frontier()
    if start > 0:
        anchor = checkpoints.get(start)
        if anchor is None or anchor.frontier is None:
            fail(start - 1, None, "database",
                 "missing: earlier records are gone and no checkpoint covers them")
            return
        frontier = Frontier.decode(start, anchor.frontier)
        if frontier.root() != anchor.root:
            fail(None, None, "database", f"checkpoint at size {start}: frontier does not match")
        report.notes.append(f"records before {start} were removed by retention")
    report.start = start

    file_cps: list[Checkpoint] = []
    entries: Iterator[_FileEntry] | None = None
    if check_files:
        report.files = sum(len(list(d.glob(f"{FILE_PREFIX}*.jsonl"))) for d in directories)
        if report.files == 0 and tree_size > start:
            fail(start, None, ", ".join(map(str, directories)),
                 "missing from the log files (no files found)")
        entries = _merged_entries(directories, file_cps)
    pending_file: _FileEntry | None = None
    first_diff: tuple[int, str | None, str, str] | None = None  # seq, id, where, message
    last_cp = start
    expected = start

    def next_file() -> _FileEntry | None:
        nonlocal pending_file
        assert entries is not None
        if pending_file is not None:
            f, pending_file = pending_file, None
            return f
        for f in entries:
            if f.seq < 0:
                fail(None, None, f.where, "unreadable line")
            if f.seq >= start:
                return f
        return None

    def merge_file_checkpoints() -> None:
        while file_cps:
            cp = file_cps.pop(0)
            if cp.tree_size < start:
                continue
            if not signer.verify(cp.key_id, cp.tree_size, cp.root, cp.ts, cp.signature):
                fail(None, None, cp.where, f"checkpoint at size {cp.tree_size}: bad signature")
            known = checkpoints.get(cp.tree_size)
            if known is not None and (known.root != cp.root or known.ts != cp.ts):
                fail(None, None, cp.where,
                     f"checkpoint at size {cp.tree_size} differs from the database's")
            if known is None and cp.tree_size <= tree_size:
                fail(cp.tree_size - 1, None, "database",
                     f"the checkpoint at size {cp.tree_size} (in {cp.where}) is missing "
                     "from the database")
            checkpoints.setdefault(cp.tree_size, cp)

    db_rows = _db_rows(database, start, tree_size)
    closers.append(db_rows.close)
    # The loop: canonical form, leaf, frontier append, file comparison.
    dumps = _dumps
    checked = 0
    for row in db_rows:
        seq = row[0]
        if seq != expected:
            fail(expected, None, "database", "missing (removed)")
        line = dumps(row).encode()
        frontier.append(leaf_hash(line))
        if entries is not None:
            f = next_file()
            if f is None or f.seq > seq:
                pending_file = f
                if first_diff is None:
                    where = f.where if f is not None else "log files"
                    first_diff = (seq, row[1], where, "missing from the log file")
            elif f.seq < seq:
                fail(f.seq, None, f.where, "out of order or duplicated in the log file")
            elif f.line != line and first_diff is None:
                first_diff = (seq, row[1], f.where, "changed")
            if file_cps:
                merge_file_checkpoints()
        expected = seq + 1
        checked += 1
        found = checkpoints.get(expected)
        if found is not None:
            report.checked = checked
            cp = found
            report.checkpoints += 1
            db_ok = frontier.root() == cp.root
            if not db_ok:
                if first_diff is not None:
                    dseq, rid, _, _msg = first_diff
                    fail(dseq, rid, "database", "changed, moved or inserted "
                         f"(the log file agrees with the checkpoint at size {expected})")
                fail(last_cp, None, "database",
                     f"records {last_cp}..{expected - 1} do not match the signed checkpoint at "
                     f"size {expected}")
            if first_diff is not None:
                dseq, _rid, where, msg = first_diff
                fail(dseq, None, where, msg)
            last_cp = expected
    report.checked = checked
    later: list[_FileEntry] = []
    if entries is not None:
        f = next_file()
        if f is not None and f.seq < tree_size:
            fail(f.seq, None, f.where, "in the log file but not in the database")
        # Lines after the head read at the start may be newer appends; they are checked below
        # against the head read after them.
        while f is not None:
            later.append(f)
            f = next_file()
        merge_file_checkpoints()
    with _appends_paused_all(directories), database.engine.connect() as conn:
        now_size = conn.scalar(select(AuditHead.tree_size).where(AuditHead.id == 1)) or 0
    for f in later:
        # Every line is written after its record committed: a line the database does not
        # have even now was not written by Vern.
        if f.seq >= now_size:
            fail(f.seq, None, f.where, "in the log file but not in the database (inserted)")
    with database.engine.connect() as conn:
        beyond = conn.execute(select(AuditEvent.seq, AuditEvent.id).where(
            AuditEvent.seq >= max(now_size, tree_size)).order_by(AuditEvent.seq).limit(1)).first()
    if beyond is not None:
        fail(beyond.seq, beyond.id, "database", "not part of the tree (inserted)")
    if expected < tree_size:
        fail(expected, None, "database", "missing (removed)")
    for size, cp in checkpoints.items():
        if start < size <= tree_size and size > expected:
            fail(size - 1, None, cp.where, "missing (the checkpoint covers it)")
    report.unsigned = expected - last_cp
    if first_diff is not None:
        dseq, rid, where, msg = first_diff
        fail(dseq, rid, where, f"{msg}; the database and the log file differ after the last "
             "checkpoint")

