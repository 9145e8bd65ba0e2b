"""The outbox: every message Vern sends is a row first, so none is lost when a mailer is down.

Recipient, subject and body are sealed under the recipient's data key (a one-time code or a
link is never in clear). A sender claims a row (``claimed_by``, ``claimed_until``) before it
sends it, so several workers never send one message twice; a failed attempt keeps the claim
as a back-off before the next try.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vern.core.crypto import PII, Encrypted
from vern.core.db import Base, UTCDateTime, id_column, utcnow


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"

    id: Mapped[str] = id_column()
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[PII] = mapped_column(Encrypted("outbox_messages.recipient"))
    # Null only for messages queued before subjects were sealed (sent with a neutral subject).
    subject: Mapped[PII | None] = mapped_column(Encrypted("outbox_messages.subject"), nullable=True)
    body: Mapped[PII] = mapped_column(Encrypted("outbox_messages.body"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
