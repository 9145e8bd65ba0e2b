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
The checkpoint key and the MAC of pending records are in ``vern.audit.signing``, the sealing of
personal data and the keys it takes in ``vern.audit.personal``; this module is the trail's entry
point and names them all.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vern.audit.canonical import (
    _DRAFT_FIELDS,
    _PERSONAL_AD,
    FIELDS,
    PERSONAL,
    PERSONAL_CONTEXT,
    SEQ,
    _dumps,
    _fragment,
    _quote,
    canonical,
    canonical_details,
    datetime_to_us,
    fast_ids,
    ids_from,
    now_us,
    us_to_datetime,
)
from vern.audit.logfile import LineWrite, file_for, trim_uncommitted
from vern.audit.merkle import Frontier, leaf_hash
from vern.audit.models import AuditEvent, AuditHead
from vern.audit.note import NoteError
from vern.audit.personal import (
    Keys,
    Sealer,
    anon_key_subject,
    network_of,
    open_personal,
    resolve_keys,
)
from vern.audit.signing import Signer, checkpoint_message, key_id_of, pending_mac, pending_mac_key
from vern.core.config import AuditSettings, Settings, audit_settings
from vern.core.db import Database, Scope, is_read_only_error
from vern.core.errors import VernError

TILE_HEIGHTS = frozenset({8, 16})
_INSERT_SQL = (f"INSERT INTO audit_events ({', '.join(FIELDS)}) "  # noqa: S608 - constants
               f"VALUES ({', '.join('?' for _ in FIELDS)})")
