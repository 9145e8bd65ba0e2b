"""Settings: production refuses missing or default secrets, naming the variable to set."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from vern.core.config import DEV_MASTER_KEY, DEV_SECRET_KEY, ConfigError, Settings, get_settings

SECRET = "x7Qe9vL2pR4tY8uI0oP3aS5dF6gH1jK-"
SMTP = "smtps://vern:hemmelig@mail.example.com"
SENDER = "Solstrand Læring <personvern@solstrand.example.com>"
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
    monkeypatch.setenv("VERN_SMTP_URL", SMTP)
    monkeypatch.setenv("VERN_MAIL_FROM", SENDER)
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
    monkeypatch.setenv("VERN_SMTP_URL", SMTP)
    monkeypatch.setenv("VERN_MAIL_FROM", SENDER)
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


def test_dev_makes_its_own_random_keys_once_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No built-in key in dev: random keys are made into the data directory, logged, and
    read again by every later process of the same installation."""
    monkeypatch.setenv("VERN_ENV", "dev")
    monkeypatch.setenv("VERN_DATA_DIR", str(tmp_path / "one"))
    with caplog.at_level("WARNING", logger="vern.core.config"):
        settings = get_settings()
        secret, master = settings.resolved_secret_key(), settings.master_key_bytes
    assert secret not in (None, DEV_SECRET_KEY)
    assert master != base64.urlsafe_b64decode(DEV_MASTER_KEY)
    assert len(master) == 32 and len(secret or "") >= 32
    keys = tmp_path / "one" / "dev-secrets.env"
    assert keys.stat().st_mode & 0o777 == 0o600
    assert any(str(keys) in r.getMessage() for r in caplog.records)
    assert secret not in caplog.text
    again = Settings(env="dev", data_dir=tmp_path / "one")
    assert again.resolved_secret_key() == secret
    other = Settings(env="demo", data_dir=tmp_path / "two")
    assert other.resolved_secret_key() != secret


def test_the_test_environment_keeps_its_fixed_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERN_ENV", "test")
    settings = get_settings()
    assert settings.resolved_secret_key() == DEV_SECRET_KEY
    assert not settings.is_production


def test_production_refuses_to_start_without_a_mail_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = _refusal(monkeypatch, VERN_ENV="production", VERN_SECRET_KEY=SECRET,
                       VERN_MASTER_KEY=MASTER)
    assert "VERN_SMTP_URL" in message
    message = _refusal(monkeypatch, VERN_SMTP_URL=SMTP)
    assert "VERN_MAIL_FROM" in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://127.0.0.1:2525", ("127.0.0.1", 2525, False, False, None)),
        ("smtp://relay.example.com", ("relay.example.com", 25, False, False, None)),
        ("smtp://vern:p%40ss@mail.example.com?starttls=1",
         ("mail.example.com", 587, False, True, "vern")),
        ("smtps://vern:hemmelig@mail.example.com", ("mail.example.com", 465, True, False, "vern")),
        ("smtp://vern:hemmelig@127.0.0.1:2525", ("127.0.0.1", 2525, False, False, "vern")),
    ],
)
def test_smtp_urls_are_read(url: str, expected: tuple[object, ...]) -> None:
    from vern.notify.transport import SmtpTarget

    target = SmtpTarget.parse(url)
    assert (target.host, target.port, target.implicit_tls, target.starttls, target.user) == expected
    assert "hemmelig" not in target.describe() and "hemmelig" not in repr(target)
    if "p%40ss" in url:
        assert target.password == "p@ss"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://mail.example.com", "smtp://"),
        ("smtp://vern:hemmelig@mail.example.com", "TLS"),
        ("smtps://mail.example.com?starttls=1", "starttls"),
        ("smtp://mail.example.com?tls=yes", "tls"),
        ("smtp://:hemmelig@mail.example.com?starttls=1", "user"),
    ],
)
def test_a_wrong_smtp_url_is_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, url: str, words: str
) -> None:
    message = _refusal(monkeypatch, VERN_ENV="dev", VERN_SMTP_URL=url)
    assert "VERN_SMTP_URL" in message and words in message
    assert "hemmelig" not in message


def test_a_wrong_sender_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "VERN_MAIL_FROM" in _refusal(monkeypatch, VERN_ENV="dev", VERN_MAIL_FROM="ikke en adresse")


def test_the_base_url_follows_host_and_port_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERN_ENV", "demo")
    monkeypatch.setenv("VERN_PORT", "8100")
    settings = get_settings()
    assert settings.base_url == "http://127.0.0.1:8100"
    assert settings.smtp_url == "smtp://127.0.0.1:8125"  # the demo's own mail server
    get_settings.cache_clear()
    monkeypatch.setenv("VERN_BASE_URL", "https://vern.example.com")
    assert get_settings().base_url == "https://vern.example.com"


def test_paths_follow_the_data_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VERN_ENV", "dev")
    monkeypatch.setenv("VERN_DATA_DIR", str(tmp_path))
    settings = get_settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'vern.db'}"
    assert settings.audit_log_dir == tmp_path / "audit"


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


def test_processes_starting_together_share_one_set_of_keys(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = ("import sys; from pathlib import Path; from vern.core.config import generated_keys; "
              "print(generated_keys(Path(sys.argv[1]))['master_key'])")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],  # noqa: S603
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1 and "" not in keys
    assert [p.name for p in tmp_path.iterdir()] == ["dev-secrets.env"]
