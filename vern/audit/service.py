"""Writing to the audit trail.

* ``record`` - every service function that changes something calls it inside its own transaction,
  so the change and its audit record commit or fail together. The record gets its place in the
  tamper-evident tree (``seq``) right after, when the writer seals it.
* ``record_request`` - the web middleware reports every HTTP request here. It only puts a tuple
  on a bounded queue; a background thread seals personal data, hashes, writes to the database and
  the log file in batches. When the queue is full the request waits at most
  ``VERN_AUDIT_QUEUE_WAIT_SECONDS``; then its record is dropped, counted
  (``vern_writer_dropped_total``) and logged without its content.
* The writer makes text storable (a NUL in a path is kept as ``%00``); a record the database
  still refuses is found by halving the batch, set aside (``write_quarantine`` and the day's
  ``quarantine-*.jsonl`` file in the audit log directory) and the rest written. While the
  database fails, the batch is kept and tried again.
* ``start_writer`` / ``stop_writer`` - the application lifespan; ``stop_writer`` flushes the queue
  and signs a final checkpoint; what cannot be written within ``VERN_AUDIT_STOP_GRACE_SECONDS``
  is spilled to a sealed file in the audit log directory (``vern.audit.spill``) and appended by
  the next writer that starts. Both are safe to call when nothing was started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts.models import User
from vern.audit import spill
from vern.audit.chain import (
    FIELDS,
    AuditLog,
    Keys,
    Sealer,
    canonical_details,
    log_for,
    now_us,
    pending_mac,
    pending_mac_key,
)
from vern.audit.models import AuditEvent
from vern.audit.request_records import (
    QUARANTINE_PREFIX,
    _Request,
    outcome_of,
    quarantine_file,
    quarantined_record,
    request_drafts,
)
from vern.core.config import Settings, audit_settings, get_settings
from vern.core.context import current_request
from vern.core.crypto import DataKey, keyring
from vern.core.db import Database, Scope, new_id
from vern.core.ip import truncate_ip
from vern.core.quarantine import count, is_bad_record, quarantine, reason_of, record_json, storable

log = logging.getLogger("vern.audit")

# The service's names, with those that live in vern.audit.request_records (``_Request``,
# ``outcome_of``, the quarantine file).
__all__ = [
    "QUARANTINE_PREFIX", "STATIC_PREFIX", "WRITER", "Writer", "_Request", "current_writer",
    "erase_actor", "event_row", "flush_writer", "outcome_of", "quarantine_file", "record",
    "record_request", "seal_now", "start_writer", "stop_writer", "tagged_events", "unrecorded",
    "user_key",
]

_sealers: dict[bytes, Sealer] = {}


def _sealer(settings: Settings | None = None) -> Sealer:
    settings = settings or (_writer.settings if _writer is not None else get_settings())
    secret = settings.secret_bytes
    found = _sealers.get(secret)
    if found is None:
        found = _sealers[secret] = Sealer(settings)
    return found


def record(
    session: Session,
    action: str,
    *,
    org_id: str | None,
    actor_user_id: str | None = None,
    actor_token_id: str | None = None,
    resource: str | None = None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
    actor_name: str | None = None,
) -> None:
    """Add one audit record to ``session``'s transaction.

    ``details`` holds old/new values of a change (``{"old": …, "new": …}``) and must not carry
    personal data in clear: refer to people by id. The client address and user agent of the
    current request are sealed under the actor's data key (or the month's key for anonymous
    callers) before the record is hashed. ``actor_name`` is a name given for an actor that is not
    (yet) a known user - the e-mail address typed at a failed sign-in - sealed with them.
    """
    session.add(
        AuditEvent(
            **event_row(
                session,
                action,
                org_id=org_id,
                actor_user_id=actor_user_id,
                actor_token_id=actor_token_id,
                resource=resource,
                outcome=outcome,
                details=details,
                actor_name=actor_name,
            )
        )
    )


def event_row(
    session: Session,
    action: str,
    *,
    org_id: str | None,
    actor_user_id: str | None = None,
    actor_token_id: str | None = None,
    resource: str | None = None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
    actor_name: str | None = None,
) -> dict[str, Any]:
    """The columns of one audit record, exactly as ``record`` adds it - for callers that write
    many records with one Core ``INSERT`` (``insert(AuditEvent.__table__)``) in their own
    transaction instead of through the ORM unit of work."""
    req = current_request()
    ts = now_us()
    personal: dict[str, Any] = {"key_id": None, "personal": None, "ip_index": None,
                                "net_index": None}
    ip = req.client_ip if req is not None else None
    ua = req.user_agent if req is not None else None
    if ip or ua or actor_name:
        personal = _sealer().personal_fields(
            session, ts=ts, actor_user_id=actor_user_id, org_id=org_id, actor_ref=None,
            ip=ip, ua=ua, name=actor_name[:200] if actor_name else None,
        )
    if req is not None and req.tags:
        details = {**(details or {}), **req.tags}
    row = {
        "id": new_id(),
        "seq": None,
        "ts": ts,
        "source": "vern",
        "org_id": org_id,
        "actor_user_id": actor_user_id,
        "actor_token_id": actor_token_id,
        "actor_ref": None,
        "action": storable(action)[:64],
        "resource": storable(resource)[:200] if resource else None,
        "outcome": outcome,
        "request_id": req.request_id if req else None,
        "client_event_id": None,
        "details": canonical_details(details),
        **personal,
    }
    row["mac"] = pending_mac(_mac_key(), [row[f] for f in FIELDS])
    return row


def _mac_key() -> bytes:
    settings = _writer.settings if _writer is not None else get_settings()
    return pending_mac_key(settings.secret_bytes)


# -- the background writer ----------------------------------------------------------------------


_STOP = object()
WRITER = "audit.request"


class Writer:
    """Batches request records from a bounded queue into the audit log (see module doc)."""

    def __init__(self, database: Database, settings: Settings,
                 log: AuditLog | None = None) -> None:
        self.database = database
        self.settings = settings
        self.log: AuditLog = log or log_for(database, settings)
        self.audit = self.log.audit
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=self.audit.queue_max)
        self.written = 0
        self.blocked = 0  # times a caller had to wait for room
        self.dropped = 0  # records dropped: the queue stayed full, or unwritable at shutdown
        self.quarantined = 0
        self.spilled = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="vern-audit-writer", daemon=True)
        self._stopped = threading.Event()
        self._stop_by = 0.0  # monotonic time after which a failing write is spilled
        # Set while the queue is full and a caller gave up waiting: later callers do not wait
        # again (one slow request, not one per request) until the writer has made room.
        self._overflow = False
        # Ends the writer's wait for more records early (flush, stop, a full queue); a record
        # put on the queue does not, so requests do not wake the writer one by one.
        self._hurry = threading.Event()

    def start(self) -> None:
        try:
            self._prepare_keys()
        except Exception:
            log.exception("could not prepare the month's audit key (done at the next write)")
        self._thread.start()

    def _prepare_keys(self) -> None:
        """Make this month's and next month's anonymous-caller keys now, outside any request."""
        sealer = self.log.sealer
        now = now_us()
        with self.database.transaction(Scope.system("audit keys")) as session:
            for ts in (now, now + 32 * 86_400 * 1_000_000):
                sealer.key_for(session, sealer.anon_subject(ts))

    def put(self, item: _Request) -> None:
        """Queue one record. A full queue is waited for at most ``queue_wait_seconds`` (once
        while it stays full); then the record is dropped, counted and logged without its
        content - a request never hangs on the audit writer."""
        try:
            self.queue.put_nowait(item)
            self._overflow = False
            return
        except queue.Full:
            pass
        self.blocked += 1
        self._hurry.set()
        if not self._overflow and not self._stopped.is_set():
            try:
                self.queue.put(item, timeout=self.audit.queue_wait_seconds)
                return
            except queue.Full:
                self._overflow = True
        self.dropped += 1
        count(WRITER, "dropped")
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.error("audit queue full: request records dropped (%d so far)", self.dropped)

    def _run(self) -> None:
        try:
            self._take_spilled()
        except Exception:
            log.exception("audit writer: spilled records could not be taken in (kept on disk)")
        last_tick = time.monotonic()
        month = time.strftime("%Y-%m", time.gmtime())
        stop = False
        while not stop:
            batch: list[_Request] = []
            flushes: list[_Flush] = []
            stop = self._collect(batch, flushes)
            tick = time.monotonic() - last_tick >= max(self.audit.flush_seconds, 1.0)
            try:
                work = bool(batch or flushes or stop or (tick and self.log.needs_work()))
            except Exception:
                log.exception("audit writer: the database does not answer")
                work = bool(batch)
            if work:
                self._write(batch, force_checkpoint=stop)
                last_tick = time.monotonic()
            elif tick:
                last_tick = time.monotonic()
            if tick and time.strftime("%Y-%m", time.gmtime()) != month:
                month = time.strftime("%Y-%m", time.gmtime())
                try:
                    self._prepare_keys()
                except Exception:
                    log.exception("could not prepare the month's audit key")
            for f in flushes:
                f.done.set()

    def _collect(self, batch: list[_Request], flushes: list[_Flush]) -> bool:
        """Take the next batch off the queue; True when the writer is to stop. Group commit:
        records that arrive within ``linger_seconds`` of the first go into the same append (one
        transaction, one sync); a flush or stop ends the wait."""
        try:
            item = self.queue.get(timeout=self.audit.flush_seconds)
            deadline = time.monotonic() + self.audit.linger_seconds
            while True:
                if item is _STOP:
                    return True
                if isinstance(item, _Flush):
                    flushes.append(item)
                    return False
                batch.append(item)
                if len(batch) >= self.audit.batch_max:
                    return False
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    left = deadline - time.monotonic()
                    if left > 0 and not self._stopped.is_set():
                        # sleep out the window, then take what came meanwhile
                        self._hurry.wait(left)
                        self._hurry.clear()
                    item = self.queue.get_nowait()
        except queue.Empty:
            # Stopping with a full queue may leave no room for the stop mark: an empty queue
            # after the stop is the end as well.
            return self._stopped.is_set() and not batch

    def _append(self, batch: list[_Request], force_checkpoint: bool) -> None:
        drafts, keys = self._drafts(batch)
        result = self.log.append_drafts(drafts, keys, force_checkpoint=force_checkpoint)
        self.written += len(drafts)
        if result.more_pending:
            try:  # the batch is stored: a failure here must not append it again
                self.log.seal_pending(force_checkpoint=force_checkpoint)
            except Exception:
                log.exception("sealing records of other transactions failed (done later)")

    def _write(self, batch: list[_Request], *, force_checkpoint: bool) -> None:
        """Append ``batch``. A record the database refuses for what it holds is set aside
        (``_isolate``) and the rest written; while the database itself fails the batch is kept
        and tried again - after a stop, until ``stop_grace_seconds``, then spilled to disk."""
        delay = 0.1
        while True:
            try:
                self._append(batch, force_checkpoint)
                return
            except Exception as exc:
                if batch and is_bad_record(exc):
                    batch = self._isolate(batch, force_checkpoint)
                    if not batch:
                        return
                else:
                    log.exception("audit write failed; retrying (%d records kept in memory)",
                                  len(batch))
                self.failures += 1
            if self._stopped.is_set() and time.monotonic() >= self._stop_by:
                self._spill(batch)
                return
            self._stopped.wait(delay)
            delay = min(delay * 2, 5.0)

    def _isolate(self, batch: list[_Request], force_checkpoint: bool) -> list[_Request]:
        """Append ``batch`` in halves until the records the database refuses are found alone;
        each is quarantined (``_quarantine``), every other is written. Returns the records left
        unwritten because the database itself failed meanwhile (tried again by ``_write``)."""
        parts = [batch]
        while parts:
            part = parts.pop()
            try:
                self._append(part, force_checkpoint)
            except Exception as exc:
                if not is_bad_record(exc):
                    log.exception("audit write failed while isolating a record")
                    return [r for p in [part, *reversed(parts)] for r in p]
                if len(part) == 1:
                    self._quarantine(part[0], exc)
                    continue
                mid = len(part) // 2
                parts.extend((part[mid:], part[:mid]))
        return []

    def _quarantine(self, r: _Request, exc: BaseException) -> None:
        """Set one refused record aside: a line in the day's quarantine file in the audit log
        directory and a row in ``write_quarantine`` - both without the address and user agent
        (the address's blind index stands in for it)."""
        self.quarantined += 1
        reason = reason_of(exc)
        record = quarantined_record(r, self.log.sealer)
        line = record_json({"quarantined": record, "reason": reason, "writer": WRITER})
        try:
            path = quarantine_file(self.log.directory)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode() + b"\n")
                if self.audit.fsync_files:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            log.exception("the audit quarantine file could not be written")
        quarantine(self.database, WRITER, reason, record, org_id=r.org_id)

    def _spill(self, batch: list[_Request]) -> None:
        """At shutdown, with the database failing: ``batch`` and whatever is still queued go to
        a spill file (taken in at the next start); said in the log with the count."""
        records = list(batch)
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Request):
                records.append(item)
            elif isinstance(item, _Flush):
                item.done.set()
        if not records:
            log.error("audit writer stopped before its final checkpoint could be signed")
            return
        try:
            path = spill.write(self.log.directory, self.settings.secret_bytes,
                               [asdict(r) for r in records])
        except Exception:
            self.dropped += len(records)
            count(WRITER, "dropped", len(records))
            log.exception("audit writer stopped: %d request records could not be written or "
                          "spilled and are lost", len(records))
            return
        self.spilled += len(records)
        log.error("audit writer stopped with the database failing: %d request records spilled "
                  "to %s, written at the next start", len(records), path.name)

    def _take_spilled(self) -> None:
        """Append the records an earlier process spilled (see ``vern.audit.spill``)."""
        for path in spill.take(self.log.directory):
            records = []
            for item in spill.read(path, self.settings.secret_bytes):
                try:
                    records.append(_Request(**item))
                except TypeError:
                    log.error("audit spill %s: a record of an unknown shape was skipped",
                              path.name)
            step = self.audit.batch_max
            for i in range(0, len(records), step):
                self._write(records[i:i + step], force_checkpoint=False)
            spill.done(path)
            if records:
                log.warning("audit writer took in %d spilled request records from %s",
                            len(records), path.name)

    def _drafts(self, batch: list[_Request]) -> tuple[list[tuple[Any, ...]], Keys | None]:
        """``request_drafts`` of ``batch`` with this writer's sealer and database."""
        return request_drafts(batch, self.log.sealer, self.database)

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued and stop; while the database fails, records are spilled to disk
        after ``stop_grace_seconds`` (at most ``timeout``). Never waits for room on the queue."""
        self._stop_by = time.monotonic() + min(self.audit.stop_grace_seconds, timeout / 2)
        self._stopped.set()
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self.queue.put_nowait(_STOP)
            self._hurry.set()
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("audit writer did not stop within %.0f s; %d request records were "
                          "still queued", timeout, self.queue.qsize())

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is written (tests, shutdown)."""
        if not self._thread.is_alive():
            return
        done = threading.Event()
        try:
            self.queue.put(_Flush(done), timeout=timeout)
        except queue.Full:
            return
        self._hurry.set()
        done.wait(timeout)


