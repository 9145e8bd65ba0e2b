"""One offboarding per ended contract. A vendor-wide row (not tenant-scoped): it outlives the
customer, and with it the certificate of deletion."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.db import Base, UTCDateTime, id_column, utcnow


class Offboarding(Base):
    __tablename__ = "offboardings"

    id: Mapped[str] = id_column()
    customer_org_id: Mapped[str] = mapped_column(String(36), index=True)
    customer_name: Mapped[str] = mapped_column(String(200))
    # requested → approved → deleting → deleted; or cancelled
    status: Mapped[str] = mapped_column(String(16), default="requested")
    reason: Mapped[str] = mapped_column(String(500), default="")
    notice_days: Mapped[int] = mapped_column(Integer)
    requested_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    notice_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    confirmed_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    export_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    export_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    exported_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deletion_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Where the deletion stands (the step it is at, rows deleted per table): resumable.
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The certificate of deletion as a signed note (C2SP format, the audit checkpoint key).
    certificate: Mapped[str | None] = mapped_column(Text, nullable=True)
