"""Every write of the incidents domain, each with its timeline entry and audit record in the
caller's transaction.

The vendor's side (register, change, notify, report, close) runs in a session with a system
scope named for the register - notices are rows of the customers they go to - and every look-up
is limited to the acting vendor's own incidents here. The customer's side (their notices, the
acknowledgement) runs in the customer's own tenant scope.

Clocks (Art. 33): a processor tells each controller without undue delay after becoming aware
(33(2)); the customer's agreement sets the hours (default 24). Where the vendor is itself the
controller it reports to Datatilsynet within 72 hours of becoming aware, with reasons when later
(33(1)). A breach cannot be registered without the moment of awareness, since every clock
counts from it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.accounts.models import Membership, Organisation, User
from vern.accounts.roles import OrgKind, Role
from vern.accounts.service import Actor
from vern.audit.service import record as audit
from vern.core.csvsafe import SafeWriter
from vern.core.db import utcnow
from vern.core.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from vern.core.i18n import N_, format_day, format_number, gettext
from vern.incidents.models import (
    EXEMPTIONS,
    PHASES,
    RISKS,
    AffectedCustomer,
    BreachNotice,
    ClockWarning,
    Incident,
    IncidentEvent,
)
from vern.notify import service as notify
from vern.vendor import service as registry

DEFAULT_NOTICE_HOURS = 24  # when the customer's agreement names no other (Art. 33(2))
AUTHORITY_HOURS = 72  # Art. 33(1)
MAX_TEXT = 20_000
MAX_LIST = 50
MAX_COUNT = 2_000_000_000
TEXT_FIELDS = ("what_happened", "how_happened", "consequences", "measures_taken",
               "measures_proposed", "data_location", "contact")
MOMENT_FIELDS = ("occurred_from", "occurred_to", "discovered_at", "aware_at")
EDITABLE = ("title", "personal_data", "risk", "subjects_approx", "records_approx",
            "data_categories", "subject_categories", "vendor_is_controller",
            *TEXT_FIELDS, *MOMENT_FIELDS)


@lru_cache(maxsize=256)
def warn_before(hours: int) -> timedelta:
    """How long before a clock passes its warning is raised: a quarter of the clock, at most
    24 hours (6 hours of a 24-hour clock, 18 of the 72-hour one)."""
    return min(timedelta(hours=hours) / 4, timedelta(hours=24))


# -- input ---------------------------------------------------------------------------------------


@dataclass
class IncidentInput:
    title: str
    personal_data: bool = False
    risk: str = "risk"
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    discovered_at: datetime | None = None
    aware_at: datetime | None = None
    what_happened: str = ""
    how_happened: str = ""
    data_categories: list[str] = field(default_factory=list)
    subject_categories: list[str] = field(default_factory=list)
    subjects_approx: int | None = None
    records_approx: int | None = None
    consequences: str = ""
    measures_taken: str = ""
    measures_proposed: str = ""
    data_location: str = ""
    contact: str = ""
    vendor_is_controller: bool = False

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in EDITABLE}


def _check_values(values: dict[str, Any]) -> dict[str, Any]:
    """The values cleaned, or InvalidInput naming the first field that is wrong."""
    out = dict(values)
    if "title" in out:
        out["title"] = str(out["title"] or "").strip()
        if not 1 <= len(out["title"]) <= 200:
            raise InvalidInput.on("title", "give a title of 1-200 characters")
    if "risk" in out and out["risk"] not in RISKS:
        raise InvalidInput.on("risk", "one of %(values)s", values=", ".join(RISKS))
    for name in TEXT_FIELDS:
        if name in out:
            out[name] = str(out[name] or "").strip()
            if len(out[name]) > MAX_TEXT:
                raise InvalidInput.on(name, "at most %(n)s characters", n=MAX_TEXT)
    for name in ("data_categories", "subject_categories"):
        if name in out:
            items = [str(v).strip() for v in out[name] or [] if str(v).strip()]
            if len(items) > MAX_LIST or any(len(v) > 200 for v in items):
                raise InvalidInput.on(name, "at most %(n)s entries of 200 characters", n=MAX_LIST)
            out[name] = items
    _check_numbers_and_times(out)
    return out


def _check_numbers_and_times(out: dict[str, Any]) -> None:
    for name in ("subjects_approx", "records_approx"):
        if out.get(name) is not None and not 0 <= int(out[name]) <= MAX_COUNT:
            raise InvalidInput.on(name, "a number from 0 to %(n)s", n=MAX_COUNT)
    for name in MOMENT_FIELDS:
        value = out.get(name)
        if value is not None and value.tzinfo is None:
            raise InvalidInput.on(name, "give the time with its UTC offset")


def _check_whole(inc: Incident, now: datetime) -> None:
    """Rules across fields, on the incident as it would be after a change."""
    if inc.personal_data and inc.aware_at is None:
        # Art. 33: every clock counts from awareness; a breach without it cannot be registered.
        raise InvalidInput.on("aware_at", "a breach needs the time the vendor became aware of it",
                              "required")
    if inc.aware_at is not None and inc.aware_at > now + timedelta(minutes=5):
        raise InvalidInput.on("aware_at", "cannot be in the future")
    if inc.discovered_at and inc.aware_at and inc.discovered_at > inc.aware_at:
        raise InvalidInput.on("aware_at", "cannot be before the breach was discovered")
    if inc.occurred_from and inc.occurred_to and inc.occurred_to < inc.occurred_from:
        raise InvalidInput.on("occurred_to", "cannot be before the start of the period")


# -- reading -------------------------------------------------------------------------------------


def _vendor(actor: Actor) -> str:
    if actor.org_kind is not OrgKind.VENDOR or not actor.home:
        raise Forbidden(detail="the register is the vendor's")
    return actor.org_id


def get_incident(session: Session, actor: Actor, incident_id: str) -> Incident:
    inc = session.get(Incident, incident_id)
    if inc is None or inc.org_id != _vendor(actor):
        raise NotFound(detail="no such incident")
    return inc


def list_incidents(session: Session, actor: Actor, *, status: str | None = "open",
                   limit: int = 200, offset: int = 0) -> list[Incident]:
    stmt = (select(Incident).where(Incident.org_id == _vendor(actor))
            .order_by(Incident.number.desc()).limit(limit).offset(offset))
    if status:
        stmt = stmt.where(Incident.status == status)
    return list(session.scalars(stmt))


def customers_of(session: Session, incident_id: str) -> list[AffectedCustomer]:
    return list(session.scalars(select(AffectedCustomer)
                                .where(AffectedCustomer.incident_id == incident_id)
                                .order_by(AffectedCustomer.added_at, AffectedCustomer.id)))


def timeline(session: Session, incident_id: str) -> list[IncidentEvent]:
    return list(session.scalars(select(IncidentEvent)
                                .where(IncidentEvent.incident_id == incident_id)
                                .order_by(IncidentEvent.at, IncidentEvent.id)))


def notices_of_incident(session: Session, incident_id: str) -> list[BreachNotice]:
    """Every notice and update sent for an incident, to every customer (vendor's view)."""
    return list(session.scalars(select(BreachNotice)
                                .where(BreachNotice.incident_id == incident_id)
                                .order_by(BreachNotice.sent_at, BreachNotice.sequence)))


def warnings_of(session: Session, incident_id: str) -> list[ClockWarning]:
    return list(session.scalars(select(ClockWarning)
                                .where(ClockWarning.incident_id == incident_id)
                                .order_by(ClockWarning.raised_at)))


def org_names(session: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.execute(select(Organisation.id, Organisation.name)
                           .where(Organisation.id.in_(sorted(ids))))
    return {r.id: r.name for r in rows}


# -- the clocks ----------------------------------------------------------------------------------


def clock_state(due: datetime | None, done: datetime | None, hours: int,
                now: datetime) -> str:
    """``done`` / ``late`` (done after the deadline) / ``overdue`` / ``due_soon`` / ``running``."""
    if due is None:
        return "running"
    if done is not None:
        return "late" if done > due else "done"
    if now >= due:
        return "overdue"
    if due - now <= warn_before(hours):
        return "due_soon"
    return "running"


def authority_due(inc: Any) -> datetime | None:
    if not (inc.personal_data and inc.vendor_is_controller) or inc.aware_at is None:
        return None
    return inc.aware_at + timedelta(hours=AUTHORITY_HOURS)


def authority_required(inc: Any) -> bool:
    """Art. 33(1): unless the breach is unlikely to result in a risk."""
    return bool(inc.personal_data and inc.vendor_is_controller and inc.risk != "none")


def clocks(session: Session, actor: Actor, now: datetime | None = None,
           incident_id: str | None = None) -> list[dict[str, Any]]:
    """Every clock of the open breaches (or of one incident): one per affected customer and,
    where the vendor is controller, the authority's; the most urgent first. Reads only the
    columns it shows (no ORM objects): the posture page and the clocks page call it often."""
    now = now or utcnow()
    vendor_id = _vendor(actor)
    stmt = select(Incident.id, Incident.number, Incident.title, Incident.aware_at,
                  Incident.personal_data, Incident.vendor_is_controller, Incident.risk,
                  Incident.authority_reported_at).where(
        Incident.org_id == vendor_id, Incident.personal_data.is_(True))
    stmt = stmt.where(Incident.id == incident_id) if incident_id else \
        stmt.where(Incident.status == "open")
    incidents = {i.id: i for i in session.execute(stmt)}
    if not incidents:
        return []
    rows = session.execute(
        select(AffectedCustomer.incident_id, AffectedCustomer.customer_id,
               AffectedCustomer.notice_hours, AffectedCustomer.due_at,
               AffectedCustomer.notified_at, Organisation.name)
        .join(Organisation, Organisation.id == AffectedCustomer.customer_id)
        .where(AffectedCustomer.incident_id.in_(list(incidents))))
    acked = _acknowledged(session, list(incidents))
    out: list[dict[str, Any]] = []
    for row in rows:
        inc = incidents[row.incident_id]
        out.append({
            "incident_id": inc.id, "number": inc.number, "title": inc.title, "clock": "customer",
            "customer_id": row.customer_id, "customer": row.name,
            "hours": row.notice_hours, "due_at": row.due_at, "done_at": row.notified_at,
            "acknowledged_at": acked.get((inc.id, row.customer_id)),
            "state": clock_state(row.due_at, row.notified_at, row.notice_hours, now),
        })
    for inc in incidents.values():
        due = authority_due(inc)
        if due is None:
            continue
        state = clock_state(due, inc.authority_reported_at, AUTHORITY_HOURS, now) \
            if authority_required(inc) else "not_required"
        out.append({
            "incident_id": inc.id, "number": inc.number, "title": inc.title, "clock": "authority",
            "customer_id": None, "customer": "Datatilsynet", "hours": AUTHORITY_HOURS,
            "due_at": due, "done_at": inc.authority_reported_at, "acknowledged_at": None,
            "state": state,
        })
    out.sort(key=lambda c: (_ORDER[c["state"]], c["due_at"] or now, c["number"], c["customer"]))
    for clock in out:
        clock["remaining_seconds"] = int((clock["due_at"] - now).total_seconds()) \
            if clock["due_at"] is not None else None
    return out


_ORDER = {"overdue": 0, "due_soon": 1, "running": 2, "late": 3, "done": 4, "not_required": 5}


def _acknowledged(session: Session, incident_ids: list[str]) -> dict[tuple[str, str], datetime]:
    """(incident, customer) → the first acknowledgement of any of its notices."""
    rows = session.execute(
        select(BreachNotice.incident_id, BreachNotice.org_id,
               func.min(BreachNotice.acknowledged_at))
        .where(BreachNotice.incident_id.in_(incident_ids),
               BreachNotice.acknowledged_at.is_not(None))
        .group_by(BreachNotice.incident_id, BreachNotice.org_id))
    return {(r[0], r[1]): r[2] for r in rows if r[2] is not None}


# -- the customers' terms ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    key_id: str
    email: str
    locale: str


def notice_hours(session: Session, customer_id: str) -> int:
    """The hours the customer's agreement gives for a breach notice (its profile in the vendor
    registry; 24 unless the vendor set another)."""
    return int(registry.customer_profile(session, customer_id).breach_notice_hours)


def recipients(session: Session, customer_id: str) -> list[Recipient]:
    """Who is told of a breach at a customer: the breach contacts it registered with the vendor,
    or else its administrators (the registry falls back to them)."""
    return [Recipient(r.key_id, r.email, r.locale or "nb")
            for r in registry.notice_recipients(session, customer_id, "breach")]


# -- writing -------------------------------------------------------------------------------------


def _event(session: Session, inc: Incident, action: str, actor: Actor | None,
           details: dict[str, Any] | None = None, *, org_id: str | None = None) -> None:
    """One timeline entry and its audit record, in the caller's transaction."""
    session.add(IncidentEvent(org_id=inc.org_id, incident_id=inc.id, action=action,
                              actor_user_id=actor.user_id if actor else None,
                              details=details or {}))
    audit(session, f"incidents.{action}", org_id=org_id or inc.org_id,
          actor_user_id=actor.user_id if actor else None,
          actor_token_id=actor.token_id if actor else None,
          resource=f"incident:{inc.id}", details=_audit_safe(details or {}))


def _audit_safe(details: dict[str, Any]) -> dict[str, Any]:
    """The audit record names the fields changed, never their free text (it may describe
    people); the timeline keeps the values."""
    out: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, dict):
            out[key] = {k: (v if not isinstance(v, str) or k in _PLAIN else "…")
                        for k, v in value.items()}
        else:
            out[key] = value if not isinstance(value, str) or key in _PLAIN else "…"
    return out


_PLAIN = frozenset({"risk", "phase", "exemption", "status", "customer_id", "clock", "level",
                    *MOMENT_FIELDS, "authority_reported_at", "subjects_told_at", "closed_at"})


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _due(inc: Incident, hours: int) -> datetime | None:
    return inc.aware_at + timedelta(hours=hours) if inc.aware_at is not None else None


def _check_customers(session: Session, customer_ids: list[str]) -> list[str]:
    wanted = list(dict.fromkeys(customer_ids))
    if len(wanted) > 5000:
        raise InvalidInput.on("customers", "at most 5000 customers")
    found = set(session.scalars(select(Organisation.id).where(
        Organisation.id.in_(wanted), Organisation.kind == OrgKind.TENANT.value))) if wanted else set()
    for i, cid in enumerate(wanted):
        if cid not in found:
            raise InvalidInput.on(f"customers.{i}", "no such customer", "unknown")
    return wanted


def register(session: Session, actor: Actor, data: IncidentInput,
             customers: list[str] | None = None, *, now: datetime | None = None) -> Incident:
    """A new deviation; with ``personal_data`` a breach, whose clocks start at ``aware_at``."""
    vendor_id = _vendor(actor)
    now = now or utcnow()
    values = _check_values(data.values())
    customer_ids = _check_customers(session, customers or [])
    if customer_ids and not values["personal_data"]:
        raise InvalidInput.on("customers", "only a breach of personal data has customers to tell")
    number = (session.scalar(select(func.max(Incident.number))
                             .where(Incident.org_id == vendor_id)) or 0) + 1
    inc = Incident(org_id=vendor_id, number=number, created_by=actor.user_id, created_at=now,
                   updated_at=now, **values)
    _check_whole(inc, now)
    session.add(inc)
    session.flush()
    _event(session, inc, "registered", actor,
           {"new": {k: _json(v) for k, v in values.items() if v not in (None, "", [])}})
    _add_customers(session, inc, customer_ids, actor)
    return inc


def _add_customers(session: Session, inc: Incident, customer_ids: list[str],
                   actor: Actor | None) -> list[AffectedCustomer]:
    have = {c.customer_id for c in customers_of(session, inc.id)}
    added = []
    for cid in customer_ids:
        if cid in have:
            continue
        hours = notice_hours(session, cid)
        row = AffectedCustomer(org_id=inc.org_id, incident_id=inc.id, customer_id=cid,
                               notice_hours=hours, due_at=_due(inc, hours))
        session.add(row)
        added.append(row)
        _event(session, inc, "customer_added", actor,
               {"new": {"customer_id": cid, "notice_hours": hours}})
    session.flush()
    return added


def add_customers(session: Session, actor: Actor, incident_id: str,
                  customer_ids: list[str]) -> list[AffectedCustomer]:
    inc = _open(session, actor, incident_id)
    if not inc.personal_data:
        raise InvalidInput.on("customers", "only a breach of personal data has customers to tell")
    inc.updated_at = utcnow()
    return _add_customers(session, inc, _check_customers(session, customer_ids), actor)


def _open(session: Session, actor: Actor, incident_id: str) -> Incident:
    inc = get_incident(session, actor, incident_id)
    if inc.status != "open":
        raise Conflict(detail="status: the incident is closed")
    return inc


def update(session: Session, actor: Actor, incident_id: str, changes: dict[str, Any],
           *, now: datetime | None = None) -> Incident:
    """Change fields of an open incident; the timeline keeps each field's old and new value.
    A new awareness time moves every clock."""
    now = now or utcnow()
    inc = _open(session, actor, incident_id)
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise InvalidInput.on(unknown[0], "cannot be changed")
    values = _check_values(changes)
    old = {k: _json(getattr(inc, k)) for k in values if getattr(inc, k) != values[k]}
    if not old:
        return inc
    for key in old:
        setattr(inc, key, values[key])
    _check_whole(inc, now)
    if "aware_at" in old:
        for row in customers_of(session, inc.id):
            row.due_at = _due(inc, row.notice_hours)
    inc.updated_at = now
    _event(session, inc, "changed", actor,
           {"old": old, "new": {k: _json(values[k]) for k in old}})
    return inc


# -- notices (Art. 33(2)-(4)) --------------------------------------------------------------------

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
    return {k: _json(getattr(inc, k)) for k in keys} | {"number": inc.number}


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
    inc = _open(session, actor, incident_id)
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
    _event(session, inc, "notice_sent", actor,
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


def full_timeline(session: Session, inc: Incident) -> list[dict[str, Any]]:
    """The incident's timeline with the customers' acknowledgements (kept on their notices)
    in their places."""
    items = [event_view(e) for e in timeline(session, inc.id)]
    for notice in notices_of_incident(session, inc.id):
        if notice.acknowledged_at is not None:
            # The customer's own people and rows are theirs: the vendor sees who and which only
            # by customer and sequence.
            items.append({"at": _json(notice.acknowledged_at), "action": "notice_acknowledged",
                          "actor_user_id": None,
                          "details": {"new": {"customer_id": notice.org_id,
                                              "sequence": notice.sequence}}})
    return sorted(items, key=lambda e: e["at"])


# -- the authority, data subjects, closing -------------------------------------------------------


def report_to_authority(session: Session, actor: Actor, incident_id: str, *,
                        reported_at: datetime, reference: str = "", late_reason: str = "",
                        now: datetime | None = None) -> Incident:
    """The vendor as controller reported to Datatilsynet; after 72 hours only with the reasons
    for the delay (Art. 33(1))."""
    now = now or utcnow()
    inc = _open(session, actor, incident_id)
    if not (inc.personal_data and inc.vendor_is_controller):
        raise InvalidInput.on("vendor_is_controller",
                              "only where the vendor is itself controller does it report")
    if reported_at.tzinfo is None or reported_at > now + timedelta(minutes=5):
        raise InvalidInput.on("reported_at", "a past time with its UTC offset")
    due = authority_due(inc)
    late_reason = late_reason.strip()
    if due is not None and reported_at > due and not late_reason:
        raise InvalidInput.on("late_reason", "reported after 72 hours: give the reasons for the "
                                             "delay (Art. 33(1))", "required")
    if len(late_reason) > MAX_TEXT or len(reference) > 200:
        raise InvalidInput.on("late_reason", "at most %(n)s characters", n=MAX_TEXT)
    old = {"authority_reported_at": _json(inc.authority_reported_at)}
    inc.authority_reported_at = reported_at
    inc.authority_reference = reference.strip()
    inc.authority_late_reason = late_reason
    inc.updated_at = now
    _event(session, inc, "reported_to_authority", actor,
           {"old": old, "new": {"authority_reported_at": reported_at.isoformat(),
                                "authority_reference": inc.authority_reference,
                                "late": bool(due and reported_at > due)}})
    return inc


def authority_form(inc: Incident) -> dict[str, Any]:
    """The fields of Datatilsynet's breach form (Altinn), for a controller's own report."""
    told = "exempt" if inc.exemption else ("yes" if inc.subjects_told_at else "no")
    return {
        "reference": f"#{inc.number}", "title": inc.title,
        "period_from": _json(inc.occurred_from), "period_to": _json(inc.occurred_to),
        "discovered_at": _json(inc.discovered_at), "aware_at": _json(inc.aware_at),
        "what_happened": inc.what_happened, "how_it_happened": inc.how_happened,
        "data_categories": "; ".join(inc.data_categories),
        "data_subject_categories": "; ".join(inc.subject_categories),
        "approx_data_subjects": inc.subjects_approx, "approx_records": inc.records_approx,
        "likely_consequences": inc.consequences, "measures_taken": inc.measures_taken,
        "measures_proposed": inc.measures_proposed, "risk": inc.risk,
        "where_the_data_is_now": inc.data_location, "contact_point": inc.contact,
        "data_subjects_told": told, "data_subjects_told_at": _json(inc.subjects_told_at),
        "art_34_3_exemption": inc.exemption or "", "exemption_reason": inc.exemption_reason,
        "reported_late_reason": inc.authority_late_reason,
    }


def authority_form_csv(inc: Incident) -> str:
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(["field", "value"])
    for key, value in authority_form(inc).items():
        writer.writerow([key, "" if value is None else value])
    return out.getvalue()


def subject_letter(inc: Incident, locale: str) -> str:
    """The Art. 34 letter to the people concerned, in clear language (34(2): the nature of the
    breach, the contact point, the likely consequences, the measures)."""
    if inc.risk != "high":
        raise InvalidInput.on("risk", "a letter to data subjects is for a high risk (Art. 34(1))")
    missing = [e for e in missing_items(inc) if e.field in
               ("what_happened", "contact", "consequences", "measures_taken")]
    if missing:
        raise InvalidInput(detail=f"{missing[0].field}: {missing[0].message}", errors=missing)
    parts = [
        gettext(locale, "We are writing to tell you about a personal data breach that concerns "
                        "your personal data."),
        "", gettext(locale, "What happened"), inc.what_happened,
        "", gettext(locale, "What this may mean for you"), inc.consequences,
        "", gettext(locale, "What we have done and will do"),
        "\n".join(t for t in (inc.measures_taken, inc.measures_proposed) if t),
        "", gettext(locale, "Whom to contact"), inc.contact,
        "", gettext(locale, "You may complain to Datatilsynet (www.datatilsynet.no)."),
    ]
    return "\n".join(parts)


def record_subjects_told(session: Session, actor: Actor, incident_id: str, *,
                         told_at: datetime, now: datetime | None = None) -> Incident:
    now = now or utcnow()
    inc = _open(session, actor, incident_id)
    if told_at.tzinfo is None or told_at > now + timedelta(minutes=5):
        raise InvalidInput.on("told_at", "a past time with its UTC offset")
    old = {"subjects_told_at": _json(inc.subjects_told_at)}
    inc.subjects_told_at = told_at
    inc.updated_at = now
    _event(session, inc, "subjects_told", actor,
           {"old": old, "new": {"subjects_told_at": told_at.isoformat()}})
    return inc


EXEMPTION_TEXT = {
    "a": N_("the data were unintelligible to anyone not authorised (e.g. encrypted) (Art. 34(3)(a))"),
    "b": N_("later measures ensure the high risk is no longer likely (Art. 34(3)(b))"),
    "c": N_("telling each person would need disproportionate effort; a public communication "
            "was made instead (Art. 34(3)(c))"),
}


def record_exemption(session: Session, actor: Actor, incident_id: str, *, exemption: str,
                     reason: str, now: datetime | None = None) -> Incident:
    """Why the people concerned are not told although the risk is high (Art. 34(3))."""
    inc = _open(session, actor, incident_id)
    if exemption not in EXEMPTIONS:
        raise InvalidInput.on("exemption", "one of %(values)s (Art. 34(3))",
                              values=", ".join(EXEMPTIONS))
    reason = reason.strip()
    if not 1 <= len(reason) <= MAX_TEXT:
        raise InvalidInput.on("reason", "say why the exemption applies", "required")
    old = {"exemption": inc.exemption}
    inc.exemption, inc.exemption_reason = exemption, reason
    inc.updated_at = now or utcnow()
    _event(session, inc, "exemption_recorded", actor,
           {"old": old, "new": {"exemption": exemption, "exemption_reason": reason}})
    return inc


def close(session: Session, actor: Actor, incident_id: str, *, cause: str, lessons: str,
          now: datetime | None = None) -> Incident:
    """The closing review: the cause and the lessons learned. A breach is closed only when every
    affected customer was told, the authority told where the vendor is controller, and the
    people told (or an exemption recorded) when the risk is high."""
    now = now or utcnow()
    inc = _open(session, actor, incident_id)
    cause, lessons = cause.strip(), lessons.strip()
    if not 1 <= len(cause) <= MAX_TEXT:
        raise InvalidInput.on("cause", "give the cause", "required")
    if not 1 <= len(lessons) <= MAX_TEXT:
        raise InvalidInput.on("lessons", "give the lessons learned", "required")
    if inc.personal_data:
        if any(r.notified_at is None for r in customers_of(session, inc.id)):
            raise Conflict(detail="customers: not every affected customer has been notified")
        if authority_required(inc) and inc.authority_reported_at is None:
            raise Conflict(detail="authority_reported_at: report the breach to Datatilsynet first")
        if inc.risk == "high" and inc.subjects_told_at is None and not inc.exemption:
            raise Conflict(detail="subjects_told_at: tell the people concerned or record the "
                                  "Art. 34(3) exemption first")
    inc.cause, inc.lessons = cause, lessons
    inc.status, inc.closed_at, inc.closed_by, inc.updated_at = "closed", now, actor.user_id, now
    _event(session, inc, "closed", actor,
           {"old": {"status": "open"}, "new": {"status": "closed", "cause": cause,
                                               "lessons": lessons}})
    return inc


def expire_closed(session: Session, *, closed_before: datetime, limit: int,
                  held: set[str] | None = None, dry_run: bool = False) -> list[str]:
    """Retention (``incident-plus-5y``): incidents closed before ``closed_before`` are deleted
    with everything kept for them (affected customers, notices as sent, timeline, warnings), at
    most ``limit`` per call, oldest first, skipping the incident ids in ``held`` (legal holds).
    An open incident is never taken, however old. ``dry_run``: only the ids that would go.
    One transaction: the caller's (a system scope: notices are rows of the customers)."""
    from sqlalchemy import delete

    held = held or set()
    rows = session.execute(
        select(Incident.id)
        .where(Incident.status == "closed", Incident.closed_at.is_not(None),
               Incident.closed_at < closed_before)
        .order_by(Incident.closed_at, Incident.id)
        .limit(limit + len(held))
    ).all()
    ids = [r.id for r in rows if r.id not in held][:limit]
    if dry_run or not ids:
        return ids
    for model in (ClockWarning, IncidentEvent, BreachNotice, AffectedCustomer):
        session.execute(delete(model).where(model.incident_id.in_(ids)))
    session.execute(delete(Incident).where(Incident.id.in_(ids), Incident.status == "closed"))
    audit(session, "incidents.expired", org_id=None,
          details={"new": {"incidents": len(ids), "closed_before": closed_before.isoformat()}})
    return ids


# -- views ---------------------------------------------------------------------------------------


def incident_view(inc: Incident) -> dict[str, Any]:
    out = {k: _json(getattr(inc, k)) for k in (
        "id", "number", "title", "personal_data", "status", "risk", *MOMENT_FIELDS,
        *TEXT_FIELDS, "data_categories", "subject_categories", "subjects_approx",
        "records_approx", "vendor_is_controller", "authority_reported_at", "authority_reference",
        "authority_late_reason", "subjects_told_at", "exemption", "exemption_reason", "cause",
        "lessons", "closed_at", "created_at", "updated_at")}
    out["kind"] = "breach" if inc.personal_data else "deviation"
    out["authority_due_at"] = _json(authority_due(inc))
    out["missing_art_33_3"] = [e.field for e in missing_items(inc)] if inc.personal_data else []
    return out


def clock_view(clock: dict[str, Any]) -> dict[str, Any]:
    return {k: _json(v) for k, v in clock.items()}


def vendor_notice_view(notice: BreachNotice) -> dict[str, Any]:
    """A notice as the vendor sees it in its register: which customer, which phase, when sent
    and acknowledged - not the customer's row id nor who of theirs acknowledged it."""
    out = notice_view(notice)
    del out["id"]
    return out | {"customer_id": notice.org_id}


def notice_view(notice: BreachNotice, locale: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": notice.id, "incident_id": notice.incident_id, "sequence": notice.sequence,
        "phase": notice.phase, "sent_at": _json(notice.sent_at),
        "acknowledged_at": _json(notice.acknowledged_at), "recipients": notice.recipients,
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


def event_view(event: IncidentEvent) -> dict[str, Any]:
    return {"at": _json(event.at), "action": event.action, "actor_user_id": event.actor_user_id,
            "details": event.details}


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=_json)


# -- the worker's warnings -----------------------------------------------------------------------

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
    _event(session, inc, "warning_raised", None,
           {"new": {"clock": due.clock, "customer_id": due.customer_id, "level": due.level,
                    "due_at": due.due_at.isoformat(), "mails": warning.mails}})
    return warning


def recent_warnings(session: Session, actor: Actor, limit: int = 20) -> list[ClockWarning]:
    """The console's notices: the newest warnings of open breaches."""
    return list(session.scalars(
        select(ClockWarning).join(Incident, Incident.id == ClockWarning.incident_id)
        .where(Incident.org_id == _vendor(actor), Incident.status == "open")
        .order_by(ClockWarning.raised_at.desc()).limit(limit)))


# -- what the pages show -------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _day(day: Any, locale: str) -> str:
    return format_day(day, locale, "short")


def moment_text(value: datetime | None, locale: str) -> str:
    """``6.12.2026 07:45 UTC``: the day formatted once per day and language."""
    if value is None:
        return ""
    return f"{_day(value.date(), locale)} {value:%H:%M} UTC"


def clock_texts(clock: dict[str, Any], locale: str) -> dict[str, Any]:
    """A clock with the words a page shows (worked out here, once, not per template call)."""
    seconds, state = clock["remaining_seconds"], clock["state"]
    if state in ("done", "late"):
        done = gettext(locale, "sent") if clock["clock"] == "customer" \
            else gettext(locale, "reported")
        left = f"{done} {moment_text(clock['done_at'], locale)}"
        if state == "late":
            left += f" ({gettext(locale, 'late')})"
    elif state == "not_required":
        left = gettext(locale, "not required (no risk)")
    elif seconds is not None and seconds < 0:
        left = gettext(locale, "overdue by %(h)s h %(m)s min", h=-seconds // 3600,
                       m=-seconds % 3600 // 60)
    elif seconds is not None:
        left = gettext(locale, "%(h)s h %(m)s min left", h=seconds // 3600, m=seconds % 3600 // 60)
    else:
        left = ""
    ack = moment_text(clock["acknowledged_at"], locale) if clock["acknowledged_at"] else (
        gettext(locale, "not yet") if clock["clock"] == "customer" and clock["done_at"] else "")
    return {**clock, "due_text": moment_text(clock["due_at"], locale), "left_text": left,
            "state_text": gettext(locale, state), "ack_text": ack,
            "overdue": state == "overdue"}