@dataclass
class _Flush:
    done: threading.Event


_writer: Writer | None = None
_writer_lock = threading.Lock()
unrecorded = 0  # requests reported while no writer was running


def start_writer(database: Database, settings: Settings) -> None:
    """Start the background writer for this database (stops one already running)."""
    global _writer  # noqa: PLW0603 - one writer per process, owned by the app lifespan
    with _writer_lock:
        if _writer is not None:
            _writer.stop()
        _writer = Writer(database, settings)
        _writer.start()


def stop_writer() -> None:
    """Flush what is queued, sign a final checkpoint, stop. Safe when nothing was started."""
    global _writer  # noqa: PLW0603 - one writer per process
    with _writer_lock:
        if _writer is None:
            return
        _writer.stop()
        _writer = None


def current_writer() -> Writer | None:
    return _writer


def flush_writer(timeout: float = 10.0) -> None:
    """Wait until every request reported so far is in the log (tests and the CLI)."""
    if _writer is not None:
        _writer.flush(timeout)


STATIC_PREFIX = "/static/"


def record_request(
    *,
    method: str,
    path: str,
    status: int,
    actor_user_id: str | None,
    actor_token_id: str | None,
    org_id: str | None,
    client_ip: str | None,
    user_agent: str | None,
    request_id: str | None,
    duration_ms: float,
    tags: dict[str, str] | None = None,
) -> None:
    """Queue one HTTP request's record (called by the web middleware after the response).

    Static files are left out unless ``VERN_AUDIT_STATIC_FILES`` is on, and then recorded with
    the truncated client address, as the statistics use it (they are public assets that website
    visitors may fetch)."""
    global unrecorded  # noqa: PLW0603 - the process's count of requests not recorded
    if path.startswith(STATIC_PREFIX):
        if not audit_settings().static_files:
            return
        if client_ip:
            client_ip = truncate_ip(client_ip)
    writer = _writer
    if writer is None:
        unrecorded += 1
        return
    writer.put(_Request(now_us(), method, path, status, actor_user_id, actor_token_id, org_id,
                        client_ip, user_agent, request_id, duration_ms, tags or None))


