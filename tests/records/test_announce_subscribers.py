"""A new privacy statement also reaches the vendor's active newsletter subscribers, through the
consent domain: once per subscriber per version, in their language, with their opt-out link;
pending, ended and erased subscriptions get nothing, and no address is written to a log."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import PERSONA_TABLE, Personas
from tests.records.helpers import fill_vendor
from vern.consent import newsletter
from vern.consent import service as consent
from vern.consent.models import NewsletterSubscriber
from vern.core.config import Settings
from vern.core.context import RequestContext, reset_request, set_request
from vern.core.db import Database, Scope
from vern.notify import service as notify
from vern.notify.sink import MailSink, Received
from vern.notify.transport import SmtpMailer, SmtpTarget
from vern.records import documents, service
from vern.retention.erasure import erase_in_vern

ACCOUNT_HOLDERS = {email for _, _, email, _, _ in PERSONA_TABLE}
BASE = "https://vern.example.com"
SIGRID = "sigrid.solberg@example.com"      # confirmed, English
TORE = "tore.tangen@example.com"            # confirmed, bokmål
PENDING = "petter.venter@example.com"       # never confirmed
ENDED = "eva.slutt@example.com"             # unsubscribed with the link
ERASED = "ragnhild.borte@example.com"       # erased on her request
ALICE = "alice.aasen@fjellheim.example.com"  # an account holder who also subscribes
KUNDE = "kari.kunde@havbris.example.com"     # a customer's contact, on legitimate interest


@pytest.fixture
def visitor() -> Iterator[None]:
    token = set_request(RequestContext("r-nl", "192.0.2.10", "Mozilla/5.0 (Test)", "POST", "/c"))
    yield
    reset_request(token)


def _subscribe(db: Database, personas: Personas, settings: Settings, email: str, *,
               locale: str = "nb", confirm: bool = True) -> str:
    """The visitor signs up on the vendor's page and (unless not) confirms from the mail."""
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        newsletter.subscribe(session, org_id=personas.vendor, org_slug="solstrand",
                             org_name="Solstrand Læring AS", secret=settings.secret_bytes,
                             base_url=BASE, email=email, locale=locale)
        sub = session.scalar(select(NewsletterSubscriber).where(
            NewsletterSubscriber.email_index == newsletter._index(settings.secret_bytes, email)))
        assert sub is not None
        token = f"bekreft-{sub.id}"
        sub.confirm_hash = consent.token_hash(token)  # the token of the confirmation mail
        sub_id = sub.id
    if confirm:
        with db.transaction(Scope.tenant(personas.vendor)) as session:
            newsletter.confirm(session, token=token)
    return sub_id


def _announcements(db: Database, sink: MailSink) -> list[Received]:
    notify.deliver_pending(db, via=SmtpMailer(SmtpTarget.parse(sink.url), "vern@solstrand.example.com"))
    return [m for m in sink.messages() if "privacy statement" in m.subject
            or "personvernerklæring" in m.subject]


