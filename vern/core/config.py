"""One validated settings object, read from ``VERN_*`` environment variables.

Secrets may come from a file (``VERN_SECRET_KEY_FILE``, ``VERN_MASTER_KEY_FILE``) so that they never
appear in a process listing. Outside ``dev``/``demo``/``test`` a missing or default secret refuses to
start: the strictest setting is the default. In ``dev`` and ``demo`` missing secrets are generated
once per installation into ``<VERN_DATA_DIR>/dev-secrets.env`` (said so in a log line); only
``test`` uses the fixed keys below. Production also refuses to start without a mail transport
(``VERN_SMTP_URL`` and ``VERN_MAIL_FROM``).
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import secrets
import threading
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

import vern
from vern.core.smtp import SmtpTarget

Environment = Literal["production", "dev", "demo", "test"]

log = logging.getLogger("vern.core.config")

# Used only by the test environment (dev and demo generate keys of their own). Never accepted
# in production.
DEV_SECRET_KEY = "vern-dev-secret-key-not-for-production"  # noqa: S105
DEV_MASTER_KEY = base64.urlsafe_b64encode(b"vern-dev-master-key-32-bytes!!!!").decode()

ROOT = Path(vern.__file__).resolve().parent.parent


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the environment variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERN_", extra="ignore", frozen=True)

    env: Environment = "production"
    # Where this instance keeps its files (SQLite database, audit files, the demo's product
    # database and settings, generated development keys). The defaults below follow it.
    data_dir: Path = ROOT / "var"
    database_url: str = f"sqlite:///{ROOT / 'var' / 'vern.db'}"
    secret_key: str | None = None
    secret_key_file: Path | None = None
    master_key: str | None = None
    master_key_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Derived from host and port unless set (every link in mail, banner and statistics tags).
    base_url: str = "http://127.0.0.1:8000"
    # Mail transport: smtp://[user:pass@]host[:port][?starttls=1], smtps://… (implicit TLS).
    smtp_url: str | None = Field(default=None, repr=False)  # may hold a password
    smtp_password_file: Path | None = None
    mail_from: str | None = None
    default_locale: Literal["nb", "en"] = "nb"

    # Passwords (NIST SP 800-63B): length only, no composition rules, no forced change.
    password_min_length: int = Field(default=12, ge=8, le=64)
    password_max_length: int = Field(default=256, ge=64, le=4096)
    # Periodic password change: off by default as NIST SP 800-63B 3.1.1.2 advises; a vendor whose
    # own policy asks for it (seed 000 1.1.4) sets a number of days.
    password_max_age_days: int | None = Field(default=None, ge=1)
    # Argon2id, at least OWASP's minimum (19 MiB, 2 iterations, parallelism 1).
    argon2_memory_kib: int = Field(default=19_456, ge=19_456)
    argon2_time_cost: int = Field(default=2, ge=2)
    argon2_parallelism: int = Field(default=1, ge=1)

    session_idle_minutes: int = Field(default=60, ge=1, le=60)
    session_absolute_hours: int = Field(default=24, ge=1, le=24)
    api_token_max_days: int = Field(default=365, ge=1)
    # E-mailed single-use links: an invitation to set a first password, a password reset.
    invitation_valid_hours: int = Field(default=72, ge=1, le=336)
    password_reset_valid_minutes: int = Field(default=30, ge=5, le=1440)

    # A comma-separated list in the environment (not JSON).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit_storage_url: str = "memory://"
    rate_limit_signin: str = "10/minute"
    rate_limit_api: str = "1200/minute"
    # Password-reset requests, per e-mail address typed in and per source network.
    rate_limit_reset_address: str = "3/hour"
    rate_limit_reset_source: str = "20/hour"
    # Per source network (/64 for IPv6) for API requests that resolve to no one: no, bad or
    # malformed credentials (issue 13: a random token per request must not get a fresh bucket).
    rate_limit_api_unauthenticated: str = "120/minute"
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # The try-it-out page at /api/docs; the description itself is always served.
    api_docs: bool | None = None  # unset: on outside production, off in production

    audit_retention_days: int = Field(default=365, ge=1)
    audit_log_dir: Path = ROOT / "var" / "audit"

    @model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, data: Any) -> Any:
        """Paths follow ``data_dir`` and the base URL follows host and port, unless set."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        data_dir = Path(data.get("data_dir") or ROOT / "var")
        data.setdefault("database_url", f"sqlite:///{data_dir / 'vern.db'}")
        data.setdefault("audit_log_dir", data_dir / "audit")
        if not data.get("base_url"):
            host = str(data.get("host") or "127.0.0.1")
            port = data.get("port") or 8000
            shown = f"[{host}]" if ":" in host else host
            data["base_url"] = f"http://{shown}:{port}"
        port_text = str(data.get("port") or 8000)
        if data.get("env") == "demo" and not data.get("smtp_url") and port_text.isdigit():
            # The demo's own mail server (started by `vern demo`), next to the web port.
            data["smtp_url"] = f"smtp://127.0.0.1:{demo_sink_port(int(port_text))}"
        return data

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"VERN_TRUSTED_PROXIES: {item!r} is not a network") from exc
        return value

    @field_validator("rate_limit_signin", "rate_limit_api", "rate_limit_api_unauthenticated")
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        from limits import parse as parse_limit

        try:
            parse_limit(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit such as '10/minute'") from exc
        return value

    @model_validator(mode="after")
    def _secrets_present(self) -> Settings:
        if self.is_production:
            if self.resolved_secret_key() in (None, DEV_SECRET_KEY):
                raise ValueError(
                    "VERN_SECRET_KEY (or VERN_SECRET_KEY_FILE) must be set to a random value "
                    "outside dev/demo/test"
                )
            if self.resolved_master_key() in (None, DEV_MASTER_KEY):
                raise ValueError(
                    "VERN_MASTER_KEY (or VERN_MASTER_KEY_FILE) must be set to 32 random bytes "
                    "(base64) outside dev/demo/test"
                )
        # Only the keys given are checked here: dev and demo make theirs when first used.
        secret = _read_secret(self.secret_key, self.secret_key_file, "VERN_SECRET_KEY_FILE")
        if secret is not None and len(secret) < 32 and self.is_production:
            raise ValueError("VERN_SECRET_KEY must be at least 32 characters")
        master = _read_secret(self.master_key, self.master_key_file, "VERN_MASTER_KEY_FILE")
        if master is not None:
            try:
                raw = base64.urlsafe_b64decode(master.encode())
            except ValueError as exc:
                raise ValueError("VERN_MASTER_KEY must be base64") from exc
            if len(raw) != 32:
                raise ValueError("VERN_MASTER_KEY must decode to exactly 32 bytes")
        self._mail_valid()
        return self

    def _mail_valid(self) -> None:
        from email.utils import parseaddr

        if self.is_production and (not self.smtp_url or not self.mail_from):
            raise ValueError(
                "VERN_SMTP_URL and VERN_MAIL_FROM must be set in production: without a mail "
                "transport one-time codes and download links never reach anyone "
                "(smtp://user:pass@host:587?starttls=1 or smtps://user:pass@host:465)"
            )
        if self.mail_from is not None and "@" not in parseaddr(self.mail_from)[1]:
            raise ValueError(f"VERN_MAIL_FROM: {self.mail_from!r} is not an e-mail address")
        if self.smtp_url:
            SmtpTarget.parse(self.smtp_url, password_file=self.smtp_password_file)

    @property
    def api_docs_enabled(self) -> bool:
        return (not self.is_production) if self.api_docs is None else self.api_docs

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def resolved_secret_key(self) -> str | None:
        return _read_secret(self.secret_key, self.secret_key_file, "VERN_SECRET_KEY_FILE") or (
            self._fallback_key("secret_key")
        )

    def resolved_master_key(self) -> str | None:
        return _read_secret(self.master_key, self.master_key_file, "VERN_MASTER_KEY_FILE") or (
            self._fallback_key("master_key")
        )

    def _fallback_key(self, name: str) -> str | None:
        if self.is_production:
            return None
        if self.env == "test":
            return DEV_SECRET_KEY if name == "secret_key" else DEV_MASTER_KEY
        return generated_keys(self.data_dir)[name]

    @property
    def mail_from_address(self) -> str:
        """The sender: ``VERN_MAIL_FROM``, or outside production a loopback-only placeholder."""
        return self.mail_from or "Vern <vern@localhost>"

    @property
    def secret_bytes(self) -> bytes:
        secret = self.resolved_secret_key()
        if secret is None:  # pragma: no cover - refused by the validator
            raise ConfigError("VERN_SECRET_KEY is not set")
        return secret.encode()

    @property
    def master_key_bytes(self) -> bytes:
        master = self.resolved_master_key()
        if master is None:  # pragma: no cover - refused by the validator
            raise ConfigError("VERN_MASTER_KEY is not set")
        return base64.urlsafe_b64decode(master.encode())


def _read_secret(value: str | None, path: Path | None, name: str) -> str | None:
    if value:
        return value
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror}") from exc


