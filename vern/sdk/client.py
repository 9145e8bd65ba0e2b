"""The batching client (see ``vern.sdk``).

Policy when Vern is slow or down: batches are retried with growing pauses (at most
``max_backoff`` seconds apart) and kept in memory up to ``max_queue`` records. When that bound is
hit, ``record`` does not block the host application: the record is counted as dropped, a warning
is logged, and the next batch carries an ``sdk.records_dropped`` record with the count, so the gap
is visible in the trail itself. A batch Vern refuses (422) is sent again without the event it
named; the refused event is counted and logged.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vern.core.clientip import client_ip, parse_ip

log = logging.getLogger("vern.sdk")

Transport = Callable[[str, bytes, dict[str, str]], tuple[int, bytes]]
"""``transport(url, body, headers) -> (status, response body)``."""


def urllib_transport(timeout: float) -> Transport:
    def send(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        # S310 is wrong here: the vendor's configured https URL
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:  # noqa: S310 - configured URL
                return int(res.status), res.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    return send


@dataclass
class Stats:
    queued: int = 0
    sent: int = 0
    duplicates: int = 0
    dropped: int = 0
    refused: int = 0
    retries: int = 0
    busy_seconds: float = 0.0  # CPU time of the background thread: records, JSON, sending
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: float = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)


Raw = tuple[Any, ...]
"""A request as the middleware saw it, turned into a record by the background thread:
``(wall time, method, path, status, ms, peer, headers, actor, trusted networks)``."""


class AuditClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        timeout: float = 10.0,
        max_backoff: float = 60.0,
        transport: Transport | None = None,
    ) -> None:
        if not 1 <= batch_size <= 1000:
            raise ValueError("batch_size must be 1-1000 (Vern's limit per batch)")
        self.url = base_url.rstrip("/") + "/api/v1/audit/events"
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                         "User-Agent": "vern-sdk-python/1"}
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        self.max_queue = max_queue
        self.transport = transport or urllib_transport(timeout)
        self.stats = Stats()
        # A deque, not a Queue: appending takes no lock and wakes no thread, so the host's
        # request pays next to nothing; the sender wakes on its own schedule.
        self._items: deque[dict[str, Any] | Raw] = deque()
        self._wake = threading.Event()
        self._flushes: list[threading.Event] = []
        self._flush_lock = threading.Lock()
        self._pending_dropped = 0
        self._drop_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="vern-sdk", daemon=True)
        self._thread.start()

    # -- the host's side: never blocks ---------------------------------------------------------

    def record(
        self,
        action: str,
        *,
        actor: str | None = None,
        actor_name: str | None = None,
        resource: str | None = None,
        outcome: str = "success",
        ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
        at: datetime | None = None,
        event_id: str | None = None,
    ) -> bool:
        """Queue one record; False (and counted) when the queue is full or the client closed."""
        event: dict[str, Any] = {
            "id": event_id or uuid.uuid4().hex,
            "time": (at or datetime.now(UTC)).isoformat(),
            "action": action,
            "outcome": outcome,
        }
        for key, value in (("actor", actor), ("actor_name", actor_name), ("resource", resource),
                           ("ip", ip), ("user_agent", user_agent), ("request_id", request_id),
                           ("details", details)):
            if value is not None:
                event[key] = value
        return self._put(event)

    def record_raw(self, raw: Raw) -> bool:
        """The middleware's cheap path (see ``Raw``)."""
        return self._put(raw)

    def _put(self, item: dict[str, Any] | Raw) -> bool:
        items = self._items
        if self._closed or len(items) >= self.max_queue:
            self._dropped()
            return False
        items.append(item)
        if len(items) == self.batch_size:
            self._wake.set()
        return True

    def _dropped(self) -> None:
        self.stats.add("dropped")
        with self._drop_lock:
            self._pending_dropped += 1
            first = self._pending_dropped == 1
        if first:
            log.warning("vern audit queue full or closed: records are being dropped and counted")

    def flush(self, timeout: float = 30.0) -> bool:
        """Send everything queued so far; True when done within ``timeout``."""
        done = threading.Event()
        with self._flush_lock:
            self._flushes.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Send what is queued and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)

    def __enter__(self) -> AuditClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the background thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            with self._flush_lock:
                flushes, self._flushes = self._flushes, []
            closing = self._closed
            started = time.thread_time()
            self._drain()
            for done in flushes:
                done.set()
            if closing:
                self._drain()
            self.stats.add("busy_seconds", time.thread_time() - started)
            if closing:
                return

    def _drain(self) -> None:
        items = self._items
        while items:
            batch: list[dict[str, Any] | str] = []
            while items and len(batch) < self.batch_size:
                item = items.popleft()
                batch.append(item if isinstance(item, dict) else _event_json(item))
            self.stats.add("queued", len(batch))
            self._send_all(batch)
        with self._drop_lock:
            dropped = self._pending_dropped
        if dropped:
            self._send_all([])

    def _send_all(self, batch: list[dict[str, Any] | str]) -> None:
        with self._drop_lock:
            dropped, self._pending_dropped = self._pending_dropped, 0
        if dropped:
            batch = [*batch, {"id": uuid.uuid4().hex, "time": datetime.now(UTC).isoformat(),
                              "action": "sdk.records_dropped", "outcome": "error",
                              "details": {"count": dropped}}]
        for i in range(0, len(batch), self.batch_size):
            self._send(batch[i:i + self.batch_size])

    def _send(self, events: list[dict[str, Any] | str]) -> None:
        pause = min(0.5, self.max_backoff)
        while events:
            try:
                status, body = self.transport(self.url, _body(events), self._headers)
            except OSError as exc:
                status, body = 0, str(exc).encode()
            if 200 <= status < 300:
                try:
                    answer = json.loads(body)
                    self.stats.add("sent", int(answer.get("accepted", len(events))))
                    self.stats.add("duplicates", int(answer.get("duplicates", 0)))
                except ValueError:
                    self.stats.add("sent", len(events))
                return
            bad = {i for i in _refused_indexes(status, body) if 0 <= i < len(events)}
            if bad:
                self.stats.add("refused", len(bad))
                self.stats.last_error = body.decode(errors="replace")[:500]
                log.error("vern refused audit events %s: %s",
                          [_id_of(events[i]) for i in sorted(bad)], self.stats.last_error)
                events = [e for i, e in enumerate(events) if i not in bad]
                continue
            if status in (400, 401, 403, 404, 413, 422):
                self.stats.add("refused", len(events))
                self.stats.last_error = f"{status}: {body.decode(errors='replace')[:500]}"
                log.error("vern refused an audit batch of %d: %s", len(events),
                          self.stats.last_error)
                return
            # 5xx, 429, network: keep the batch and try again (the queue fills meanwhile).
            self.stats.add("retries")
            self.stats.last_error = f"{status}: {body.decode(errors='replace')[:200]}"
            if self._closed and pause > self.max_backoff:
                log.error("vern unreachable at shutdown; %d audit records not sent", len(events))
                self.stats.add("dropped", len(events))
                return
            time.sleep(pause)
            pause = min(pause * 2, self.max_backoff)