def test_active_subscribers_are_told_once_and_no_one_else(
        db: Database, personas: Personas, settings: Settings, visitor: None,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fill_vendor(db, personas)
    _subscribe(db, personas, settings, SIGRID, locale="en")
    _subscribe(db, personas, settings, TORE)
    _subscribe(db, personas, settings, ALICE)
    _subscribe(db, personas, settings, PENDING, confirm=False)
    ended = _subscribe(db, personas, settings, ENDED)
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        newsletter.unsubscribe(session, token=newsletter.optout_token(settings.secret_bytes, ended))
    _subscribe(db, personas, settings, ERASED)
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        done = erase_in_vern(session, org_id=personas.vendor, identities={"email": ERASED},
                             request_id=None)
        assert done["subscriptions_ended"] == 1

    with MailSink() as sink:
        row = documents.publish(db, kind="privacy", vendor_org_id=personas.vendor, actor_user_id=None)
        assert row is not None and row.version == 1
        got = _announcements(db, sink)
        by_address = {m.to[0]: m for m in got}
        assert set(by_address) == ACCOUNT_HOLDERS | {SIGRID, TORE}
        assert len(got) == len(by_address)  # Alice once, as account holder and subscriber

        english = by_address[SIGRID]
        assert english.subject == "Solstrand Læring AS has a new privacy statement"
        assert "version 1 of its privacy statement" in english.body
        assert "It is a notice you are owed, not a newsletter." in english.body
        bokmal = by_address[TORE]
        assert bokmal.subject == "Solstrand Læring AS har en ny personvernerklæring"
        assert "versjon 1 av personvernerklæringen" in bokmal.body
        assert "ikke et nyhetsbrev" in bokmal.body
        # The subscriber's own opt-out link, and it works.
        link = re.search(r"/c/solstrand/newsletter/unsubscribe\?t=([\w-]+)", english.body)
        assert link is not None
        assert "/newsletter/unsubscribe" not in by_address[ALICE].body

        # Publishing again with nothing changed, and the worker's job: nothing more.
        assert documents.publish(db, kind="privacy", vendor_org_id=personas.vendor,
                                 actor_user_id=None) is None
        assert documents.announce_pending(db) == 0
        assert len(_announcements(db, sink)) == len(got)
    with db.transaction(Scope.system("test")) as session:
        mark = service.announcement(session, row.id)
        assert mark is not None and mark.recipients == len(ACCOUNT_HOLDERS) + 2

    with db.transaction(Scope.tenant(personas.vendor)) as session:
        assert newsletter.unsubscribe(session, token=link.group(1)).status == "unsubscribed"
    with db.transaction(Scope.system("test")) as session:
        left = newsletter.notice_recipients(session, org_id=personas.vendor, org_slug="solstrand",
                                            secret=settings.secret_bytes, base_url=BASE)
    assert sorted(r.email for r in left) == [ALICE, TORE]

    # Vern's own log (the test's SMTP sink logs the conversation it receives: not Vern's).
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))
    assert caplog.records  # the log was captured at DEBUG
    for address in (SIGRID, TORE, PENDING, ENDED, ERASED, ALICE):
        assert address not in logged
        assert address.split("@")[0] not in logged


def test_the_count_on_the_versions_page_includes_the_subscribers(
        db: Database, personas: Personas, settings: Settings, visitor: None, login: Any) -> None:
    fill_vendor(db, personas)
    _subscribe(db, personas, settings, SIGRID, locale="en")
    _subscribe(db, personas, settings, PENDING, confirm=False)
    erik = login(personas.erik)
    # A customer's contact added on legitimate interest, in English (a wrong language is refused).
    wrong = erik.post("/api/v1/consent/newsletter/customers", json={"email": KUNDE, "lang": "de"})
    assert wrong.status_code == 422 and "lang" in wrong.text
    added = erik.post("/api/v1/consent/newsletter/customers", json={"email": KUNDE, "lang": "en"})
    assert added.status_code == 201, added.text
    with MailSink() as sink:
        assert erik.post("/api/v1/records/documents/privacy").json() == {"published": True,
                                                                         "version": 1}
        by_address = {m.to[0]: m for m in _announcements(db, sink)}
    assert by_address[KUNDE].subject == "Solstrand Læring AS has a new privacy statement"
    assert by_address[SIGRID].subject == "Solstrand Læring AS has a new privacy statement"
    assert PENDING not in by_address
    [version] = erik.get("/api/v1/records/documents/privacy").json()["versions"]
    told = len(ACCOUNT_HOLDERS) + 2
    assert len(by_address) == told
    assert version["announced_to"] == told
    page = erik.get("/console/records/documents/privacy").text
    assert f"til {told} personer" in page or f"to {told} people" in page


def test_another_organisations_subscribers_are_not_told(
        db: Database, personas: Personas, settings: Settings, visitor: None) -> None:
    """A customer running its own newsletter through Vern: the vendor's statement is not theirs."""
    fill_vendor(db, personas)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        consent.create_purpose(session, org_id=personas.tenant_a, actor_user_id=None,
                               data=consent.PurposeInput(key="newsletter", kind="marketing",
                                                         legal_basis="a", name_nb="Nyhetsbrev",
                                                         name_en="Newsletter"))
        newsletter.subscribe(session, org_id=personas.tenant_a, org_slug="fjellheim",
                             org_name="Fjellheim", secret=settings.secret_bytes, base_url=BASE,
                             email=TORE, locale="nb")
        sub = session.scalar(select(NewsletterSubscriber))
        assert sub is not None
        sub.confirm_hash = consent.token_hash("fjellheim-token")
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        assert newsletter.confirm(session, token="fjellheim-token").status == "active"
    assert documents.announce_pending(db) == 0
    row = documents.publish(db, kind="privacy", vendor_org_id=personas.vendor, actor_user_id=None)
    assert row is not None
    with db.transaction(Scope.system("test")) as session:
        mark = service.announcement(session, row.id)
        assert mark is not None and mark.recipients == len(ACCOUNT_HOLDERS)
