"""Daily salts for visitor hashes: one random secret per UTC day, deleted 48 hours after it was made.

A visitor is ``HMAC-SHA256(salt of the day, site | truncated IP | user agent)``. The same person on
the same site is one visitor within a day; across days, and once the salt is gone, nobody - not
the vendor, not Vern - can link the hashes to each other or to a person.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from vern.core.db import Database, Scope, utcnow
from vern.stats.models import StatsSalt

SALT_LIFETIME = timedelta(hours=48)


class Salts:
    """The salts of one database, cached in memory."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def for_day(self, day: str) -> bytes:
        found = self._cache.get(day)
        if found is not None:
            return found
        with self._lock:
            found = self._cache.get(day)
            if found is None:
                found = self._load_or_create(day)
                self._cache = {d: s for d, s in self._cache.items() if d >= day} | {day: found}
            return found

    def _load_or_create(self, day: str) -> bytes:
        for _attempt in range(3):
            with self.database.transaction(Scope.system("stats salt")) as session:
                salt = session.scalar(select(StatsSalt.salt).where(StatsSalt.day == day))
                if salt is not None:
                    return bytes(salt)
            try:
                with self.database.transaction(Scope.system("stats salt")) as session:
                    fresh = secrets.token_bytes(32)
                    session.add(StatsSalt(day=day, salt=fresh))
                return fresh
            except IntegrityError:
                continue  # another process made it first; read theirs
        raise RuntimeError("could not create the salt of the day")

    def purge(self, now: datetime | None = None) -> int:
        """Delete every salt older than 48 hours (from the database and from memory)."""
        cutoff = (now or utcnow()) - SALT_LIFETIME
        with self.database.transaction(Scope.system("stats salt purge")) as session:
            gone = session.scalars(select(StatsSalt.day).where(StatsSalt.created_at < cutoff)).all()
            session.execute(delete(StatsSalt).where(StatsSalt.created_at < cutoff))
        with self._lock:
            for day in gone:
                self._cache.pop(day, None)
        return len(gone)

    def forget_cached(self) -> None:
        with self._lock:
            self._cache.clear()


def visitor_hash(salt: bytes, site_id: str, truncated_ip: str, user_agent: str) -> str:
    message = f"{site_id}\x00{truncated_ip}\x00{user_agent}".encode()
    return hmac.new(salt, message, hashlib.sha256).hexdigest()[:32]
