"""Files the vendor shares with chosen customers (a penetration test report, a certificate).

The file itself belongs to the vendor (``trust_files``, no customer column); each customer who may
see it has a share row in its own organisation, so a customer's session finds only its shares.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.db import Base, TenantScoped, UTCDateTime, id_column, utcnow


class TrustFile(Base):
    __tablename__ = "trust_files"

    id: Mapped[str] = id_column()
    title: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    uploaded_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TrustShare(TenantScoped, Base):
    __tablename__ = "trust_shares"
    __table_args__ = (UniqueConstraint("org_id", "file_id"),)

    id: Mapped[str] = id_column()
    file_id: Mapped[str] = mapped_column(String(36), index=True)
    shared_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    shared_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
