"""Request rate limits over the ``limits`` library's async API, shared through Redis when set.

Keys: the API is limited per identity (the API token, or the person behind a session) once the
caller is resolved, and per source network (``network_of``: the /64 of an IPv6 address, the
address itself for IPv4) for every request that resolves to no one — no credentials, a bad or
malformed token, a junk header. Sign-in is limited per source network.

When the shared storage (``VERN_RATE_LIMIT_STORAGE_URL``, e.g. Redis) does not answer, every
limit falls back to a per-process in-memory limiter of the same size: requests are still limited
(per process instead of across processes), never answered with a 500. Each failure is logged
(without keys: they name networks and accounts) and counted in
``vern_rate_limit_storage_errors_total``; ``vern_rate_limit_degraded`` is 1 while the fallback is
in use. The shared storage is tried again ``retry_seconds`` after a failure, and sharing resumes
as soon as it answers.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem
from limits import parse as parse_limit
from limits import storage as limit_storage
from limits.aio import storage as aio_storage
from limits.aio import strategies
from limits.errors import StorageError
from prometheus_client import CollectorRegistry, Counter, Gauge

from vern.core.extras import require_driver

log = logging.getLogger("vern.core.ratelimit")

# A shared storage that does not answer within this time counts as down (loopback or the same
# data centre answers in milliseconds); a request never waits longer than this for a limit.
STORAGE_TIMEOUT_SECONDS = 0.5
RETRY_SECONDS = 5.0


def network_of(ip: str | None) -> str:
    """The source network a limit or lock is kept for: an IPv6 address's /64 (one customer
    line or subnet; the rest of the address is free for its owner to change), an IPv4 address
    itself (/32), an IPv4-mapped IPv6 address as IPv4. Anything else is kept as given."""
    if not ip:
        return "unknown"
    try:
        addr = ipaddress.ip_address(ip.strip().split("%", 1)[0])
    except ValueError:
        return ip[:64]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return f"{addr.ipv4_mapped}/32"
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return f"{addr}/32"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # seconds, at least 1 when not allowed
    shared: bool  # counted in the shared storage (False: the per-process fallback)


def _async_url(url: str) -> str:
    return url if url.startswith("async+") else f"async+{url}"


def _storage(url: str) -> tuple[aio_storage.Storage, Any]:
    async_url = _async_url(url)
    require_driver(async_url, "VERN_RATE_LIMIT_STORAGE_URL")
    if async_url.startswith(("async+redis://", "async+rediss://")):
        # The Redis client is the ``vern[redis]`` extra: imported only when it is used.
        from redis.asyncio import ConnectionPool
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # Our own pool (closed at shutdown), without client-side retries and back-off: a limit
        # must answer now, or fall back.
        pool = ConnectionPool.from_url(
            async_url.removeprefix("async+"),
            socket_timeout=STORAGE_TIMEOUT_SECONDS,
            socket_connect_timeout=STORAGE_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        storage = aio_storage.RedisStorage(
            async_url, wrap_exceptions=True, implementation="redispy",
            connection_pool=pool,  # type: ignore[arg-type]
        )
        return storage, pool
    found = limit_storage.storage_from_string(async_url, wrap_exceptions=True)
    assert isinstance(found, aio_storage.Storage)
    return found, None


class Limiter:
    """Sliding-window limits in the configured storage, with the in-memory fallback."""

    def __init__(self, storage_url: str, *, registry: CollectorRegistry | None = None,
                 retry_seconds: float = RETRY_SECONDS) -> None:
        self.storage_url = storage_url
        self.shared_storage = not _async_url(storage_url).startswith("async+memory")
        storage, self._pool = _storage(storage_url)
        self.primary = strategies.SlidingWindowCounterRateLimiter(storage)
        self.fallback = strategies.SlidingWindowCounterRateLimiter(aio_storage.MemoryStorage())
        self.retry_seconds = retry_seconds
        self.down_until = 0.0
        self.registry = registry
        self.errors = Counter(
            "vern_rate_limit_storage_errors", "Rate-limit storage failures (fell back to memory)",
            registry=registry,
        ) if registry is not None else None
        self.degraded = Gauge(
            "vern_rate_limit_degraded", "1 while rate limits are kept per process in memory",
            registry=registry,
        ) if registry is not None else None
        self._parsed: dict[str, RateLimitItem] = {}

    async def aclose(self) -> None:
        """Close the shared storage's connections (at shutdown, in the serving event loop)."""
        if self._pool is not None:
            await self._pool.disconnect()

    def limit(self, text: str) -> RateLimitItem:
        item = self._parsed.get(text)
        if item is None:
            item = self._parsed[text] = parse_limit(text)
        return item

    @property
    def is_degraded(self) -> bool:
        return self.down_until > 0.0

    async def hit(self, limit: str, namespace: str, key: str) -> Verdict:
        """Count one request for ``key`` in ``namespace`` against ``limit`` ("10/minute")."""
        item = self.limit(limit)
        if self.down_until and time.monotonic() < self.down_until:
            return await self._hit(self.fallback, item, namespace, key, shared=False)
        try:
            verdict = await self._hit(self.primary, item, namespace, key,
                                      shared=self.shared_storage)
        except (StorageError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return await self._hit(self.fallback, item, namespace, key, shared=False)
        if self.down_until:
            self.down_until = 0.0
            if self.degraded is not None:
                self.degraded.set(0)
            log.warning("rate-limit storage answers again; limits are shared again")
        return verdict

    def _failed(self, exc: BaseException) -> None:
        cause = getattr(exc, "storage_error", exc)
        if not self.down_until:
            log.warning("rate-limit storage not reachable (%s); limits are kept per process "
                        "in memory until it answers", type(cause).__name__)
        self.down_until = time.monotonic() + self.retry_seconds
        if self.errors is not None:
            self.errors.inc()
        if self.degraded is not None:
            self.degraded.set(1)

    @staticmethod
    async def _hit(limiter: strategies.RateLimiter, item: RateLimitItem, namespace: str,
                   key: str, *, shared: bool) -> Verdict:
        if await limiter.hit(item, namespace, key):
            return Verdict(True, 0, shared)
        stats = await limiter.get_window_stats(item, namespace, key)
        return Verdict(False, max(1, int(stats.reset_time - time.time()) + 1), shared)
