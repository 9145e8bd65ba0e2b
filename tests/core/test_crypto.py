"""Personal data at rest: the Encrypted column, per-person keys, crypto-shredding."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from vern.accounts.models import User
from vern.core.config import DEV_MASTER_KEY
from vern.core.crypto import PII, DataKey, KeyDestroyed, KeyRing, KeyUnavailable, keyring
from vern.core.db import Database, Scope, new_id

MASTER = base64.urlsafe_b64decode(DEV_MASTER_KEY.encode())
FIXTURE_OK = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _store_user(db: Database, name: str, email: str = "kari.nordmann@example.com") -> str:
    with db.transaction(Scope.system("test")) as session:
        key_id = keyring().create(session)
        user = User(key_id=key_id, email=PII(key_id, email), email_index=new_id(),
                    name=PII(key_id, name))
        session.add(user)
        session.flush()
        return user.id


def _raw(db: Database, user_id: str, column: str = "name") -> bytes:
    with db.engine.connect() as conn:
        value = conn.execute(
            text(f"SELECT {column} FROM users WHERE id = :id"), {"id": user_id}  # noqa: S608
        ).scalar_one()
    return bytes(value)


def _read_name(db: Database, user_id: str) -> PII:
    with db.transaction(Scope.system("test")) as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.name


@FIXTURE_OK
@given(name=st.text(max_size=300))
def test_any_unicode_text_round_trips_through_the_database(db: Database, name: str) -> None:
    user_id = _store_user(db, name)
    keyring().forget_cached()  # read back through the wrapped key, not the cache
    assert _read_name(db, user_id).value == name
    assert name.encode() not in _raw(db, user_id) or len(name.encode()) < 4


@FIXTURE_OK
@given(name=st.text(min_size=8, max_size=120).filter(lambda s: len(s.encode()) >= 8))
def test_after_shredding_only_ciphertext_remains(db: Database, name: str) -> None:
    user_id = _store_user(db, name)
    with db.transaction(Scope.system("test")) as session:
        key_id = session.get(User, user_id).key_id  # type: ignore[union-attr]
        keyring().shred(session, key_id)
    raw = _raw(db, user_id)
    assert name.encode() not in raw
    assert _read_name(db, user_id) == PII(key_id, None)
    with db.engine.connect() as conn:
        row = conn.execute(select(DataKey.wrapped_key, DataKey.destroyed_at)
                           .where(DataKey.id == key_id)).one()
    assert row.wrapped_key is None and row.destroyed_at is not None
    with pytest.raises(KeyDestroyed):
        KeyRing(db.engine, MASTER).open(raw, "users.name")


def test_a_shredded_value_cannot_be_written_again(db: Database) -> None:
    user_id = _store_user(db, "Ola Nordmann")
    with db.transaction(Scope.system("test")) as session:
        user = session.get(User, user_id)
        assert user is not None
        keyring().shred(session, user.key_id)
        with pytest.raises(KeyDestroyed):
            keyring().seal(user.key_id, "Ola Nordmann", "users.name")


def test_it_refuses_tampered_ciphertext(db: Database) -> None:
    user_id = _store_user(db, "Kari Nordmann")
    raw = bytearray(_raw(db, user_id))
    for position in (len(raw) - 1, 30, 17):  # tag, ciphertext body, nonce
        altered = bytearray(raw)
        altered[position] ^= 0x01
        with pytest.raises(ValueError, match="altered"):
            keyring().open(bytes(altered), "users.name")
    with pytest.raises(ValueError, match="not a Vern ciphertext"):
        keyring().open(b"\x02" + bytes(raw[1:]), "users.name")


def test_it_refuses_a_value_moved_to_another_column(db: Database) -> None:
    user_id = _store_user(db, "Kari Nordmann", email="kari@example.com")
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE users SET name = email WHERE id = :id"), {"id": user_id})
    with pytest.raises(ValueError, match="another column"):
        _read_name(db, user_id)


def test_data_keys_are_wrapped_by_the_master_key(db: Database) -> None:
    user_id = _store_user(db, "Per Hansen")
    with db.transaction(Scope.system("test")) as session:
        key_id = session.get(User, user_id).key_id  # type: ignore[union-attr]
        wrapped = session.get(DataKey, key_id).wrapped_key  # type: ignore[union-attr]
    assert wrapped is not None and len(wrapped) == 12 + 32 + 16  # nonce, key, tag
    raw = _raw(db, user_id)
    assert KeyRing(db.engine, MASTER).open(raw, "users.name") == "Per Hansen"
    wrong = KeyRing(db.engine, os.urandom(32))
    with pytest.raises(KeyUnavailable, match="master key"):
        wrong.open(raw, "users.name")


def test_it_refuses_a_master_key_of_the_wrong_size(db: Database) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        KeyRing(db.engine, b"short")


def test_an_unknown_key_is_unavailable(db: Database) -> None:
    with pytest.raises(KeyUnavailable):
        keyring().cipher(new_id())


def test_a_shredded_key_leaves_the_cache_of_other_keyrings_after_its_lifetime(
    db: Database,
) -> None:
    """Another process that still caches the key loses it when the cache entry ages out."""
    user_id = _store_user(db, "Nils Nilsen")
    raw = _raw(db, user_id)
    clock = [1000.0]
    other = KeyRing(db.engine, MASTER, cache_seconds=60, clock=lambda: clock[0])
    assert other.open(raw, "users.name") == "Nils Nilsen"
    with db.transaction(Scope.system("test")) as session:
        keyring().shred(session, session.get(User, user_id).key_id)  # type: ignore[union-attr]
    clock[0] += 61
    with pytest.raises(KeyDestroyed):
        other.open(raw, "users.name")


def test_a_key_shredded_in_a_rolled_back_transaction_still_opens(db: Database) -> None:
    user_id = _store_user(db, "Siri Sørensen")
    session = db.session(Scope.system("test"))
    keyring().shred(session, session.get(User, user_id).key_id)  # type: ignore[union-attr]
    session.rollback()
    session.close()
    assert _read_name(db, user_id).value == "Siri Sørensen"


def test_cached_ciphers_leave_out_keys_being_destroyed_or_aged_out(db: Database) -> None:
    clock = [1000.0]
    ring = KeyRing(db.engine, MASTER, cache_seconds=60, clock=lambda: clock[0])
    with db.transaction(Scope.system("test")) as session:
        kept, shredded = ring.create(session), ring.create(session)
    clock[0] += 30
    with db.transaction(Scope.system("test")) as session:
        aged = ring.create(session)
    clock[0] += 35  # ``kept`` and ``shredded`` were cached 65 s ago: aged out, ``aged`` not yet
    assert set(ring.cached_ciphers([kept, shredded, aged])) == {aged}
    ring.cipher(kept)
    ring.cipher(shredded)
    session = db.session(Scope.system("test"))
    ring.shred(session, shredded)
    try:
        found = ring.cached_ciphers([kept, shredded, aged, new_id()])
        assert set(found) == {kept, aged}
        assert found[kept] is ring.cipher(kept)
    finally:
        session.rollback()
        session.close()
