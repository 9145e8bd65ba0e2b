"""The JSON-lines copy of the trail: one file a day, written ahead of the database commit.

An append writes its lines (and its checkpoint's line) to the file before it commits; the
``fsync`` runs while the database commits, so the two durable writes overlap instead of
following each other. Under the file lock (see ``AuditLog``) the order is:

1. the lines are written (``write`` has returned) - an error here rolls the append back;
2. the database commits while the file is synced;
3. if the commit fails, the file is cut back to its length before step 1.

A process that dies between 1 and 2 leaves lines of records the database never stored at the end
of the newest file. ``vern audit verify`` names them (they may as well be lines somebody added);
the next append cuts them off (``trim_uncommitted``, under the lock, before it writes) and says so
in the service log, since they were never part of the trail.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

FILE_PREFIX = "audit-"
_TAIL_CHUNK = 1 << 16
log = logging.getLogger(__name__)
_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def helper(job: Callable[[], None]) -> Future[None]:
    """Run ``job`` in one of the trail's helper threads (kept, one set per process: starting a
    thread for every append costs more than the file write it does)."""
    global _pool  # noqa: PLW0603 - made once per process
    found = _pool
    if found is None or found[0] != os.getpid():
        with _pool_lock:
            found = _pool
            if found is None or found[0] != os.getpid():  # none yet, or made before a fork
                found = _pool = (os.getpid(), ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix="vern-audit"))
    return found[1].submit(job)


def file_for(directory: Path, ts_us: int | None = None) -> Path:
    if ts_us is None:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
    else:
        day = datetime.fromtimestamp(ts_us / 1_000_000, UTC).strftime("%Y-%m-%d")
    return directory / f"{FILE_PREFIX}{day}.jsonl"


class LineWrite:
    """One append's lines on their way to today's file: written and synced in a helper thread
    so that the caller's database work runs meanwhile. With ``rest``, the lines known so far
    are written at once and the writer waits for the rest (``add``: a checkpoint's line, which
    is only known once the tree is hashed) before the file is synced."""

    def __init__(self, path: Path, data: bytes, *, fsync: bool, rest: bool = False) -> None:
        self.path = path
        self.offset = -1  # the file's length before this write (-1: not opened)
        self.end = -1  # and after it
        self._data = data
        self._more = b""
        self._rest = threading.Event()
        if not rest:
            self._rest.set()
        self._fsync = fsync
        self._written = threading.Event()
        self._error: BaseException | None = None
        self._synced_error: BaseException | None = None
        self._job = helper(self._run)

    def add(self, data: bytes) -> None:
        """The rest of the lines (once, and only for a write made with ``rest``)."""
        if self._rest.is_set():
            raise RuntimeError("the lines of this write are complete already")
        self._more = data
        self._rest.set()

    def _run(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self._error = exc
            self._written.set()
            return
        try:
            try:
                self.offset = os.fstat(fd).st_size
                _write_all(fd, self._data)
                self._rest.wait()
                _write_all(fd, self._more)
                self.end = self.offset + len(self._data) + len(self._more)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                self._error = exc
                return
            finally:
                self._written.set()
            if self._fsync:
                try:
                    os.fsync(fd)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self._synced_error = exc
        finally:
            os.close(fd)

    def wait_written(self) -> None:
        """Return once the lines are in the file (not yet synced); raise the write's error,
        after cutting off whatever part of the lines it left."""
        self._written.wait()
        if self._error is not None:
            self._job.result()
            self._cut()
            raise self._error

    def finish(self) -> None:
        """After the commit: wait for the sync; raise its error."""
        self._job.result()
        if self._synced_error is not None:
            raise self._synced_error

    def undo(self) -> None:
        """The commit failed: cut the lines off again."""
        if not self._rest.is_set():
            self.add(b"")
        self._job.result()
        self._cut()

    def _cut(self) -> None:
        if self.offset >= 0:
            _truncate(self.path, self.offset, fsync=self._fsync)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _truncate(path: Path, length: int, *, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, length)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def newest_file(directory: Path) -> Path | None:
    files = sorted(directory.glob(f"{FILE_PREFIX}*.jsonl"))
    return files[-1] if files else None


def _line_is_uncommitted(line: bytes, tree_size: int, checkpoint_size: int,
                         stored: Callable[[bytes], bool] | None = None) -> bool:
    """A record line at a position the committed tree does not have yet, or a checkpoint newer
    than the last committed one (checkpoints only grow); with ``stored``, also a line at a
    committed position that the database holds otherwise (see ``trim_uncommitted``)."""
    if line.startswith(b"["):
        comma = line.find(b",")
        if comma <= 1:
            return False
        if int(line[1:comma]) >= tree_size:
            return True
    elif line.startswith(b'{"checkpoint"'):
        if int(json.loads(line)["checkpoint"]["size"]) > checkpoint_size:
            return True
    else:
        return False
    return stored is not None and not stored(line)


def trim_uncommitted(directory: Path, tree_size: int, checkpoint_size: int, *,
                     fsync: bool = True, stored: Callable[[bytes], bool] | None = None) -> int:
    """Cut the lines of records the database never committed off the end of the newest file
    (see the module doc); returns how many lines were cut. Call it under the file lock.

    With several machines, each appending to its own directory, the tree may have grown past
    the lines an interrupted append left here (another machine committed those positions
    since). ``stored(line)`` says whether the database holds the line's record (its id at that
    position) or checkpoint; lines at the end that it does not hold are cut as well."""
    path = newest_file(directory)
    if path is None:
        return 0
    size = path.stat().st_size
    span = _TAIL_CHUNK
    with open(path, "rb") as fh:
        while True:
            start = max(0, size - span)
            fh.seek(start)
            pieces = fh.read(size - start).split(b"\n")
            offset = start
            if start > 0:  # the first piece may be the end of a longer line: not looked at
                offset += len(pieces[0]) + 1
                pieces = pieces[1:]
            starts = []
            for piece in pieces:
                starts.append(offset)
                offset += len(piece) + 1
            cut, removed, settled = size, 0, start == 0
            for at, line in zip(reversed(starts), reversed(pieces), strict=True):
                if not line:
                    continue
                try:
                    uncommitted = _line_is_uncommitted(line, tree_size, checkpoint_size, stored)
                except (ValueError, KeyError, TypeError):
                    # Unreadable: the cut-off end of an interrupted write when it is the last
                    # piece; otherwise not a line of ours, left for verification to name.
                    uncommitted = at == starts[-1]
                if not uncommitted:
                    settled = True
                    break
                cut, removed = at, removed + 1
            if settled:
                break
            span *= 4
    if cut < size:
        _truncate(path, cut, fsync=fsync)
        log.warning("cut %d lines of records that were never committed off %s",
                    removed, path.name)
    return removed
