"""The newsletter, as the seed runs it: customers receive it on legitimate interest (Art. 6(1)(f))
with an opt-out link in every mail; everyone else only after double opt-in (consent, Art. 6(1)(a)).
Both the confirmation and the opt-out are consent records.

Links in mail open a page with one button; the button (a POST) does the change, so that a mail
scanner following links can neither confirm nor unsubscribe anybody. A subscriber's opt-out link
is stable (a keyed hash of the subscription), so the link in every mail ever sent keeps working.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.audit.service import record as audit
from vern.consent import service
from vern.consent.models import NewsletterSubscriber
from vern.core.crypto import PII, blind_index, keyring
from vern.core.db import new_id, utcnow
from vern.core.errors import InvalidInput
from vern.core.i18n import N_, gettext
from vern.notify import service as notify

PURPOSE = "newsletter"
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s]{2,}$")
# The mails' words, translated through the catalogs (vern.core.i18n).
CONFIRM_SUBJECT = N_("Confirm your newsletter subscription")
CONFIRM_BODY = N_("Someone (hopefully you) signed this address up for the newsletter from %(org)s.\n"
                  "Confirm here: %(link)s\n\nIf you do nothing, you will not hear from us again.")
FOOTER = N_("\n\n--\nYou receive this newsletter from %(org)s. Unsubscribe with one click: %(link)s")


def _index(secret: bytes, email: str) -> str:
    return blind_index(secret, email, "newsletter")


def optout_token(secret: bytes, subscriber_id: str) -> str:
    """The subscriber's one-click opt-out token; only its hash is stored."""
    return blind_index(secret, subscriber_id, "newsletter-opt-out")


def optout_url(base_url: str, org_slug: str, token: str) -> str:
    return f"{base_url}/c/{org_slug}/newsletter/unsubscribe?t={token}"


def _language(value: str | None) -> str:
    return "en" if (value or "").lower().startswith("en") else "nb"


def _check(email: str) -> str:
    email = email.strip()
    if not EMAIL.match(email) or len(email) > 254:
        raise InvalidInput.on("email", "give an e-mail address")
    return email


def _find(session: Session, secret: bytes, email: str) -> NewsletterSubscriber | None:
    return session.scalar(select(NewsletterSubscriber).where(
        NewsletterSubscriber.email_index == _index(secret, email)))


def subscribe(session: Session, *, org_id: str, org_slug: str, org_name: str, secret: bytes,
              base_url: str, email: str, locale: str) -> None:
    """A non-customer asks for the newsletter: send the confirmation mail, nothing else. The
    answer is the same whether the address was known or not (no enumeration)."""
    email = _check(email)
    found = _find(session, secret, email)
    if found is not None and found.status == "active":
        return
    token = service.new_token()
    if found is None:
        key_id = keyring().for_subject(session, "nl:" + _index(secret, email)[:60])
        sub_id = new_id()
        found = NewsletterSubscriber(
            id=sub_id, org_id=org_id, key_id=key_id, email=PII(key_id, email),
            email_index=_index(secret, email), subject=service.verified_subject(secret, email),
            customer=False, status="pending",
            unsubscribe_hash=service.token_hash(optout_token(secret, sub_id)),
        )
        session.add(found)
    found.locale = _language(locale)
    found.confirm_hash = service.token_hash(token)
    session.flush()
    link = f"{base_url}/c/{org_slug}/newsletter/confirm?t={token}"
    notify.queue(session, key_id=found.key_id, to=email, subject=gettext(locale, CONFIRM_SUBJECT),
                 body=gettext(locale, CONFIRM_BODY, org=org_name, link=link),
                 kind="consent.newsletter_confirm", org_id=org_id)
    audit(session, "consent.newsletter_requested", org_id=org_id,
          resource=f"newsletter:{found.id}", details={"new": {"status": found.status}})


