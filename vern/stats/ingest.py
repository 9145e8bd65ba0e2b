"""Beacon ingest: validate, cut the IP, hash the visitor, buffer, write in batches.

The order of work is the privacy guarantee: the route hands this module the *truncated* address
(see ``vern.core.ip``); the visitor hash is made from it at once and neither the address nor the
user agent goes further - the buffer holds only the page view (path, referrer host, browser class,
hash). A malformed beacon raises ``Rejected`` before anything is buffered: refused whole, counted,
never stored half.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from vern.audit.service import record as audit
from vern.core import inputs
from vern.core.config import StatsSettings, stats_settings
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import InvalidInput
from vern.core.quarantine import count, is_bad_record, quarantine, reason_of, storable
from vern.stats import rollup
from vern.stats.models import StatsDaily, StatsEvent, StatsSite, StatsVisit
from vern.stats.rollup import DIRECT, PageView
from vern.stats.salts import Salts, visitor_hash
from vern.stats.ua import classify

log = logging.getLogger("vern.stats")
WRITER = "stats.beacon"
SITE_CACHE_SECONDS = 60.0
MAX_PATH = 300
_ = StatsDaily  # the roll-up tables are written through rollup.write


class Rejected(Exception):
    """A beacon that is refused whole; ``reason`` is counted."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Beacon:
    site_id: str
    path: str
    referrer: str


def parse_beacon(body: bytes, limit: int) -> Beacon:
    """``{"s": site id, "u": page URL or path, "r": referrer URL}`` as JSON (sent as text/plain)."""
    if len(body) > limit:
        raise Rejected("too-large", 413)
    try:
        data = inputs.loads(body)
    except InvalidInput as exc:
        raise Rejected(exc.errors[0].code if exc.errors else "not-json") from None
    if not isinstance(data, dict) or set(data) - {"s", "u", "r"}:
        raise Rejected("bad-shape")
    site, url, ref = data.get("s"), data.get("u"), data.get("r", "")
    if not isinstance(site, str) or len(site) != 36 or site.count("-") != 4:
        raise Rejected("bad-site")
    if not isinstance(url, str) or not url or len(url) > 2000:
        raise Rejected("bad-url")
    if not isinstance(ref, str) or len(ref) > 2000:
        raise Rejected("bad-referrer")
    return Beacon(site, clean_path(url), referrer_host(ref))


_CONTROL = re.compile(r"[\x00-\x1f]")
_PLAIN_PATH = re.compile(r"/(?!/)[^?#\s]*")


def clean_path(url: str) -> str:
    """The path only: query strings and fragments often carry e-mails and tokens; they are cut."""
    url = url.strip()
    if _PLAIN_PATH.fullmatch(url):  # what the beacon sends: a bare path, nothing to cut
        path = url
    else:
        try:
            path = urlsplit(url).path or "/"
        except ValueError:
            raise Rejected("bad-url") from None
    if not path.startswith("/") or _CONTROL.search(path):
        raise Rejected("bad-url")
    return path[:MAX_PATH]


def referrer_host(ref: str) -> str:
    if not ref:
        return DIRECT
    try:
        host = urlsplit(ref.strip()).hostname
    except ValueError:
        raise Rejected("bad-referrer") from None
    return (host or DIRECT)[:253]


