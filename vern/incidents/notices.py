"""Breach notices to the affected customers (Art. 33(2)-(4)): the Art. 33(3) items a notice needs,
its text in both languages, sending it (mails and the customer's row), and the customer's side:
reading and acknowledging it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.accounts.models import Organisation
from vern.accounts.roles import OrgKind
from vern.accounts.service import Actor
from vern.audit.service import record as audit
from vern.core.db import utcnow
from vern.core.errors import Conflict, FieldError, InvalidInput, NotFound
from vern.core.i18n import N_, format_day, format_number, gettext
from vern.incidents.models import PHASES, AffectedCustomer, BreachNotice, Incident
from vern.incidents.register import (
    MOMENT_FIELDS,
    add_event,
    customers_of,
    json_value,
    open_incident,
    org_names,
    recipients,
)
from vern.notify import service as notify

# The Art. 33(3) items: (a) nature, categories and approximate numbers of data subjects and of
# records; (b) the DPO or other contact point; (c) likely consequences; (d) measures.
ART_33_3 = (
    ("what_happened", "a", N_("the nature of the breach is missing (Art. 33(3)(a))")),
    ("subject_categories", "a", N_("the categories of data subjects are missing (Art. 33(3)(a))")),
    ("subjects_approx", "a", N_("the approximate number of data subjects is missing (Art. 33(3)(a))")),
    ("data_categories", "a", N_("the categories of personal data are missing (Art. 33(3)(a))")),
    ("records_approx", "a", N_("the approximate number of records is missing (Art. 33(3)(a))")),
    ("contact", "b", N_("the contact point is missing (Art. 33(3)(b))")),
    ("consequences", "c", N_("the likely consequences are missing (Art. 33(3)(c))")),
    ("measures_taken", "d", N_("the measures taken or proposed are missing (Art. 33(3)(d))")),
)


def missing_items(inc: Incident) -> list[FieldError]:
    """Every Art. 33(3) item the incident does not yet give."""
    out = []
    for name, _letter, message in ART_33_3:
        value = getattr(inc, name)
        if name == "measures_taken":
            value = inc.measures_taken or inc.measures_proposed
        if value is None or value in ("", []):
            out.append(FieldError(name, message, "art-33-3"))
    return out


def content_of(inc: Incident) -> dict[str, Any]:
    """What a notice carries: the Art. 33(3) items and the facts the controller's own report
    to Datatilsynet asks for, as they stand when it is sent."""
    keys = ("title", "risk", "what_happened", "how_happened", "subject_categories",
            "subjects_approx", "data_categories", "records_approx", "consequences",
            "measures_taken", "measures_proposed", "data_location", "contact", *MOMENT_FIELDS)
    return {k: json_value(getattr(inc, k)) for k in keys} | {"number": inc.number}


NOTICE_SUBJECT = {
    "initial": N_("Personal data breach %(ref)s: notice to %(customer)s"),
    "update": N_("Personal data breach %(ref)s: update to %(customer)s"),
    "final": N_("Personal data breach %(ref)s: final update to %(customer)s"),
}
RISK_TEXT = {"none": N_("unlikely to result in a risk"), "risk": N_("a risk to people"),
             "high": N_("a high risk to people")}


def _when(value: Any, locale: str) -> str:
    if not value:
        return gettext(locale, "not known")
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{format_day(moment, locale)} {moment:%H:%M} UTC"


def _count(value: Any, locale: str) -> str:
    return gettext(locale, "about %(n)s", n=format_number(value, locale)) \
        if value is not None else gettext(locale, "not known")


def notice_text(content: dict[str, Any], *, phase: str, vendor: str, customer: str,
                locale: str) -> tuple[str, str]:
    """(subject, body) of a notice in one language, from its kept content."""
    ref = f"#{content['number']}"
    subject = gettext(locale, NOTICE_SUBJECT[phase], ref=ref, customer=customer)
    none = gettext(locale, "not given")

    def line(label: str, value: str) -> str:
        return f"{gettext(locale, label)}: {value or none}"

    lines = [
        gettext(locale, "%(vendor)s has registered a personal data breach that concerns personal "
                        "data %(customer)s is the controller of (GDPR Art. 33(2)).",
                vendor=vendor, customer=customer),
        "",
        line(N_("Breach"), f"{ref} {content['title']}"),
        line(N_("Phase"), gettext(locale, phase)),
        line(N_("What happened"), content["what_happened"]),
        line(N_("How it happened"), content["how_happened"]),
        line(N_("Period"), f"{_when(content['occurred_from'], locale)} – "
                           f"{_when(content['occurred_to'], locale)}"),
        line(N_("Discovered"), _when(content["discovered_at"], locale)),
        line(N_("The vendor became aware"), _when(content["aware_at"], locale)),
        line(N_("Categories of data subjects"), ", ".join(content["subject_categories"])),
        line(N_("Approximate number of data subjects"), _count(content["subjects_approx"], locale)),
        line(N_("Categories of personal data"), ", ".join(content["data_categories"])),
        line(N_("Approximate number of records"), _count(content["records_approx"], locale)),
        line(N_("Likely consequences"), content["consequences"]),
        line(N_("Measures taken"), content["measures_taken"]),
        line(N_("Measures proposed"), content["measures_proposed"]),
        line(N_("Risk"), gettext(locale, RISK_TEXT[content["risk"]])),
        line(N_("Where the data is now"), content["data_location"]),
        line(N_("Contact point"), content["contact"]),
        "",
        gettext(locale, "As controller you decide whether to report the breach to Datatilsynet "
                        "(within 72 hours of becoming aware, Art. 33(1)) and whether to tell the "
                        "people concerned (Art. 34)."),
    ]
    return subject, "\n".join(lines)


@dataclass(frozen=True)
class SentNotice:
    notice_id: str
    customer_id: str
    recipients: int


def send_notices(session: Session, actor: Actor, incident_id: str, *, phase: str = "initial",
                 customer_ids: list[str] | None = None, base_url: str = "",
                 now: datetime | None = None) -> list[SentNotice]:
    """A notice (or an update) to each affected customer, or to those named: refused whole,
    naming the fields, when an Art. 33(3) item is missing (Art. 33(4) allows later phases to add
    what was not known, but every item must be given, if only as "not known yet")."""
    now = now or utcnow()
    inc = open_incident(session, actor, incident_id)
    if phase not in PHASES:
        raise InvalidInput.on("phase", "one of %(values)s", values=", ".join(PHASES))
    if not inc.personal_data:
        raise InvalidInput.on("personal_data", "only a breach of personal data is notified")
    missing = missing_items(inc)
    if missing:
        raise InvalidInput(detail=f"{missing[0].field}: {missing[0].message}", errors=missing)
    rows = customers_of(session, inc.id)
    if customer_ids is not None:
        rows = [r for r in rows if r.customer_id in set(customer_ids)]
        if len(rows) != len(set(customer_ids)):
            raise InvalidInput.on("customers", "not every customer named is affected by the breach")
    if not rows:
        raise InvalidInput.on("customers", "the breach has no affected customer to notify")
    vendor = session.get(Organisation, inc.org_id)
    names = org_names(session, {r.customer_id for r in rows})
    content = content_of(inc)
    sent = []
    for row in rows:
        if phase == "initial" and row.notified_at is not None:
            raise Conflict(detail="phase: the first notice to %(customer)s was already sent; "
                                  "send an update", params={"customer": names[row.customer_id]})
        if phase != "initial" and row.notified_at is None:
            raise Conflict(detail="phase: send the first notice to %(customer)s before an update",
                           params={"customer": names[row.customer_id]})
        sent.append(_notice(session, inc, row, phase, content, vendor.name if vendor else "",
                            names[row.customer_id], actor, base_url, now))
    inc.updated_at = now
    return sent


# PLR0917 is wrong here: the notice's parts, named at every call
def _notice(session: Session, inc: Incident, row: AffectedCustomer, phase: str,  # noqa: PLR0917
            content: dict[str, Any], vendor: str, customer: str, actor: Actor, base_url: str,
            now: datetime) -> SentNotice:
    sequence = (session.scalar(select(func.max(BreachNotice.sequence)).where(
        BreachNotice.incident_id == inc.id, BreachNotice.org_id == row.customer_id)) or 0) + 1
    subject_nb, body_nb = notice_text(content, phase=phase, vendor=vendor, customer=customer,
                                      locale="nb")
    subject_en, body_en = notice_text(content, phase=phase, vendor=vendor, customer=customer,
                                      locale="en")
    notice = BreachNotice(org_id=row.customer_id, incident_id=inc.id, sequence=sequence,
                          phase=phase, content=content, subject_nb=subject_nb,
                          subject_en=subject_en, body_nb=body_nb, body_en=body_en,
                          sent_at=now, sent_by=actor.user_id)
    session.add(notice)
    session.flush()
    link = f"{base_url.rstrip('/')}/console/incidents/notices/{notice.id}"
    told = 0
    for person in recipients(session, row.customer_id):
        subject, body = (subject_nb, body_nb) if person.locale == "nb" else (subject_en, body_en)
        ack = gettext(person.locale, "Read and acknowledge the notice in Vern: %(link)s", link=link)
        notify.queue(session, key_id=person.key_id, to=person.email, subject=subject,
                     body=f"{body}\n\n{ack}", kind="incidents.notice", org_id=row.customer_id)
        told += 1
    notice.recipients = told
    if row.notified_at is None:
        row.notified_at = now
    add_event(session, inc, "notice_sent", actor,
              {"new": {"customer_id": row.customer_id, "phase": phase, "sequence": sequence,
                       "recipients": told}})
    audit(session, "incidents.notice_received", org_id=row.customer_id,
          actor_user_id=actor.user_id, actor_token_id=actor.token_id,
          resource=f"incident_notice:{notice.id}", details={"new": {"phase": phase}})
    return SentNotice(notice.id, row.customer_id, told)


# -- the customer's side -------------------------------------------------------------------------


def customer_notices(session: Session, *, limit: int = 200) -> list[BreachNotice]:
    """The notices sent to the session's organisation (a tenant scope: never another's)."""
    return list(session.scalars(select(BreachNotice)
                                .order_by(BreachNotice.sent_at.desc(), BreachNotice.id)
                                .limit(limit)))


def customer_notice(session: Session, notice_id: str) -> BreachNotice:
    notice = session.get(BreachNotice, notice_id)
    if notice is None:
        raise NotFound(detail="no such notice")
    return notice


def acknowledge(session: Session, actor: Actor, notice_id: str,
                *, now: datetime | None = None) -> BreachNotice:
    """The customer's admin confirms they received the notice (once; later calls change nothing)."""
    notice = customer_notice(session, notice_id)
    if notice.org_id != actor.org_id or actor.org_kind is not OrgKind.TENANT:
        raise NotFound(detail="no such notice")
    if notice.acknowledged_at is None:
        notice.acknowledged_at = now or utcnow()
        notice.acknowledged_by = actor.user_id
        audit(session, "incidents.notice_acknowledged", org_id=notice.org_id,
              actor_user_id=actor.user_id, actor_token_id=actor.token_id,
              resource=f"incident_notice:{notice.id}",
              details={"new": {"acknowledged_at": notice.acknowledged_at.isoformat()}})
    return notice


def vendor_notice_view(notice: BreachNotice) -> dict[str, Any]:
    """A notice as the vendor sees it in its register: which customer, which phase, when sent
    and acknowledged - not the customer's row id nor who of theirs acknowledged it."""
    out = notice_view(notice)
    del out["id"]
    return out | {"customer_id": notice.org_id}


def notice_view(notice: BreachNotice, locale: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": notice.id, "incident_id": notice.incident_id, "sequence": notice.sequence,
        "phase": notice.phase, "sent_at": json_value(notice.sent_at),
        "acknowledged_at": json_value(notice.acknowledged_at), "recipients": notice.recipients,
        "content": notice.content,
    }
    if locale is None:
        out |= {"subject_nb": notice.subject_nb, "subject_en": notice.subject_en,
                "body_nb": notice.body_nb, "body_en": notice.body_en}
    else:
        nb = locale == "nb"
        out |= {"subject": notice.subject_nb if nb else notice.subject_en,
                "body": notice.body_nb if nb else notice.body_en}
    return out