def demo_sink_port(port: int) -> int:
    """The port of the demo's mail server: 25 above the web port (8025 for 8000)."""
    return port + 25 if port + 25 <= 65535 else port - 25


DEV_KEYS_FILE = "dev-secrets.env"
_generated: dict[Path, dict[str, str]] = {}
_generated_lock = threading.Lock()


def generated_keys(data_dir: Path) -> dict[str, str]:
    """This installation's own development keys (dev and demo only): read from
    ``<data_dir>/dev-secrets.env``, or made at random into it (mode 0600) the first time."""
    path = (data_dir / DEV_KEYS_FILE).resolve()
    with _generated_lock:
        found = _generated.get(path)
        if found is not None:
            return found
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            text = (
                "# Development keys of this installation, made by Vern (dev and demo only).\n"
                f"secret_key={secrets.token_urlsafe(48)}\n"
                f"master_key={base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}\n"
            )
            # Written whole to a file of our own, then linked into place: another process
            # either sees no file or a complete one, and the first link wins.
            draft = path.with_name(f".{DEV_KEYS_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            try:
                os.link(draft, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            else:
                log.warning("generated random development keys into %s (dev/demo only; set "
                            "VERN_SECRET_KEY and VERN_MASTER_KEY to choose your own)", path)
            finally:
                draft.unlink()
        values: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                values[name.strip()] = value.strip()
        if not values.get("secret_key") or not values.get("master_key"):
            raise ConfigError(f"{path}: the development keys file is incomplete; delete it to make "
                              "new keys (data sealed under the old ones is then lost)")
        _generated[path] = values
        return values


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; raises ``ConfigError`` naming the bad variable."""
    try:
        return Settings()
    except ValueError as exc:
        raise ConfigError(_first_message(exc)) from exc


def _first_message(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            name = f"VERN_{loc.upper()}"
            parts.append(f"{name}: {msg}" if loc and not msg.startswith(name) else msg)
        return "; ".join(parts)
    return str(exc)
