"""Retention: periods changed by the vendor, legal holds, and the record of every run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.db import Base, UTCDateTime, id_column, utcnow


class RetentionPeriod(Base):
    """A vendor's own period for a rule (never below the rule's legal minimum)."""

    __tablename__ = "retention_periods"

    rule: Mapped[str] = mapped_column(String(80), primary_key=True)
    days: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LegalHold(Base):
    """Pauses a rule (or every rule, ``*``) for one record, one Vern account or one person."""

    __tablename__ = "retention_holds"

    id: Mapped[str] = id_column()
    rule: Mapped[str] = mapped_column(String(80), index=True)
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    record_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    subject_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class RetentionRun(Base):
    """One run of the rules: evidence of what went, per rule. A run that stopped half-way is
    taken up again by the next one (``status`` running, ``heartbeat_at`` old)."""

    __tablename__ = "retention_runs"

    id: Mapped[str] = id_column()
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | cli | api
    status: Mapped[str] = mapped_column(String(16), index=True)  # running | done | failed
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    started_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    finished_rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    cursor: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # rule -> last key done
    resumed: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
