"""Announcements of a new privacy statement: who it concerns (every account holder, the
customers' privacy contacts when it covers their contact persons, and the vendor's newsletter
subscribers), the versions not announced yet, and the announcing itself - the mails in each
person's language, queued with the record that the version was announced, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.audit.service import record as audit
from vern.consent import newsletter
from vern.core.config import get_settings
from vern.core.i18n import N_, format_day, gettext
from vern.notify import service as notify
from vern.records import registry, render
from vern.records.models import Announcement, DocumentVersion, ProcessingEntry

# The document kinds announced by e-mail when a new version is published (a DPA is announced as
# the customer's new agreement).
ANNOUNCED_KINDS = ("privacy",)
# Categories of data subjects that make the statement concern the customers' contact persons.
CUSTOMER_SUBJECTS = ("customer_contacts",)
PRIVACY_MAIL = (N_("%(vendor)s has a new privacy statement"),
                N_("%(vendor)s published version %(version)s of its privacy statement on %(day)s. "
                   "It tells how %(vendor)s processes personal data about you. The statement "
                   "follows in full.\n\n%(text)s"))
# Added to the mail to a newsletter subscriber (who has no account): why they get it, and the way
# out of the newsletter - the notice itself is owed to them, not marketing.
SUBSCRIBER_FOOTER = N_("\n\n--\nYou receive this because you subscribe to the newsletter from "
                       "%(vendor)s. It is a notice you are owed, not a newsletter. Unsubscribe "
                       "from the newsletter with one click: %(link)s")


@dataclass(frozen=True)
class Person:
    email: str
    key_id: str
    locale: str
    unsubscribe_url: str | None = None  # a newsletter subscriber's opt-out link


def _language(value: str | None) -> str:
    return "en" if (value or "").lower().startswith("en") else "nb"


def concerns_customers(session: Session, vendor_org_id: str) -> bool:
    """Whether the vendor's statement covers the customers' contact persons: one of its current
    processing entries names them as data subjects."""
    return any(set(e.subjects) & set(CUSTOMER_SUBJECTS) for e in session.scalars(
        select(ProcessingEntry).where(ProcessingEntry.org_id == vendor_org_id,
                                      ProcessingEntry.retired_at.is_(None))))


def audience(session: Session, vendor_org_id: str) -> list[Person]:
    """The people a new privacy statement concerns, each address once: every active account
    holder, the customers' privacy contacts (else their administrators) when the statement
    covers the customers' contact persons, and the vendor's active newsletter subscribers (through
    the consent domain). A system scope (it reads across organisations)."""
    people: dict[str, Person] = {}
    for user in accounts.active_users(session):
        address = user.email.value if user.email is not None else None
        if address:
            people.setdefault(address.lower(), Person(address, user.key_id, _language(user.locale)))
    if concerns_customers(session, vendor_org_id):
        ids = [o.id for o in accounts.list_tenants(session) if o.disabled_at is None]
        for found in registry.privacy_recipients(session, ids).values():
            for r in found:
                people.setdefault(r.email.lower(), Person(r.email, r.key_id, _language(r.locale)))
    settings = get_settings()
    vendor = accounts.get_organisation(session, vendor_org_id)
    for sub in newsletter.notice_recipients(session, org_id=vendor_org_id, org_slug=vendor.slug,
                                            secret=settings.secret_bytes,
                                            base_url=settings.base_url):
        people.setdefault(sub.email.lower(), Person(sub.email, sub.key_id, sub.locale,
                                                    sub.unsubscribe_url))
    return [people[k] for k in sorted(people)]


def unannounced(session: Session) -> list[DocumentVersion]:
    """The latest version of each announced kind that has not been announced yet (an earlier
    version that was never announced is superseded by it)."""
    out = []
    for kind in ANNOUNCED_KINDS:
        latest = session.scalar(select(DocumentVersion).where(DocumentVersion.kind == kind)
                                .order_by(DocumentVersion.version.desc()).limit(1))
        if latest is not None and session.scalar(
                select(Announcement.id).where(Announcement.document_id == latest.id)) is None:
            out.append(latest)
    return out


def announcements(session: Session, kind: str) -> dict[str, Announcement]:
    """The announcements of a kind's versions, by document id (the versions pages)."""
    return {a.document_id: a for a in session.scalars(
        select(Announcement).where(Announcement.kind == kind))}


def announcement(session: Session, document_id: str) -> Announcement | None:
    return session.scalar(select(Announcement).where(Announcement.document_id == document_id))


def announce(session: Session, row: DocumentVersion) -> int:
    """Queue the new version to every person it concerns, in the recipient's language, and
    record that it was announced - in one transaction, so a version is announced once (a second
    process doing the same at once fails on the unique document id and queues nothing).
    Returns how many mails were queued."""
    marker = Announcement(org_id=row.org_id, document_id=row.id, kind=row.kind,
                          version=row.version)
    session.add(marker)
    session.flush()  # claims the version before any mail is queued
    vendor = accounts.get_organisation(session, row.org_id)
    people = audience(session, row.org_id)
    for person in people:
        loc = person.locale
        html = row.html_nb if loc == "nb" else row.html_en
        params = {"vendor": vendor.name, "version": row.version,
                  "day": format_day(row.published_at, loc),
                  "text": "\n".join(render.text_lines(html))}
        body = gettext(loc, PRIVACY_MAIL[1], **params)
        if person.unsubscribe_url:
            body += gettext(loc, SUBSCRIBER_FOOTER, vendor=vendor.name, link=person.unsubscribe_url)
        notify.queue(session, key_id=person.key_id, to=person.email,
                     subject=gettext(loc, PRIVACY_MAIL[0], **params), body=body,
                     kind="records.privacy_announced", org_id=row.org_id)
    marker.recipients = len(people)
    audit(session, "records.document_announced", org_id=row.org_id, actor_user_id=None,
          resource=f"document:{row.kind}:{row.version}",
          details={"new": {"kind": row.kind, "version": row.version, "recipients": len(people)}})
    return len(people)