def seal_now(database: Database, settings: Settings, *, checkpoint: bool = True) -> int:
    """Seal records written in other transactions and sign a checkpoint (CLI, worker, tests).
    Returns the tree size."""
    result = log_for(database, settings).seal_pending(force_checkpoint=checkpoint)
    return result.last_seq + 1


def user_key(session: Session, user_id: str) -> str | None:

    return session.scalar(select(User.key_id).where(User.id == user_id))


def erase_actor(session: Session, *, org_id: str | None, actor_refs: list[str]) -> int:
    """Crypto-shred the personal fields (address, user agent, name) of the audit records of a
    product's actor known by ``actor_refs`` (their user id, e-mail) in ``org_id``: the key they
    were sealed under is destroyed in the caller's transaction. The records themselves, their
    hashes and the Merkle tree stay, so the trail still verifies; later records of the same
    actor are sealed under the month's key. Returns how many keys were destroyed."""

    sealer = _sealer()
    refs = sorted({sealer.actor_subject(org_id, ref) for ref in actor_refs if ref})
    if not refs:
        return 0
    keys = list(session.scalars(select(DataKey.id).where(
        DataKey.subject_ref.in_(refs), DataKey.destroyed_at.is_(None))))
    for key_id in keys:
        keyring().shred(session, key_id)
    return len(keys)


def tagged_events(session: Session, *, org_id: str, tag: str, value: str,
                  limit: int = 500) -> list[dict[str, Any]]:
    """Records of ``org_id``'s trail whose details carry ``tag`` = ``value`` (set for a whole
    request through ``RequestContext.tags``), newest first: what vendor staff did under one
    access grant. Personal fields stay sealed; ids, actions, resources and times only."""
    needle = canonical_details({tag: value})
    assert needle is not None
    inner = needle[1:-1]  # '"tag":"value"', as every canonical form containing it writes it
    rows = session.scalars(
        select(AuditEvent).where(AuditEvent.org_id == org_id,
                                 AuditEvent.details.contains(inner, autoescape=True))
        .order_by(AuditEvent.ts.desc()).limit(limit))
    found = []
    for row in rows:
        details = json.loads(row.details) if row.details else {}
        found.append({
            "id": row.id, "ts": row.ts,
            "at": datetime.fromtimestamp(row.ts / 1_000_000, UTC).isoformat(),
            "action": row.action, "resource": row.resource,
            "outcome": row.outcome, "actor_user_id": row.actor_user_id,
            "method": details.get("method"), "status": details.get("status"),
        })
    return found
