"""The exact pass of ``vern audit verify``: it names the first bad record and where it is.

The database's rows and the log files' lines are read side by side in ``seq`` order. Each
record's leaf hash is recomputed from its content and the tree is rebuilt; at each checkpoint the
root must equal the signed one. Where the two copies disagree, the checkpoint decides which one
was changed, so the first bad record is named with its place (database row or file and line).
It runs when the fast pass (``vern.audit.verify_fast``) finds anything amiss, or when asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from sqlalchemy import select

from vern.audit.chain import Signer, _dumps
from vern.audit.logfile import FILE_PREFIX
from vern.audit.merkle import Frontier, leaf_hash
from vern.audit.models import AuditEvent
from vern.audit.verify_read import (
    Checkpoint,
    FileEntry,
    Problem,
    Report,
    Stop,
    appends_paused_all,
    db_rows,
    merged_entries,
    read_state,
    tree_size_now,
)
from vern.core.config import Settings
from vern.core.db import Database


class ExactPass:
    """One exact pass over both copies, filling ``report``; the first problem ends it (``fail``
    puts it in the report and raises ``Stop``). ``closers`` gets what must be closed after."""

    def __init__(self, database: Database, settings: Settings, report: Report,
                 closers: list[Callable[[], None]], directories: Sequence[Path]) -> None:
        self.database = database
        self.report = report
        self.closers = closers
        self.directories = directories
        self.signer = Signer(settings)
        self.checkpoints: dict[int, Checkpoint] = {}  # by tree size: the database's, the files'
        self.file_cps: list[Checkpoint] = []  # read from the files, not merged in yet
        self.entries: Iterator[FileEntry] | None = None  # the files' record lines
        self.pending_file: FileEntry | None = None  # a line read ahead, put back
        # The first record where the two copies differ: seq, id, where, message.
        self.first_diff: tuple[int, str | None, str, str] | None = None
        self.frontier = Frontier()
        self.tree_size = self.start = self.last_cp = self.expected = 0

    def fail(self, seq: int | None, rid: str | None, where: str, message: str) -> NoReturn:
        self.report.problem = Problem(seq, rid, where, message)
        raise Stop

    def run(self, check_files: bool) -> None:
        self._read_head()
        self._anchor()
        if check_files:
            self._open_files()
        self._rows()
        later = self._file_tail() if self.entries is not None else []
        self._check_newer(later)
        self._check_covered()

    def _read_head(self) -> None:
        """The head, the database's checkpoints (each signature checked) and the pending count,
        under the append lock: the head read here and the files agree (a writer commits and
        writes its lines while holding it exclusively)."""
        with appends_paused_all(self.directories), self.database.engine.connect() as conn:
            head, db_cps, self.report.pending = read_state(conn)
        self.tree_size = self.report.tree_size = head.tree_size if head is not None else 0
        for cp in db_cps:
            if not self.signer.verify(cp.key_id, cp.tree_size, cp.root, cp.ts, cp.signature):
                self.fail(None, None, "database", f"checkpoint at size {cp.tree_size}: bad signature")
            self.checkpoints[cp.tree_size] = cp
        self.start = head.retained_from if head is not None else 0

    def _anchor(self) -> None:
        """Where verification starts: 0, or the checkpoint retention kept as the anchor."""
        start = self.start
        if start > 0:
            anchor = self.checkpoints.get(start)
            if anchor is None or anchor.frontier is None:
                self.fail(start - 1, None, "database",
                          "missing: earlier records are gone and no checkpoint covers them")
            self.frontier = Frontier.decode(start, anchor.frontier)
            if self.frontier.root() != anchor.root:
                self.fail(None, None, "database",
                          f"checkpoint at size {start}: frontier does not match")
            self.report.notes.append(f"records before {start} were removed by retention")
        self.report.start = start
        self.last_cp = self.expected = start

    def _open_files(self) -> None:
        directories = self.directories
        self.report.files = sum(len(list(d.glob(f"{FILE_PREFIX}*.jsonl"))) for d in directories)
        if self.report.files == 0 and self.tree_size > self.start:
            self.fail(self.start, None, ", ".join(map(str, directories)),
                      "missing from the log files (no files found)")
        self.entries = merged_entries(directories, self.file_cps)

    def _next_file(self) -> FileEntry | None:
        """The files' next record line from ``start`` on (the one put back first)."""
        assert self.entries is not None
        if self.pending_file is not None:
            f, self.pending_file = self.pending_file, None
            return f
        for f in self.entries:
            if f.seq < 0:
                self.fail(None, None, f.where, "unreadable line")
            if f.seq >= self.start:
                return f
        return None

    def _merge_file_checkpoints(self) -> None:
        """The checkpoints read from the files so far: signed, and the same as the database's
        (which must have every one up to its head)."""
        file_cps, checkpoints = self.file_cps, self.checkpoints
        while file_cps:
            cp = file_cps.pop(0)
            if cp.tree_size < self.start:
                continue
            if not self.signer.verify(cp.key_id, cp.tree_size, cp.root, cp.ts, cp.signature):
                self.fail(None, None, cp.where, f"checkpoint at size {cp.tree_size}: bad signature")
            known = checkpoints.get(cp.tree_size)
            if known is not None and (known.root != cp.root or known.ts != cp.ts):
                self.fail(None, None, cp.where,
                          f"checkpoint at size {cp.tree_size} differs from the database's")
            if known is None and cp.tree_size <= self.tree_size:
                self.fail(cp.tree_size - 1, None, "database",
                          f"the checkpoint at size {cp.tree_size} (in {cp.where}) is missing "
                          "from the database")
            checkpoints.setdefault(cp.tree_size, cp)

    def _rows(self) -> None:
        """The loop over the database's rows: canonical form, leaf, frontier append, the file's
        line compared, and the root at every checkpoint."""
        rows = db_rows(self.database, self.start, self.tree_size)
        self.closers.append(rows.close)
        dumps, frontier, checkpoints = _dumps, self.frontier, self.checkpoints
        files = self.entries is not None
        checked = 0
        expected = self.start
        for row in rows:
            seq = row[0]
            if seq != expected:
                self.fail(expected, None, "database", "missing (removed)")
            line = dumps(row).encode()
            frontier.append(leaf_hash(line))
            if files:
                self._compare(seq, row[1], line)
            expected = seq + 1
            checked += 1
            found = checkpoints.get(expected)
            if found is not None:
                self.report.checked = checked
                self._at_checkpoint(found, expected)
        self.report.checked = checked
        self.expected = expected

    def _compare(self, seq: int, rid: str | None, line: bytes) -> None:
        """The files' line at ``seq`` against the database's ``line``. A difference is kept (the
        next checkpoint says which copy was changed); a line out of order fails at once."""
        f = self._next_file()
        if f is None or f.seq > seq:
            self.pending_file = f
            if self.first_diff is None:
                where = f.where if f is not None else "log files"
                self.first_diff = (seq, rid, where, "missing from the log file")
        elif f.seq < seq:
            self.fail(f.seq, None, f.where, "out of order or duplicated in the log file")
        elif f.line != line and self.first_diff is None:
            self.first_diff = (seq, rid, f.where, "changed")
        if self.file_cps:
            self._merge_file_checkpoints()

    def _at_checkpoint(self, cp: Checkpoint, size: int) -> None:
        """The rebuilt root at a signed checkpoint: a mismatch means the database was changed
        (the files agree with the signature, or both copies were changed alike); a match with
        a difference before it means the file was."""
        self.report.checkpoints += 1
        if self.frontier.root() != cp.root:
            if self.first_diff is not None:
                dseq, rid, _, _msg = self.first_diff
                self.fail(dseq, rid, "database", "changed, moved or inserted "
                          f"(the log file agrees with the checkpoint at size {size})")
            self.fail(self.last_cp, None, "database",
                      f"records {self.last_cp}..{size - 1} do not match the signed checkpoint "
                      f"at size {size}")
        if self.first_diff is not None:
            dseq, _rid, where, msg = self.first_diff
            self.fail(dseq, None, where, msg)
        self.last_cp = size

    def _file_tail(self) -> list[FileEntry]:
        """The files' lines after the last row: one below the head read at the start is a record
        the database does not have; the others may be newer appends (``_check_newer``)."""
        later: list[FileEntry] = []
        f = self._next_file()
        if f is not None and f.seq < self.tree_size:
            self.fail(f.seq, None, f.where, "in the log file but not in the database")
        while f is not None:
            later.append(f)
            f = self._next_file()
        self._merge_file_checkpoints()
        return later

    def _check_newer(self, later: list[FileEntry]) -> None:
        """Lines and rows past the head read at the start, against the head read now."""
        with appends_paused_all(self.directories), self.database.engine.connect() as conn:
            now_size = tree_size_now(conn)
        for f in later:
            # Every line is written after its record committed: a line the database does not
            # have even now was not written by Vern.
            if f.seq >= now_size:
                self.fail(f.seq, None, f.where, "in the log file but not in the database (inserted)")
        with self.database.engine.connect() as conn:
            beyond = conn.execute(select(AuditEvent.seq, AuditEvent.id).where(
                AuditEvent.seq >= max(now_size, self.tree_size)).order_by(AuditEvent.seq)
                .limit(1)).first()
        if beyond is not None:
            self.fail(beyond.seq, beyond.id, "database", "not part of the tree (inserted)")

    def _check_covered(self) -> None:
        """Every record up to the head is there, every checkpoint's records too; a difference
        after the last checkpoint is named (no signature says which copy is right)."""
        expected = self.expected
        if expected < self.tree_size:
            self.fail(expected, None, "database", "missing (removed)")
        for size, cp in self.checkpoints.items():
            if self.start < size <= self.tree_size and size > expected:
                self.fail(size - 1, None, cp.where, "missing (the checkpoint covers it)")
        self.report.unsigned = expected - self.last_cp
        if self.first_diff is not None:
            dseq, rid, where, msg = self.first_diff
            self.fail(dseq, rid, where, f"{msg}; the database and the log file differ after the "
                      "last checkpoint")
