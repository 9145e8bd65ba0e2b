"""Password rules (NIST SP 800-63B 3.1.1.2), Argon2id hashing, rehash and optional expiry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sqlalchemy import update
from starlette.testclient import TestClient

from tests.conftest import PASSWORD, Personas, create_personas, make_settings, sign_in, user_row
from vern.accounts import security
from vern.accounts.models import User
from vern.app.web import create_app
from vern.core.config import Settings
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import InvalidInput

TEST_SETTINGS = Settings(env="test")
CONTEXT = ["Bjørn Bakken", "bjorn.bakken@fjellheim.example.com", "Fjellheim barnehage"]
COMMON_LONG = sorted(p for p in security._common_passwords() if len(p) >= 12)


def _refusal(password: str, settings: Settings = TEST_SETTINGS,
             context: list[str] | None = None) -> str:
    with pytest.raises(InvalidInput) as info:
        security.check_password(settings, password, context=context or [])
    assert info.value.errors[0].field == "password"
    return info.value.errors[0].code


def test_it_refuses_a_password_shorter_than_the_minimum() -> None:
    assert _refusal("elleve tegn") == "too-short"  # 11 characters
    security.check_password(TEST_SETTINGS, "tolv tegn ok", context=[])


def test_the_minimum_length_is_a_setting() -> None:
    longer = Settings(env="test", password_min_length=16)
    assert _refusal("femten tegn her", longer) == "too-short"
    security.check_password(longer, "seksten tegn her", context=[])


def test_it_accepts_long_passphrases_up_to_the_maximum() -> None:
    sixty_four = "regnet siler ned over Bryggen mens trikken rasler forbi torget!!"
    assert len(sixty_four) == 64
    security.check_password(TEST_SETTINGS, sixty_four, context=[])
    longest = ("nordlys over Lyngen " * 13)[:256]
    security.check_password(TEST_SETTINGS, longest, context=[])
    assert _refusal(longest + "x") == "too-long"


@pytest.mark.parametrize(
    "password",
    [
        "fjellvann i morgengry",  # lowercase letters and spaces only
        "KORTREIST MAT PÅ TORGET",  # capitals only
        "839201746512",  # digits only, not a common one
        "🏔️🌊🌲🏔️🌊🌲 i nord",  # emoji and unicode
    ],
)
def test_it_has_no_composition_rules(password: str) -> None:
    security.check_password(TEST_SETTINGS, password, context=[])


@hyp_settings(max_examples=40, deadline=None)
@given(password=st.sampled_from(COMMON_LONG))
def test_it_refuses_common_passwords_from_the_shipped_list(password: str) -> None:
    assert _refusal(password) == "common"
    assert _refusal(password.upper()) == "common"


def test_the_shipped_list_is_read_whole_and_without_its_header() -> None:
    common = security._common_passwords()
    assert len(common) == 30_000
    assert {"password", "qwerty", "1234567890", "iloveyou"} <= common
    assert not any(p.startswith("#") or p != p.strip() or not p for p in common)
    assert "1qaz2wsx3edc" in COMMON_LONG  # a long one from the list's end half is refused too
    assert _refusal("1qaz2wsx3edc") == "common"


@pytest.mark.parametrize("password", ["aaaaaaaaaaaaaa", "abcabcabcabcabc", "passwordpassword"])
def test_it_refuses_repetitive_passwords(password: str) -> None:
    assert _refusal(password) == "common"


@pytest.mark.parametrize(
    "password",
    [
        "bjørn liker sommeren",  # first name
        "sommer hos BAKKEN i år",  # last name, any case
        "bjorn.bakken elsker is",  # e-mail local part
        "fjellheim er best av alle",  # organisation
    ],
)
def test_it_refuses_context_words(password: str) -> None:
    assert _refusal(password, context=CONTEXT) == "context"


def test_creating_a_user_through_the_api_refuses_a_context_password(
    login, personas: Personas  # type: ignore[no-untyped-def]
) -> None:
    alice = login(personas.alice)
    res = alice.post("/api/v1/users", json={
        "email": "kari.nordmann@fjellheim.example.com", "name": "Kari Nordmann",
        "role": "member", "password": "nordmann i fjellheim"})
    assert res.status_code == 422
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["errors"][0] == {
        "field": "password", "message": "must not contain your name, e-mail or organisation",
        "code": "context"}


def test_hashes_are_argon2id_at_or_above_the_owasp_minimum() -> None:
    stored = security.hash_password(TEST_SETTINGS, "en lang nok passordfrase")
    params = extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    assert params.type is Type.ID
    assert params.memory_cost >= 19_456
    assert params.time_cost >= 2
    assert params.parallelism >= 1
    assert security.verify_password(TEST_SETTINGS, stored, "en lang nok passordfrase")
    assert not security.verify_password(TEST_SETTINGS, stored, "en lang nok passordfras")


def test_a_garbled_hash_never_verifies() -> None:
    assert not security.verify_password(TEST_SETTINGS, "$argon2id$broken", "whatever it is")
    assert not security.verify_password(TEST_SETTINGS, "", "whatever it is")


def test_an_unknown_account_is_checked_against_a_dummy_hash() -> None:
    assert not security.verify_password(TEST_SETTINGS, None, PASSWORD)


def test_a_hash_with_old_parameters_is_remade_at_sign_in(
    db: Database, client: TestClient, personas: Personas
) -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID)
    with db.transaction(Scope.system("test")) as session:
        session.execute(update(User).where(User.id == personas.bob.user_id)
                        .values(password_hash=old.hash(PASSWORD)))
    sign_in(client, personas.bob)
    params = extract_parameters(user_row(db, personas.bob.user_id).password_hash or "")
    assert (params.memory_cost, params.time_cost) == (19_456, 2)


def test_raising_the_parameters_rehashes_at_the_next_sign_in(
    db: Database, tmp_path: Path
) -> None:
    people = create_personas(db, make_settings(db.url, tmp_path))
    stronger = make_settings(db.url, tmp_path, argon2_time_cost=3, argon2_memory_kib=24_576)
    with TestClient(create_app(stronger, db)) as client:
        sign_in(client, people.bob)
    params = extract_parameters(user_row(db, people.bob.user_id).password_hash or "")
    assert (params.memory_cost, params.time_cost) == (24_576, 3)


# -- periodic change (off by default) ------------------------------------------------------------


def _age_password(db: Database, user_id: str, days: int) -> None:
    with db.transaction(Scope.system("test")) as session:
        session.execute(update(User).where(User.id == user_id)
                        .values(password_changed_at=utcnow() - timedelta(days=days)))


def test_an_old_password_does_not_expire_by_default(
    db: Database, client: TestClient, personas: Personas
) -> None:
    _age_password(db, personas.bob.user_id, 3650)
    res = client.post("/api/v1/session", json={"email": personas.bob.email, "password": PASSWORD})
    assert res.json()["password_change_required"] is False
    assert client.get("/api/v1/me").status_code == 200


def test_an_expired_password_must_be_changed_when_the_policy_is_on(
    db: Database, tmp_path: Path
) -> None:
    people = create_personas(db, make_settings(db.url, tmp_path))
    policy = make_settings(db.url, tmp_path, password_max_age_days=90)
    _age_password(db, people.bob.user_id, 91)
    with TestClient(create_app(policy, db)) as client:
        res = client.post("/api/v1/session",
                          json={"email": people.bob.email, "password": PASSWORD})
        assert res.json()["password_change_required"] is True
        client.headers["X-CSRF-Token"] = res.json()["csrf_token"]
        refused = client.get("/api/v1/me")
        assert refused.status_code == 403
        assert refused.json()["code"] == "password-change-required"
        changed = client.post("/api/v1/me/password", json={
            "current_password": PASSWORD, "new_password": "nye tider i nordavind"})
        assert changed.status_code == 204, changed.text
        assert client.get("/api/v1/me").status_code == 200


def test_a_password_within_the_maximum_age_is_not_expired(
    db: Database, tmp_path: Path
) -> None:
    people = create_personas(db, make_settings(db.url, tmp_path))
    policy = make_settings(db.url, tmp_path, password_max_age_days=90)
    _age_password(db, people.bob.user_id, 89)
    with TestClient(create_app(policy, db)) as client:
        sign_in(client, people.bob)
        assert client.get("/api/v1/me").status_code == 200