# Text, not binary: the server takes rows off a text COPY in groups of about 64 KiB while they
# arrive (a binary COPY only every 1,000 rows), so it inserts while this process seals and hashes.
_COPY_SQL = f"COPY audit_events ({', '.join(FIELDS)}) FROM STDIN"
_COPY_TYPES = ["int8", "text", "int8", *["text"] * 6, "bytea", *["text"] * 8]
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
_EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]
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
        from vern.audit.retention import expire_local_files

        try:
            expire_local_files(self.database, self.settings)
        except Exception:
            log.exception("old audit log files could not be removed from %s", self.directory)

    def witness_now(self) -> bool:
        """Hand the newest checkpoint to the witnesses (``vern.audit.witness``). A refusal is
        logged as an error and kept in ``witness_error``, not raised: the records are stored."""
        from vern.audit.witness import WitnessError, witness

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

    def _append_in(  # noqa: PLR0912, PLR0915, PLR0917 - the append, in one place
        self, conn: Connection, drafts: Iterable[tuple[Any, ...]], count: int,
        keys: Keys | None, force_checkpoint: bool, ids: Sequence[str] | None,
    ) -> Appended:
        # Plain DBAPI statements with constant text: per batch, SQLAlchemy's statement building
        # and caching cost more than the statements themselves.
        pg = conn.dialect.name == "postgresql"
        q = _SQL_PG if pg else _SQL_SQLITE
        write: LineWrite | None = None
        committing = False
        trans = conn.begin()
        try:
            dbapi: Any = conn.connection.driver_connection
            cur = dbapi.cursor()
            try:
                cur.execute(q["lock"])
                tree_size, frontier_blob, cp_size_0, cp_ts_0, waiting = cur.fetchone()
                pending = []
                refused: list[tuple[str, str]] = []
                fetched = 0
                if waiting:
                    cur.execute(q["pending"], (self.audit.batch_max * 4,))
                    pending = cur.fetchall()
                    fetched = len(pending)
                if pending:
                    cur.execute(q["sealed_ts"])
                    sealed_ts_0 = int(cur.fetchone()[0] or 0)
                    pending, refused, sealed_ts = self._screen(pending, sealed_ts_0)
                    if refused:
                        cur.executemany(q["quarantine"], refused)
                    if sealed_ts != sealed_ts_0:
                        cur.execute(q["set_sealed_ts"], (sealed_ts,))
            finally:
                cur.close()
            self._trim_files(tree_size, cp_size_0, _stored_in(dbapi, pg))
            tiles: list[tuple[int, int, bytes]] = []
            frontier = Frontier.decode(tree_size, frontier_blob)
            seq = first = tree_size
            lines: list[bytes] = []
            if pending:
                sealed: list[dict[str, Any]] = []
                for row in pending:
                    fields = list(row)
                    fields[SEQ] = seq
                    line = canonical(fields)
                    lines.append(line)
                    sealed.append({"b_id": fields[1], "b_seq": seq})
                    seq += 1
                frontier.watch = TILE_HEIGHTS
                frontier.on_node = lambda h, i, n: tiles.append((h, i, n))
                for line in lines:
                    frontier.append(leaf_hash(line))
                frontier.on_node = None
                conn.execute(
                    update(_EVENTS)
                    .where(_EVENTS.c.id == bindparam("b_id"))
                    .values(seq=bindparam("b_seq")),
                    sealed,
                )
            now = 0
            cp: dict[str, Any] | None = None

            def ready() -> None:
                """Every line is made and hashed: sign the checkpoint if due, start the file's
                write."""
                nonlocal now, cp, write
                now = now_us()
                size = frontier.size
                if size > cp_size_0 and (
                    force_checkpoint
                    or size - cp_size_0 >= self.audit.checkpoint_every
                    or (now - cp_ts_0) >= self.audit.checkpoint_seconds * 1_000_000
                ):
                    root = frontier.root()
                    cp = {
                        "tree_size": size, "root": root, "ts": now,
                        "key_id": self.signer.key_id,
                        "signature": self.signer.sign(size, root, now),
                        "frontier": frontier.encode(),
                    }
                    lines.append(checkpoint_line(checkpoint_json(cp)))
                if lines:
                    write = LineWrite(file_for(self.directory), b"\n".join([*lines, b""]),
                                      fsync=self.audit.fsync_files)

            if count:
                seq = self._insert_drafts(conn, drafts, count, keys, ids, seq, frontier, tiles,
                                          lines, ready)
            else:
                ready()
            size = frontier.size
            cp_size = None
            encoded = cp["frontier"] if cp is not None else frontier.encode()
            # Tiles (one multi-row statement; executemany costs more), the checkpoint and the
            # head: on PostgreSQL one statement, the inserts as data-modifying CTEs (one round
            # trip instead of three); SQLite has no such CTEs and no round trips.
            statements: list[tuple[str, list[Any]]] = []
            for i in range(0, len(tiles), 500):
                part = tiles[i:i + 500]
                mark = "(%s, %s, %s)" if pg else "(?, ?, ?)"
                statements.append((q["tile"] + ", ".join([mark] * len(part)),
                                   [v for tile in part for v in tile]))
            if cp is not None:
                statements.append((q["checkpoint"], [size, cp["root"], now, cp["key_id"],
                                                     cp["signature"], encoded]))
                cp_size = size
            if size != tree_size or cp is not None:
                statements.append((q["advance"], [size, encoded, size if cp else cp_size_0,
                                                  now if cp else cp_ts_0]))
            if pg and len(statements) > 1 and statements[-1][0] is q["advance"]:
                ctes = ", ".join(f"w{k} AS ({sql})" for k, (sql, _) in enumerate(statements[:-1]))
                statements = [(f"WITH {ctes} {q['advance']}",
                               [v for _, values in statements for v in values])]
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
            if write is not None:
                write.wait_written()  # a failed write rolls the append back
            committing = True
            trans.commit()
        except BaseException as exc:
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
            raise
        self._clean = None
        if write is not None:
            try:
                write.finish()
            except OSError:
                # The records are committed and their lines written, only not known to be on
                # disk: raising would make the caller append them again. Said loudly instead;
                # ``vern audit verify`` names any line that did not survive.
                log.exception("the audit log file could not be synced: %s", write.path.name)
            else:
                self._clean = (write.path, write.end, frontier.size,
                               frontier.size if cp is not None else cp_size_0)
        for reason, rid in refused:
            log.error("audit record %s quarantined, not sealed: %s", rid, reason)
        return Appended(first, seq - 1, cp_size,
                        more_pending=fetched >= self.audit.batch_max * 4,
                        quarantined=len(refused))

    def _screen(self, pending: Sequence[Sequence[Any]], sealed_ts: int,
                ) -> tuple[list[Sequence[Any]], list[tuple[str, str]], int]:
        """The pending records (``FIELDS`` and ``mac``, in time order) that may be sealed,
        ``(reason, id)`` of those that may not, and the newest sealed time after them. Refused:
        no MAC or one that does not verify (written or changed by someone without the secret
        key), a time more than ``seal_skew_seconds`` before the newest record sealed from the
        pending queue or after now."""
        key = pending_mac_key(self.settings.secret_bytes)
        skew = int(self.audit.seal_skew_seconds * 1_000_000)
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

    def _insert_drafts(  # noqa: PLR0917 - the append, in one place
        self, conn: Connection, drafts: Iterable[tuple[Any, ...]], n: int, keys: Keys | None,
        ids: Sequence[str] | None, seq: int, frontier: Frontier,
        tiles: list[tuple[int, int, bytes]], lines: list[bytes], ready: Callable[[], None],
    ) -> int:
        """Seal, number, hash and insert the drafts; returns the next position. Without
        SQLAlchemy per record: on PostgreSQL the rows stream into a ``COPY`` while they are made
        (the server inserts while this thread seals), on SQLite they go to one ``executemany``.
        Every line is hashed as it is made; ``ready`` (it adds the checkpoint's line) is called
        before the database takes the last of the rows (the file is written meanwhile)."""
        ids = ids if isinstance(ids, list) else fast_ids(n) if ids is None else list(ids)
        end = seq + n
        nonces = os.urandom(12 * n) if keys is not None else None
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
            seq = seal_records(drafts, ids, seq, nonces, frontier, tiles, lines, emit,
                               (self._frag_a, self._frag_b))
            if seq != end:
                raise ValueError(f"{n} drafts announced, {n - (end - seq)} given")
            ready()
            if copy_cm is not None:
                done, copy_cm = copy_cm, None
                done.__exit__(None, None, None)  # the server reports errors here
            else:
                cursor.executemany(_INSERT_SQL, params)
        except BaseException as exc:
            if copy_cm is not None:
                with contextlib.suppress(Exception):
                    copy_cm.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, self._dbapi_integrity):
                raise IntegrityError(_INSERT_SQL, None, exc) from exc
            raise
        finally:
            cursor.close()
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
def _bad_draft(i: int, draft: tuple[Any, ...]) -> TypeError:
    """The error for a draft with a column of the wrong type, naming the column."""
    if type(draft[0]) is not int:
        return TypeError(f"draft {i}: ts must be an integer, not {type(draft[0]).__name__}")
    for name, value in zip(_DRAFT_FIELDS, draft, strict=False):
        if name not in ("ts", "personal") and value is not None and type(value) is not str:
            return TypeError(f"draft {i}: {name} must be text or null, not {type(value).__name__}")
    return TypeError(f"draft {i}: a column of the wrong type")


