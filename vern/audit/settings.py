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
    # request that adds one wait (``queue_wait_seconds``, then dropped and counted). A batch
    # collects the records that arrive within ``linger_seconds`` of its first one (up to
    # ``batch_max``) and is then written in one append; with nothing to write the writer still
    # looks for work every ``flush_seconds``.
    queue_max: int = Field(default=50_000, ge=10)
    # A full queue is waited for at most this long; then the record is dropped and counted.
    queue_wait_seconds: float = Field(default=1.0, ge=0, le=60)
    # At shutdown, a failing database is tried this long before the records go to a spill file.
    stop_grace_seconds: float = Field(default=10.0, ge=0, le=300)
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
    # Sealing: a pending record whose time is more than this before the newest record sealed
    # from the pending queue (or after now) is quarantined, not sealed.
    seal_skew_seconds: float = Field(default=300.0, ge=0, le=86_400)
    # The origin line (and key name) of the C2SP checkpoint note; empty: the host of
    # VERN_BASE_URL followed by ``/audit``.
    origin: str = Field(default="", max_length=200)
    # Witnesses of the signed checkpoints, outside Vern's database and log files: a directory
    # (another disk, mount or host) that keeps the newest witnessed checkpoint, and/or a C2SP
    # tlog-witness (``<prefix>/add-checkpoint``) with its verifier key (``name+hash+base64``).
    witness_dir: Path | None = None
    witness_url: str = Field(default="", max_length=500)
    witness_key: str = Field(default="", max_length=300)
    witness_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("previous_public_keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


@lru_cache(maxsize=1)
def audit_settings() -> AuditSettings:
    return AuditSettings()
