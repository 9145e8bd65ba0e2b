"""One validated settings object, read from ``VERN_*`` environment variables.

Secrets may come from a file (``VERN_SECRET_KEY_FILE``, ``VERN_MASTER_KEY_FILE``) so that they never
appear in a process listing. Outside ``dev``/``demo``/``test`` a missing or default secret refuses to
start: the strictest setting is the default.
"""

from __future__ import annotations

import base64
import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Environment = Literal["production", "dev", "demo", "test"]

# Used only where the environment allows it (dev, demo, test). Never accepted in production.
DEV_SECRET_KEY = "vern-dev-secret-key-not-for-production"  # noqa: S105
DEV_MASTER_KEY = base64.urlsafe_b64encode(b"vern-dev-master-key-32-bytes!!!!").decode()

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the environment variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERN_", extra="ignore", frozen=True)

    env: Environment = "production"
    database_url: str = f"sqlite:///{ROOT / 'var' / 'vern.db'}"
    secret_key: str | None = None
    secret_key_file: Path | None = None
    master_key: str | None = None
    master_key_file: Path | None = None
    base_url: str = "http://127.0.0.1:8000"
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

    # A comma-separated list in the environment (not JSON).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit_storage_url: str = "memory://"
    rate_limit_signin: str = "10/minute"
    rate_limit_api: str = "1200/minute"
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # The try-it-out page at /api/docs; the description itself is always served.
    api_docs: bool | None = None  # unset: on outside production, off in production

    audit_retention_days: int = Field(default=365, ge=1)
    audit_log_dir: Path = ROOT / "var" / "audit"

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
        secret = self.resolved_secret_key()
        if secret is not None and len(secret) < 32 and self.is_production:
            raise ValueError("VERN_SECRET_KEY must be at least 32 characters")
        master = self.resolved_master_key()
        if master is not None:
            try:
                raw = base64.urlsafe_b64decode(master.encode())
            except ValueError as exc:
                raise ValueError("VERN_MASTER_KEY must be base64") from exc
            if len(raw) != 32:
                raise ValueError("VERN_MASTER_KEY must decode to exactly 32 bytes")
        return self

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
            None if self.is_production else DEV_SECRET_KEY
        )

    def resolved_master_key(self) -> str | None:
        return _read_secret(self.master_key, self.master_key_file, "VERN_MASTER_KEY_FILE") or (
            None if self.is_production else DEV_MASTER_KEY
        )

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
