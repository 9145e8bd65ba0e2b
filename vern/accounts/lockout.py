"""Counts of failed attempts and the temporary, growing locks they lead to (sign-in, password
change, second factor). The time is given by the caller, which reads its own clock."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from vern.accounts.models import AuthThrottle
from vern.core.config import Settings
from vern.core.crypto import blind_index

FAILURE_MEMORY = timedelta(hours=24)


def throttle_key(settings: Settings, kind: str, value: str) -> str:
    """The key of one count of failures: its kind and a keyed hash of what it counts."""
    return f"{kind}:" + blind_index(settings.secret_bytes, value, f"throttle-{kind}")[:60]


def locked_for(row: AuthThrottle | None, now: datetime) -> int:
    """Seconds until ``row``'s lock ends (rounded up), 0 when it is not locked at ``now``."""
    if row is None or row.locked_until is None:
        return 0
    left = (row.locked_until - now).total_seconds()
    return max(0, math.ceil(left))


def register_failure(
    session: Session, key: str, threshold: int, base: timedelta, cap: timedelta, *,
    now: datetime,
) -> AuthThrottle:
    """Count one failure at ``now``; the ``threshold``-th starts a lock that doubles from
    ``base`` with each lock, up to ``cap``. Counts older than ``FAILURE_MEMORY`` start over."""
    row = session.get(AuthThrottle, key)
    if row is None:
        row = AuthThrottle(key=key, failures=0, locks=0, updated_at=now)
        session.add(row)
    elif now - row.updated_at > FAILURE_MEMORY:
        row.failures, row.locks = 0, 0
    row.failures += 1
    row.updated_at = now
    if row.failures >= threshold:
        # The exponent is bounded: a long attack must not overflow the arithmetic (which
        # would fail the request before the lock is stored, and so switch locking off).
        row.locked_until = now + min(cap, base * (2 ** min(row.locks, 20)))
        row.locks += 1
        row.failures = 0
    return row
