"""Backup runs and restore drills: the evidence that backups are taken and can be restored.

Vendor-wide rows (a backup holds every customer's data), no personal data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.db import Base, UTCDateTime, id_column, utcnow


class BackupRun(Base):
    """One backup: of the data (``kind`` data) or of the data keys (``kind`` keys)."""

    __tablename__ = "backup_runs"

    id: Mapped[str] = id_column()
    kind: Mapped[str] = mapped_column(String(8))  # data | keys
    engine: Mapped[str] = mapped_column(String(16))  # sqlite | postgresql
    label: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The time the backup restores to (SQLite: when the copy was taken; PostgreSQL: its end).
    recovery_point: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    copies: Mapped[int] = mapped_column(BigInteger, default=0)
    # Rows per table at backup time, and where the copies are.
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class RestoreDrill(Base):
    """One restore into a scratch database, checked: audit trail, rows per table."""

    __tablename__ = "backup_drills"

    id: Mapped[str] = id_column()
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    engine: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(64))
    recovery_point: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    audit_ok: Mapped[bool] = mapped_column(Boolean, default=False)
    seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    problem: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor_user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # the product-database step: `vern rights replay` run on each product database named for
    # the drill, restored from a backup of its own (database, since, entries, rows, ok, problem)
    replays: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
