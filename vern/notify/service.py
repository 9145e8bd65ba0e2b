"""Sending messages (e-mail): queue in the outbox inside the caller's transaction, deliver later.

``queue`` is what domains call. ``deliver_pending`` hands queued messages to the process's
mailer, which ``configure(settings)`` chooses the same way in every process (``vern serve``, the
CLI, ``vern worker``): ``SmtpMailer`` when ``VERN_SMTP_URL`` is set (required in production);
otherwise, outside tests, none - mail then stays in the outbox, unsent, until a transport is
configured. ``MemoryMailer`` is for tests only. Recipient, subject and body are sealed under the
recipient's data key, so shredding a person also shreds their mail, and no code or link is
ever stored in clear.

Delivery claims each row before sending it (``claimed_by``/``claimed_until``, a compare-and-set
``UPDATE``), so any number of workers and web processes may deliver at once and each message
is sent once. A process that dies after sending and before marking the row sent leaves the
claim to expire; the message is then sent again (at least once, never lost).
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from vern.core.config import get_settings
from vern.core.crypto import PII
from vern.core.db import Database, Scope, utcnow
from vern.core.quarantine import is_bad_record, quarantine, reason_of
from vern.notify.models import OutboxMessage
from vern.notify.transport import Mail, Mailer, SmtpMailer, SmtpTarget

if TYPE_CHECKING:
    from vern.core.config import Settings

__all__ = [
    "Mail",
    "Mailer",
    "MemoryMailer",
    "SmtpMailer",
    "configure",
    "deliver_pending",
    "install_mailer",
    "mailer",
    "queue",
    "send_now",
]

log = logging.getLogger("vern.notify")

MAX_ATTEMPTS = 10
# How long a claim holds a row: far longer than one SMTP conversation (``transport.TIMEOUT``).
LEASE = timedelta(minutes=5)
# Subject of a message queued before subjects were sealed (its subject was dropped on upgrade).
FALLBACK_SUBJECT = "Vern"


@dataclass
class MemoryMailer:
    """Keeps sent mail in memory: for tests."""

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


_mailer: Mailer | None = None


def install_mailer(mailer: Mailer | None) -> None:
    global _mailer  # noqa: PLW0603 - one mailer per process, chosen at start-up
    _mailer = mailer


def mailer() -> Mailer | None:
    return _mailer


def mailer_for(settings: Settings) -> Mailer | None:
    """The transport the settings ask for; None when mail has to wait in the outbox."""
    if settings.smtp_url:
        target = SmtpTarget.parse(settings.smtp_url, password_file=settings.smtp_password_file)
        return SmtpMailer(target, settings.mail_from_address)
    return None


def configure(settings: Settings) -> None:
    """Install the settings' transport in this process (the web app, the CLI and the worker
    all call this). Tests keep the mailer they installed when no SMTP URL is given."""
    chosen = mailer_for(settings)
    if chosen is None and settings.env == "test":
        if _mailer is None:
            install_mailer(MemoryMailer())
        return
    if chosen is None:
        log.warning("no mail transport (VERN_SMTP_URL is not set): mail stays in the outbox, "
                    "unsent, until one is configured")
    install_mailer(chosen)


def configure_from_env() -> None:
    """Kept for callers of the earlier name: ``configure`` with the process's settings."""

    configure(get_settings())


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
    """Queue one message in the caller's transaction; ``key_id`` is the recipient's data key.
    Recipient, subject and body are sealed under it: put codes and links in either freely."""
    msg = OutboxMessage(
        org_id=org_id,
        kind=kind,
        recipient=PII(key_id, to),
        subject=PII(key_id, subject),
        body=PII(key_id, body),
        attempts=0,
    )
    session.add(msg)
    return msg


WRITER = "notify.outbox"


def _sender_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def deliver_pending(database: Database, *, limit: int = 100, via: Mailer | None = None) -> int:
    """Send up to ``limit`` queued messages through ``via`` (default: the installed mailer);
    returns how many were sent. Without a mailer nothing is touched: the mail waits."""
    chosen = via if via is not None else _mailer
    if chosen is None:
        return 0
    now = utcnow()
    with database.transaction(Scope.system("deliver outbox")) as session:
        candidates = list(session.scalars(
            select(OutboxMessage.id)
            .where(OutboxMessage.sent_at.is_(None), OutboxMessage.attempts < MAX_ATTEMPTS,
                   or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
            .order_by(OutboxMessage.created_at)
            .limit(limit)
        ))
    me = _sender_id()
    sent = 0
    for message_id in candidates:
        try:
            sent += _deliver_one(database, message_id, me, chosen)
        except Exception as exc:
            if not _message_fault(exc):
                log.exception("outbox delivery stopped: the database failed")
                break
            _quarantine_message(database, message_id, exc)
    return sent


def _deliver_one(database: Database, message_id: str, me: str, chosen: Mailer) -> int:
    """One claimed message: sent (1), or kept for a retry with its error (0). A failure of the
    message itself (a value the mailer refuses, a sealed field that does not open) raises."""
    mail = _claim(database, message_id, me)
    if mail is None:
        return 0  # another sender holds it, or it was sent meanwhile
    error = None
    if isinstance(mail, str):
        error = mail
    else:
        try:
            chosen.send(mail)
        except (OSError, smtplib.SMTPException) as exc:
            error = type(exc).__name__
            log.info("outbox message %s not sent: %s", message_id, error)
    _finish(database, message_id, me, error)
    return int(error is None)


def _claim(database: Database, message_id: str, me: str) -> Mail | str | None:
    """Take the row for ``me`` (compare-and-set on the claim) and open it: the mail, a reason
    why it cannot be sent, or None when another sender has it."""
    now = utcnow()
    with database.transaction(Scope.system("claim outbox")) as session:
        taken = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.sent_at.is_(None),
                   or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
            .values(claimed_by=me, claimed_until=now + LEASE)
            .execution_options(synchronize_session=False)
        )
        if not getattr(taken, "rowcount", 0):
            return None
        row = session.get(OutboxMessage, message_id)
        if row is None:  # pragma: no cover - the update just matched it
            return None
        to, body = row.recipient.value, row.body.value
        subject = row.subject.value if row.subject is not None else FALLBACK_SUBJECT
        if to is None or body is None or subject is None:
            return "recipient erased"
        return Mail(to, subject, body, row.kind)


def _finish(database: Database, message_id: str, me: str, error: str | None) -> None:
    now = utcnow()
    with database.transaction(Scope.system("deliver outbox")) as session:
        row = session.get(OutboxMessage, message_id)
        if row is None or row.claimed_by != me:  # pragma: no cover - our lease outlives a send
            return
        row.attempts += 1
        row.last_error = error
        if error is None or error == "recipient erased":
            row.sent_at = now
            row.claimed_until = None
        else:
            # Keep the claim as a back-off: 1, 2, 4 … minutes, at most an hour.
            row.claimed_until = now + timedelta(minutes=min(2 ** (row.attempts - 1), 60))


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
                attempts=MAX_ATTEMPTS, last_error=f"quarantined: {reason}"[:500],
                claimed_by=None, claimed_until=None))
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
