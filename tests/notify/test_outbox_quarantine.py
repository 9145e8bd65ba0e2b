"""The outbox sender on SQLite and PostgreSQL: a message that cannot be sent for what it holds is
quarantined and the others are sent - once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest
from sqlalchemy import select, text

from vern.core.crypto import keyring
from vern.core.db import Database, Scope
from vern.core.quarantine import WriteQuarantine
from vern.notify import service
from vern.notify.models import OutboxMessage


@dataclass
class BuildingMailer:
    """Builds each message as ``SmtpMailer`` does (the e-mail library's header checks included)
    and keeps it instead of sending."""

    sent: list[EmailMessage] = field(default_factory=list)

    def send(self, mail: service.Mail) -> None:
        msg = EmailMessage()
        msg["From"] = "vern@example.com"
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg.set_content(mail.body)
        self.sent.append(msg)


@pytest.fixture
def mailer() -> Iterator[BuildingMailer]:
    before = service.mailer()
    found = BuildingMailer()
    service.install_mailer(found)
    yield found
    service.install_mailer(before)


def _queue(db: Database, subject: str, to: str = "kari.nordmann@example.com") -> str:
    with db.transaction(Scope.system("test queue")) as session:
        key_id = keyring().for_subject(session, f"test:{to}")
        msg = service.queue(session, key_id=key_id, to=to, subject=subject,
                            body="Hei Kari,\nkoden din er 123456.", kind="test.code")
        session.flush()
        return msg.id


def _rows(db: Database) -> dict[str, OutboxMessage]:
    with db.transaction(Scope.system("test read")) as session:
        rows = {r.id: r for r in session.scalars(select(OutboxMessage))}
        session.expunge_all()
        return rows


def test_a_message_the_mailer_refuses_is_quarantined_and_the_others_sent_once(
    db: Database, mailer: BuildingMailer
) -> None:
    first = _queue(db, "Din kode")
    bad = _queue(db, "Din kode\nBcc: alle@example.com")  # header injection: refused
    last = _queue(db, "Din nye kode")
    assert service.deliver_pending(db) == 2
    assert [m["Subject"] for m in mailer.sent] == ["Din kode", "Din nye kode"]
    rows = _rows(db)
    assert rows[first].sent_at is not None and rows[last].sent_at is not None
    assert rows[bad].sent_at is None and rows[bad].attempts == service.MAX_ATTEMPTS
    assert (rows[bad].last_error or "").startswith("quarantined: ValueError")
    with db.transaction(Scope.system("test read")) as session:
        [q] = session.scalars(select(WriteQuarantine)).all()
    assert q.writer == "notify.outbox" and json.loads(q.record)["message_id"] == bad
    assert "kari" not in q.record and "Bcc" not in q.record
    assert service.deliver_pending(db) == 0 and len(mailer.sent) == 2  # nothing sent twice


def test_a_message_whose_sealed_body_does_not_open_is_quarantined(
    db: Database, mailer: BuildingMailer
) -> None:
    bad = _queue(db, "Ødelagt")
    good = _queue(db, "Hel")
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE outbox_messages SET body = :body WHERE id = :id"),
                     {"body": b"\x01" + b"\x00" * 40, "id": bad})
    assert service.deliver_pending(db) == 1
    assert [m["Subject"] for m in mailer.sent] == ["Hel"]
    with db.transaction(Scope.system("test read")) as session:
        row = session.execute(select(OutboxMessage.attempts, OutboxMessage.last_error)
                              .where(OutboxMessage.id == bad)).one()
    assert row.attempts == service.MAX_ATTEMPTS and row.last_error.startswith("quarantined")
    assert good != bad
