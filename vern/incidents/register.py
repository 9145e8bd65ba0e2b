"""The breach register's rows: an incident's fields and their checks, the vendor's look-ups, the
affected customers with their terms (notice hours, recipients), and registering and changing an
incident, each with its timeline entry and audit record (``add_event``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.accounts.models import Organisation
from vern.accounts.roles import OrgKind
from vern.accounts.service import Actor
from vern.audit.service import record as audit
from vern.core.db import utcnow
from vern.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from vern.incidents.models import (
    RISKS,
    AffectedCustomer,
    BreachNotice,
    ClockWarning,
    Incident,
    IncidentEvent,
)
from vern.vendor import service as registry

DEFAULT_NOTICE_HOURS = 24  # when the customer's agreement names no other (Art. 33(2))
MAX_TEXT = 20_000
MAX_LIST = 50
MAX_COUNT = 2_000_000_000
TEXT_FIELDS = ("what_happened", "how_happened", "consequences", "measures_taken",
               "measures_proposed", "data_location", "contact")
MOMENT_FIELDS = ("occurred_from", "occurred_to", "discovered_at", "aware_at")
EDITABLE = ("title", "personal_data", "risk", "subjects_approx", "records_approx",
            "data_categories", "subject_categories", "vendor_is_controller",
            *TEXT_FIELDS, *MOMENT_FIELDS)


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


def vendor_id_of(actor: Actor) -> str:
    if actor.org_kind is not OrgKind.VENDOR or not actor.home:
        raise Forbidden(detail="the register is the vendor's")
    return actor.org_id


def get_incident(session: Session, actor: Actor, incident_id: str) -> Incident:
    inc = session.get(Incident, incident_id)
    if inc is None or inc.org_id != vendor_id_of(actor):
        raise NotFound(detail="no such incident")
    return inc


def list_incidents(session: Session, actor: Actor, *, status: str | None = "open",
                   limit: int = 200, offset: int = 0) -> list[Incident]:
    stmt = (select(Incident).where(Incident.org_id == vendor_id_of(actor))
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


def add_event(session: Session, inc: Incident, action: str, actor: Actor | None,
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


def json_value(value: Any) -> Any:
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
    vendor_id = vendor_id_of(actor)
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
    add_event(session, inc, "registered", actor,
              {"new": {k: json_value(v) for k, v in values.items() if v not in (None, "", [])}})
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
        add_event(session, inc, "customer_added", actor,
                  {"new": {"customer_id": cid, "notice_hours": hours}})
    session.flush()
    return added


def add_customers(session: Session, actor: Actor, incident_id: str,
                  customer_ids: list[str]) -> list[AffectedCustomer]:
    inc = open_incident(session, actor, incident_id)
    if not inc.personal_data:
        raise InvalidInput.on("customers", "only a breach of personal data has customers to tell")
    inc.updated_at = utcnow()
    return _add_customers(session, inc, _check_customers(session, customer_ids), actor)


def open_incident(session: Session, actor: Actor, incident_id: str) -> Incident:
    inc = get_incident(session, actor, incident_id)
    if inc.status != "open":
        raise Conflict(detail="status: the incident is closed")
    return inc


def update(session: Session, actor: Actor, incident_id: str, changes: dict[str, Any],
           *, now: datetime | None = None) -> Incident:
    """Change fields of an open incident; the timeline keeps each field's old and new value.
    A new awareness time moves every clock."""
    now = now or utcnow()
    inc = open_incident(session, actor, incident_id)
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise InvalidInput.on(unknown[0], "cannot be changed")
    values = _check_values(changes)
    old = {k: json_value(getattr(inc, k)) for k in values if getattr(inc, k) != values[k]}
    if not old:
        return inc
    for key in old:
        setattr(inc, key, values[key])
    _check_whole(inc, now)
    if "aware_at" in old:
        for row in customers_of(session, inc.id):
            row.due_at = _due(inc, row.notice_hours)
    inc.updated_at = now
    add_event(session, inc, "changed", actor,
              {"old": old, "new": {k: json_value(values[k]) for k in old}})
    return inc
