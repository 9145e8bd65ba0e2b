"""Sending messages (e-mail): queue in the outbox inside the caller's transaction, deliver later.

``queue`` is what domains call. ``deliver_pending`` hands queued messages to the configured mailer:
``MemoryMailer`` (tests and demo: messages are kept in memory and shown in the console log without
their body) or ``SmtpMailer`` (``VERN_SMTP_URL=smtp://host:port``). The recipient and body are
sealed under the recipient's data key, so shredding a person also shreds their mail.
"""

from __future__ import annotations

import logging
import smtplib
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import urlparse

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from vern.crypto import PII
from vern.db import Database, Scope, utcnow
from vern.notify.models import OutboxMessage
from vern.quarantine import is_bad_record, quarantine, reason_of

log = logging.getLogger("vern.notify")


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


MAX_ATTEMPTS = 10
WRITER = "notify.outbox"


def deliver_pending(database: Database, *, limit: int = 100) -> int:
    """Send queued messages, each in its own transaction. A mailer failure (network, SMTP) is
    kept on the row and retried next time; a message that cannot be sent for what it holds (a
    value the mailer refuses, a sealed field that does not open) is quarantined - marked on its
    row, set aside in ``write_quarantine`` (without recipient or body) - and the rest go on. A
    failing database ends the round (tried again at the next)."""
    with database.transaction(Scope.system("deliver outbox")) as session:
        ids = list(session.scalars(
            select(OutboxMessage.id)
            .where(OutboxMessage.sent_at.is_(None), OutboxMessage.attempts < MAX_ATTEMPTS)
            .order_by(OutboxMessage.created_at)
            .limit(limit)
        ))
    sent = 0
    for message_id in ids:
        try:
            sent += _deliver_one(database, message_id)
        except Exception as exc:
            if not _message_fault(exc):
                log.exception("outbox delivery stopped: the database failed")
                break
            _quarantine_message(database, message_id, exc)
    return sent


def _deliver_one(database: Database, message_id: str) -> int:
    with database.transaction(Scope.system("deliver outbox")) as session:
        row = session.get(OutboxMessage, message_id)
        if row is None or row.sent_at is not None:
            return 0
        row.attempts += 1
        if row.recipient.value is None or row.body.value is None:
            row.last_error = "recipient erased"
            row.sent_at = utcnow()
            return 0
        try:
            _mailer.send(Mail(row.recipient.value, row.subject, row.body.value, row.kind))
        except (OSError, smtplib.SMTPException) as exc:
            row.last_error = type(exc).__name__
            return 0
        row.sent_at = utcnow()
        row.last_error = None
        return 1


def _message_fault(exc: BaseException) -> bool:
    """Whether a failed delivery is the message's fault (quarantined) rather than the database's
    (the round ends and is tried again)."""
    return is_bad_record(exc) or not isinstance(exc, SQLAlchemyError)


def _quarantine_message(database: Database, message_id: str, exc: BaseException) -> None:
    reason = reason_of(exc)
    org_id = None
    try:
        with database.transaction(Scope.system("outbox quarantine")) as session:
            found = session.execute(
                select(OutboxMessage.org_id, OutboxMessage.kind).where(
                    OutboxMessage.id == message_id)).first()
            session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(
                attempts=MAX_ATTEMPTS, last_error=f"quarantined: {reason}"[:500]))
            org_id = found.org_id if found else None
            kind = found.kind if found else None
    except Exception:
        log.exception("outbox: a message that cannot be sent could not be marked either")
        return
    quarantine(database, WRITER, reason, {"message_id": message_id, "kind": kind},
               org_id=org_id)


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
