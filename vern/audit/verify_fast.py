"""The fast pass of ``vern audit verify``: proves that everything is in order, or gives up.

It checks the same things as the exact pass in ``vern.audit.verify`` - every record in the
database and in the log files, hashed into the tree and compared with every signed checkpoint -
but it cannot say *what* is wrong. Whenever anything does not match, it answers ``None`` and the
exact pass runs to name the first bad record. Why it is fast:

* SQLite builds each record's JSON line itself (``json_array``, in its C library), in two
  parts around the sealed bytes: three values per row instead of eighteen Python objects, put
  together here around the sealed bytes written as hex. That line is a valid
  JSON encoding of the stored values; where it may differ from the canonical form (non-ASCII
  text, ``\\u`` escapes, DEL) it is decoded and re-encoded canonically. A different encoding can
  only cause a false alarm (then the exact pass decides), never hide a change: a JSON text
  decodes to one value only. PostgreSQL streams the columns in binary (integers and bytes as
  they are) and ``canonical`` writes each line (``to_json`` concatenation on the server costs
  more in all; ``PG_RAW = False`` switches to it).
* The file line is compared byte for byte with the database's line, so a record is hashed once.
* The tree is cut into aligned blocks of ``2**BLOCK_BITS`` records that worker processes hash
  in parallel; the main process joins the blocks' subtree hashes and checks the root at every
  checkpoint.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
from bisect import bisect_left, bisect_right
from collections.abc import Generator, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vern.audit.chain import FIELDS, _dumps, canonical
from vern.audit.logfile import FILE_PREFIX
from vern.audit.merkle import Frontier, leaf_hash, node_hash
from vern.core.db import Database

BLOCK_BITS = 13  # 8,192 records per task
MIN_PARALLEL_BLOCKS = 3


@dataclass
class Task:
    lo: int
    hi: int
    checkpoints: list[int]  # sizes in (lo, hi]
    seed: tuple[int, bytes] | None = None  # the frontier at ``lo`` (first task only)
    last: bool = False  # read the files to their end


@dataclass
class Result:
    lo: int
    hi: int
    at: dict[int, list[bytes]] = field(default_factory=dict)  # size -> frontier nodes
    end: list[tuple[int, bytes]] = field(default_factory=list)  # nodes at ``hi``
    file_checkpoints: list[tuple[str, int, bytes]] = field(default_factory=list)
    after: list[int] = field(default_factory=list)  # record lines after the end (last task)
    doubt: str | None = None


def _select(dialect: str) -> str:
    if dialect == "sqlite":
        # Three columns: the JSON array of the columns before ``personal``, the sealed bytes,
        # the array of those after (SQLite's ``hex()`` of the bytes cost more than all the rest).
        cut = FIELDS.index("personal")
        head, tail = ", ".join(FIELDS[:cut]), ", ".join(FIELDS[cut + 1:])
        # S608 is wrong here: column names are Vern's own constants
        return f"SELECT json_array({head}), personal, json_array({tail}) FROM audit_events "  # noqa: S608
    parts = []
    for f in FIELDS:
        if f in ("seq", "ts"):
            parts.append(f"{f}::text")
        elif f == "personal":
            parts.append("coalesce('\"' || encode(personal, 'hex') || '\"', 'null')")
        else:
            parts.append(f"coalesce(to_json({f})::text, 'null')")
    joined = " || ',' || ".join(parts)
    # S608 is wrong here: column names are Vern's own constants
    return f"SELECT '[' || {joined} || ']' FROM audit_events "  # noqa: S608


def _joined(rows: list[tuple[str, bytes | None, str]]) -> list[bytes]:
    """The canonical lines of SQLite's ``(head, personal, tail)`` rows."""
    if not rows:
        return []
    texts: list[str] = []
    for head, personal, tail in rows:
        if personal is not None and not isinstance(personal, bytes):
            raise ValueError("personal is not a BLOB")  # stored as another type: tampered
        sealed = "null" if personal is None else f'"{personal.hex()}"'
        texts.append(f"{head[:-1]},{sealed},{tail[1:]}")
    joined = "\n".join(texts)  # the lines hold no newline (JSON escapes it)
    if joined.isascii() and "\\u" not in joined and "\x7f" not in joined:
        return joined.encode().split(b"\n")  # _checked, a chunk at once
    return list(_checked(iter(texts)))


PG_RAW = True  # PostgreSQL: columns as they are, the line made here (less work in all)


