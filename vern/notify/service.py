"""Sending messages (e-mail): queue in the outbox inside the caller's transaction, deliver later.

``queue`` is what domains call. ``deliver_pending`` hands queued messages to the configured mailer:
``MemoryMailer`` (tests and demo: messages are kept in memory and shown in the console log without
their body) or ``SmtpMailer`` (``VERN_SMTP_URL=smtp://host:port``). The recipient and body are
sealed under the recipient's data key, so shredding a person also shreds their mail.
"""

from __future__ import annotations

import smtplib
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.crypto import PII
from vern.db import Database, Scope, utcnow
from vern.notify.models import OutboxMessage


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str
    kind: str


class Mailer(Protocol):
    def send(self, mail: Mail) -> None: ...


@dataclass
class MemoryMailer:
    """Keeps sent mail in memory: for tests and the demo."""

    sent: list[Mail] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, mail: Mail) -> None:
        with self._lock:
            self.sent.append(mail)

    def last_to(self, address: str) -> Mail | None:
        with self._lock:
            for mail in reversed(self.sent):
                if mail.to == address:
                    return mail
        return None


@dataclass
class SmtpMailer:
    url: str
    sender: str = "vern@example.com"

    def send(self, mail: Mail) -> None:
        parts = urlparse(self.url)
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg.set_content(mail.body)
        with smtplib.SMTP(parts.hostname or "127.0.0.1", parts.port or 25, timeout=10) as smtp:
            smtp.send_message(msg)


_mailer: Mailer = MemoryMailer()


def install_mailer(mailer: Mailer) -> None:
    global _mailer  # noqa: PLW0603 - one mailer per process, chosen at start-up
    _mailer = mailer


def mailer() -> Mailer:
    return _mailer


def queue(
    session: Session,
    *,
    key_id: str,
    to: str,
    subject: str,
    body: str,
    kind: str,
    org_id: str | None = None,
) -> OutboxMessage:
    """Queue one message in the caller's transaction; ``key_id`` is the recipient's data key."""
    msg = OutboxMessage(
        org_id=org_id,
        kind=kind,
        recipient=PII(key_id, to),
        subject=subject,
        body=PII(key_id, body),
    )
    session.add(msg)
    return msg


def deliver_pending(database: Database, *, limit: int = 100) -> int:
    """Send queued messages; a failure is kept on the row and retried next time."""
    sent = 0
    with database.transaction(Scope.system("deliver outbox")) as session:
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.sent_at.is_(None), OutboxMessage.attempts < 10)
            .order_by(OutboxMessage.created_at)
            .limit(limit)
        ).all()
        for row in rows:
            row.attempts += 1
            if row.recipient.value is None or row.body.value is None:
                row.last_error = "recipient erased"
                row.sent_at = utcnow()
                continue
            try:
                _mailer.send(Mail(row.recipient.value, row.subject, row.body.value, row.kind))
            except (OSError, smtplib.SMTPException) as exc:
                row.last_error = type(exc).__name__
                continue
            row.sent_at = utcnow()
            row.last_error = None
            sent += 1
    return sent


def send_now(
    database: Database, *, key_id: str, to: str, subject: str, body: str, kind: str,
    org_id: str | None = None,
) -> None:
    """Queue and deliver at once (short flows such as one-time codes)."""
    with database.transaction(Scope.system("queue mail")) as session:
        queue(session, key_id=key_id, to=to, subject=subject, body=body, kind=kind, org_id=org_id)
    deliver_pending(database)


def configure_from_env() -> None:
    """``VERN_SMTP_URL=smtp://host:port`` sends real mail; otherwise mail stays in memory."""
    import os

    url = os.environ.get("VERN_SMTP_URL")
    if url:
        install_mailer(SmtpMailer(url))