def seal_records(  # noqa: PLR0917 - the hot loop's state
    drafts: Iterable[tuple[Any, ...]], ids: Sequence[str], seq: int, nonces: bytes | None,
    frontier: Frontier, tiles: list[tuple[int, int, bytes]], lines: list[bytes],
    emit: Callable[[tuple[Any, ...]], Any],
    fragments: tuple[dict[tuple[Any, ...], str], dict[tuple[Any, ...], str]] | None = None,
) -> int:
    """The append's loop: per draft (see ``AuditLog.append_drafts``), seal the
    personal data with the next 12 bytes of ``nonces`` (none: ``personal`` is sealed already),
    make the canonical line of ``(seq, id, *columns)`` (appended to ``lines``), hash it into
    ``frontier`` (completed subtrees of ``TILE_HEIGHTS`` go to ``tiles``) and hand the row (the
    columns of ``FIELDS``) to ``emit``. Returns the next position."""
    quote = _quote
    frag_a, frag_b = fragments if fragments is not None else ({}, {})
    heights, nodes = frontier.heights, frontier.nodes
    watched = TILE_HEIGHTS
    ad = _PERSONAL_AD
    size = frontier.size
    for i, d in enumerate(drafts):
        head7 = d[:7]
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
        tail = d[8:16]
        # The canonical line (``canonical``), put together from the JSON of each column: the
        # columns that repeat come from two small caches of ready fragments.
        key_a, key_b = d[1:7], d[8:11]
        resource, outcome, request_id, event_id, details = d[11:16]
        sealed = "null" if hx is None else f'"{hx}"'
        try:
            if type(d[0]) is not int:
                raise TypeError("ts")
            fa = frag_a.get(key_a) or _fragment(frag_a, key_a)
            fb = frag_b.get(key_b) or _fragment(frag_b, key_b)
            line = (
                f"[{seq},{quote(rid)},{d[0]},{fa},{sealed},{fb},"
                f"{'null' if resource is None else quote(resource)},"
                f"{'null' if outcome is None else quote(outcome)},"
                f"{'null' if request_id is None else quote(request_id)},"
                f"{'null' if event_id is None else quote(event_id)},"
                f"{'null' if details is None else quote(details)}]"
            ).encode()
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
        emit((seq, rid, *head7, blob, *tail))
        seq += 1
    frontier.size = size
    return seq


def checkpoint_json(cp: dict[str, Any]) -> dict[str, Any]:
    return {
        "size": cp["tree_size"], "root": bytes(cp["root"]).hex(), "ts": cp["ts"],
        "key_id": cp["key_id"], "signature": bytes(cp["signature"]).hex(),
        "frontier": bytes(cp["frontier"] or b"").hex(),
    }


def head_of(conn: Connection | Session) -> Any:
    return conn.execute(select(AuditHead).where(AuditHead.id == 1)).first()


def pending_count(database: Database) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(
            text("SELECT count(*) FROM audit_events WHERE seq IS NULL AND quarantine IS NULL")
        ).scalar_one())


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