def confirm(session: Session, *, token: str) -> NewsletterSubscriber:
    """The double opt-in's second step: the consent record is made now, with this request's
    truncated IP and user agent as proof."""
    sub = session.scalar(select(NewsletterSubscriber).where(
        NewsletterSubscriber.confirm_hash == service.token_hash(token)))
    if sub is None:
        raise InvalidInput.on("t", "this link is not valid (any more)")
    sub.status = "active"
    sub.confirm_hash = None
    sub.confirmed_at = utcnow()
    sub.unsubscribed_at = None
    notice = service.current_notice(session, "privacy")
    service.record_choices(session, org_id=sub.org_id, subject=sub.subject,
                           choices=[service.Choice(PURPOSE, "granted")], method="double-opt-in",
                           notice=notice.version if notice else None, subject_kind="verified")
    return sub


def add_customer(session: Session, *, org_id: str, secret: bytes, email: str,
                 actor_user_id: str | None,
                 locale: str | None = None) -> tuple[NewsletterSubscriber, str]:
    """A customer's address, on legitimate interest: recorded, with an opt-out link from the
    first mail. ``locale`` (nb | en), when given, is the language of the notices owed to them.
    Returns the subscriber and its opt-out token (to put in every mail)."""
    email = _check(email)
    found = _find(session, secret, email)
    if found is not None:
        rec = service.latest(session, found.subject).get(PURPOSE)
        if found.status == "unsubscribed" or (rec is not None and rec.choice in ("objected",
                                                                                 "withdrawn")):
            # An objection stands (Art. 21(3)): not put back on legitimate interest.
            return found, ""
    else:
        key_id = keyring().for_subject(session, "nl:" + _index(secret, email)[:60])
        found = NewsletterSubscriber(
            id=new_id(), org_id=org_id, key_id=key_id, email=PII(key_id, email),
            email_index=_index(secret, email), subject=service.verified_subject(secret, email),
            status="pending", unsubscribe_hash="")
        session.add(found)
    token = optout_token(secret, found.id)
    if locale:
        found.locale = _language(locale)
    found.customer = True
    found.status = "active"
    found.unsubscribe_hash = service.token_hash(token)
    session.flush()
    service.record_choices(session, org_id=org_id, subject=found.subject,
                           choices=[service.Choice(PURPOSE, "legitimate-interest")],
                           method="customer-relationship", notice=None, subject_kind="verified",
                           actor_user_id=actor_user_id)
    return found, token


def _may_mail(session: Session, sub: NewsletterSubscriber) -> bool:
    """The consent records decide, wherever the withdrawal came from (mail link, API, portal)."""
    rec = service.latest(session, sub.subject).get(PURPOSE)
    return rec is not None and service.allowed("a", rec.choice)


def unsubscribe(session: Session, *, token: str) -> NewsletterSubscriber:
    """One click: withdrawn (consent) or objected (legitimate interest), recorded as proof."""
    sub = session.scalar(select(NewsletterSubscriber).where(
        NewsletterSubscriber.unsubscribe_hash == service.token_hash(token)))
    if sub is None or not token:
        raise InvalidInput.on("t", "this link is not valid (any more)")
    if sub.status != "unsubscribed":
        sub.status = "unsubscribed"
        sub.unsubscribed_at = utcnow()
        choice = "objected" if sub.customer else "withdrawn"
        service.record_choices(session, org_id=sub.org_id, subject=sub.subject,
                               choices=[service.Choice(PURPOSE, choice)], method="opt-out-link",
                               notice=None, subject_kind="verified")
    return sub


def send_issue(session: Session, *, org_id: str, org_slug: str, org_name: str, base_url: str,
               secret: bytes, subject: str, body: str, locale: str,
               actor_user_id: str | None) -> int:
    """Queue one newsletter issue to every subscriber whose latest record allows it, each mail
    with the subscriber's one-click opt-out link. Returns the number of mails queued."""
    subject, body = subject.strip(), body.strip()
    if not subject or len(subject) > 200:
        raise InvalidInput.on("subject", "give a subject of 1-200 characters")
    if not body:
        raise InvalidInput.on("body", "give the text of the issue")
    count = 0
    for sub in session.scalars(select(NewsletterSubscriber).where(
            NewsletterSubscriber.status == "active")):
        if sub.email.value is None or not _may_mail(session, sub):
            continue
        token = optout_token(secret, sub.id)
        if sub.unsubscribe_hash != service.token_hash(token):
            sub.unsubscribe_hash = service.token_hash(token)  # after a change of VERN_SECRET_KEY
        link = optout_url(base_url, org_slug, token)
        notify.queue(session, key_id=sub.key_id, to=sub.email.value, subject=subject,
                     body=body + gettext(locale, FOOTER, org=org_name, link=link),
                     kind="consent.newsletter", org_id=org_id)
        count += 1
    audit(session, "consent.newsletter_sent", org_id=org_id, actor_user_id=actor_user_id,
          details={"new": {"recipients": count}})
    return count