def _lines(url: str, lo: int, hi: int) -> Generator[list[bytes], None, None]:
    """The records ``lo <= seq < hi`` as canonical lines, in ``seq`` order, in chunks."""
    database = _database(url)
    dialect = database.engine.dialect.name
    where = f"WHERE seq >= {int(lo)} AND seq < {int(hi)} ORDER BY seq"
    raw = database.engine.raw_connection()
    try:
        if dialect == "postgresql":
            yield from _pg_lines(raw.driver_connection, where)
        else:
            cur = raw.cursor()
            try:
                cur.execute(_select(dialect) + where)
                while rows := cur.fetchmany(16_384):
                    yield _joined(rows)
            finally:
                cur.close()
    finally:
        raw.close()
        if not _in_worker:
            database.dispose()


_in_worker = False
_databases: dict[str, Any] = {}


def _worker_start() -> None:
    global _in_worker  # noqa: PLW0603 - set once in each worker process
    _in_worker = True
    _databases.clear()


def _database(url: str) -> Any:
    """A worker keeps one engine per URL for all its tasks; the caller's process does not."""

    if not _in_worker:
        return Database(url)
    found = _databases.get(url)
    if found is None:
        found = _databases[url] = Database(url)
    return found


def _pg_lines(conn: Any, where: str) -> Generator[list[bytes], None, None]:
    """Streamed in chunks: the server reads the next rows while these are hashed. Binary
    results: integers and bytes as they are, text as text - the lines made by ``canonical``."""
    cur = conn.cursor(binary=True) if PG_RAW else conn.cursor()
    try:
        if PG_RAW:
            # S608 is wrong here: column names are Vern's own constants
            sql = f"SELECT {', '.join(FIELDS)} FROM audit_events {where}"  # noqa: S608
            stream = cur.stream(sql, size=2000)
            while rows := list(itertools.islice(stream, 4096)):
                yield _canonical_lines(rows)
        else:
            texts = (r[0] for r in cur.stream(_select("postgresql") + where, size=2000))
            while chunk := list(itertools.islice(texts, 4096)):
                yield list(_checked(iter(chunk)))
    finally:
        cur.close()
        conn.rollback()


def _canonical_lines(rows: list[tuple[Any, ...]]) -> list[bytes]:
    return [canonical(row) for row in rows]


def _checked(texts: Iterator[str]) -> Iterator[bytes]:
    """The database's JSON lines, re-encoded canonically where they may differ."""
    loads = json.loads
    for text in texts:
        if text.isascii() and "\\u" not in text and "\x7f" not in text:
            yield text.encode()
        else:
            yield _dumps(loads(text)).encode()


class _Files:
    """The log files' record lines from a given position on (found by bisection: the lines are
    in ``seq`` order; if they are not, the comparison fails and the exact pass runs)."""

    def __init__(self, paths: list[str], firsts: list[int]) -> None:
        self.paths = paths
        self.firsts = firsts  # first record seq of each file (-1: none)
        self.checkpoints: list[tuple[str, int, bytes]] = []

    @staticmethod
    def _seq(line: bytes) -> int:
        return int(line[1:line.index(b",")])

    def _start(self, fh: Any, size: int, lo: int) -> int:
        """An offset of a line start at or before the line of record ``lo``."""
        good, high = 0, size
        while high - good > 65_536:
            mid = (good + high) // 2
            fh.seek(mid)
            fh.readline()
            pos = fh.tell()
            seq = None
            while True:
                line = fh.readline()
                if not line:
                    break
                if line[:1] == b"[":
                    seq = self._seq(line)
                    break
            if seq is not None and seq <= lo and pos < high:
                good = pos
            else:
                high = mid
        return good

    def from_seq(self, lo: int) -> _Cursor:
        """``(file name, 0, line)`` from the record ``lo`` on (checkpoint lines included,
        records before ``lo`` and empty lines left out), when iterated; see ``_Cursor``."""
        return _Cursor(self, lo)


