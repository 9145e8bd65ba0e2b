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
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import func, select

from vern.audit import verify_fast
from vern.audit.chain import Signer
from vern.audit.logfile import FILE_PREFIX
from vern.audit.merkle import Frontier
from vern.audit.models import AuditEvent
from vern.audit.verify_exact import ExactPass
from vern.audit.verify_read import (
    BadRow,
    Checkpoint,
    Problem,
    Report,
    Stop,
    appends_paused,
    read_state,
    tree_size_now,
)
from vern.audit.witness import check_trail
from vern.core.config import Settings
from vern.core.db import Database

# The parts live in vern.audit.verify_read (what is read and reported) and verify_exact (the
# exact pass); this module is the entry point.
__all__ = ["Checkpoint", "Problem", "Report", "verify"]


def verify(database: Database, settings: Settings, *, files: bool = True,
           fast: bool = True, directories: Sequence[Path] | None = None) -> Report:
    """Check the trail; ``report.problem`` names the first bad record (None when all is well).

    ``directories``: the audit log directories of every machine that appends (default:
    ``VERN_AUDIT_LOG_DIR`` alone); their lines are read together, in ``seq`` order.

    The fast pass (``vern.audit.verify_fast``) runs first (one directory only); only when it
    finds anything amiss does the exact pass (``vern.audit.verify_exact``) run, to name the
    first bad record and where it is."""
    dirs = list(directories) if directories else [Path(settings.audit_log_dir)]
    report: Report | None = None
    if fast and len(dirs) == 1:
        try:
            report = _fast(database, settings, files, dirs[0])
        except BadRow as bad:
            return Report(problem=bad.problem)
    if report is None:
        report = Report()
        closers: list[Callable[[], None]] = []
        try:
            with contextlib.suppress(Stop):
                ExactPass(database, settings, report, closers, dirs).run(files)
        except BadRow as bad:
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


def _fast(
    database: Database, settings: Settings, check_files: bool, directory: Path | None = None,
) -> Report | None:
    """The fast pass: a report when everything is in order, None when the exact pass must look."""

    signer = Signer(settings)
    directory = directory if directory is not None else Path(settings.audit_log_dir)
    with appends_paused(directory), database.engine.connect() as conn:
        head, found, pending = read_state(conn)
    db_cps = {cp.tree_size: cp for cp in found}
    tree_size = head.tree_size if head is not None else 0
    start = head.retained_from if head is not None else 0
    if not all(signer.verify(cp.key_id, cp.tree_size, bytes(cp.root), cp.ts, bytes(cp.signature))
               for cp in db_cps.values()):
        return None
    seed = None
    report = Report(tree_size=tree_size, start=start, pending=pending)
    if start > 0:
        seed = _anchor_seed(db_cps, start)
        if seed is None:
            return None
        report.notes.append(f"records before {start} were removed by retention")
    signed = {s: bytes(cp.root) for s, cp in db_cps.items() if start < s <= tree_size}
    if check_files:
        report.files = len(list(directory.glob(f"{FILE_PREFIX}*.jsonl")))
        if report.files == 0 and tree_size > start:
            return None
    doubt, file_cps, after = verify_fast.scan(
        database.url, start=start, end=tree_size, seed=seed, checkpoints=signed,
        directory=directory if check_files else None)
    if (doubt is not None
            or not _newer_lines_stored(database, directory, after, tree_size)
            or not _file_checkpoints_agree(signer, file_cps, db_cps, start, tree_size)
            or _rows_outside_tree(database, start, tree_size)):
        return None
    report.checked = tree_size - start
    report.checkpoints = len(signed)
    last = max((s for s in signed), default=start)
    report.unsigned = tree_size - last
    return report


def _anchor_seed(db_cps: dict[int, Checkpoint], start: int) -> tuple[int, bytes] | None:
    """The frontier at ``start`` (records before it were removed by retention) from the
    checkpoint kept as the anchor; None when it is missing or does not match its root."""
    anchor = db_cps.get(start)
    if anchor is None or anchor.frontier is None:
        return None
    if Frontier.decode(start, anchor.frontier).root() != bytes(anchor.root):
        return None
    return (start, bytes(anchor.frontier))


def _newer_lines_stored(database: Database, directory: Path, after: list[int],
                        tree_size: int) -> bool:
    """Lines past the head read at the start: newer appends, so the database must have
    them by now (an append writes its lines and commits under the lock taken here, and
    cuts them off again if its commit fails; lines read before such a cut-off send this
    to the exact pass)."""
    if not after:
        return True
    with appends_paused(directory), database.engine.connect() as conn:
        now_size = tree_size_now(conn)
    return after == list(range(tree_size, tree_size + len(after))) and after[-1] < now_size


def _file_checkpoints_agree(signer: Signer, file_cps: list[tuple[str, int, bytes]],
                            db_cps: dict[int, Checkpoint], start: int, tree_size: int) -> bool:
    """Every checkpoint line of the files (from ``start`` on) is signed and is the database's
    checkpoint of its size; the database has every one up to its head."""
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
            return False
        if size < start:
            continue
        if not signer.verify(key_id, size, root, ts, signature):
            return False
        known = db_cps.get(size)
        if known is not None and (bytes(known.root) != root or known.ts != ts):
            return False
        if known is None and size <= tree_size:
            return False
    return True


def _rows_outside_tree(database: Database, start: int, tree_size: int) -> bool:
    """A row numbered past the head (as read now) or below the retention boundary."""
    with database.engine.connect() as conn:
        now_size = tree_size_now(conn)
        beyond = conn.execute(select(AuditEvent.seq).where(
            AuditEvent.seq >= max(now_size, tree_size)).limit(1)).first()
        below = conn.execute(select(AuditEvent.seq).where(AuditEvent.seq < start)
                             .limit(1)).first() if start > 0 else None
    return beyond is not None or below is not None
