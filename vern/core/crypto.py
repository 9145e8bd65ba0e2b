"""Personal data at rest: per-person data keys, the ``Encrypted`` column type, crypto-shredding.

Every person (a user of Vern, or a data subject known to it) gets a random 256-bit data key. Columns
that hold personal data use ``Encrypted``: AES-256-GCM under that person's key, with the column's
name as associated data so that a value cannot be moved to another column. Data keys are stored
wrapped (AES-256-GCM) by the master key from settings, in ``data_keys`` - a table of its own that the
backup tooling keeps out of data backups. Destroying a person's key (``shred``) makes every value
sealed under it unreadable everywhere, backups included.

Ciphertext layout: ``0x01 | key id (16 bytes) | nonce (12 bytes) | ciphertext+tag``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, LargeBinary, String, event, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from vern.core.db import Base, UTCDateTime, new_id, utcnow

VERSION = 1
_HEADER = 1 + 16 + 12


class DataKey(Base):
    """One person's data key, wrapped by the master key. Kept out of data backups."""

    __tablename__ = "data_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    subject_ref: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class KeyDestroyed(Exception):
    """The data key was shredded: the value is gone for good."""


class KeyUnavailable(Exception):
    """No keyring is installed, or the key id is unknown."""


@dataclass(frozen=True)
class PII:
    """A personal value and the key it is (to be) sealed under. ``value`` is None once shredded."""

    key_id: str
    value: str | None

    @property
    def shredded(self) -> bool:
        return self.value is None

    def __str__(self) -> str:
        return self.value if self.value is not None else "[erased]"


class _Unwrapped:
    """A cached data key: until when, and its AES-GCM object."""

    __slots__ = ("aead", "until")

    def __init__(self, until: float, raw: bytes) -> None:
        self.until = until
        self.aead = AESGCM(raw)