class _Cursor:
    """The log files' lines from a record on, read a block at a time: ``take`` gives the next
    record lines of a chunk as one list (the checkpoint lines met on the way apart), iterating
    gives the lines one by one - from where the last ``take`` stopped."""

    def __init__(self, files: _Files, lo: int) -> None:
        self._blocks = self._read(files, lo)
        self._name = ""
        self._buf: list[bytes] = []
        self._marks: list[int] = []  # indexes of checkpoint lines in the block
        self._pos = 0

    @staticmethod
    def _read(files: _Files, lo: int) -> Iterator[tuple[str, list[bytes]]]:
        i = max(bisect_right(files.firsts, lo) - 1, 0)
        first = True
        for path in files.paths[i:]:
            name = os.path.basename(path)
            with open(path, "rb") as fh:
                if first:
                    size = fh.seek(0, os.SEEK_END)
                    fh.seek(files._start(fh, size, lo))
                    first = False
                skipping = True
                carry = b""
                while True:
                    data = fh.read(1 << 20)
                    if not data:
                        break
                    parts = (carry + data).split(b"\n")
                    carry = parts.pop()
                    lines = [p for p in parts if p]
                    if skipping:
                        lines, skipping = _skip_before(lines, lo)
                    yield name, lines
                if carry:
                    lines = [carry]
                    if skipping:
                        lines, skipping = _skip_before(lines, lo)
                    yield name, lines

    def _more(self) -> bool:
        """A line at ``_pos``, reading blocks (some may be empty) until there is one."""
        while self._pos >= len(self._buf):
            found = next(self._blocks, None)
            if found is None:
                return False
            self._name, self._buf = found
            self._marks = [i for i, line in enumerate(self._buf) if line[:1] == b"{"]
            self._pos = 0
        return True

    def take(self, k: int, seq: int) -> tuple[list[bytes], list[tuple[str, int, bytes]]]:
        """Up to ``k`` record lines from here, and the checkpoint lines before each (with
        the position they follow, counting from ``seq``)."""
        out: list[bytes] = []
        marks: list[tuple[str, int, bytes]] = []
        while len(out) < k:
            if not self._more():
                break
            pos, buf = self._pos, self._buf
            m = bisect_left(self._marks, pos)
            mark = self._marks[m] if m < len(self._marks) else len(buf)
            if mark == pos:
                marks.append((self._name, seq + len(out), buf[pos]))
                self._pos = pos + 1
                continue
            stop = min(mark, pos + k - len(out))
            out.extend(buf[pos:stop])
            self._pos = stop
        return out, marks

    def __iter__(self) -> Iterator[tuple[str, int, bytes]]:
        while self._more():
            line = self._buf[self._pos]
            self._pos += 1
            yield self._name, 0, line


def _skip_before(lines: list[bytes], lo: int) -> tuple[list[bytes], bool]:
    """The lines from the first record at or after ``lo`` on (checkpoint lines before it
    kept), and whether it is still to come."""
    kept: list[bytes] = []
    for n, line in enumerate(lines):
        if line[:1] == b"[":
            if _Files._seq(line) >= lo:
                return kept + lines[n:], False
            continue
        kept.append(line)
    return kept, True


def _run(args: tuple[str, Task, list[str] | None, list[int] | None]) -> Result:
    url, task, paths, firsts = args
    result = Result(task.lo, task.hi)
    try:
        _hash(url, task, paths, firsts, result)
    except Exception as exc:  # noqa: BLE001 - any surprise: let the exact pass look
        result.doubt = f"{type(exc).__name__}: {exc}"
    return result


def _hash(url: str, task: Task, paths: list[str] | None, firsts: list[int] | None,
          result: Result) -> None:
    # The frontier of the tree up to ``lo`` (first task), else of this block's own leaves.
    frontier = Frontier.decode(*task.seed) if task.seed is not None else Frontier()
    wanted = set(task.checkpoints)
    files: _Cursor | None = None
    if paths is not None and firsts is not None:
        files = _Files(paths, firsts).from_seq(task.lo)
    lines = _lines(url, task.lo, task.hi)
    try:
        walked = _walk(lines, files, task, frontier, wanted, result)
    finally:
        lines.close()
    if walked is None:
        return
    seq = walked
    if seq != task.hi:
        result.doubt = f"records {seq}..{task.hi - 1} missing from the database"
        return
    result.end = list(zip(frontier.heights, frontier.nodes, strict=True))
    if files is not None:
        # Checkpoint lines right after the last record, and the next record line (the next
        # task's first); the last task reads on to the end of the files.
        for name, _n, fline in files:
            if fline[:1] == b"{":
                result.file_checkpoints.append((name, seq, fline))
                continue
            if not task.last:
                result.file_checkpoints.append((name, -1, fline))
                break
            result.after.append(int(fline[1:fline.index(b",")]))


def _walk(  # noqa: PLR0917 - the hot loop's state
    chunks: Iterator[list[bytes]], files: _Cursor | None, task: Task,
    frontier: Frontier, wanted: set[int], result: Result,
) -> int | None:
    """Hash the lines into the frontier, compare them with the file's (a chunk's lines as one
    list); the next position, or None with ``result.doubt`` set."""
    seq = task.lo
    for chunk in chunks:
        if files is not None:
            theirs, marks = files.take(len(chunk), seq)
            result.file_checkpoints.extend(marks)
            if theirs != chunk:
                for i, line in enumerate(chunk):
                    if i >= len(theirs):
                        result.doubt = f"record {seq + i} missing from the log files"
                        return None
                    if theirs[i] != line:
                        result.doubt = f"record {seq + i} differs between the database and the file"
                        return None
        for line in chunk:
            frontier.append(leaf_hash(line))
            seq += 1
            if seq in wanted:
                result.at[seq] = list(frontier.nodes)
    return seq


