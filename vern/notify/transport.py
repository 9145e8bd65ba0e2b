"""Mail transports: where the outbox hands its messages.

``SmtpTarget.parse`` reads ``VERN_SMTP_URL``:

* ``smtp://host[:port]`` - plain SMTP (port 25), for a relay on the same machine;
* ``smtp://user:pass@host:587?starttls=1`` - STARTTLS before anything else is said;
* ``smtps://user:pass@host[:465]`` - TLS from the first byte (implicit TLS).

Certificates are checked against the system's trust store, or ``?cafile=/path`` for a private
one. A user name and password are only sent over TLS (or to a loopback address); the password
may come from ``VERN_SMTP_PASSWORD_FILE`` instead of the URL. This module uses the standard
library only, so that the settings can check a URL without importing the rest of Vern.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from vern.core.smtp import TIMEOUT, SmtpTarget

__all__ = ["TIMEOUT", "Mail", "Mailer", "SmtpMailer", "SmtpTarget"]


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str
    kind: str


class Mailer(Protocol):
    def send(self, mail: Mail) -> None: ...



@dataclass
class SmtpMailer:
    """Sends each message over SMTP to ``target`` from ``sender`` (``VERN_MAIL_FROM``)."""

    target: SmtpTarget
    sender: str

    def send(self, mail: Mail) -> None:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg.set_content(mail.body)
        with self.target.connect() as smtp:
            smtp.send_message(msg)

    def check(self) -> None:
        """Connect, greet and sign in, then leave (``vern check``)."""
        smtp = self.target.connect()
        try:
            smtp.noop()
        finally:
            smtp.quit()
