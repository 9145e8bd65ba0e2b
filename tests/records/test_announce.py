"""A new privacy statement is announced by e-mail to the people it concerns, once per version."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from tests.conftest import PERSONA_TABLE, Personas
from tests.records.helpers import fill_vendor
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.core.worker import Job, run_due
from vern.notify import service as notify
from vern.notify.models import OutboxMessage
from vern.notify.sink import MailSink, Received
from vern.notify.transport import SmtpMailer, SmtpTarget
from vern.records import documents, service
from vern.records.jobs import JOBS
from vern.vendor import service as vendor

KIND = "records.privacy_announced"
ACCOUNT_HOLDERS = {email for _, _, email, _, _ in PERSONA_TABLE}
CONTACT = "hanne.holm@havbris.example.com"


def _deliver(db: Database, sink: MailSink) -> list[Received]:
    notify.deliver_pending(db, via=SmtpMailer(SmtpTarget.parse(sink.url), "vern@solstrand.example.com"))
    return [m for m in sink.messages() if "privacy statement" in m.subject
            or "personvernerklæring" in m.subject]


def _queued(db: Database) -> int:
    with db.transaction(Scope.system("test outbox")) as session:
        return len(list(session.scalars(select(OutboxMessage.id).where(OutboxMessage.kind == KIND))))


def _customer_contacts_entry(db: Database, personas: Personas, key: str = "crm") -> None:
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        service.create_entry(session, org_id=personas.vendor, actor_user_id=None,
                             data=service.EntryInput(key=key, name_nb="Kunderegister",
                                                     name_en="Customer register",
                                                     subjects=("customer_contacts",)))


def _english_contact(db: Database, personas: Personas) -> None:
    with db.transaction(Scope.tenant(personas.tenant_b)) as session:
        vendor.add_contact(session, personas.tenant_b, kind="privacy", name="Hanne Holm",
                           email=CONTACT, locale="en", actor_user_id=None)


def test_every_account_holder_and_the_customers_contacts_get_the_new_version_once(
        db: Database, personas: Personas) -> None:
    fill_vendor(db, personas)
    _customer_contacts_entry(db, personas)
    _english_contact(db, personas)
    with MailSink() as sink:
        row = documents.publish(db, kind="privacy", vendor_org_id=personas.vendor, actor_user_id=None)
        assert row is not None and row.version == 1
        got = _deliver(db, sink)
        by_address = {m.to[0]: m for m in got}
        # Every account holder; Havbris's privacy contact instead of its administrator as the
        # customer's recipient (Carol is told as an account holder); Fjellheim's administrator.
        assert set(by_address) == ACCOUNT_HOLDERS | {CONTACT}
        assert len(got) == len(by_address)
        english = by_address[CONTACT]
        assert english.subject == "Solstrand Læring AS has a new privacy statement"
        assert "version 1 of its privacy statement" in english.body
        assert "Privacy statement" in english.body  # the statement itself, in English
        bokmal = by_address["alice.aasen@fjellheim.example.com"]
        assert bokmal.subject == "Solstrand Læring AS har en ny personvernerklæring"
        assert "versjon 1 av personvernerklæringen" in bokmal.body

        # Publishing again with nothing changed, the worker and a second announcement: no mail.
        assert documents.publish(db, kind="privacy", vendor_org_id=personas.vendor,
                                 actor_user_id=None) is None
        assert documents.announce_pending(db) == 0
        assert len(_deliver(db, sink)) == len(got)
        assert _queued(db) == len(got)

        # A new version is announced once more to each.
        _customer_contacts_entry(db, personas, key="support")
        row = documents.publish(db, kind="privacy", vendor_org_id=personas.vendor, actor_user_id=None)
        assert row is not None and row.version == 2
        every = _deliver(db, sink)
        second = [m for m in every if m not in got]
        assert len(every) == 2 * len(got)
        assert sorted(m.to[0] for m in second) == sorted(by_address)
        assert "published version 2" in next(m for m in second if m.to[0] == CONTACT).body
    with db.transaction(Scope.system("test")) as session:
        mark = service.announcement(session, row.id)
        assert mark is not None and mark.recipients == len(by_address)


def test_customers_are_not_told_of_a_statement_that_does_not_concern_them(
        db: Database, personas: Personas) -> None:
    fill_vendor(db, personas)  # its only entry is the newsletter's subscribers
    _english_contact(db, personas)
    documents.publish(db, kind="privacy", vendor_org_id=personas.vendor, actor_user_id=None)
    with db.transaction(Scope.system("test outbox")) as session:
        to = {m.recipient.value for m in session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == KIND))}
    assert to == ACCOUNT_HOLDERS


def test_a_version_left_unannounced_by_a_stopped_process_is_announced_by_the_worker_once(
        db: Database, personas: Personas, settings: Settings) -> None:
    fill_vendor(db, personas)
    # The version is kept, then the process stops before announcing it.
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        nb, en = documents.privacy_html(session, personas.vendor)
        service.store_document(session, org_id=personas.vendor, kind="privacy", html_nb=nb,
                               html_en=en, actor_user_id=None)
    assert _queued(db) == 0
    assert run_due(db, settings, JOBS) == ["records.announce"]
    assert _queued(db) == len(ACCOUNT_HOLDERS)
    # A restarted worker running the job again finds nothing left to announce.
    again = [Job("records.announce.again", timedelta(0), JOBS[0].run)]
    assert run_due(db, settings, again) == ["records.announce.again"]
    assert _queued(db) == len(ACCOUNT_HOLDERS)


def test_two_processes_announcing_at_once_queue_each_mail_once(db: Database, personas: Personas) -> None:
    fill_vendor(db, personas)
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        nb, en = documents.privacy_html(session, personas.vendor)
        service.store_document(session, org_id=personas.vendor, kind="privacy", html_nb=nb,
                               html_en=en, actor_user_id=None)
    start = threading.Barrier(2)
    results: list[int] = []

    def announce() -> None:
        start.wait()
        results.append(documents.announce_pending(db))

    threads = [threading.Thread(target=announce) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, len(ACCOUNT_HOLDERS)]
    assert _queued(db) == len(ACCOUNT_HOLDERS)
    assert documents.announce_pending(db) == 0


def test_the_versions_show_when_and_to_how_many_each_was_announced(
        db: Database, personas: Personas, login: Any) -> None:
    fill_vendor(db, personas)
    erik = login(personas.erik)
    assert erik.post("/api/v1/records/documents/privacy").json() == {"published": True, "version": 1}
    [version] = erik.get("/api/v1/records/documents/privacy").json()["versions"]
    assert version["announced_to"] == len(ACCOUNT_HOLDERS) and version["announced_at"]
    page = erik.get("/console/records/documents/privacy").text
    assert f"til {len(ACCOUNT_HOLDERS)} personer" in page or f"to {len(ACCOUNT_HOLDERS)} people" in page
    # The record of processing is not announced: no such column.
    assert erik.post("/api/v1/records/documents/record").status_code == 201
    [record] = erik.get("/api/v1/records/documents/record").json()["versions"]
    assert record["announced_to"] is None
    assert "Kunngjort på e-post" not in erik.get("/console/records/documents/record").text
