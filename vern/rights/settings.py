"""Settings of the rights domain (``VERN_RIGHTS_*``); every default is the strict one."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RightsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERN_RIGHTS_", extra="ignore", frozen=True)

    # Art. 12(3): one month from receipt; the seeds promise 30 days (set due_days=30 for that).
    due_months: int = Field(default=1, ge=1, le=1)
    due_days: int | None = Field(default=None, ge=1, le=31)
    max_extension_months: int = Field(default=2, ge=0, le=2)
    remind_days_before: int = Field(default=7, ge=1, le=28)
    code_minutes: int = Field(default=10, ge=1, le=10)
    code_attempts: int = Field(default=3, ge=1, le=3)
    download_days: int = Field(default=5, ge=1, le=30)
    batch_rows: int = Field(default=500, ge=1, le=100_000)
    # A partly done request is run again by the worker: after retry_backoff_seconds, doubling per
    # attempt up to retry_backoff_max_seconds, at most retry_max_attempts runs in all; then the
    # customer's admins and the vendor's privacy officers are told.
    retry_max_attempts: int = Field(default=5, ge=1, le=20)
    retry_backoff_seconds: int = Field(default=300, ge=1, le=86_400)
    retry_backoff_max_seconds: int = Field(default=21_600, ge=1, le=604_800)
    # Approval is required by default; a tenant may relax it in its rights policy.
    approve_erasure: bool = True
    approve_rectification: bool = True


@lru_cache(maxsize=1)
def rights_settings() -> RightsSettings:
    return RightsSettings()