def _fold(nodes: list[bytes]) -> bytes:
    acc = nodes[-1]
    for n in reversed(nodes[:-1]):
        acc = node_hash(n, acc)
    return acc


def first_seqs(paths: list[Path]) -> list[int]:
    out = []
    for path in paths:
        first = -1
        with open(path, "rb") as fh:
            for raw in fh:
                if raw[:1] == b"[":
                    first = int(raw[1:raw.index(b",")])
                    break
        out.append(first)
    return out


def _log_files(directory: Path) -> tuple[list[str], list[int]]:
    """The log files of ``directory`` that hold records, in order, with each one's first
    position."""
    files = sorted(directory.glob(f"{FILE_PREFIX}*.jsonl"))
    firsts = first_seqs(files)
    keep = [(str(p), f) for p, f in zip(files, firsts, strict=True) if f >= 0]
    return [p for p, _ in keep], [f for _, f in keep]


def _tasks(start: int, end: int, seed: tuple[int, bytes] | None,
           checkpoints: dict[int, bytes]) -> list[Task]:
    """Records ``start <= seq < end`` in aligned blocks of ``2**BLOCK_BITS``, each with the
    checkpoint sizes it ends a tree at; the first starts from ``seed``, the last reads the
    files to their end."""
    block = 1 << BLOCK_BITS
    bounds = [start]
    nxt = (start // block + 1) * block
    while nxt < end:
        bounds.append(nxt)
        nxt += block
    bounds.append(end)
    sizes = sorted(checkpoints)
    tasks = []
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        tasks.append(Task(lo, hi, [s for s in sizes if lo < s <= hi],
                          seed if i == 0 else None))
    tasks[-1].last = True
    return tasks


def scan(url: str, *, start: int, end: int, seed: tuple[int, bytes] | None,
         checkpoints: dict[int, bytes], directory: Path | None,
         workers: int | None = None,
         ) -> tuple[str | None, list[tuple[str, int, bytes]], list[int]]:
    """Hash records ``start <= seq < end`` (database, and files when ``directory``) and compare
    the root at every checkpoint size in ``checkpoints`` (size -> signed root).

    Returns ``(doubt, file checkpoint lines, positions of the record lines after end)``:
    ``doubt`` is None when everything matched."""
    if end <= start:
        return None, [], []
    paths: list[str] | None = None
    firsts: list[int] | None = None
    if directory is not None:
        paths, firsts = _log_files(directory)
        if not paths:
            return "no log files", [], []
    tasks = _tasks(start, end, seed, checkpoints)
    if seed is None and start != 0:
        return "no frontier to start from", [], []
    args = [(url, t, paths, firsts) for t in tasks]
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    if workers > 1 and len(tasks) >= MIN_PARALLEL_BLOCKS and "fork" in (
            multiprocessing.get_all_start_methods()):
        # Forked workers (the CLI's process holds no threads that matter). On the first doubt
        # the tasks not started are cancelled and the running ones finish (seconds at most).
        executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                       initializer=_worker_start)
        try:
            return _join(executor.map(_run, args), checkpoints, end)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    return _join(map(_run, args), checkpoints, end)


def _join(results: Iterator[Result], checkpoints: dict[int, bytes],
          end: int) -> tuple[str | None, list[tuple[str, int, bytes]], list[int]]:
    prefix: list[tuple[int, bytes]] = []
    file_cps: list[tuple[str, int, bytes]] = []
    after: list[int] = []
    for r in results:
        after = r.after
        if r.doubt is not None:
            return r.doubt, file_cps, []
        base = [n for _, n in prefix]
        for size, local in r.at.items():
            if _fold(base + local) != checkpoints[size]:
                return f"the tree at size {size} does not match its checkpoint", file_cps, []
        for height, value in r.end:
            h, n = height, value
            while prefix and prefix[-1][0] == h:
                n = node_hash(prefix.pop()[1], n)
                h += 1
            prefix.append((h, n))
        for name, seq, line in r.file_checkpoints:
            if seq == -1:
                # The record line after this task's last one must be the next task's first
                # (or, after the last task, a newer append).
                nxt = int(line[1:line.index(b",")])
                if nxt != r.hi:
                    return f"the log file has record {nxt} after {r.hi - 1}", file_cps, []
                continue
            file_cps.append((name, seq, line))
    return None, file_cps, after
