"""The append path of the audit trail: canonical form, Merkle tree, signed checkpoints, log files.

One ``AuditLog`` per database does every append. An append takes the ``audit_head`` row (an
UPDATE, so two processes serialise on it), gives each new record - and every record sealed inside
another domain's transaction since the last append - the next position ``seq``, hashes its
canonical form as a leaf, inserts, signs a checkpoint when due, writes the same canonical lines
(and checkpoint lines) to today's JSON-lines file and commits while the file is synced - all under
a file lock (``vern.audit.logfile`` has the order and what happens when a step fails).

Canonical form of a record (``vern.audit.canonical``): the JSON array of ``FIELDS`` (compact
separators, ASCII), with the sealed personal blob as hex and ``details`` as the stored JSON text.
The file line *is* this array, so a line's leaf hash is ``SHA-256(0x00 || line)`` without parsing.
The parts of an append have modules of their own: the loop that makes the new records' rows
(``vern.audit.drafts``), the records that waited for their position (``vern.audit.pending``),
the sealing of personal data and the keys it takes (``vern.audit.personal``), the checkpoint key
(``vern.audit.signing``). This module is the trail's entry point and names them all.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vern.audit.canonical import (
    _DRAFT_FIELDS,
    _PERSONAL_AD,
    FIELDS,
    PERSONAL,
    PERSONAL_CONTEXT,
    _dumps,
    _quote,
    canonical,
    canonical_details,
    datetime_to_us,
    fast_ids,
    ids_from,
    now_us,
    us_to_datetime,
)
from vern.audit.drafts import (
    _COPY_SQL,
    _COPY_TYPES,
    _INSERT_SQL,
    TILE_HEIGHTS,
    Emit,
    insert_rows,
    seal_records,
)
from vern.audit.logfile import LineWrite, file_for, trim_uncommitted
from vern.audit.merkle import Frontier
from vern.audit.models import AuditEvent, AuditHead
from vern.audit.note import NoteError
from vern.audit.pending import number_pending, pending_count, pending_mac, pending_mac_key, screen
from vern.audit.personal import (
    Keys,
    Sealer,
    anon_key_subject,
    network_of,
    open_personal,
    resolve_keys,
)
from vern.audit.retention import expire_local_files
from vern.audit.signing import Signer, checkpoint_message, key_id_of
from vern.audit.witness import WitnessError, witness
from vern.core.config import AuditSettings, Settings, audit_settings
from vern.core.db import Database, Scope, is_read_only_error
from vern.core.errors import VernError

_SQL_SQLITE = {
    # The update is the lock every writer takes; it returns the head it locked, and whether
    # records sealed in other transactions wait for their position (then "pending" reads them).
    "lock": "UPDATE audit_head SET lock_n = lock_n + 1 WHERE id = 1 "
            "RETURNING tree_size, frontier, checkpoint_size, checkpoint_ts, "
            "EXISTS (SELECT 1 FROM audit_events WHERE seq IS NULL AND quarantine IS NULL)",
    # S608 is wrong here: column names are Vern's own constants
    "pending": f"SELECT {', '.join(FIELDS)}, mac FROM audit_events "  # noqa: S608
               "WHERE seq IS NULL AND quarantine IS NULL ORDER BY ts, id LIMIT ?",
    "sealed_ts": "SELECT sealed_ts FROM audit_head WHERE id = 1",
    "quarantine": "UPDATE audit_events SET quarantine = ? WHERE id = ? AND seq IS NULL",
    "set_sealed_ts": "UPDATE audit_head SET sealed_ts = ? WHERE id = 1",
    "tile": "INSERT INTO audit_tiles (height, idx, hash) VALUES ",  # + a row's marks each
    "checkpoint": "INSERT INTO audit_checkpoints (tree_size, root, ts, key_id, signature, "
                  "frontier) VALUES (?, ?, ?, ?, ?, ?)",
    "advance": "UPDATE audit_head SET tree_size = ?, frontier = ?, checkpoint_size = ?, "
               "checkpoint_ts = ? WHERE id = 1",
}
_SQL_PG = {k: v.replace("?", "%s") for k, v in _SQL_SQLITE.items()}
log = logging.getLogger(__name__)

# The trail's names other modules import from here, wherever they are defined.
__all__ = [
    "FIELDS", "PERSONAL", "PERSONAL_CONTEXT", "TILE_HEIGHTS", "_COPY_SQL", "_COPY_TYPES",
    "_INSERT_SQL", "_PERSONAL_AD", "Appended", "AuditLog", "Keys", "Sealer", "Signer", "_dumps",
    "_quote", "anon_key_subject", "canonical", "canonical_details", "checkpoint_json",
    "checkpoint_line", "checkpoint_message", "datetime_to_us", "fast_ids", "head_of", "ids_from",
    "key_id_of", "log_for", "network_of", "now_us", "open_personal", "pending_count",
    "pending_mac", "pending_mac_key", "resolve_keys", "seal_records", "system_session",
    "us_to_datetime",
]

# -- the log ------------------------------------------------------------------------------------


@dataclass
class Appended:
    first_seq: int
    last_seq: int  # first_seq - 1 when nothing was appended
    checkpoint: int | None
    more_pending: bool = False  # the page of pending records was full: seal again
    quarantined: int = 0  # pending records refused (see ``AuditLog._screen``)


def checkpoint_line(cp: dict[str, Any]) -> bytes:
    return _dumps({"checkpoint": cp}).encode()


@dataclass
class _Locked:
    """What an append finds when it takes the lock: the ``audit_head`` row, and the pending
    records - those to seal (``FIELDS``, screened), ``(reason, id)`` of those refused, and how
    many were read (a full page: more wait)."""

    tree_size: int
    frontier: bytes | None
    checkpoint_size: int
    checkpoint_ts: int
    pending: list[Sequence[Any]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    fetched: int = 0


@dataclass
class _Growth:
    """What an append adds under the lock, as it goes: the tree grown from the locked head's
    frontier, the tiles it completed (``TILE_HEIGHTS``), the lines for the log file, the
    checkpoint signed when due (at ``now``) and the write of the lines to the file."""

    head: _Locked
    frontier: Frontier
    tiles: list[tuple[int, int, bytes]] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    cp: dict[str, Any] | None = None
    now: int = 0
    write: LineWrite | None = None


def _tree_statements(q: dict[str, str], pg: bool, grown: _Growth) -> list[tuple[str, list[Any]]]:
    """The statements that store what the append grew: the tiles (one multi-row statement;
    executemany costs more), the checkpoint and the head. On PostgreSQL one statement, the
    inserts as data-modifying CTEs (one round trip instead of three); SQLite has no such CTEs
    and no round trips."""
    head, cp, now = grown.head, grown.cp, grown.now
    size = grown.frontier.size
    encoded = cp["frontier"] if cp is not None else grown.frontier.encode()
    statements: list[tuple[str, list[Any]]] = []
    tiles = grown.tiles
    for i in range(0, len(tiles), 500):
        part = tiles[i:i + 500]
        mark = "(%s, %s, %s)" if pg else "(?, ?, ?)"
        statements.append((q["tile"] + ", ".join([mark] * len(part)),
                           [v for tile in part for v in tile]))
    if cp is not None:
        statements.append((q["checkpoint"], [size, cp["root"], now, cp["key_id"],
                                             cp["signature"], encoded]))
    if size != head.tree_size or cp is not None:
        statements.append((q["advance"], [size, encoded, size if cp else head.checkpoint_size,
                                          now if cp else head.checkpoint_ts]))
    if pg and len(statements) > 1 and statements[-1][0] is q["advance"]:
        ctes = ", ".join(f"w{k} AS ({sql})" for k, (sql, _) in enumerate(statements[:-1]))
        statements = [(f"WITH {ctes} {q['advance']}",
                       [v for _, values in statements for v in values])]
    return statements


def _abandon(conn: Connection, trans: Any, exc: BaseException, *, committing: bool,
             write: LineWrite | None) -> None:
    """Undo an append that failed with ``exc``: its transaction, and its lines in the file."""
    if committing or is_read_only_error(exc):
        # A commit that failed half way, or a session that cannot write (opened while
        # the database was read-only): the connection is not used again (the server
        # rolls back whatever did not commit).
        with contextlib.suppress(Exception):
            conn.invalidate()
    elif trans.is_active:
        trans.rollback()
    if write is not None:
        write.undo()


class AuditLog:
    """Appends to the tree of one database (see the module doc)."""

    def __init__(
        self, database: Database, settings: Settings, audit: AuditSettings | None = None
    ) -> None:
        self.database = database
        self.settings = settings
        self.audit = audit or audit_settings()
        self.signer = Signer(settings, self.audit)
        self.sealer = Sealer(settings)
        self.directory = Path(settings.audit_log_dir)
        self._lock = threading.Lock()
        # (file, its length, tree size, checkpoint size) after this log's last append
        self._clean: tuple[Path, int, int, int] | None = None
        self._frag_a: dict[tuple[Any, ...], str] = {}
        self._frag_b: dict[tuple[Any, ...], str] = {}
        self.witness_error: str | None = None  # the last witness's refusal, if any
        self._files_expired_on: str | None = None  # the day this log last applied retention
        self._ensure_head()

    def _ensure_head(self) -> None:
        with self.database.engine.begin() as conn:
            if conn.scalar(select(AuditHead.id).where(AuditHead.id == 1)) is not None:
                return
        try:
            with self.database.engine.begin() as conn:
                conn.execute(insert(AuditHead).values(
                    id=1, tree_size=0, frontier=b"", checkpoint_size=0, checkpoint_ts=0,
                    alert_seq=0, lock_n=0, retained_from=0,
                ))
        except IntegrityError:
            pass  # made by another process meanwhile

    # The file lock orders appends of several processes on one host: the database commit and the
    # file write happen under it, so the file's lines are in ``seq`` order.
    def _file_lock(self) -> int:
        """The lock file's descriptor (the directory is made when missing)."""
        path = self.directory / ".lock"
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except FileNotFoundError:
            self.directory.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, rows: Sequence[dict[str, Any]], *, force_checkpoint: bool = False,
               tails: Sequence[bytes] | None = None) -> Appended:
        """Append ``rows`` (dicts of every column but ``seq``, personal data already sealed) and
        seal pending records, in one durable transaction, and write the lines to the log file.
        All or nothing. (``tails`` is accepted for compatibility and ignored.)"""
        drafts = [tuple(r[f] for f in _DRAFT_FIELDS) for r in rows]
        ids = [r["id"] for r in rows]
        result = self.append_drafts(drafts, None, force_checkpoint=force_checkpoint, ids=ids)
        for r, seq in zip(rows, range(result.last_seq + 1 - len(rows), result.last_seq + 1),
                          strict=True):
            r["seq"] = seq
        return result

    def append_drafts(self, drafts: Iterable[tuple[Any, ...]], keys: Keys | None, *,
                      force_checkpoint: bool = False, ids: Sequence[str] | None = None,
                      count: int | None = None) -> Appended:
        """Append new records, given as drafts: tuples of ``_DRAFT_FIELDS`` (every column but
        ``seq`` and ``id``). With ``keys`` (from ``resolve_keys``), ``personal`` is the
        plaintext to seal and two more items follow: the AES-GCM of ``key_id`` and the key id's
        16 bytes (``Keys.for_subject``); without, ``key_id`` and ``personal`` are final.
        Under the lock each record is sealed, gets its position and id, is hashed into the tree
        and written to the database; the lines go to the log file before the commit and are
        synced while it runs. All or nothing: on any error nothing is stored.

        ``drafts`` may be a generator (``count`` says how many it yields): it is then consumed
        under the lock, record by record, while the database takes the rows."""
        if count is None:
            drafts = list(drafts)
            count = len(drafts)
        with self._lock:
            lock_file = self._file_lock()
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                result = self._append_db(drafts, count, keys, force_checkpoint, ids)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
                os.close(lock_file)
        if result.checkpoint is not None and (self.audit.witness_dir is not None
                                              or self.audit.witness_url):
            self.witness_now()
        self._expire_files_daily()
        return result

    def _expire_files_daily(self) -> None:
        """Retention on this machine's log directory, once a day per process
        (``vern.audit.retention.expire_local_files``); a failure is logged, never raised."""
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        if self._files_expired_on == today:
            return
        self._files_expired_on = today
        try:
            expire_local_files(self.database, self.settings)
        except Exception:
            log.exception("old audit log files could not be removed from %s", self.directory)

    def witness_now(self) -> bool:
        """Hand the newest checkpoint to the witnesses (``vern.audit.witness``). A refusal is
        logged as an error and kept in ``witness_error``, not raised: the records are stored."""
        try:
            witness(self.database, self.settings, self.signer, self.audit)
        except (WitnessError, NoteError, OSError, VernError) as exc:
            self.witness_error = str(exc)
            log.error("audit checkpoint not witnessed: %s", exc)
            return False
        self.witness_error = None
        return True

    def _append_db(
        self, drafts: Iterable[tuple[Any, ...]], count: int, keys: Keys | None,
        force_checkpoint: bool, ids: Sequence[str] | None,
    ) -> Appended:
        sqlite = self.database.engine.dialect.name == "sqlite"
        with self.database.engine.connect() as conn:
            if sqlite:
                # Durable commits; and a page cache big enough for the trail's indexes (64 MiB
                # for this connection) so that appends do not re-read index pages from disk.
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
                conn.exec_driver_sql("PRAGMA cache_size=-65536")
                conn.commit()
            try:
                return self._append_in(conn, drafts, count, keys, force_checkpoint, ids)
            finally:
                if sqlite and not conn.invalidated:
                    conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
                    conn.commit()

    def _append_in(  # noqa: PLR0917 - the append, in one place
        self, conn: Connection, drafts: Iterable[tuple[Any, ...]], count: int,
        keys: Keys | None, force_checkpoint: bool, ids: Sequence[str] | None,
    ) -> Appended:
        """The append in the transaction it commits (see the module doc): lock the head, seal
        the pending records, insert the new ones, store the tree and commit while the lines are
        written. On any error nothing stays: the transaction and the lines are undone."""
        # Plain DBAPI statements with constant text: per batch, SQLAlchemy's statement building
        # and caching cost more than the statements themselves.
        pg = conn.dialect.name == "postgresql"
        q = _SQL_PG if pg else _SQL_SQLITE
        grown: _Growth | None = None
        committing = False
        trans = conn.begin()
        try:
            dbapi: Any = conn.connection.driver_connection
            locked = self._lock_head(dbapi, q)
            self._trim_files(locked.tree_size, locked.checkpoint_size, _stored_in(dbapi, pg))
            grown = _Growth(locked, Frontier.decode(locked.tree_size, locked.frontier))
            seq = number_pending(conn, locked.pending, locked.tree_size, frontier=grown.frontier,
                                 tiles=grown.tiles, lines=grown.lines)
            if count:
                seq = self._insert_drafts(conn, drafts, count, keys, ids, seq, grown,
                                          force_checkpoint)
            else:
                self._ready(grown, force_checkpoint)
            self._store_tree(dbapi, q, _tree_statements(q, pg, grown))
            if grown.write is not None:
                grown.write.wait_written()  # a failed write rolls the append back
            committing = True
            trans.commit()
        except BaseException as exc:
            _abandon(conn, trans, exc, committing=committing,
                     write=grown.write if grown is not None else None)
            raise
        self._finish_write(grown)
        for reason, rid in locked.refused:
            log.error("audit record %s quarantined, not sealed: %s", rid, reason)
        return Appended(locked.tree_size, seq - 1,
                        grown.frontier.size if grown.cp is not None else None,
                        more_pending=locked.fetched >= self.audit.batch_max * 4,
                        quarantined=len(locked.refused))

    def _lock_head(self, dbapi: Any, q: dict[str, str]) -> _Locked:
        """Take the append lock (the head's UPDATE) and read the pending records when any wait:
        those refused are quarantined here, the newest sealed time is moved on."""
        cur = dbapi.cursor()
        try:
            cur.execute(q["lock"])
            tree_size, frontier_blob, cp_size_0, cp_ts_0, waiting = cur.fetchone()
            locked = _Locked(tree_size, frontier_blob, cp_size_0, cp_ts_0)
            if waiting:
                cur.execute(q["pending"], (self.audit.batch_max * 4,))
                locked.pending = cur.fetchall()
                locked.fetched = len(locked.pending)
            if locked.pending:
                cur.execute(q["sealed_ts"])
                sealed_ts_0 = int(cur.fetchone()[0] or 0)
                locked.pending, locked.refused, sealed_ts = self._screen(locked.pending,
                                                                         sealed_ts_0)
                if locked.refused:
                    cur.executemany(q["quarantine"], locked.refused)
                if sealed_ts != sealed_ts_0:
                    cur.execute(q["set_sealed_ts"], (sealed_ts,))
            return locked
        finally:
            cur.close()

    def _screen(self, pending: Sequence[Sequence[Any]], sealed_ts: int,
                ) -> tuple[list[Sequence[Any]], list[tuple[str, str]], int]:
        """``vern.audit.pending.screen`` with this log's secret key and ``seal_skew_seconds``."""
        return screen(pending, sealed_ts, key=pending_mac_key(self.settings.secret_bytes),
                      skew_seconds=self.audit.seal_skew_seconds)

    def _ready(self, grown: _Growth, force_checkpoint: bool) -> None:
        """Every line is made and hashed: sign the checkpoint if due, start the file's write."""
        grown.now = now = now_us()
        frontier, head = grown.frontier, grown.head
        size = frontier.size
        if size > head.checkpoint_size and (
            force_checkpoint
            or size - head.checkpoint_size >= self.audit.checkpoint_every
            or (now - head.checkpoint_ts) >= self.audit.checkpoint_seconds * 1_000_000
        ):
            root = frontier.root()
            grown.cp = {
                "tree_size": size, "root": root, "ts": now,
                "key_id": self.signer.key_id,
                "signature": self.signer.sign(size, root, now),
                "frontier": frontier.encode(),
            }
            grown.lines.append(checkpoint_line(checkpoint_json(grown.cp)))
        if grown.lines:
            grown.write = LineWrite(file_for(self.directory), b"\n".join([*grown.lines, b""]),
                                    fsync=self.audit.fsync_files)

    def _store_tree(self, dbapi: Any, q: dict[str, str],
                    statements: list[tuple[str, list[Any]]]) -> None:
        """Run the statements of ``_tree_statements`` (a clash is SQLAlchemy's IntegrityError)."""
        cur = dbapi.cursor()
        try:
            for sql, values in statements:
                cur.execute(sql, values)
        except BaseException as exc:
            if isinstance(exc, self._dbapi_integrity):
                raise IntegrityError(q["checkpoint"], None, exc) from exc
            raise
        finally:
            cur.close()

    def _finish_write(self, grown: _Growth) -> None:
        """After the commit: wait for the lines to be on disk, and remember the file as this
        append left it (``_trim_files`` then has nothing to look at next time)."""
        self._clean = None
        write = grown.write
        if write is None:
            return
        try:
            write.finish()
        except OSError:
            # The records are committed and their lines written, only not known to be on
            # disk: raising would make the caller append them again. Said loudly instead;
            # ``vern audit verify`` names any line that did not survive.
            log.exception("the audit log file could not be synced: %s", write.path.name)
        else:
            size = grown.frontier.size
            self._clean = (write.path, write.end, size,
                           size if grown.cp is not None else grown.head.checkpoint_size)

    def _insert_drafts(  # noqa: PLR0917 - the append, in one place
        self, conn: Connection, drafts: Iterable[tuple[Any, ...]], n: int, keys: Keys | None,
        ids: Sequence[str] | None, seq: int, grown: _Growth, force_checkpoint: bool,
    ) -> int:
        """Seal, number, hash and insert the drafts (``seal_records``, ``insert_rows``); returns
        the next position. Every line is hashed as it is made; ``_ready`` (it adds the
        checkpoint's line) is called before the database takes the last of the rows (the file
        is written meanwhile)."""
        ids = ids if isinstance(ids, list) else fast_ids(n) if ids is None else list(ids)
        end = seq + n
        nonces = os.urandom(12 * n) if keys is not None else None

        def make(emit: Emit) -> None:
            nonlocal seq
            seq = seal_records(drafts, ids, seq, nonces, grown.frontier, grown.tiles,
                               grown.lines, emit, (self._frag_a, self._frag_b))
            if seq != end:
                raise ValueError(f"{n} drafts announced, {n - (end - seq)} given")
            self._ready(grown, force_checkpoint)

        insert_rows(conn, make, self._dbapi_integrity)
        return seq

    def _trim_files(self, tree_size: int, checkpoint_size: int,
                    stored: Callable[[bytes], bool] | None = None) -> None:
        """Lines an interrupted append left (see ``vern.audit.logfile``) go before new ones;
        skipped when the file is as this log's own last append left it."""
        clean = self._clean
        if clean is not None and clean[2:] == (tree_size, checkpoint_size):
            with contextlib.suppress(OSError):
                if clean[0].stat().st_size == clean[1] and clean[0] == file_for(self.directory):
                    return
        trim_uncommitted(self.directory, tree_size, checkpoint_size,
                         fsync=self.audit.fsync_files, stored=stored)

    @property
    def _dbapi_integrity(self) -> type[BaseException]:
        return self.database.engine.dialect.loaded_dbapi.IntegrityError

    def needs_work(self) -> bool:
        """Pending records to seal, or a checkpoint due (read only, no lock)."""
        with self.database.engine.connect() as conn:
            if conn.execute(select(AuditEvent.id).where(
                    AuditEvent.seq.is_(None), AuditEvent.quarantine.is_(None)).limit(1)).first():
                return True
            head = head_of(conn)
        if head is None or head.tree_size <= head.checkpoint_size:
            return False
        return bool(
            head.tree_size - head.checkpoint_size >= self.audit.checkpoint_every
            or now_us() - head.checkpoint_ts >= self.audit.checkpoint_seconds * 1_000_000
        )

    def seal_pending(self, *, force_checkpoint: bool = False) -> Appended:
        """Seal records written in other transactions (and checkpoint when due)."""
        total: Appended | None = None
        while True:
            result = self.append([], force_checkpoint=force_checkpoint)
            if total is None:
                total = result
            else:
                total.last_seq = result.last_seq
                total.checkpoint = result.checkpoint or total.checkpoint
                total.quarantined += result.quarantined
            if not result.more_pending or (result.last_seq < result.first_seq
                                           and not result.quarantined):
                return total
            force_checkpoint = force_checkpoint and result.checkpoint is None


