"""Settings of the audit domain (``VERN_AUDIT_*``). Retention and the log directory are in the
core settings (``VERN_AUDIT_RETENTION_DAYS``, ``VERN_AUDIT_LOG_DIR``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class AuditSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERN_AUDIT_", extra="ignore", frozen=True)

    # A signed checkpoint after this many new records, or this many seconds, whichever is first.
    checkpoint_every: int = Field(default=10_000, ge=1)
    checkpoint_seconds: float = Field(default=60.0, gt=0)
    # The background writer: at most this many records wait in memory; a full queue makes the
    # request that adds one wait (never dropped). A batch collects the records that arrive
    # within ``linger_seconds`` of its first one (up to ``batch_max``) and is then written in one
    # append; with nothing to write the writer still looks for work every ``flush_seconds``.
    queue_max: int = Field(default=50_000, ge=10)
    batch_max: int = Field(default=5_000, ge=1)
    flush_seconds: float = Field(default=0.2, gt=0)
    linger_seconds: float = Field(default=0.05, ge=0, le=5)
    # fsync the JSON-lines file after each batch (durable files, not only a durable database).
    fsync_files: bool = True
    # Ed25519 signing key (32 raw bytes, base64) in a file; without it the key is derived from
    # VERN_SECRET_KEY with HKDF (rotating that secret then changes the checkpoint key).
    signing_key_file: Path | None = None
    # Public keys (base64) of earlier signing keys whose checkpoints still verify.
    previous_public_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Requests for static files (``/static/…``: styles, scripts, images) are kept out of the
    # request audit; when recorded, their client address is truncated (IPv4 /24, IPv6 /48).
    static_files: bool = False
    # Ingest limits.
    ingest_max_events: int = Field(default=1000, ge=1, le=10_000)
    ingest_max_details_bytes: int = Field(default=4096, ge=256)
    # Alerts.
    alert_failed_signins: int = Field(default=10, ge=2)
    alert_failed_window_minutes: int = Field(default=15, ge=1)
    alert_people_read: int = Field(default=200, ge=2)
    alert_people_window_minutes: int = Field(default=60, ge=1)

    @field_validator("previous_public_keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


@lru_cache(maxsize=1)
def audit_settings() -> AuditSettings:
    return AuditSettings()
