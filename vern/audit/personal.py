"""A record's personal data (client address, user agent, a name): sealed under the person's
data key before the record is hashed, searchable by blind indexes only.

``Sealer`` seals one record's fields and computes the indexes; ``resolve_keys`` finds the keys of
a whole batch before the append lock is taken (``Keys``); ``open_personal`` reads the fields back,
or says they were erased once the person's key was shredded.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vern.accounts.models import User
from vern.audit.canonical import _PERSONAL_AD, PERSONAL_CONTEXT, _dumps, us_to_datetime
from vern.core.config import Settings
from vern.core.crypto import KeyDestroyed, KeyRing, KeyUnavailable, keyring
from vern.core.db import Database, Scope


def network_of(ip: str) -> str:
    parts = ip.split(".")
    if (len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts)
            and all(int(p) <= 255 for p in parts)):
        return f"{parts[0]}.{parts[1]}.{parts[2]}.0/24"
    addr = ipaddress.ip_address(ip)
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def personal_plaintext(ip: str | None, ua: str | None, name: str | None) -> bytes | None:
    """What a record's personal data seals: the JSON object of the fields given (the user agent
    cut at 512 characters), or None when there is none."""
    fields: dict[str, str] = {}
    if ip:
        fields["ip"] = ip
    if ua:
        fields["ua"] = ua[:512]
    if name:
        fields["name"] = name
    return _dumps(fields).encode() if fields else None


class Sealer:
    """Seals a record's personal data (address, user agent, name) under the person's data key
    before the record is hashed, and computes the blind indexes used to search by address.

    Blind indexes are ``vern.core.crypto.blind_index`` (HMAC-SHA256 keyed by the secret key), cut to
    128 bits. Look-ups that repeat (an address, an actor's key) are cached, bounded."""

    _CACHE_MAX = 50_000

    def __init__(self, settings: Settings) -> None:
        self.secret = settings.secret_bytes
        self._keys: dict[tuple[int, Any], str] = {}
        self._ips: dict[str, tuple[str, str | None]] = {}
        self._kids: dict[str, bytes] = {}
        self._payloads: dict[tuple[str | None, str | None, str | None], bytes] = {}
        self._resolved: _Resolved | None = None
        self._lock = threading.Lock()
        self._mac = {p: hmac.new(self.secret, f"{p}\x00".encode(), hashlib.sha256)
                     for p in ("audit.ip", "audit.net", "audit.actor")}

    def _index(self, purpose: str, value: str) -> str:
        """``blind_index(secret, value, purpose)`` from a prepared HMAC state."""
        mac = self._mac[purpose].copy()
        mac.update(value.strip().casefold().encode())
        return mac.hexdigest()

    def ip_index(self, ip: str) -> str:
        return self._index("audit.ip", ip)[:32]

    def net_index(self, ip: str) -> str | None:
        try:
            return self._index("audit.net", network_of(ip))[:32]
        except ValueError:
            return None

    def indexes(self, ip: str) -> tuple[str, str | None]:
        found = self._ips.get(ip)
        if found is None:
            found = (self.ip_index(ip), self.net_index(ip))
            if len(self._ips) > self._CACHE_MAX:
                self._ips.clear()
            self._ips[ip] = found
        return found

    def forget_keys(self) -> None:
        """Drop cached key ids (after a transaction that made keys was rolled back)."""
        with self._lock:
            self._keys.clear()
            self._resolved = None

    def actor_subject(self, org_id: str | None, actor_ref: str) -> str:
        return "audit:" + self._index("audit.actor", f"{org_id}\x00{actor_ref}")[:58]

    @staticmethod
    def anon_subject(ts: int) -> str:
        return "audit-anon:" + us_to_datetime(ts).strftime("%Y-%m")

    def key_for(self, session: Session, subject: str, user_id: str | None = None) -> str:
        """The data key of a user (``user_id``) or of a subject reference, cached per keyring."""
        cache_key = (id(keyring()), user_id or subject)
        found = self._keys.get(cache_key)
        if found is not None:
            return found
        key_id: str | None = None
        if user_id is not None:
            key_id = session.scalar(select(User.key_id).where(User.id == user_id))
        if key_id is None:
            key_id = keyring().for_subject(session, subject)
        with self._lock:
            if len(self._keys) > self._CACHE_MAX:
                self._keys.clear()
            self._keys[cache_key] = key_id
        return key_id

    def actor_key(self, session: Session, org_id: str | None, actor_ref: str) -> str:
        cache_key = (id(keyring()), f"{org_id}\x00{actor_ref}")
        found = self._keys.get(cache_key)
        if found is None:
            found = self.key_for(session, self.actor_subject(org_id, actor_ref))
            self._keys[cache_key] = found
        return found

    def seal(self, key_id: str, ip: str | None, ua: str | None, name: str | None) -> bytes | None:
        """``vern.core.crypto`` ciphertext (``0x01 | key id | nonce | AES-GCM``) of the personal
        fields, with the column as associated data - what ``keyring().open`` reads."""
        plaintext = personal_plaintext(ip, ua, name)
        if plaintext is None:
            return None
        kid = self._kids.get(key_id)
        if kid is None:
            kid = self._kids[key_id] = uuid.UUID(key_id).bytes
            if len(self._kids) > self._CACHE_MAX:
                self._kids.clear()
        nonce = os.urandom(12)
        body = keyring().cipher(key_id).encrypt(nonce, plaintext, _PERSONAL_AD + kid)
        return b"\x01" + kid + nonce + body

    def personal_fields(
        self,
        session: Session,
        *,
        ts: int,
        actor_user_id: str | None,
        org_id: str | None,
        actor_ref: str | None,
        ip: str | None,
        ua: str | None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """``key_id``, ``personal``, ``ip_index`` and ``net_index`` of one record.

        A person whose key was destroyed (erased) gets the month's anonymous key instead; a key
        id cached from another database (tests, a restore) is looked up again."""
        if not (ip or ua or name):
            return {"key_id": None, "personal": None, "ip_index": None, "net_index": None}
        ip_index, net_index = self.indexes(ip) if ip else (None, None)
        for attempt in range(2):
            if actor_user_id is not None:
                key_id = self.key_for(session, "", actor_user_id)
            elif actor_ref is not None:
                key_id = self.actor_key(session, org_id, actor_ref)
            else:
                key_id = self.key_for(session, self.anon_subject(ts))
            try:
                sealed = self.seal(key_id, ip, ua, name)
            except KeyDestroyed:
                key_id = self.key_for(session, self.anon_subject(ts))
                sealed = self.seal(key_id, ip, ua, name)
            except KeyUnavailable:
                if attempt:
                    raise
                self.forget_keys()
                continue
            return {"key_id": key_id, "personal": sealed, "ip_index": ip_index,
                    "net_index": net_index}
        raise AssertionError("unreachable")


class Keys:
    """The data keys of one batch, resolved before the append lock is taken (no database work
    under the lock): ``subject -> (key id, AES-GCM, key id bytes)``.

    A subject is ``("u", user id)`` for a Vern user, ``("a", org id, actor ref)`` for an actor of
    the vendor's product, ``("m", "YYYY-MM")`` for anonymous callers (the month's key)."""

    __slots__ = ("by_subject", "payloads")

    def __init__(self, payloads: dict[tuple[str | None, str | None, str | None], bytes]
                 | None = None,
                 by_subject: dict[tuple[Any, ...], tuple[str, Any, bytes]] | None = None) -> None:
        self.by_subject = by_subject if by_subject is not None else {}
        self.payloads = payloads if payloads is not None else {}

    def for_subject(self, subject: tuple[Any, ...] | None) -> tuple[Any, Any, Any]:
        """``(key id, AES-GCM, key id bytes)`` of a resolved subject; Nones for no subject."""
        if subject is None:
            return (None, None, None)
        return self.by_subject[subject]

    def payload(self, ip: str | None, ua: str | None, name: str | None) -> bytes | None:
        """The plaintext that is sealed (the JSON object of the fields given); the same
        plaintext is made once (bounded cache), each sealing has its own nonce."""
        found = self.payloads.get((ip, ua, name))
        if found is None:
            made = personal_plaintext(ip, ua, name)
            if made is None:
                return None
            if len(self.payloads) > Sealer._CACHE_MAX:
                self.payloads.clear()
            found = self.payloads[(ip, ua, name)] = made
        return found


@dataclass
class _Resolved:
    """Subjects resolved by earlier batches (``Keys.by_subject``), reused while the keyring has
    destroyed nothing since (its ``generation``), until the first of their keys would expire
    from the keyring's cache (the time after which another process's shredding is seen) and at
    most until the month changes (a shredded person's records take the month's key)."""

    ring: KeyRing
    generation: int
    until: float  # the keyring's clock
    table: dict[tuple[Any, ...], tuple[str, Any, bytes]]


def resolve_keys(
    sealer: Sealer, database: Database,
    wanted: dict[tuple[Any, ...], int] | Iterable[tuple[tuple[Any, ...], int]],
) -> Keys:
    """The keys for ``(subject, ts)`` pairs (or a dict of them); a shredded person's records
    get the month's anonymous key (their later records stay readable only as "erased" for
    them). A batch whose subjects were all resolved before, with nothing destroyed or expired
    since, takes them as they were (``_Resolved``)."""
    ring = keyring()
    todo: dict[tuple[Any, ...], int]
    if isinstance(wanted, dict):
        todo = wanted
    else:
        todo = {}
        for subject, ts in wanted:
            if subject not in todo:
                todo[subject] = ts
    memo = sealer._resolved
    if (memo is not None and memo.ring is ring and memo.generation == ring.generation
            and ring.now() < memo.until and len(memo.table) < Sealer._CACHE_MAX):
        if todo.keys() <= memo.table.keys():
            return Keys(sealer._payloads, memo.table)
        missing = {s: ts for s, ts in todo.items() if s not in memo.table}
        found = _resolve_keys(sealer, database, ring, missing)
        if ring.generation == memo.generation:  # nothing destroyed meanwhile
            memo.table.update(found.by_subject)
            memo.until = min(memo.until, _until(ring, found))
            return Keys(sealer._payloads, memo.table)
    generation = ring.generation  # before looking: a key destroyed meanwhile changes it
    keys = _resolve_keys(sealer, database, ring, todo)
    sealer._resolved = _Resolved(ring, generation, _until(ring, keys), dict(keys.by_subject))
    return keys


def _until(ring: KeyRing, keys: Keys) -> float:
    """How long resolved keys may be taken as they are (see ``_Resolved``)."""
    return min(ring.cached_until(v[0] for v in keys.by_subject.values()),
               ring.now() + _seconds_to_next_month())


def _seconds_to_next_month() -> float:
    now = datetime.now(UTC)
    first = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return (first - now).total_seconds()


def _resolve_keys(  # noqa: PLR0912 - the fallbacks
    sealer: Sealer, database: Database, ring: KeyRing, todo: dict[tuple[Any, ...], int],
) -> Keys:
    keys = Keys(sealer._payloads)
    ring_id = id(ring)
    cache = sealer._keys
    for attempt in range(3):
        try:
            # The ids found go to a local map first: another thread may clear the shared cache
            # (``forget_keys``) at any moment.
            ids: dict[tuple[Any, ...], str] = {}
            missing = []
            for subject in todo:
                found = cache.get((ring_id, subject))
                if found is None:
                    missing.append(subject)
                else:
                    ids[subject] = found
            if missing:
                # In a fixed order, so that two batches making keys at once cannot deadlock.
                missing.sort(key=repr)
                with database.transaction(Scope.system("audit keys")) as session:
                    ids.update(_keys_of(sealer, session, missing, todo))
                for subject in missing:
                    cache[(ring_id, subject)] = ids[subject]
            ready = ring.cached_ciphers(ids.values())
            for subject, ts in todo.items():
                key_id = ids[subject]
                try:
                    aead = ready.get(key_id) or ring.cipher(key_id)
                except KeyDestroyed:
                    month = anon_key_subject(ts)
                    key_id = cache.get((ring_id, month)) or ""
                    if not key_id:
                        with database.transaction(Scope.system("audit keys")) as session:
                            key_id = _key_of(sealer, session, month, ts)
                        cache[(ring_id, month)] = key_id
                    aead = ring.cipher(key_id)
                kid = sealer._kids.get(key_id)
                if kid is None:
                    kid = sealer._kids[key_id] = uuid.UUID(key_id).bytes
                keys.by_subject[subject] = (key_id, aead, kid)
            if len(cache) > sealer._CACHE_MAX:
                cache.clear()
            return keys
        except (KeyUnavailable, IntegrityError):
            # A key id cached from another database, or another request made the same actor's
            # key at the same time: look the keys up again.
            sealer.forget_keys()
            keys = Keys(sealer._payloads)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _keys_of(sealer: Sealer, session: Session, subjects: list[tuple[Any, ...]],
             when: dict[tuple[Any, ...], int]) -> dict[tuple[Any, ...], str]:
    """The key ids of many subjects: users' keys in one look-up, the other keys found or made
    together (``KeyRing.for_subjects``)."""
    out: dict[tuple[Any, ...], str] = {}
    refs: dict[tuple[Any, ...], str] = {}
    users = [s[1] for s in subjects if s[0] == "u"]
    if users:
        known: dict[str, str | None] = dict(
            session.execute(select(User.id, User.key_id).where(User.id.in_(users))).all())
        for s in subjects:
            if s[0] == "u":
                if known.get(s[1]) is not None:
                    out[s] = str(known[s[1]])
                else:
                    refs[s] = sealer.anon_subject(when[s])
    for s in subjects:
        if s[0] == "a":
            refs[s] = sealer.actor_subject(s[1], s[2])
        elif s[0] == "m":
            refs[s] = "audit-anon:" + s[1]
        elif s[0] != "u":
            raise ValueError(f"unknown key subject {s!r}")
    if refs:
        made = keyring().for_subjects(session, sorted(set(refs.values())))
        out.update({s: made[ref] for s, ref in refs.items()})
    return out


def _key_of(sealer: Sealer, session: Session, subject: tuple[Any, ...], ts: int) -> str:
    kind = subject[0]
    if kind == "u":
        found = session.scalar(select(User.key_id).where(User.id == subject[1]))
        if found is not None:
            return str(found)
        return keyring().for_subject(session, sealer.anon_subject(ts))
    if kind == "a":
        return keyring().for_subject(session, sealer.actor_subject(subject[1], subject[2]))
    if kind == "m":
        return keyring().for_subject(session, "audit-anon:" + subject[1])
    raise ValueError(f"unknown key subject {subject!r}")


def anon_key_subject(ts: int) -> tuple[str, str]:
    return ("m", us_to_datetime(ts).strftime("%Y-%m"))


def open_personal(blob: bytes | None) -> dict[str, str] | None:
    """The personal data of a record, ``{"erased": "1"}`` once its person's key was shredded."""
    if blob is None:
        return None
    try:
        result: dict[str, str] = json.loads(keyring().open(bytes(blob), PERSONAL_CONTEXT))
    except (KeyDestroyed, KeyUnavailable):
        return {"erased": "1"}
    return result

