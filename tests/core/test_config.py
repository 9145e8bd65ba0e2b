"""Settings: production refuses missing or default secrets, naming the variable to set."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from vern.config import DEV_MASTER_KEY, DEV_SECRET_KEY, ConfigError, Settings, get_settings

SECRET = "x7Qe9vL2pR4tY8uI0oP3aS5dF6gH1jK-"
MASTER = base64.urlsafe_b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("VERN_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        get_settings()
    return str(info.value)


def test_production_refuses_a_missing_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(monkeypatch, VERN_ENV="production", VERN_MASTER_KEY=MASTER)
    assert "VERN_SECRET_KEY" in message


def test_production_refuses_the_default_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(monkeypatch, VERN_ENV="production", VERN_SECRET_KEY=DEV_SECRET_KEY,
                       VERN_MASTER_KEY=MASTER)
    assert "VERN_SECRET_KEY" in message


def test_production_refuses_a_short_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(monkeypatch, VERN_ENV="production", VERN_SECRET_KEY="kort",
                       VERN_MASTER_KEY=MASTER)
    assert "VERN_SECRET_KEY" in message and "32" in message


def test_production_refuses_a_missing_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(monkeypatch, VERN_ENV="production", VERN_SECRET_KEY=SECRET)
    assert "VERN_MASTER_KEY" in message


def test_production_refuses_the_default_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(monkeypatch, VERN_ENV="production", VERN_SECRET_KEY=SECRET,
                       VERN_MASTER_KEY=DEV_MASTER_KEY)
    assert "VERN_MASTER_KEY" in message


@pytest.mark.parametrize("value", ["not base64!", base64.urlsafe_b64encode(b"16 bytes only...").decode()])
def test_it_refuses_a_master_key_that_is_not_32_bytes(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = _refusal(monkeypatch, VERN_ENV="dev", VERN_MASTER_KEY=value)
    assert "VERN_MASTER_KEY" in message


def test_production_starts_with_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERN_ENV", "production")
    monkeypatch.setenv("VERN_SECRET_KEY", SECRET)
    monkeypatch.setenv("VERN_MASTER_KEY", MASTER)
    settings = get_settings()
    assert settings.is_production
    assert settings.secret_bytes == SECRET.encode()
    assert settings.master_key_bytes == b"0123456789abcdef0123456789abcdef"


def test_secrets_can_come_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET + "\n", encoding="utf-8")
    (tmp_path / "master").write_text(MASTER + "\n", encoding="utf-8")
    monkeypatch.setenv("VERN_ENV", "production")
    monkeypatch.setenv("VERN_SECRET_KEY_FILE", str(tmp_path / "secret"))
    monkeypatch.setenv("VERN_MASTER_KEY_FILE", str(tmp_path / "master"))
    settings = get_settings()
    assert settings.resolved_secret_key() == SECRET
    assert settings.master_key_bytes == b"0123456789abcdef0123456789abcdef"


def test_an_unreadable_secret_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    message = _refusal(monkeypatch, VERN_ENV="production", VERN_MASTER_KEY=MASTER,
                       VERN_SECRET_KEY_FILE=str(tmp_path / "missing"))
    assert "VERN_SECRET_KEY_FILE" in message


def test_an_empty_secret_file_counts_as_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "master").write_text("\n", encoding="utf-8")
    message = _refusal(monkeypatch, VERN_ENV="production", VERN_SECRET_KEY=SECRET,
                       VERN_MASTER_KEY_FILE=str(tmp_path / "master"))
    assert "VERN_MASTER_KEY" in message


def test_dev_and_test_run_with_the_built_in_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERN_ENV", "dev")
    settings = get_settings()
    assert settings.resolved_secret_key() == DEV_SECRET_KEY
    assert not settings.is_production


def test_the_environment_defaults_to_production(monkeypatch: pytest.MonkeyPatch) -> None:
    """The strictest setting is the default: with nothing set, Vern refuses to start."""
    message = _refusal(monkeypatch)
    assert "VERN_SECRET_KEY" in message


def test_a_bad_trusted_proxy_network_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _refusal(monkeypatch, VERN_ENV="dev",
                       VERN_TRUSTED_PROXIES="10.0.0.0/8, not-a-network")
    assert "VERN_TRUSTED_PROXIES" in message
    assert "not-a-network" in message


def test_trusted_proxies_are_read_as_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VERN_ENV", "dev")
    monkeypatch.setenv("VERN_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1,2001:db8::/32")
    assert get_settings().trusted_proxies == ["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("password_min_length", 7, "VERN_PASSWORD_MIN_LENGTH"),
        ("password_max_length", 63, "VERN_PASSWORD_MAX_LENGTH"),
        ("argon2_memory_kib", 8192, "VERN_ARGON2_MEMORY_KIB"),
        ("argon2_time_cost", 1, "VERN_ARGON2_TIME_COST"),
        ("session_idle_minutes", 120, "VERN_SESSION_IDLE_MINUTES"),
        ("session_absolute_hours", 48, "VERN_SESSION_ABSOLUTE_HOURS"),
    ],
)
def test_it_refuses_weaker_security_settings(
    monkeypatch: pytest.MonkeyPatch, field: str, value: int, variable: str
) -> None:
    message = _refusal(monkeypatch, VERN_ENV="dev", **{variable: str(value)})
    assert variable in message
    with pytest.raises(ValidationError):
        Settings(env="dev", **{field: value})  # type: ignore[arg-type]