def _refused_indexes(status: int, body: bytes) -> list[int]:
    """The indexes of the events a 422 problem names (``events.3.time`` → 3)."""
    if status != 422:
        return []
    try:
        names = [str(e["field"]) for e in json.loads(body)["errors"]]
    except (ValueError, KeyError, TypeError):
        return []
    found = []
    for name in names:
        parts = name.split(".")
        if len(parts) >= 2 and parts[0] == "events" and parts[1].isdigit():
            found.append(int(parts[1]))
    return found


_WANTED = {b"user-agent": "user-agent", b"x-request-id": "x-request-id",
           b"forwarded": "forwarded", b"x-forwarded-for": "x-forwarded-for"}
_addresses: dict[tuple[Any, ...], str | None] = {}


def _address(peer: str, headers: dict[str, str], trusted: Any) -> str | None:
    """``client_ip`` of the request, if it is an address; made once per (peer, forwarding
    headers, proxies) - a host's clients repeat (bounded cache)."""
    key = (peer, headers.get("forwarded"), headers.get("x-forwarded-for"), tuple(trusted)) \
        if trusted else (peer,)
    if key in _addresses:
        return _addresses[key]

    ip: str | None = client_ip(peer, headers, trusted) if peer else None
    if ip is not None and parse_ip(ip) is None:
        ip = None
    if len(_addresses) > 4096:
        _addresses.clear()
    _addresses[key] = ip
    return ip


_quote = json.dumps  # the JSON string of a str (ASCII; without options no encoder is built per call)


def _event_json(raw: Raw) -> str:
    """The request's record as the JSON text of one event (written directly: a dict and
    ``json.dumps`` cost about as much again)."""
    wall, method, path, status, ms, peer, raw_headers, actor, trusted, action = raw
    headers: dict[str, str] = {}
    for key, value in raw_headers:
        # Only the headers the record uses, the last of each (as a dict of them all would).
        k = key.lower() if isinstance(key, bytes) else str(key).lower().encode("latin-1", "replace")
        name = _WANTED.get(k)
        if name is not None:
            headers[name] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    ip = _address(peer, headers, trusted) if peer else None
    text = (f'{{"id":"{os.urandom(16).hex()}","time":"{datetime.fromtimestamp(wall, UTC).isoformat()}",'
            f'"action":{_quote(str(action))},"outcome":"{outcome_of(status)}",'
            f'"resource":{_quote(str(path)[:200])},"details":{{"method":{_quote(str(method))},'
            f'"status":{int(status)},"ms":{float(ms)!r}}}')
    if actor is not None:
        text += ',"actor":' + _quote(str(actor)[:128])
    if ip:
        text += ',"ip":' + _quote(ip)
    ua = headers.get("user-agent")
    if ua:
        text += ',"user_agent":' + _quote(ua[:512])
    rid = headers.get("x-request-id")
    if rid:
        text += ',"request_id":' + _quote(rid[:64])
    return text + "}"


def _body(events: list[dict[str, Any] | str]) -> bytes:
    """The batch's JSON: events made by ``record`` are dicts, the middleware's are JSON text."""
    return ('{"events":[' + ",".join(e if isinstance(e, str) else json.dumps(e) for e in events)
            + "]}").encode()


def _id_of(event: dict[str, Any] | str) -> Any:
    return (json.loads(event) if isinstance(event, str) else event).get("id")


def outcome_of(status: int) -> str:
    if status < 400:
        return "success"
    if status in (401, 403):
        return "denied"
    return "failure" if status < 500 else "error"