def _stored_in(dbapi: Any, pg: bool) -> Callable[[bytes], bool]:
    """``stored(line)`` for ``trim_uncommitted``, on the append's own connection (under its
    lock): False for a record line whose position holds another record, or a checkpoint line
    the database does not have (above the retention boundary); True otherwise. Read only for
    the last lines of the newest file, and only when another process appended since."""
    mark = "%s" if pg else "?"

    def stored(line: bytes) -> bool:
        cur = dbapi.cursor()
        try:
            if line.startswith(b"["):
                row = json.loads(line)
                # S608 is wrong here: an integer from a checked log line
                cur.execute(f"SELECT id FROM audit_events WHERE seq = {mark}",  # noqa: S608
                            (int(row[0]),))
                found = cur.fetchone()
                return found is None or str(found[0]) == str(row[1])  # None: past retention
            cp = json.loads(line)["checkpoint"]
            # S608 is wrong here: an integer from a checked log line
            cur.execute(f"SELECT root, ts FROM audit_checkpoints WHERE tree_size = {mark}",  # noqa: S608
                        (int(cp["size"]),))
            found = cur.fetchone()
            if found is None:
                cur.execute("SELECT retained_from FROM audit_head WHERE id = 1")
                head = cur.fetchone()
                return head is not None and int(cp["size"]) <= int(head[0] or 0)
            return bytes(found[0]) == bytes.fromhex(cp["root"]) and int(found[1]) == int(cp["ts"])
        finally:
            cur.close()

    return stored
def checkpoint_json(cp: dict[str, Any]) -> dict[str, Any]:
    return {
        "size": cp["tree_size"], "root": bytes(cp["root"]).hex(), "ts": cp["ts"],
        "key_id": cp["key_id"], "signature": bytes(cp["signature"]).hex(),
        "frontier": bytes(cp["frontier"] or b"").hex(),
    }


def head_of(conn: Connection | Session) -> Any:
    return conn.execute(select(AuditHead).where(AuditHead.id == 1)).first()


_logs: dict[tuple[int, str], AuditLog] = {}
_logs_lock = threading.Lock()


def log_for(database: Database, settings: Settings) -> AuditLog:
    """The process's ``AuditLog`` for this database and log directory."""
    key = (id(database), str(settings.audit_log_dir))
    with _logs_lock:
        found = _logs.get(key)
        if found is None or found.database is not database:
            found = AuditLog(database, settings)
            if len(_logs) > 32:
                _logs.clear()
            _logs[key] = found
        return found


def system_session(database: Database) -> Session:
    return database.session(Scope.system("audit"))