class Ingestor:
    """One per database: a bounded buffer of page views and the thread that writes them.

    The buffer holds at most ``buffer_max_events`` page views (plus the batch being written). When
    it is full, intake waits for the writer at most ``buffer_wait_seconds`` - from the event
    loop in a worker thread, so other requests go on - then the page view is dropped and counted
    (``vern_writer_dropped_total{writer="stats.beacon"}``). A batch that cannot be written goes
    back to the front of the buffer, within the bound, and is tried again; a page view the
    database refuses is set aside (``vern.core.quarantine``) and the rest of its batch written."""

    def __init__(self, database: Database, settings: StatsSettings | None = None) -> None:
        self.database = database
        self.settings = settings or stats_settings()
        self.salts = Salts(database)
        self.gap = timedelta(minutes=self.settings.visit_gap_minutes)
        self._buffer: list[PageView] = []
        self._rejects: Counter[tuple[str, str, str]] = Counter()
        self._bots: Counter[str] = Counter()  # per organisation, since the last batch
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._flush_lock = threading.Lock()
        self._thread_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._sites: dict[str, tuple[str | None, str, float]] = {}
        self.accepted = 0
        self.skipped = 0
        self.blocked = 0  # times intake had to wait for room
        self.dropped = 0  # page views dropped: the buffer stayed full
        self.quarantined = 0  # page views the database refused, set aside
        self.failures = 0
        self._overflow = False  # a wait for room timed out; no waiting until there is room
        self._last_purge = 0.0
        self._atexit = False

    # -- intake (called by the route, on the event loop) ---------------------------------------

    def site(self, site_id: str) -> tuple[str, str] | None:
        """(org id, domain) of a site, cached for a minute."""
        now = time.monotonic()
        cached = self._sites.get(site_id)
        if cached is not None and cached[2] > now:
            return (cached[0], cached[1]) if cached[0] else None
        with self.database.transaction(Scope.system("stats site lookup")) as session:
            row = session.execute(
                select(StatsSite.org_id, StatsSite.domain).where(StatsSite.id == site_id)
            ).first()
        if len(self._sites) > 10_000:
            self._sites.clear()  # bounded: random site ids cannot grow it without end
        self._sites[site_id] = (row.org_id if row else None, row.domain if row else "",
                                now + SITE_CACHE_SECONDS)
        return (row.org_id, row.domain) if row else None

    def view(self, body: bytes, truncated_ip: str, user_agent: str, *,
             now: datetime | None = None) -> PageView | None:
        """Validate one beacon and make its page view (None for a bot). Raises ``Rejected``."""
        beacon = parse_beacon(body, self.settings.max_beacon_bytes)
        found = self.site(beacon.site_id)
        if found is None:
            raise Rejected("unknown-site", 404)
        org_id, domain = found
        agent = classify(user_agent)
        if agent.bot:
            with self._lock:
                self.skipped += 1
                self._bots[org_id] += 1
            self._counted()
            return None
        at = now or utcnow()
        referrer = DIRECT if beacon.referrer == domain else beacon.referrer
        salt = self.salts.for_day(at.date().isoformat())
        return PageView(org_id, beacon.site_id, at,
                        visitor_hash(salt, beacon.site_id, truncated_ip, user_agent),
                        beacon.path, referrer, agent.browser, agent.os, agent.device)

    def accept(self, body: bytes, truncated_ip: str, user_agent: str, *,
               now: datetime | None = None) -> bool:
        """Validate and buffer one beacon, waiting for room when the buffer is full. Returns
        False when it is valid but not counted (bot)."""
        view = self.view(body, truncated_ip, user_agent, now=now)
        if view is None:
            return False
        self._add(view)
        return True

    async def accept_async(self, body: bytes, truncated_ip: str, user_agent: str) -> bool:
        """``accept`` for the event loop: a full buffer is waited for in a worker thread."""
        view = self.view(body, truncated_ip, user_agent)
        if view is None:
            return False
        if len(self._buffer) >= self.settings.buffer_max_events:
            await run_in_threadpool(self._add, view)
        else:
            self._add(view)
        return True

    def _add(self, view: PageView) -> None:
        limit = self.settings.buffer_max_events
        with self._room:
            if len(self._buffer) >= limit:
                self.blocked += 1
                self._ensure_thread()
                self._wake.set()
                deadline = time.monotonic() + self.settings.buffer_wait_seconds
                while len(self._buffer) >= limit:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._overflow:
                        # The writer did not make room in time: this page view is dropped,
                        # counted, and later ones do not wait until there is room again.
                        self._overflow = True
                        self._drop(1)
                        return
                    self._room.wait(left)
            self._buffer.append(view)
            self.accepted += 1
            size = len(self._buffer)
        if self.settings.flush_interval_ms == 0:
            self.flush()
        else:
            self._ensure_thread()
            if size >= self.settings.flush_max_events:
                self._wake.set()

    def _drop(self, n: int) -> None:
        """Count ``n`` page views dropped (a full buffer); logged without their content."""
        self.dropped += n
        count(WRITER, "dropped", n)
        if self.dropped == n or self.dropped // 1000 != (self.dropped - n) // 1000:
            log.error("statistics buffer full: page views dropped (%d so far)", self.dropped)

    def reject(self, endpoint: str, reason: str) -> None:
        with self._lock:
            self._rejects[(utcnow().date().isoformat(), endpoint, reason)] += 1
        self._counted()

    def _counted(self) -> None:
        """A count changed (a refusal, a bot): written with the next batch."""
        if self.settings.flush_interval_ms == 0:
            self.flush()
        else:
            self._ensure_thread()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # -- writing -------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write what is buffered; returns the number of page views written. Text is made
        storable first; a page view the database still refuses is set aside
        (``vern.core.quarantine``) and the rest written. When the database itself fails the batch
        goes back to the front of the buffer - within its bound, the oldest beyond it dropped
        and counted - and the error is raised."""
        with self._flush_lock:
            with self._room:
                views, self._buffer = self._buffer, []
                rejects, self._rejects = self._rejects, Counter()
                bots, self._bots = self._bots, Counter()
                self._overflow = False
                self._room.notify_all()
            if not views and not rejects and not bots:
                return 0
            views = [_storable_view(v) for v in views]
            try:
                self._store(views, rejects, bots)
            except Exception as exc:
                if not (views and is_bad_record(exc)):
                    self._keep(views, rejects, bots)
                    log.exception("statistics batch of %d page views could not be written; "
                                  "kept", len(views))
                    raise
                written, left = self._isolate(views)
                try:
                    self._store([], rejects, bots)
                except Exception:
                    self._keep([], rejects, bots)
                    log.exception("statistics counts could not be written; kept")
                if left:
                    self._keep(left, Counter(), Counter())
                return written
            return len(views)

    def _store(self, views: list[PageView], rejects: Counter[tuple[str, str, str]],
               bots: Counter[str]) -> None:
        with self.database.transaction(Scope.system("stats ingest")) as session:
            if views:
                rollup.apply(session, views, self.gap)
            rollup.count_rejects(session, dict(rejects))
            _audit_batch(session, views, bots)

    def _keep(self, views: list[PageView], rejects: Counter[tuple[str, str, str]],
              bots: Counter[str]) -> None:
        """A batch that could not be written goes back before what came meanwhile; the buffer
        stays within ``buffer_max_events`` (the oldest page views beyond it are dropped)."""
        self.failures += 1
        limit = self.settings.buffer_max_events
        with self._room:
            merged = views + self._buffer
            excess = len(merged) - limit
            if excess > 0:
                merged = merged[excess:]
                self._drop(excess)
            self._buffer = merged
            self._rejects.update(rejects)
            self._bots.update(bots)

    def _isolate(self, views: list[PageView]) -> tuple[int, list[PageView]]:
        """Write ``views`` in halves until each page view the database refuses is alone; those
        are quarantined, the others written. Returns (written, left unwritten because the
        database itself failed meanwhile)."""
        written = 0
        parts = [views]
        while parts:
            part = parts.pop()
            try:
                self._store(part, Counter(), Counter())
                written += len(part)
            except Exception as exc:
                if not is_bad_record(exc):
                    log.exception("statistics write failed while isolating a page view")
                    return written, [v for p in [part, *reversed(parts)] for v in p]
                if len(part) == 1:
                    v = part[0]
                    self.quarantined += 1
                    quarantine(self.database, WRITER, reason_of(exc), {
                        "site_id": v.site_id, "at": v.at.isoformat(), "path": v.path,
                        "referrer": v.referrer, "browser": v.browser, "os": v.os,
                        "device": v.device,
                    }, org_id=v.org_id)
                    continue
                mid = len(part) // 2
                parts.extend((part[mid:], part[:mid]))
        return written, []

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._thread_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="vern-stats-writer", daemon=True)
            self._thread.start()
            if not self._atexit:
                atexit.register(self._final_flush)
                self._atexit = True

    def _final_flush(self) -> None:
        """At shutdown: write what is still buffered; say how much could not be."""
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - the database may be gone already
            lost = len(self._buffer)
            count(WRITER, "dropped", lost)
            log.error("statistics buffer could not be written at shutdown: %d page views lost",
                      lost)

    def _run(self) -> None:
        interval = max(self.settings.flush_interval_ms, 1) / 1000
        delay = interval
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            try:
                self.flush()
                delay = interval
                if time.monotonic() - self._last_purge > 3600:
                    self._last_purge = time.monotonic()
                    purge(self.database, self.salts, self.settings)
            except Exception:  # noqa: BLE001 - the writer must outlive a bad batch
                delay = min(delay * 2, 30.0)  # the batch was kept; try again later


def _storable_view(view: PageView) -> PageView:
    """The page view with its text made storable (a lone surrogate in a path is kept as its
    percent-escaped bytes); the same object when there was nothing to change."""
    path, referrer = storable(view.path), storable(view.referrer)
    if path is view.path and referrer is view.referrer:
        return view
    return replace(view, path=path[:MAX_PATH], referrer=referrer[:253])


def _audit_batch(session: Session, views: list[PageView], bots: Counter[str]) -> None:
    """One audit record per organisation and batch instead of one per beacon request: how many
    page views (and bot hits) came in, when. No address, no user agent - there is none left."""
    per_org: dict[str, dict[str, Any]] = {}
    for v in views:
        entry = per_org.get(v.org_id)
        if entry is None:
            entry = per_org[v.org_id] = {"page_views": 0, "bots": 0, "first": v.at, "last": v.at}
        entry["page_views"] += 1
        entry["first"] = min(entry["first"], v.at)
        entry["last"] = max(entry["last"], v.at)
    for org_id, n in bots.items():
        per_org.setdefault(org_id, {"page_views": 0, "bots": 0})["bots"] = n
    for org_id, entry in per_org.items():
        details = {"page_views": entry["page_views"], "bots": entry["bots"]}
        if "first" in entry:
            details["from"] = entry["first"].isoformat(timespec="seconds")
            details["to"] = entry["last"].isoformat(timespec="seconds")
        audit(session, "stats.beacons_received", org_id=org_id, resource="stats:beacons",
              details={"new": details})


def purge(database: Database, salts: Salts, settings: StatsSettings,
          now: datetime | None = None) -> dict[str, int]:
    """Delete raw events and visits older than the raw period, and salts older than 48 hours."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.raw_days)
    with database.transaction(Scope.system("stats retention")) as session:
        events = session.execute(delete(StatsEvent).where(StatsEvent.at < cutoff))
        visits = session.execute(delete(StatsVisit).where(StatsVisit.last_at < cutoff))
    return {
        "events": int(getattr(events, "rowcount", 0) or 0),
        "visits": int(getattr(visits, "rowcount", 0) or 0),
        "salts": salts.purge(now),
    }


_ingestors: dict[int, Ingestor] = {}
_registry_lock = threading.Lock()


def ingestor_for(database: Database) -> Ingestor:
    with _registry_lock:
        found = _ingestors.get(id(database))
        if found is None or found.database is not database:
            found = Ingestor(database)
            _ingestors[id(database)] = found
        return found