class KeyRing:
    """Creates, unwraps (with a bounded cache) and destroys data keys.

    Unwrapped keys are cached for at most ``cache_seconds``: another process (a second web
    worker, the job worker) that still holds a key shredded elsewhere loses it within that time.

    ``cipher`` and ``cached_ciphers`` hand out ``cryptography``'s ``AESGCM``.
    """

    def __init__(
        self,
        engine: Engine,
        master_key: bytes,
        *,
        cache_size: int = 10_000,
        cache_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._engine = engine
        self._master = AESGCM(master_key)
        self._cache: OrderedDict[str, _Unwrapped] = OrderedDict()
        self._cache_size = cache_size
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._shredding: set[str] = set()  # destroyed in a transaction not yet committed
        # Changes whenever a key is destroyed or the cache emptied: who keeps keys of their
        # own from this ring (the audit trail's resolved subjects) looks them up again.
        self.generation = 0

    def create(self, session: Session, subject_ref: str | None = None) -> str:
        """A new key, added to ``session`` (so it commits or rolls back with the caller's work)."""
        key_id = new_id()
        raw = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        wrapped = nonce + self._master.encrypt(nonce, raw, uuid.UUID(key_id).bytes)
        session.add(DataKey(id=key_id, subject_ref=subject_ref, wrapped_key=wrapped))
        session.flush()  # rows sealed under the key reference it
        self._remember(key_id, raw)
        return key_id

    def for_subject(self, session: Session, subject_ref: str) -> str:
        """The key of a subject known by a reference (e.g. a keyed hash of an identity)."""
        found = session.execute(
            select(DataKey.id, DataKey.destroyed_at).where(DataKey.subject_ref == subject_ref)
        ).first()
        if found is not None:
            return found.id
        return self.create(session, subject_ref)

    def for_subjects(self, session: Session, subject_refs: list[str]) -> dict[str, str]:
        """``for_subject`` for many references at once: one look-up, one insert of the keys
        that are missing (a batch of audit records from many new people)."""
        found: dict[str, str] = {}
        for i in range(0, len(subject_refs), 500):
            chunk = subject_refs[i:i + 500]
            found.update((str(ref), str(key_id)) for key_id, ref in session.execute(
                select(DataKey.id, DataKey.subject_ref).where(DataKey.subject_ref.in_(chunk))))
        made = []
        for ref in subject_refs:
            if ref in found:
                continue
            key_id = new_id()
            raw = AESGCM.generate_key(bit_length=256)
            nonce = os.urandom(12)
            wrapped = nonce + self._master.encrypt(nonce, raw, uuid.UUID(key_id).bytes)
            made.append(DataKey(id=key_id, subject_ref=ref, wrapped_key=wrapped))
            found[ref] = key_id
            self._remember(key_id, raw)
        if made:
            session.add_all(made)
            session.flush()
        return found

    def shred(self, session: Session, key_id: str) -> None:
        """Destroy the key in the caller's transaction; every value sealed under it is lost.

        Until that transaction ends the key counts as destroyed in this process (it could
        otherwise be unwrapped again from the still committed row and cached); after the
        commit it is dropped from the cache once more, after a rollback it is usable again."""
        session.execute(
            update(DataKey)
            .where(DataKey.id == key_id)
            .values(wrapped_key=None, destroyed_at=utcnow())
        )
        session.info.setdefault("vern_shredded", []).append((self, key_id))
        with self._lock:
            self._shredding.add(key_id)
            self._cache.pop(key_id, None)
            self.generation += 1

    def _shred_ended(self, key_id: str, *, committed: bool) -> None:
        with self._lock:
            self._shredding.discard(key_id)
            if committed:
                self._cache.pop(key_id, None)
            self.generation += 1

    def cipher(self, key_id: str) -> Any:
        """The key's ``AESGCM``."""
        with self._lock:
            if key_id in self._shredding:
                raise KeyDestroyed(key_id)
            found = self._cache.get(key_id)
            if found is not None:
                if found.until > self._clock():
                    self._cache.move_to_end(key_id)
                    return found.aead
                del self._cache[key_id]
        with self._engine.connect() as conn:
            wrapped = conn.execute(
                select(DataKey.wrapped_key, DataKey.destroyed_at).where(DataKey.id == key_id)
            ).first()
        if wrapped is None:
            raise KeyUnavailable(f"unknown data key {key_id}")
        if wrapped.wrapped_key is None:
            raise KeyDestroyed(key_id)
        blob = wrapped.wrapped_key
        try:
            raw = self._master.decrypt(blob[:12], blob[12:], uuid.UUID(key_id).bytes)
        except InvalidTag as exc:
            raise KeyUnavailable(
                f"data key {key_id} cannot be unwrapped: wrong master key (VERN_MASTER_KEY)"
            ) from exc
        return self._remember(key_id, raw).aead

    def cached_ciphers(self, key_ids: Iterable[str]) -> dict[str, Any]:
        """The ciphers of those keys that are unwrapped in the cache and not being destroyed,
        under one lock (a batch of records from many people); the rest go through ``cipher``."""
        now = self._clock()
        out: dict[str, Any] = {}
        with self._lock:
            cache, shredding = self._cache, self._shredding
            for key_id in key_ids:
                found = cache.get(key_id)
                if found is not None and found.until > now and key_id not in shredding:
                    cache.move_to_end(key_id)
                    out[key_id] = found.aead
        return out

    def forget_cached(self) -> None:
        with self._lock:
            self._cache.clear()
            self.generation += 1

    def now(self) -> float:
        """The clock the cache's times are on."""
        return self._clock()

    def cached_until(self, key_ids: Iterable[str]) -> float:
        """When the first of these keys leaves the cache (``now()``'s clock); ``now()`` when
        one of them is not cached (or is being destroyed)."""
        with self._lock:
            until = float("inf")
            for key_id in key_ids:
                found = self._cache.get(key_id)
                if found is None or key_id in self._shredding:
                    return self._clock()
                until = min(until, found.until)
        return until

    def _remember(self, key_id: str, raw: bytes) -> _Unwrapped:
        entry = _Unwrapped(self._clock() + self._cache_seconds, raw)
        with self._lock:
            self._cache[key_id] = entry
            self._cache.move_to_end(key_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return entry

    # -- sealing -------------------------------------------------------------------------------

    def seal(self, key_id: str, plaintext: str, context: str = "") -> bytes:
        nonce = os.urandom(12)
        kid = uuid.UUID(key_id).bytes
        body = self.cipher(key_id).encrypt(nonce, plaintext.encode(), context.encode() + kid)
        return bytes([VERSION]) + kid + nonce + body

    def open(self, blob: bytes, context: str = "") -> str:
        key_id, kid, nonce, body = _split(blob)
        try:
            data = self.cipher(key_id).decrypt(nonce, body, context.encode() + kid)
        except InvalidTag as exc:
            raise ValueError("ciphertext was altered or sealed for another column") from exc
        return data.decode()


@event.listens_for(Session, "after_commit")
def _shred_committed(session: Session) -> None:
    for ring, key_id in session.info.pop("vern_shredded", ()):
        ring._shred_ended(key_id, committed=True)


@event.listens_for(Session, "after_rollback")
def _shred_rolled_back(session: Session) -> None:
    for ring, key_id in session.info.pop("vern_shredded", ()):
        ring._shred_ended(key_id, committed=False)


def _split(blob: bytes) -> tuple[str, bytes, bytes, bytes]:
    if len(blob) < _HEADER + 16 or blob[0] != VERSION:
        raise ValueError("not a Vern ciphertext")
    kid = blob[1:17]
    return str(uuid.UUID(bytes=kid)), kid, blob[17:29], blob[29:]


def key_id_of(blob: bytes) -> str:
    return _split(blob)[0]


_keyring: KeyRing | None = None


def install_keyring(keyring: KeyRing | None) -> None:
    global _keyring  # noqa: PLW0603 - one keyring per process, set by the app factory or CLI
    _keyring = keyring


def keyring() -> KeyRing:
    if _keyring is None:
        raise KeyUnavailable("no keyring installed")
    return _keyring


class Encrypted(TypeDecorator[PII]):
    """A column of personal data sealed under its person's data key (see module doc)."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def __repr__(self) -> str:
        return f"Encrypted({self.context!r})"

    def process_bind_param(self, value: PII | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        if not isinstance(value, PII):
            raise TypeError(f"{self.context}: expected PII(key_id, value), got {type(value)}")
        if value.value is None:
            raise KeyDestroyed(f"{self.context}: cannot store an erased value")
        return keyring().seal(value.key_id, value.value, self.context)

    def process_result_value(self, value: Any, dialect: Dialect) -> PII | None:
        if value is None:
            return None
        blob = bytes(value)
        try:
            return PII(key_id_of(blob), keyring().open(blob, self.context))
        except KeyDestroyed:
            return PII(key_id_of(blob), None)


def blind_index(secret: bytes, value: str, purpose: str) -> str:
    """A keyed hash for looking a value up without storing it (e.g. an e-mail at sign-in)."""
    normalised = value.strip().casefold()
    digest = hmac.new(secret, f"{purpose}\x00{normalised}".encode(), hashlib.sha256)
    return digest.hexdigest()
