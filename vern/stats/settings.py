"""Settings of the statistics domain (``VERN_STATS_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StatsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VERN_STATS_", extra="ignore", frozen=True)

    # Raw events and visits (which carry a daily-salted visitor hash) are deleted after this many
    # days; the roll-ups hold no personal data and stay.
    raw_days: int = Field(default=7, ge=1, le=90)
    # A visit ends after this long without a page view.
    visit_gap_minutes: int = Field(default=30, ge=1, le=240)
    # The ingest buffer is written to the database this often (milliseconds); 0 writes on every
    # beacon (tests).
    flush_interval_ms: int = Field(default=1000, ge=0, le=60_000)
    flush_max_events: int = Field(default=5000, ge=1)
    # At most this many page views wait in memory; beyond it intake waits for the writer at most
    # ``buffer_wait_seconds``, then the page view is dropped and counted. 50,000 is about ten
    # seconds of a busy site, a few megabytes.
    buffer_max_events: int = Field(default=50_000, ge=10)
    buffer_wait_seconds: float = Field(default=0.5, ge=0, le=30)
    max_beacon_bytes: int = Field(default=2048, ge=256, le=16_384)


@lru_cache(maxsize=1)
def stats_settings() -> StatsSettings:
    return StatsSettings()
