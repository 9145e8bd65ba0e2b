"""The outbox and its SMTP transport, against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import datetime as dt
import ipaddress
import smtplib
import ssl
import threading
from collections import Counter
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select, update

from tests.conftest import make_settings
from vern.core.crypto import keyring
from vern.core.db import Database, Scope, utcnow
from vern.notify import service as notify
from vern.notify.models import OutboxMessage
from vern.notify.sink import MailSink
from vern.notify.transport import Mail, SmtpMailer, SmtpTarget

SENDER = "Solstrand Læring <personvern@solstrand.example.com>"


def _queue(database: Database, count: int, prefix: str = "Melding") -> list[str]:
    ids = []
    with database.transaction(Scope.system("test queue")) as session:
        for i in range(count):
            key_id = keyring().create(session)
            msg = notify.queue(session, key_id=key_id, to=f"kari.nordmann.{i}@example.com",
                               subject=f"{prefix} {i:03d}", body=f"Hei Kari nr. {i}, æøå.",
                               kind="test.message")
            session.flush()
            ids.append(msg.id)
    return ids


def _rows(database: Database) -> list[OutboxMessage]:
    with database.transaction(Scope.system("test read")) as session:
        rows = list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)))
        session.expunge_all()
        return rows


def test_two_senders_at_once_send_each_message_exactly_once(db: Database) -> None:
    """Two senders (two workers) start together on the same queue: every message reaches the
    SMTP server once, none twice, none lost."""
    _queue(db, 40)
    with MailSink() as sink:
        mailer = SmtpMailer(SmtpTarget.parse(sink.url), SENDER)
        start = threading.Barrier(2)
        counts: list[int] = []
        errors: list[BaseException] = []

        def sender() -> None:
            try:
                start.wait(timeout=10)
                total = 0
                for _ in range(3):  # bounded: a few rounds, as a worker's ticks would be
                    total += notify.deliver_pending(db, via=mailer)
                counts.append(total)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=sender) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        received = sink.messages()
    assert not errors, errors
    subjects = Counter(m.subject for m in received)
    assert len(subjects) == 40
    assert max(subjects.values()) == 1, [s for s, n in subjects.items() if n > 1]
    assert sum(counts) == 40
    rows = _rows(db)
    assert all(r.sent_at is not None and r.attempts == 1 and r.last_error is None for r in rows)
    assert {m.sender for m in received} == {"personvern@solstrand.example.com"}


def test_a_claimed_message_is_left_to_its_sender(sqlite_db: Database) -> None:
    [message_id] = _queue(sqlite_db, 1)
    with sqlite_db.transaction(Scope.system("test claim")) as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(
            claimed_by="annen-prosess", claimed_until=utcnow() + dt.timedelta(minutes=5)))
    memory = notify.MemoryMailer()
    assert notify.deliver_pending(sqlite_db, via=memory) == 0
    with sqlite_db.transaction(Scope.system("test claim")) as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(
            claimed_until=utcnow() - dt.timedelta(seconds=1)))  # that sender died: lease over
    assert notify.deliver_pending(sqlite_db, via=memory) == 1
    assert [m.subject for m in memory.sent] == ["Melding 000"]


class _Down:
    def send(self, mail: Mail) -> None:
        raise ConnectionRefusedError("mail server down")


def test_a_failed_send_stays_queued_and_is_retried_after_a_pause(sqlite_db: Database) -> None:
    [message_id] = _queue(sqlite_db, 1)
    assert notify.deliver_pending(sqlite_db, via=_Down()) == 0
    [row] = _rows(sqlite_db)
    assert row.sent_at is None and row.attempts == 1 and row.last_error == "ConnectionRefusedError"
    assert row.claimed_until is not None and row.claimed_until > utcnow()
    memory = notify.MemoryMailer()
    assert notify.deliver_pending(sqlite_db, via=memory) == 0  # still pausing
    with sqlite_db.transaction(Scope.system("test")) as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id)
                        .values(claimed_until=utcnow() - dt.timedelta(seconds=1)))
    assert notify.deliver_pending(sqlite_db, via=memory) == 1
    [row] = _rows(sqlite_db)
    assert row.sent_at is not None and row.attempts == 2 and row.last_error is None


def test_without_a_transport_mail_waits_in_the_outbox(sqlite_db: Database, tmp_path: Path) -> None:
    """Nothing is marked sent that was not sent: with no transport the rows stay queued."""
    previous = notify.mailer()
    notify.configure(make_settings(sqlite_db.url, tmp_path, env="dev"))
    try:
        assert notify.mailer() is None
        _queue(sqlite_db, 2)
        assert notify.deliver_pending(sqlite_db) == 0
        assert all(r.sent_at is None and r.attempts == 0 for r in _rows(sqlite_db))
    finally:
        notify.install_mailer(previous)


def test_every_process_configures_the_same_smtp_transport(sqlite_db: Database, tmp_path: Path) -> None:
    previous = notify.mailer()
    try:
        with MailSink() as sink:
            notify.configure(make_settings(sqlite_db.url, tmp_path, env="test", smtp_url=sink.url,
                                           mail_from=SENDER))
            chosen = notify.mailer()
            assert isinstance(chosen, SmtpMailer) and chosen.sender == SENDER
            _queue(sqlite_db, 1)
            assert notify.deliver_pending(sqlite_db) == 1
            [got] = sink.messages()
        assert got.subject == "Melding 000" and got.to == ["kari.nordmann.0@example.com"]
        assert "æøå" in got.body
    finally:
        notify.install_mailer(previous)


# -- TLS and sign-in ------------------------------------------------------------------------------


def _certificate(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp.pem", tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return cert_path, context


SIGN_INS: list[bool] = []


def _authenticator(server: object, session: object, envelope: object, mechanism: str,
                   auth_data: object) -> object:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"vern"
          and auth_data.password == b"Fjord og fjell 2026")
    SIGN_INS.append(ok)
    return AuthResult(success=ok)


def _one_mail() -> Mail:
    return Mail("kari.nordmann@example.com", "Koden din", "Koden er 314159.", "test.message")


def test_starttls_and_sign_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vern.core.smtp.TIMEOUT", 3.0)  # the refused sign-in waits for it
    cafile, context = _certificate(tmp_path)
    with MailSink(tls_context=context, require_starttls=True, authenticator=_authenticator,
                  auth_require_tls=True, auth_required=True) as sink:
        url = f"smtp://vern:Fjord%20og%20fjell%202026@127.0.0.1:{sink.port}?starttls=1&cafile={cafile}"
        SmtpMailer(SmtpTarget.parse(url), SENDER).send(_one_mail())
        [got] = sink.messages()
        assert got.subject == "Koden din"
        # Without STARTTLS this server refuses to go on; with the wrong password it refuses too.
        plain = SmtpTarget.parse(f"smtp://127.0.0.1:{sink.port}")
        with pytest.raises(Exception, match="STARTTLS"):
            SmtpMailer(plain, SENDER).send(_one_mail())
        wrong = url.replace("Fjord%20og", "Feil")
        with pytest.raises(smtplib.SMTPException):
            SmtpMailer(SmtpTarget.parse(wrong), SENDER).send(_one_mail())
    assert len(sink.messages()) == 1


def test_implicit_tls_and_sign_in(tmp_path: Path) -> None:
    cafile, context = _certificate(tmp_path)
    # aiosmtpd counts only STARTTLS as TLS for its AUTH rule; this connection is TLS throughout.
    with MailSink(server_hostname="localhost", ssl_context=context, authenticator=_authenticator,
                  auth_require_tls=False) as sink:
        url = f"smtps://vern:Fjord%20og%20fjell%202026@127.0.0.1:{sink.port}?cafile={cafile}"
        SIGN_INS.clear()
        SmtpMailer(SmtpTarget.parse(url), SENDER).send(_one_mail())
        assert SIGN_INS == [True]
        [got] = sink.messages()
    assert got.subject == "Koden din" and got.sender == "personvern@solstrand.example.com"


def test_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    _cafile, context = _certificate(tmp_path)
    with MailSink(tls_context=context, require_starttls=True) as sink:
        target = SmtpTarget.parse(f"smtp://127.0.0.1:{sink.port}?starttls=1")  # system CAs only
        with pytest.raises(ssl.SSLError):
            SmtpMailer(target, SENDER).send(_one_mail())
    assert sink.messages() == []