@dataclass(frozen=True)
class NoticeRecipient:
    """An active subscriber to be told about a change in the privacy statement: a notice owed to
    them (Art. 12-13), not marketing. The address is sealed under ``key_id`` in the outbox."""

    subscription_id: str
    email: str
    key_id: str
    locale: str
    unsubscribe_url: str


def notice_recipients(session: Session, *, org_id: str, org_slug: str, secret: bytes,
                      base_url: str) -> list[NoticeRecipient]:
    """Every active newsletter subscriber of ``org_id`` - confirmed by double opt-in or added as
    a customer, not ended, whose latest consent record still allows the newsletter - with the
    language they signed up in and their one-click opt-out link, for another domain to queue a
    notice they are owed (a new privacy statement). Pending, ended and erased subscriptions are
    not among them. Oldest first."""
    out: list[NoticeRecipient] = []
    for sub in session.scalars(select(NewsletterSubscriber).where(
            NewsletterSubscriber.org_id == org_id, NewsletterSubscriber.status == "active")
            .order_by(NewsletterSubscriber.created_at, NewsletterSubscriber.id)):
        if sub.email.value is None or not _may_mail(session, sub):
            continue
        token = optout_token(secret, sub.id)
        if sub.unsubscribe_hash != service.token_hash(token):
            sub.unsubscribe_hash = service.token_hash(token)  # after a change of VERN_SECRET_KEY
        out.append(NoticeRecipient(subscription_id=sub.id, email=sub.email.value,
                                   key_id=sub.key_id, locale=_language(sub.locale),
                                   unsubscribe_url=optout_url(base_url, org_slug, token)))
    return out


def erase_person(session: Session, *, org_id: str, secret: bytes, emails: list[str],
                 subjects: list[str], actor_user_id: str | None = None) -> dict[str, int]:
    """Erase one person from the consent domain of ``org_id`` (an erasure request, Art. 17).

    Their newsletter subscription ends (no more mail) and its data key is destroyed, so the
    address, and every mail sealed under it in the outbox, is unreadable at once; the look-up
    hashes are replaced, so the address can no longer be recognised either. Their consent
    records stay as proof that a choice was made (Art. 7(1), what, when, how, under which
    notice), but without who: the subject becomes a random pseudonym and the truncated address
    and user agent are removed. Returns counts of what was done."""

    wanted = {s for s in subjects if s}
    ended = 0
    for email in sorted({e.strip().casefold() for e in emails if e and e.strip()}):
        wanted.add(service.verified_subject(secret, email))
        sub = session.scalar(select(NewsletterSubscriber).where(
            NewsletterSubscriber.org_id == org_id,
            NewsletterSubscriber.email_index == _index(secret, email)))
        if sub is None:
            continue
        wanted.add(sub.subject)
        keyring().shred(session, sub.key_id)
        sub.status = "unsubscribed"
        sub.unsubscribed_at = sub.unsubscribed_at or utcnow()
        sub.confirm_hash = None
        sub.unsubscribe_hash = ""
        sub.email_index = "erased:" + sub.id
        sub.subject = "erased:" + sub.id
        ended += 1
    records = service.anonymise_subjects(session, org_id=org_id, subjects=sorted(wanted))
    session.flush()
    audit(session, "consent.person_erased", org_id=org_id, actor_user_id=actor_user_id,
          details={"new": {"subscriptions_ended": ended, "records_anonymised": records}})
    return {"subscriptions_ended": ended, "records_anonymised": records}
