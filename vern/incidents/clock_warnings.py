"""The worker's warnings before and after a clock passes: which are due, raising one (its row,
the mails to the vendor's staff, its timeline entry) and the console's list of recent ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts.models import Membership, User
from vern.accounts.roles import Role
from vern.accounts.service import Actor
from vern.core.i18n import N_, format_day, gettext
from vern.incidents.clocks import AUTHORITY_HOURS, authority_due, authority_required, warn_before
from vern.incidents.models import AffectedCustomer, ClockWarning, Incident
from vern.incidents.register import Recipient, add_event, org_names, vendor_id_of
from vern.notify import service as notify

WARNING_MAIL = {
    ("customer", "soon"): (N_("Breach %(ref)s: the notice to %(customer)s is due soon"),
                           N_("The notice to %(customer)s about breach %(ref)s (%(title)s) is due "
                              "%(due)s.\n%(link)s")),
    ("customer", "passed"): (N_("Breach %(ref)s: the notice to %(customer)s is overdue"),
                             N_("The notice to %(customer)s about breach %(ref)s (%(title)s) was "
                                "due %(due)s and has not been sent.\n%(link)s")),
    ("authority", "soon"): (N_("Breach %(ref)s: the report to Datatilsynet is due soon"),
                            N_("The 72-hour deadline to report breach %(ref)s (%(title)s) to "
                               "Datatilsynet is %(due)s.\n%(link)s")),
    ("authority", "passed"): (N_("Breach %(ref)s: the report to Datatilsynet is overdue"),
                              N_("The 72-hour deadline to report breach %(ref)s (%(title)s) to "
                                 "Datatilsynet passed %(due)s. Report it with the reasons for "
                                 "the delay (Art. 33(1)).\n%(link)s")),
}
STAFF_ROLES = (Role.OWNER.value, Role.SECURITY_OFFICER.value, Role.PRIVACY_OFFICER.value)


@dataclass(frozen=True)
class Due:
    incident_id: str
    clock: str
    customer_id: str | None
    level: str
    due_at: datetime

    @property
    def key(self) -> str:
        return f"{self.incident_id}:{self.clock}:{self.customer_id or '-'}:{self.level}"


def due_warnings(session: Session, now: datetime) -> list[Due]:
    """Every warning a clock calls for now and that was not raised before (any vendor)."""
    incidents = {i.id: i for i in session.scalars(select(Incident).where(
        Incident.status == "open", Incident.personal_data.is_(True)))}
    if not incidents:
        return []
    found: list[Due] = []
    for row in session.scalars(select(AffectedCustomer).where(
            AffectedCustomer.incident_id.in_(list(incidents)),
            AffectedCustomer.notified_at.is_(None), AffectedCustomer.due_at.is_not(None))):
        assert row.due_at is not None
        if row.due_at - warn_before(row.notice_hours) <= now:
            level = "passed" if now >= row.due_at else "soon"
            found.append(Due(row.incident_id, "customer", row.customer_id, level, row.due_at))
    for inc in incidents.values():
        due = authority_due(inc)
        if due is None or not authority_required(inc) or inc.authority_reported_at is not None:
            continue
        if due - warn_before(AUTHORITY_HOURS) <= now:
            found.append(Due(inc.id, "authority", None, "passed" if now >= due else "soon", due))
    raised = set(session.scalars(select(ClockWarning.key).where(
        ClockWarning.key.in_([d.key for d in found])))) if found else set()
    return [d for d in found if d.key not in raised]


def _vendor_staff(session: Session, vendor_id: str) -> list[Recipient]:
    users = session.scalars(
        select(User).join(Membership, Membership.user_id == User.id)
        .where(Membership.org_id == vendor_id, Membership.role.in_(STAFF_ROLES),
               User.disabled_at.is_(None)).order_by(User.id)).unique()
    return [Recipient(u.key_id, str(u.email.value), u.locale or "nb")
            for u in users if u.email.value]


def raise_warning(session: Session, due: Due, *, now: datetime, base_url: str) -> ClockWarning:
    """One warning: its row (the console's notice), its mails and its timeline entry, in the
    caller's transaction - all or nothing. A second attempt for the same key fails on the
    unique key, so a warning is never raised twice."""
    inc = session.get(Incident, due.incident_id)
    assert inc is not None
    warning = ClockWarning(org_id=inc.org_id, key=due.key, incident_id=inc.id, clock=due.clock,
                           customer_id=due.customer_id, level=due.level, due_at=due.due_at,
                           raised_at=now)
    session.add(warning)
    session.flush()
    customer = org_names(session, {due.customer_id}).get(due.customer_id, "") \
        if due.customer_id else "Datatilsynet"
    link = f"{base_url.rstrip('/')}/console/incidents/{inc.id}"
    subject, body = WARNING_MAIL[(due.clock, due.level)]
    for person in _vendor_staff(session, inc.org_id):
        lang = person.locale
        notify.queue(session, key_id=person.key_id, to=person.email, kind="incidents.warning",
                     org_id=inc.org_id,
                     subject=gettext(lang, subject, ref=f"#{inc.number}", customer=customer),
                     body=gettext(lang, body, ref=f"#{inc.number}", customer=customer,
                                  title=inc.title, link=link,
                                  due=f"{format_day(due.due_at, lang)} {due.due_at:%H:%M} UTC"))
        warning.mails += 1
    add_event(session, inc, "warning_raised", None,
              {"new": {"clock": due.clock, "customer_id": due.customer_id, "level": due.level,
                       "due_at": due.due_at.isoformat(), "mails": warning.mails}})
    return warning


def recent_warnings(session: Session, actor: Actor, limit: int = 20) -> list[ClockWarning]:
    """The console's notices: the newest warnings of open breaches."""
    return list(session.scalars(
        select(ClockWarning).join(Incident, Incident.id == ClockWarning.incident_id)
        .where(Incident.org_id == vendor_id_of(actor), Incident.status == "open")
        .order_by(ClockWarning.raised_at.desc()).limit(limit)))
