"""The outbox: every message Vern sends is a row first, so none is lost when a mailer is down."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vern.crypto import PII, Encrypted
from vern.db import Base, UTCDateTime, id_column, utcnow


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"

    id: Mapped[str] = id_column()
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[PII] = mapped_column(Encrypted("outbox_messages.recipient"))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[PII] = mapped_column(Encrypted("outbox_messages.body"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
