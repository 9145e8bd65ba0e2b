"""The vendor's own registry: every read other domains use, and every write.

Read functions take a SQLAlchemy session and return frozen views (no ORM objects leave this
module), so the records of processing, agreements, the trust page and breach notices can build
on them without touching these tables. Writes own their transaction's audit record.

Customer-owned rows (profile, contacts, change notices, objections) are read by the customer's id
through ``_customer_rows``: allowed in a system scope, in that customer's own scope, or in the
vendor organisation's scope (vendor staff); any other scope gets nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.audit.service import record as audit
from vern.core.config import get_settings
from vern.core.crypto import PII, keyring
from vern.core.db import Scope, new_id, utcnow
from vern.core.errors import Conflict, InvalidInput, NotFound
from vern.core.i18n import N_, format_day, gettext
from vern.notify import service as notify
from vern.vendor import regions
from vern.vendor.models import (
    CustomerContact,
    CustomerProfile,
    MaintenanceNotice,
    Measure,
    Officer,
    Subprocessor,
    SubprocessorNotice,
    VendorSystem,
)

CONTACT_KINDS = ("privacy", "security", "breach", "maintenance")
DEFAULT_BREACH_NOTICE_HOURS = 24
# How to complain to the supervisory authority (Art. 77); part of every published document.
DATATILSYNET = {
    "name": "Datatilsynet",
    "website": "https://www.datatilsynet.no",
    "complaint_url": "https://www.datatilsynet.no/om-datatilsynet/kontakt-oss/klage-til-datatilsynet/",
    "email": "postkasse@datatilsynet.no",
    "phone": "+47 22 39 69 00",
    "address": "Postboks 458 Sentrum, 0105 Oslo",
}


# -- views (what other domains receive) ----------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """Where data is kept or processed: a country code, and whether it is inside the EU/EEA."""

    country: str
    in_eea: bool


@dataclass(frozen=True)
class SystemView:
    id: str
    key: str
    name: str
    description: str
    storage_locations: tuple[Location, ...]
    processing_locations: tuple[Location, ...]
    transfer_mechanism: str | None  # set whenever a location is outside the EU/EEA
    transfer_note: str
    outside_eea: bool
    retired: bool


@dataclass(frozen=True)
class SubprocessorView:
    id: str
    key: str
    name: str
    service: str
    data_categories: tuple[str, ...]
    storage_locations: tuple[Location, ...]
    processing_locations: tuple[Location, ...]
    transfer_mechanism: str | None
    transfer_note: str
    outside_eea: bool
    agreement_date: date | None
    last_audit_date: date | None
    last_audit_result: str  # "" | passed | remarks | failed
    last_audit_note: str
    status: str  # planned | active | retired
    all_customers: bool
    customer_ids: tuple[str, ...]  # the customers it serves when not all_customers
    processings: tuple[str, ...]  # keys of the processings it serves
    version: int
    updated_at: datetime

    def serves(self, tenant_id: str) -> bool:
        return self.all_customers or tenant_id in self.customer_ids


@dataclass(frozen=True)
class Evidence:
    title: str
    url: str


@dataclass(frozen=True)
class MeasureView:
    id: str
    key: str
    category: str  # technical | organisational
    area: str
    title_nb: str
    title_en: str
    description_nb: str
    description_en: str
    owner: str
    status: str  # planned | in_place | retired
    evidence: tuple[Evidence, ...]
    source: str

    def title(self, locale: str | None) -> str:
        return self.title_nb if locale == "nb" else self.title_en

    def description(self, locale: str | None) -> str:
        return self.description_nb if locale == "nb" else self.description_en


@dataclass(frozen=True)
class OfficerView:
    role: str  # dpo | security
    name: str
    email: str
    phone: str


@dataclass(frozen=True)
class Officers:
    dpo: OfficerView | None
    security: OfficerView | None
    complaint: dict[str, str]  # Datatilsynet: name, website, complaint_url, email, phone, address


@dataclass(frozen=True)
class Recipient:
    name: str
    email: str
    locale: str
    key_id: str  # the data key the address is sealed under (for vern.notify.service.queue)


@dataclass(frozen=True)
class CustomerProfileView:
    tenant_id: str
    name: str
    org_number: str | None
    contract_start: date | None
    contract_end: date | None
    breach_notice_hours: int
    contacts: dict[str, tuple[Recipient, ...]]  # kind -> registered contacts (may be empty)


@dataclass(frozen=True)
class MaintenanceView:
    id: str
    title_nb: str
    title_en: str
    body_nb: str
    body_en: str
    starts_at: datetime
    ends_at: datetime
    emergency: bool
    emergency_reason: str | None
    all_customers: bool
    customer_ids: tuple[str, ...]
    created_at: datetime
    cancelled: bool

    def title(self, locale: str | None) -> str:
        return self.title_nb if locale == "nb" else self.title_en

    def body(self, locale: str | None) -> str:
        return self.body_nb if locale == "nb" else self.body_en


def _locations(codes: list[str]) -> tuple[Location, ...]:
    inside = regions.eea()
    return tuple(Location(c, c in inside) for c in codes)


def system_view(s: VendorSystem) -> SystemView:
    every = [*s.storage_locations, *s.processing_locations]
    return SystemView(
        id=s.id, key=s.key, name=s.name, description=s.description,
        storage_locations=_locations(s.storage_locations),
        processing_locations=_locations(s.processing_locations),
        transfer_mechanism=s.transfer_mechanism, transfer_note=s.transfer_note,
        outside_eea=bool(regions.outside_eea(every)), retired=s.retired_at is not None,
    )


def subprocessor_view(s: Subprocessor) -> SubprocessorView:
    every = [*s.storage_locations, *s.processing_locations]
    return SubprocessorView(
        id=s.id, key=s.key, name=s.name, service=s.service,
        data_categories=tuple(s.data_categories),
        storage_locations=_locations(s.storage_locations),
        processing_locations=_locations(s.processing_locations),
        transfer_mechanism=s.transfer_mechanism, transfer_note=s.transfer_note,
        outside_eea=bool(regions.outside_eea(every)), agreement_date=s.agreement_date,
        last_audit_date=s.last_audit_date, last_audit_result=s.last_audit_result,
        last_audit_note=s.last_audit_note, status=s.status, all_customers=s.all_customers,
        customer_ids=tuple(s.customer_ids), processings=tuple(s.processings), version=s.version,
        updated_at=s.updated_at,
    )


def measure_view(m: Measure) -> MeasureView:
    return MeasureView(
        id=m.id, key=m.key, category=m.category, area=m.area, title_nb=m.title_nb,
        title_en=m.title_en, description_nb=m.description_nb, description_en=m.description_en,
        owner=m.owner, status=m.status,
        evidence=tuple(Evidence(str(e.get("title", "")), str(e.get("url", ""))) for e in m.evidence),
        source=m.source,
    )


def maintenance_view(m: MaintenanceNotice) -> MaintenanceView:
    return MaintenanceView(
        id=m.id, title_nb=m.title_nb, title_en=m.title_en, body_nb=m.body_nb, body_en=m.body_en,
        starts_at=m.starts_at, ends_at=m.ends_at, emergency=m.emergency,
        emergency_reason=m.emergency_reason, all_customers=m.all_customers,
        customer_ids=tuple(m.customer_ids), created_at=m.created_at,
        cancelled=m.cancelled_at is not None,
    )


# -- reads other domains call --------------------------------------------------------------------


def list_systems(session: Session, *, include_retired: bool = False) -> list[SystemView]:
    query = select(VendorSystem).order_by(VendorSystem.name)
    if not include_retired:
        query = query.where(VendorSystem.retired_at.is_(None))
    return [system_view(s) for s in session.scalars(query)]


def list_subprocessors(session: Session, *, tenant_id: str | None = None,
                       include_retired: bool = False) -> list[SubprocessorView]:
    """Every sub-processor (planned and active; retired ones too when asked), or only those
    serving ``tenant_id``."""
    query = select(Subprocessor).order_by(Subprocessor.name)
    if not include_retired:
        query = query.where(Subprocessor.status != "retired")
    views = [subprocessor_view(s) for s in session.scalars(query)]
    return [v for v in views if tenant_id is None or v.serves(tenant_id)]


def list_measures(session: Session, *, include_retired: bool = False) -> list[MeasureView]:
    query = select(Measure).order_by(Measure.category, Measure.area, Measure.key)
    if not include_retired:
        query = query.where(Measure.status != "retired")
    return [measure_view(m) for m in session.scalars(query)]


def officers(session: Session) -> Officers:
    found = {o.role: OfficerView(o.role, o.name, o.email, o.phone)
             for o in session.scalars(select(Officer))}
    return Officers(dpo=found.get("dpo"), security=found.get("security"),
                    complaint=dict(DATATILSYNET))


def list_maintenance(session: Session, tenant_id: str | None = None, *,
                     include_past: bool = True, include_cancelled: bool = False
                     ) -> list[MaintenanceView]:
    """Maintenance notices, newest start first; with ``tenant_id`` only those concerning it."""
    query = select(MaintenanceNotice).order_by(MaintenanceNotice.starts_at.desc())
    if not include_cancelled:
        query = query.where(MaintenanceNotice.cancelled_at.is_(None))
    if not include_past:
        query = query.where(MaintenanceNotice.ends_at >= utcnow())
    views = [maintenance_view(m) for m in session.scalars(query)]
    return [v for v in views
            if tenant_id is None or v.all_customers or tenant_id in v.customer_ids]


def _may_read_customer(session: Session, tenant_id: str) -> bool:
    """A system scope, the customer's own scope, or the vendor organisation's scope."""
    scope: Scope | None = session.info.get("scope")
    if scope is None:
        return False
    if scope.is_system or scope.org_id == tenant_id:
        return True
    vendor = accounts.vendor_org(session)
    return vendor is not None and vendor.id == scope.org_id


def _customer_rows(session: Session, model: Any, tenant_id: str, *where: Any) -> list[Any]:
    """Rows of ``model`` owned by ``tenant_id``, read by id (see the module's docstring)."""
    if not _may_read_customer(session, tenant_id):
        return []
    table = model.__table__
    stmt = (select(table).where(table.c.org_id == tenant_id, *where)
            .execution_options(cross_tenant="vendor registry: one customer's own rows by its id"))
    return list(session.execute(stmt))


def _contacts(session: Session, tenant_id: str) -> dict[str, tuple[Recipient, ...]]:
    rows = _customer_rows(session, CustomerContact, tenant_id)
    rows.sort(key=lambda r: (r.created_at, r.id))
    out: dict[str, list[Recipient]] = {k: [] for k in CONTACT_KINDS}
    for row in rows:
        if row.email is None or row.email.value is None:
            continue  # erased
        name = row.name.value if row.name is not None and row.name.value else ""
        out.setdefault(row.kind, []).append(Recipient(name, row.email.value, row.locale, row.key_id))
    return {k: tuple(v) for k, v in out.items()}


def customer_profile(session: Session, tenant_id: str) -> CustomerProfileView:
    """The vendor's profile of one customer; defaults (no contract dates, 24 hours) until set.
    Raises NotFound for an unknown customer or one the session may not read."""
    if not _may_read_customer(session, tenant_id):
        raise NotFound()
    org = accounts.get_organisation(session, tenant_id)
    if org.kind != "tenant":
        raise NotFound()
    rows = _customer_rows(session, CustomerProfile, tenant_id)
    row = rows[0] if rows else None
    return CustomerProfileView(
        tenant_id=org.id, name=org.name, org_number=org.org_number,
        contract_start=row.contract_start if row else None,
        contract_end=row.contract_end if row else None,
        breach_notice_hours=row.breach_notice_hours if row else DEFAULT_BREACH_NOTICE_HOURS,
        contacts=_contacts(session, tenant_id),
    )


def contracts_by_customer(session: Session, tenant_ids: list[str]
                          ) -> dict[str, tuple[date | None, date | None]]:
    """Each customer's contract start and end from its profile (``(None, None)`` until set), for
    many customers at once (the record of processing per controller)."""
    allowed = [t for t in tenant_ids if _may_read_customer(session, t)]
    found: dict[str, tuple[date | None, date | None]] = dict.fromkeys(allowed, (None, None))
    table = CustomerProfile.__table__
    for start in range(0, len(allowed), 500):
        stmt = (select(table.c.org_id, table.c.contract_start, table.c.contract_end)
                .where(table.c.org_id.in_(allowed[start:start + 500]))
                .execution_options(cross_tenant="vendor registry: customers' contract dates"))
        for org_id, begins, ends in session.execute(stmt):
            found[org_id] = (begins, ends)
    return found


def notice_recipients(session: Session, tenant_id: str, kind: str) -> list[Recipient]:
    """Who gets a notice of ``kind`` (privacy, security, breach, maintenance) for one customer:
    the contacts it registered for that kind, or else its active administrators."""
    return recipients_by_customer(session, [tenant_id], kind).get(tenant_id, [])


def recipients_by_customer(session: Session, tenant_ids: list[str], kind: str
                           ) -> dict[str, list[Recipient]]:
    """``notice_recipients`` for many customers at once (a notice to every customer)."""
    if kind not in CONTACT_KINDS:
        raise InvalidInput.on("kind", "one of %(values)s", values=", ".join(CONTACT_KINDS))
    allowed = [t for t in tenant_ids if _may_read_customer(session, t)]
    table = CustomerContact.__table__
    found: dict[str, list[Recipient]] = {}
    for start in range(0, len(allowed), 500):
        stmt = (select(table).where(table.c.org_id.in_(allowed[start:start + 500]),
                                    table.c.kind == kind)
                .order_by(table.c.created_at, table.c.id)
                .execution_options(cross_tenant="vendor registry: customers' own contacts"))
        for row in session.execute(stmt):
            if row.email is None or row.email.value is None:
                continue  # erased
            name = row.name.value if row.name is not None and row.name.value else ""
            found.setdefault(row.org_id, []).append(
                Recipient(name, row.email.value, row.locale, row.key_id))
    missing = [t for t in allowed if t not in found]
    for tenant_id, users in accounts.active_admins_by_org(session, missing).items():
        for user in users:
            if user.email is None or user.email.value is None:
                continue
            name = user.name.value if user.name is not None and user.name.value else ""
            found.setdefault(tenant_id, []).append(
                Recipient(name, user.email.value, user.locale or "nb", user.key_id))
    return found


# -- writes -------------------------------------------------------------------------------------
#
# Vendor-wide rows are written in any scope the vendor's staff hold. Writes that reach a
# customer's own rows (its profile and contacts, the Art. 28(2) notices of a sub-processor
# change, which go to every affected customer in the change's transaction) need a system scope
# or, for one customer, that customer's own scope: ``_customer_scope`` checks it.

KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
SUBPROCESSOR_STATUSES = ("planned", "active", "retired")
AUDIT_RESULTS = ("", "passed", "remarks", "failed")
MEASURE_CATEGORIES = ("technical", "organisational")
MEASURE_STATUSES = ("planned", "in_place", "retired")
OFFICER_ROLES = ("dpo", "security")
DEFAULT_OBJECTION_DAYS = 30
MAX_OBJECTION_DAYS = 180
MIN_MAINTENANCE_NOTICE = timedelta(hours=24)
# What a sub-processor change has to be told to customers for (Art. 28(2)); an audit or the
# agreement's date is kept without a notice.
NOTIFIED_FIELDS = ("name", "service", "data_categories", "storage_locations",
                   "processing_locations", "transfer_mechanism", "all_customers", "customer_ids",
                   "processings")


def _vendor_org_id(session: Session) -> str | None:
    vendor = accounts.vendor_org(session)
    return vendor.id if vendor is not None else None


def _customer_scope(session: Session, tenant_id: str) -> None:
    scope: Scope | None = session.info.get("scope")
    if scope is None or not (scope.is_system or scope.org_id == tenant_id):
        raise NotFound()


def _text(field_name: str, value: str, *, limit: int, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise InvalidInput.on(field_name, "is required")
    if len(value) > limit:
        raise InvalidInput.on(field_name, "at most %(n)s characters", "too-long", n=limit)
    return value


def _key(value: str) -> str:
    if not KEY.match(value or ""):
        raise InvalidInput.on("key", "lower-case letters, digits, - and _ (at most 40)")
    return value


def _choice(field_name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidInput.on(field_name, "one of %(values)s", "choice",
                              values=", ".join(a for a in allowed if a) or '""')
    return value


def _tenants(session: Session, field_name: str, ids: tuple[str, ...] | list[str]) -> list[str]:
    out: list[str] = []
    for i, tenant_id in enumerate(ids):
        try:
            org = accounts.get_organisation(session, tenant_id)
        except NotFound:
            org = None
        if org is None or org.kind != "tenant":
            raise InvalidInput.on(f"{field_name}.{i}", "is not a customer organisation", "unknown")
        if org.id not in out:
            out.append(org.id)
    return out


# -- systems ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemInput:
    key: str
    name: str
    description: str = ""
    storage_locations: tuple[str, ...] = ()
    processing_locations: tuple[str, ...] = ()
    transfer_mechanism: str | None = None
    transfer_note: str = ""


def _system_values(data: SystemInput) -> dict[str, Any]:
    storage = regions.check_countries("storage_locations", data.storage_locations)
    processing = regions.check_countries("processing_locations", data.processing_locations)
    if not storage:
        raise InvalidInput.on("storage_locations", "name at least one country", "required")
    return {
        "name": _text("name", data.name, limit=200),
        "description": _text("description", data.description, limit=4000, required=False),
        "storage_locations": storage, "processing_locations": processing,
        "transfer_mechanism": regions.check_transfer([*storage, *processing],
                                                     data.transfer_mechanism),
        "transfer_note": _text("transfer_note", data.transfer_note, limit=2000, required=False),
    }


def _system_state(s: VendorSystem) -> dict[str, Any]:
    return {"name": s.name, "storage_locations": s.storage_locations,
            "processing_locations": s.processing_locations,
            "transfer_mechanism": s.transfer_mechanism, "retired": s.retired_at is not None}


def get_system(session: Session, key: str) -> VendorSystem:
    found = session.scalar(select(VendorSystem).where(VendorSystem.key == key))
    if found is None:
        raise NotFound(detail="no such system")
    return found


def save_system(session: Session, data: SystemInput, *, actor_user_id: str | None) -> SystemView:
    """Create the system ``data.key`` or change it; a location outside the EU/EEA without a
    transfer mechanism is refused with the reason."""
    values = _system_values(data)
    found = session.scalar(select(VendorSystem).where(VendorSystem.key == _key(data.key)))
    old = _system_state(found) if found is not None else None
    if found is None:
        found = VendorSystem(key=data.key, **values)
        session.add(found)
    else:
        for name, value in values.items():
            setattr(found, name, value)
        found.updated_at = utcnow()
    session.flush()
    audit(session, "vendor.system_saved", org_id=_vendor_org_id(session),
          actor_user_id=actor_user_id, resource=f"vendor-system:{data.key}",
          details={"old": old, "new": _system_state(found)})
    return system_view(found)


def retire_system(session: Session, key: str, *, actor_user_id: str | None) -> SystemView:
    found = get_system(session, key)
    if found.retired_at is None:
        found.retired_at = utcnow()
        audit(session, "vendor.system_retired", org_id=_vendor_org_id(session),
              actor_user_id=actor_user_id, resource=f"vendor-system:{key}",
              details={"old": {"retired": False}, "new": {"retired": True}})
    return system_view(found)


# -- sub-processors and their Art. 28(2) notices ------------------------------------------------


@dataclass(frozen=True)
class SubprocessorInput:
    key: str
    name: str
    service: str
    data_categories: tuple[str, ...] = ()
    storage_locations: tuple[str, ...] = ()
    processing_locations: tuple[str, ...] = ()
    transfer_mechanism: str | None = None
    transfer_note: str = ""
    agreement_date: date | None = None
    status: str = "planned"
    all_customers: bool = True
    customer_ids: tuple[str, ...] = ()
    processings: tuple[str, ...] = ()


def _subprocessor_values(session: Session, data: SubprocessorInput) -> dict[str, Any]:
    storage = regions.check_countries("storage_locations", data.storage_locations)
    processing = regions.check_countries("processing_locations", data.processing_locations)
    if not storage:
        raise InvalidInput.on("storage_locations", "name at least one country", "required")
    categories = [_text(f"data_categories.{i}", c, limit=100)
                  for i, c in enumerate(data.data_categories)]
    if not categories:
        raise InvalidInput.on("data_categories", "name at least one category of personal data",
                              "required")
    customers = [] if data.all_customers else _tenants(session, "customer_ids", data.customer_ids)
    if not data.all_customers and not customers:
        raise InvalidInput.on("customer_ids", "name the customers it serves, or serve all",
                              "required")
    return {
        "name": _text("name", data.name, limit=200),
        "service": _text("service", data.service, limit=2000),
        "data_categories": categories,
        "storage_locations": storage, "processing_locations": processing,
        "transfer_mechanism": regions.check_transfer([*storage, *processing],
                                                     data.transfer_mechanism),
        "transfer_note": _text("transfer_note", data.transfer_note, limit=2000, required=False),
        "agreement_date": data.agreement_date,
        "status": _choice("status", data.status, SUBPROCESSOR_STATUSES[:2]),
        "all_customers": data.all_customers, "customer_ids": customers,
        "processings": [_text(f"processings.{i}", p, limit=100)
                        for i, p in enumerate(data.processings)],
    }


def _notified_state(s: Subprocessor) -> dict[str, Any]:
    return {name: getattr(s, name) for name in NOTIFIED_FIELDS}


def _full_state(s: Subprocessor) -> dict[str, Any]:
    return {**_notified_state(s), "status": s.status, "version": s.version,
            "agreement_date": s.agreement_date.isoformat() if s.agreement_date else None,
            "last_audit_date": s.last_audit_date.isoformat() if s.last_audit_date else None,
            "last_audit_result": s.last_audit_result}


def get_subprocessor(session: Session, key: str) -> Subprocessor:
    found = session.scalar(select(Subprocessor).where(Subprocessor.key == key))
    if found is None:
        raise NotFound(detail="no such sub-processor")
    return found


def _check_window(days: int) -> int:
    if not 1 <= days <= MAX_OBJECTION_DAYS:
        raise InvalidInput.on("objection_days", "must be 1-%(n)s", "range", n=MAX_OBJECTION_DAYS)
    return days


def save_subprocessor(session: Session, data: SubprocessorInput, *, actor_user_id: str | None,
                      objection_days: int = DEFAULT_OBJECTION_DAYS, now: datetime | None = None
                      ) -> tuple[SubprocessorView, int]:
    """Create or change a sub-processor. A new one, or a change of what customers must be told
    (name, service, data, locations, transfer mechanism, customers, processings), starts an
    Art. 28(2) notice to every customer it serves, with an objection window of
    ``objection_days``. Returns the view and how many customers were notified."""
    _check_window(objection_days)
    values = _subprocessor_values(session, data)
    found = session.scalar(select(Subprocessor).where(Subprocessor.key == _key(data.key)))
    old = _full_state(found) if found is not None else None
    if found is None:
        found = Subprocessor(key=data.key, version=1, **values)
        session.add(found)
        change: str | None = "added"
    else:
        before = _notified_state(found)
        for name, value in values.items():
            setattr(found, name, value)
        change = "changed" if _notified_state(found) != before else None
        if change:
            found.version += 1
        found.updated_at = utcnow()
    session.flush()
    audit(session, f"vendor.subprocessor_{'added' if old is None else 'changed'}",
          org_id=_vendor_org_id(session), actor_user_id=actor_user_id,
          resource=f"subprocessor:{found.key}", details={"old": old, "new": _full_state(found)})
    told = 0
    if change is not None:
        told = _notify_customers(session, found, change, old, objection_days=objection_days,
                                 now=now or utcnow())
    return subprocessor_view(found), told


def record_subprocessor_audit(session: Session, key: str, *, audited_on: date, result: str,
                              note: str = "", actor_user_id: str | None) -> SubprocessorView:
    """The vendor's latest audit of a sub-processor (000 1.5)."""
    found = get_subprocessor(session, key)
    result = _choice("result", result, AUDIT_RESULTS[1:])
    if audited_on > utcnow().date():
        raise InvalidInput.on("audited_on", "cannot be in the future", "future")
    old = {"last_audit_date": found.last_audit_date.isoformat() if found.last_audit_date else None,
           "last_audit_result": found.last_audit_result}
    found.last_audit_date, found.last_audit_result = audited_on, result
    found.last_audit_note = _text("note", note, limit=4000, required=False)
    found.updated_at = utcnow()
    audit(session, "vendor.subprocessor_audited", org_id=_vendor_org_id(session),
          actor_user_id=actor_user_id, resource=f"subprocessor:{key}",
          details={"old": old, "new": {"last_audit_date": audited_on.isoformat(),
                                       "last_audit_result": result}})
    return subprocessor_view(found)


def retire_subprocessor(session: Session, key: str, *, actor_user_id: str | None
                        ) -> SubprocessorView:
    found = get_subprocessor(session, key)
    if found.status != "retired":
        old, found.status = found.status, "retired"
        found.updated_at = utcnow()
        audit(session, "vendor.subprocessor_retired", org_id=_vendor_org_id(session),
              actor_user_id=actor_user_id, resource=f"subprocessor:{key}",
              details={"old": {"status": old}, "new": {"status": "retired"}})
    return subprocessor_view(found)


def _affected(session: Session, s: Subprocessor) -> list[str]:
    if not s.all_customers:
        return list(s.customer_ids)
    return [org.id for org in accounts.list_tenants(session) if org.disabled_at is None]


def _summary(s: Subprocessor, old: dict[str, Any] | None) -> dict[str, Any]:
    """What the customer is told, kept with its notice as it stood then."""
    changed = sorted(k for k in NOTIFIED_FIELDS if old is not None and old.get(k) != getattr(s, k)
                     and k not in ("all_customers", "customer_ids"))
    return {"key": s.key, "name": s.name, "service": s.service,
            "data_categories": list(s.data_categories),
            "storage_locations": list(s.storage_locations),
            "processing_locations": list(s.processing_locations),
            "transfer_mechanism": s.transfer_mechanism,
            "outside_eea": regions.outside_eea([*s.storage_locations, *s.processing_locations]),
            "changed_fields": changed}


SUBPROCESSOR_MAIL = (
    N_("New or changed sub-processor: %(name)s"),
    N_("%(vendor)s intends to use the sub-processor %(name)s (%(service)s) for %(customer)s.\n"
       "Change: %(change)s\n"
       "Personal data: %(categories)s\n"
       "Storage and processing: %(locations)s\n"
       "Transfer mechanism outside the EU/EEA: %(mechanism)s\n\n"
       "You may object until %(closes)s (GDPR Art. 28(2)). Read the notice and object here:\n"
       "%(link)s"),
)
CHANGE_LABELS = {"added": N_("a new sub-processor"), "changed": N_("a changed sub-processor")}


def _notify_customers(session: Session, s: Subprocessor, change: str, old: dict[str, Any] | None,
                      *, objection_days: int, now: datetime) -> int:
    affected = _affected(session, s)
    if not affected:
        return 0
    scope: Scope | None = session.info.get("scope")
    if scope is None or not scope.is_system:
        raise RuntimeError("sub-processor notices reach every affected customer: system scope")
    closes = now + timedelta(days=objection_days)
    summary = _summary(s, old)
    vendor = accounts.vendor_org(session)
    names = {o.id: o.name for o in accounts.list_tenants(session)}
    recipients = recipients_by_customer(session, affected, "privacy")
    with session.no_autoflush:
        for tenant_id in affected:
            notice = SubprocessorNotice(id=new_id(), org_id=tenant_id, subprocessor_id=s.id,
                                        version=s.version, change=change, summary=summary,
                                        created_at=now, closes_at=closes)
            session.add(notice)
            audit(session, "vendor.subprocessor_notice_sent", org_id=tenant_id,
                  actor_user_id=None, resource=f"subprocessor-notice:{notice.id}",
                  details={"new": {"subprocessor": s.key, "version": s.version, "change": change,
                                   "closes_at": closes.isoformat()}})
            _mail_notice(session, notice, summary, vendor_name=vendor.name if vendor else "",
                         customer=names.get(tenant_id, ""),
                         recipients=recipients.get(tenant_id, []))
    return len(affected)


def _base_url() -> str:

    return get_settings().base_url.rstrip("/")


def _mail_notice(session: Session, notice: SubprocessorNotice, summary: dict[str, Any], *,
                 vendor_name: str, customer: str, recipients: list[Recipient]) -> None:
    places = sorted({*summary["storage_locations"], *summary["processing_locations"]})
    mechanism = summary["transfer_mechanism"]
    subject, body = SUBPROCESSOR_MAIL
    for r in recipients:
        loc = r.locale
        notify.queue(
            session, key_id=r.key_id, to=r.email, kind="vendor.subprocessor_notice",
            org_id=notice.org_id, subject=gettext(loc, subject, name=summary["name"]),
            body=gettext(
                loc, body, vendor=vendor_name, name=summary["name"], service=summary["service"],
                customer=customer, change=gettext(loc, CHANGE_LABELS[notice.change]),
                categories=", ".join(summary["data_categories"]),
                locations=", ".join(regions.country_name(c, loc) for c in places),
                mechanism=gettext(loc, MECHANISM_LABELS[mechanism]) if mechanism
                else gettext(loc, "none needed (inside the EU/EEA)"),
                closes=format_day(notice.closes_at, loc),
                link=f"{_base_url()}/console/vendor/notices/{notice.id}"),
        )


MECHANISM_LABELS = {
    "adequacy": N_("adequacy decision (Art. 45)"),
    "scc": N_("standard contractual clauses (Art. 46(2)(c))"),
    "bcr": N_("binding corporate rules (Art. 47)"),
    "code_of_conduct": N_("approved code of conduct (Art. 46(2)(e))"),
    "certification": N_("approved certification (Art. 46(2)(f))"),
    "derogation": N_("derogation for a specific situation (Art. 49)"),
}


@dataclass(frozen=True)
class NoticeView:
    id: str
    tenant_id: str
    subprocessor_id: str
    version: int
    change: str
    summary: dict[str, Any]
    created_at: datetime
    closes_at: datetime
    open: bool
    seen_at: datetime | None
    objected_at: datetime | None
    objected_by: str | None
    objection_reason: str | None
    closed_at: datetime | None = None  # when the closing was recorded and the staff were told

    @property
    def status(self) -> str:
        """``open`` while customers may object, ``closed`` once the window has passed."""
        return "open" if self.open and self.closed_at is None else "closed"


def notice_view(n: Any, now: datetime | None = None) -> NoticeView:
    return NoticeView(
        id=n.id, tenant_id=n.org_id, subprocessor_id=n.subprocessor_id, version=n.version,
        change=n.change, summary=dict(n.summary), created_at=n.created_at,
        closes_at=n.closes_at, open=n.closes_at > (now or utcnow()), seen_at=n.seen_at,
        objected_at=n.objected_at, objected_by=n.objected_by,
        objection_reason=n.objection_reason, closed_at=n.closed_at,
    )


def customer_notices(session: Session) -> list[NoticeView]:
    """The notices of the session's own customer (a tenant scope filters them), newest first."""
    rows = session.scalars(select(SubprocessorNotice)
                           .order_by(SubprocessorNotice.created_at.desc()))
    return [notice_view(n) for n in rows]


def customer_notice(session: Session, notice_id: str, *, mark_seen_by: str | None = None
                    ) -> NoticeView:
    """One notice of the session's own customer; the first reading by its admin is recorded."""
    found = session.scalar(select(SubprocessorNotice).where(SubprocessorNotice.id == notice_id))
    if found is None:
        raise NotFound(detail="no such notice")
    if mark_seen_by is not None and found.seen_at is None:
        found.seen_at = utcnow()
        audit(session, "vendor.subprocessor_notice_seen", org_id=found.org_id,
              actor_user_id=mark_seen_by, resource=f"subprocessor-notice:{found.id}")
    return notice_view(found)


def object_to_notice(session: Session, notice_id: str, *, reason: str, actor_user_id: str | None,
                     now: datetime | None = None) -> NoticeView:
    """The customer's objection (Art. 28(2)), with its reason, before the window closes."""
    found = session.scalar(select(SubprocessorNotice).where(SubprocessorNotice.id == notice_id))
    if found is None:
        raise NotFound(detail="no such notice")
    reason = _text("reason", reason, limit=4000)
    if found.objected_at is not None:
        raise Conflict(detail="an objection to this notice is recorded already")
    if (now or utcnow()) >= found.closes_at:
        raise Conflict(detail="the objection window closed on %(closes)s",
                       params={"closes": found.closes_at.date().isoformat()})
    found.objected_at, found.objected_by, found.objection_reason = (
        now or utcnow(), actor_user_id, reason)
    audit(session, "vendor.subprocessor_objection", org_id=found.org_id,
          actor_user_id=actor_user_id, resource=f"subprocessor-notice:{found.id}",
          details={"new": {"objected": True}})
    return notice_view(found)


def notices_for_vendor(session: Session, *, subprocessor_key: str | None = None,
                       objected_only: bool = False) -> list[tuple[NoticeView, str]]:
    """Every customer's notices and objections (vendor staff), with the customer's name."""
    scope: Scope | None = session.info.get("scope")
    if scope is None or not scope.is_system:
        raise RuntimeError("every customer's notices: system scope")
    query = select(SubprocessorNotice).order_by(SubprocessorNotice.created_at.desc())
    if subprocessor_key is not None:
        query = query.where(SubprocessorNotice.subprocessor_id
                            == get_subprocessor(session, subprocessor_key).id)
    if objected_only:
        query = query.where(SubprocessorNotice.objected_at.is_not(None))
    names = {o.id: o.name for o in accounts.list_tenants(session)}
    return [(notice_view(n), names.get(n.org_id, "")) for n in session.scalars(query)]


# -- closing of objection windows ---------------------------------------------------------------

# Who on the vendor's side is told that a window closed: its privacy officers, else its owners.
WINDOW_STAFF_ROLES = (("privacy_officer",), ("owner",))
WINDOW_MAIL = (
    N_("Objection window closed: %(name)s"),
    N_("The window for customers to object to %(change)s, %(name)s (version %(version)s), "
       "closed on %(closes)s (GDPR Art. 28(2)). %(count)s customers were told.\n\n"
       "%(objections)s\n\nEvery customer's notice and objection: %(link)s"),
)
NO_OBJECTIONS = N_("No customer objected.")
OBJECTIONS = N_("Objections by customer:")


@dataclass(frozen=True)
class ClosedWindow:
    subprocessor_id: str
    key: str
    name: str
    version: int
    closes_at: datetime
    customers: int
    objections: tuple[tuple[str, str], ...]  # (customer name, reason), by customer name


def window_staff(session: Session) -> list[Recipient]:
    """The vendor's privacy officers, else its owners (active accounts only)."""
    vendor = accounts.vendor_org(session)
    if vendor is None:
        return []
    for roles in WINDOW_STAFF_ROLES:
        users = accounts.active_with_roles(session, vendor.id, roles)
        found = [Recipient(u.name.value if u.name is not None and u.name.value else "",
                           u.email.value, u.locale or "nb", u.key_id)
                 for u in users if u.email is not None and u.email.value]
        if found:
            return found
    return []


def close_windows(session: Session, *, now: datetime | None = None) -> list[ClosedWindow]:
    """Record the closing of every objection window that has passed and not been closed yet,
    and mail the vendor's responsible staff one summary per window (the objections by customer,
    or none) - in the caller's transaction, so each window is closed and told once. A window is
    one sub-processor version's notices to all its customers. A system scope."""
    scope: Scope | None = session.info.get("scope")
    if scope is None or not scope.is_system:
        raise RuntimeError("closing objection windows reaches every customer's notices: system scope")
    now = now or utcnow()
    due = list(session.scalars(select(SubprocessorNotice).where(
        SubprocessorNotice.closes_at <= now, SubprocessorNotice.closed_at.is_(None))
        .order_by(SubprocessorNotice.closes_at, SubprocessorNotice.id)))
    if not due:
        return []
    groups: dict[tuple[str, int], list[SubprocessorNotice]] = {}
    for n in due:
        groups.setdefault((n.subprocessor_id, n.version), []).append(n)
    names = {o.id: o.name for o in accounts.list_tenants(session)}
    staff = window_staff(session)
    closed = []
    for (sub_id, version), notices in groups.items():
        ids = [n.id for n in notices]
        taken = session.execute(
            update(SubprocessorNotice)
            .where(SubprocessorNotice.id.in_(ids), SubprocessorNotice.closed_at.is_(None))
            .values(closed_at=now).execution_options(synchronize_session=False))
        if getattr(taken, "rowcount", 0) != len(ids):
            raise Conflict(detail="an objection window was closed by another process")
        first = notices[0]
        window = ClosedWindow(
            subprocessor_id=sub_id, key=str(first.summary.get("key", "")),
            name=str(first.summary.get("name", "")), version=version,
            closes_at=max(n.closes_at for n in notices), customers=len(notices),
            objections=tuple(sorted((names.get(n.org_id, n.org_id), n.objection_reason or "")
                                    for n in notices if n.objected_at is not None)))
        closed.append(window)
        _mail_window(session, window, first.change, staff)
        audit(session, "vendor.objection_window_closed", org_id=_vendor_org_id(session),
              actor_user_id=None, resource=f"subprocessor:{window.key}",
              details={"new": {"version": version, "customers": window.customers,
                               "objections": len(window.objections)}})
    return closed


def _mail_window(session: Session, window: ClosedWindow, change: str,
                 staff: list[Recipient]) -> None:
    subject, body = WINDOW_MAIL
    for r in staff:
        loc = r.locale
        lines = ([gettext(loc, OBJECTIONS)] + [f"- {c}: {reason}" for c, reason in window.objections]
                 if window.objections else [gettext(loc, NO_OBJECTIONS)])
        notify.queue(
            session, key_id=r.key_id, to=r.email, kind="vendor.objection_window_closed",
            org_id=_vendor_org_id(session), subject=gettext(loc, subject, name=window.name),
            body=gettext(loc, body, change=gettext(loc, CHANGE_LABELS.get(change, change)),
                         name=window.name, version=window.version,
                         closes=format_day(window.closes_at, loc), count=window.customers,
                         objections="\n".join(lines),
                         link=f"{_base_url()}/console/vendor/subprocessors/{window.key}"))


# -- measures -----------------------------------------------------------------------------------

SEED_MEASURES = Path(__file__).with_name("measures.yaml")


@dataclass(frozen=True)
class MeasureInput:
    key: str
    category: str
    title_nb: str
    title_en: str
    description_nb: str = ""
    description_en: str = ""
    area: str = ""
    owner: str = ""
    status: str = "planned"
    evidence: tuple[tuple[str, str], ...] = ()  # (title, https URL)
    source: str = ""


def _evidence(items: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    out = []
    for i, (given_title, given_url) in enumerate(items):
        title = _text(f"evidence.{i}.title", given_title, limit=200)
        url = (given_url or "").strip()
        if not re.fullmatch(r"https://[^\s<>\"']{3,1990}", url):
            raise InvalidInput.on(f"evidence.{i}.url", "an https:// address", "url")
        out.append({"title": title, "url": url})
    return out


def _measure_values(data: MeasureInput) -> dict[str, Any]:
    return {
        "category": _choice("category", data.category, MEASURE_CATEGORIES),
        "title_nb": _text("title_nb", data.title_nb, limit=200),
        "title_en": _text("title_en", data.title_en, limit=200),
        "description_nb": _text("description_nb", data.description_nb, limit=4000, required=False),
        "description_en": _text("description_en", data.description_en, limit=4000, required=False),
        "area": _text("area", data.area, limit=40, required=False),
        "owner": _text("owner", data.owner, limit=200, required=False),
        "status": _choice("status", data.status, MEASURE_STATUSES),
        "evidence": _evidence(data.evidence),
        "source": _text("source", data.source, limit=200, required=False),
    }


def _measure_state(m: Measure) -> dict[str, Any]:
    return {"category": m.category, "title_en": m.title_en, "owner": m.owner, "status": m.status,
            "evidence": len(m.evidence)}


def get_measure(session: Session, key: str) -> Measure:
    found = session.scalar(select(Measure).where(Measure.key == key))
    if found is None:
        raise NotFound(detail="no such measure")
    return found


def save_measure(session: Session, data: MeasureInput, *, actor_user_id: str | None
                 ) -> MeasureView:
    values = _measure_values(data)
    found = session.scalar(select(Measure).where(Measure.key == _key(data.key)))
    old = _measure_state(found) if found is not None else None
    if found is None:
        found = Measure(key=data.key, **values)
        session.add(found)
    else:
        for name, value in values.items():
            setattr(found, name, value)
        found.updated_at = utcnow()
    session.flush()
    audit(session, "vendor.measure_saved", org_id=_vendor_org_id(session),
          actor_user_id=actor_user_id, resource=f"measure:{data.key}",
          details={"old": old, "new": _measure_state(found)})
    return measure_view(found)


def seed_measures(session: Session, *, actor_user_id: str | None) -> int:
    """Add the seed documents' measures (``measures.yaml``) that are not in the catalogue yet;
    existing entries (with their owner, status and evidence) are left as they are."""
    raw: Any = yaml.safe_load(SEED_MEASURES.read_text(encoding="utf-8"))
    have = set(session.scalars(select(Measure.key)))
    added = 0
    for item in raw["measures"]:
        if item["key"] in have:
            continue
        save_measure(session, MeasureInput(
            key=item["key"], category=item["category"], area=item.get("area", ""),
            title_nb=item["title_nb"], title_en=item["title_en"],
            description_nb=item.get("description_nb", ""),
            description_en=item.get("description_en", ""), source=item.get("source", "")),
            actor_user_id=actor_user_id)
        added += 1
    return added


# -- officers -----------------------------------------------------------------------------------


def set_officer(session: Session, *, role: str, name: str, email: str, phone: str = "",
                actor_user_id: str | None) -> OfficerView:
    """The data protection officer (``dpo``) or security officer (``security``), as published
    in every document and on the trust page."""
    role = _choice("role", role, OFFICER_ROLES)
    name = _text("name", name, limit=200)
    email = _text("email", email, limit=254)
    if not EMAIL.match(email):
        raise InvalidInput.on("email", "is not a valid e-mail address")
    phone = _text("phone", phone, limit=40, required=False)
    if phone and not re.fullmatch(r"\+?[0-9 ()-]{5,39}", phone):
        raise InvalidInput.on("phone", "digits, spaces and an optional leading +")
    found = session.scalar(select(Officer).where(Officer.role == role))
    if found is None:
        found = Officer(role=role, name=name, email=email, phone=phone)
        session.add(found)
    else:
        found.name, found.email, found.phone, found.updated_at = name, email, phone, utcnow()
    session.flush()
    audit(session, "vendor.officer_set", org_id=_vendor_org_id(session),
          actor_user_id=actor_user_id, resource=f"officer:{role}")
    return OfficerView(found.role, found.name, found.email, found.phone)


# -- customer profiles and contacts -------------------------------------------------------------


def set_customer_profile(session: Session, tenant_id: str, *, org_number: str | None,
                         contract_start: date | None, contract_end: date | None,
                         breach_notice_hours: int = DEFAULT_BREACH_NOTICE_HOURS,
                         actor: Any = None) -> CustomerProfileView:
    """Organisation number (mod-11 checked by the accounts domain), contract start and end
    (end not before start) and the hours within which a breach is told to the customer."""
    _customer_scope(session, tenant_id)
    org = accounts.get_organisation(session, tenant_id)
    if org.kind != "tenant":
        raise NotFound()
    if contract_start is not None and contract_end is not None and contract_end < contract_start:
        raise InvalidInput.on("contract_end", "cannot be before the contract's start", "order")
    if contract_end is not None and contract_start is None:
        raise InvalidInput.on("contract_start", "is required when the contract has an end")
    if not 1 <= breach_notice_hours <= 72:
        raise InvalidInput.on("breach_notice_hours", "must be 1-%(n)s", "range", n=72)
    accounts.set_org_number(session, org_id=tenant_id, org_number=org_number, actor=actor)
    found = session.scalar(select(CustomerProfile).where(CustomerProfile.org_id == tenant_id))
    old = None
    if found is None:
        found = CustomerProfile(org_id=tenant_id)
        session.add(found)
    else:
        old = _profile_state(found)
    found.contract_start, found.contract_end = contract_start, contract_end
    found.breach_notice_hours, found.updated_at = breach_notice_hours, utcnow()
    session.flush()
    audit(session, "vendor.customer_profile_set", org_id=tenant_id,
          actor_user_id=getattr(actor, "user_id", None), resource=f"customer:{tenant_id}",
          details={"old": old, "new": _profile_state(found)})
    return customer_profile(session, tenant_id)


def _profile_state(p: CustomerProfile) -> dict[str, Any]:
    return {"contract_start": p.contract_start.isoformat() if p.contract_start else None,
            "contract_end": p.contract_end.isoformat() if p.contract_end else None,
            "breach_notice_hours": p.breach_notice_hours}


def add_contact(session: Session, tenant_id: str, *, kind: str, name: str, email: str,
                locale: str = "nb", actor_user_id: str | None) -> str:
    """A contact for one kind of notice; name and address sealed under a key of their own."""
    _customer_scope(session, tenant_id)
    if accounts.get_organisation(session, tenant_id).kind != "tenant":
        raise NotFound()
    kind = _choice("kind", kind, CONTACT_KINDS)
    name = _text("name", name, limit=200)
    email = _text("email", email, limit=254)
    if not EMAIL.match(email):
        raise InvalidInput.on("email", "is not a valid e-mail address")
    locale = _choice("locale", locale, ("nb", "en"))
    key_id = keyring().create(session)
    contact = CustomerContact(org_id=tenant_id, kind=kind, key_id=key_id,
                              name=PII(key_id, name), email=PII(key_id, email), locale=locale)
    session.add(contact)
    session.flush()
    audit(session, "vendor.customer_contact_added", org_id=tenant_id,
          actor_user_id=actor_user_id, resource=f"customer-contact:{contact.id}",
          details={"new": {"kind": kind, "locale": locale}})
    return contact.id


def remove_contact(session: Session, tenant_id: str, contact_id: str, *,
                   actor_user_id: str | None) -> None:
    """Remove a contact and shred its key (its name and address are gone with it)."""
    _customer_scope(session, tenant_id)
    found = session.scalar(select(CustomerContact).where(CustomerContact.id == contact_id,
                                                         CustomerContact.org_id == tenant_id))
    if found is None:
        raise NotFound(detail="no such contact")
    kind, key_id = found.kind, found.key_id
    session.delete(found)
    session.flush()
    keyring().shred(session, key_id)
    audit(session, "vendor.customer_contact_removed", org_id=tenant_id,
          actor_user_id=actor_user_id, resource=f"customer-contact:{contact_id}",
          details={"old": {"kind": kind}})


def contact_ids(session: Session, tenant_id: str) -> list[tuple[str, str, Recipient]]:
    """(id, kind, recipient) of every contact a customer registered (vendor staff's page)."""
    _customer_scope(session, tenant_id)
    rows = session.scalars(select(CustomerContact).where(CustomerContact.org_id == tenant_id)
                           .order_by(CustomerContact.kind, CustomerContact.created_at))
    return [(c.id, c.kind, Recipient(c.name.value or "", c.email.value or "", c.locale, c.key_id))
            for c in rows]


# -- maintenance --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaintenanceInput:
    title_nb: str
    title_en: str
    starts_at: datetime
    ends_at: datetime
    body_nb: str = ""
    body_en: str = ""
    emergency: bool = False
    emergency_reason: str = ""
    all_customers: bool = True
    customer_ids: tuple[str, ...] = ()


MAINTENANCE_MAIL = (
    N_("Planned maintenance: %(title)s"),
    N_("%(vendor)s will carry out maintenance from %(starts)s to %(ends)s (UTC).\n\n%(body)s"),
)
EMERGENCY_MAIL = (
    N_("Emergency maintenance: %(title)s"),
    N_("%(vendor)s must carry out maintenance from %(starts)s to %(ends)s (UTC), with less than "
       "24 hours' notice.\nWhy: %(reason)s\n\n%(body)s"),
)


def schedule_maintenance(session: Session, data: MaintenanceInput, *, actor_user_id: str | None,
                         now: datetime | None = None) -> tuple[MaintenanceView, int]:
    """Planned downtime, told to the affected customers' maintenance contacts (or admins).
    Less than 24 hours ahead only as an emergency, with the reason recorded."""
    now = now or utcnow()
    for name in ("starts_at", "ends_at"):
        if getattr(data, name).tzinfo is None:
            raise InvalidInput.on(name, "give a time with its offset (e.g. 2026-12-24T22:00+01:00)")
    if data.ends_at <= data.starts_at:
        raise InvalidInput.on("ends_at", "must be after the start", "order")
    if data.starts_at < now:
        raise InvalidInput.on("starts_at", "cannot be in the past", "past")
    reason = _text("emergency_reason", data.emergency_reason, limit=2000, required=False)
    if data.starts_at - now < MIN_MAINTENANCE_NOTICE:
        if not data.emergency:
            raise InvalidInput.on("starts_at", "planned maintenance is announced at least 24 hours "
                                  "ahead; mark it as an emergency and give the reason",
                                  "notice-too-short")
        if not reason:
            raise InvalidInput.on("emergency_reason", "an emergency needs its reason", "required")
    elif data.emergency and not reason:
        raise InvalidInput.on("emergency_reason", "an emergency needs its reason", "required")
    customers = [] if data.all_customers else _tenants(session, "customer_ids", data.customer_ids)
    if not data.all_customers and not customers:
        raise InvalidInput.on("customer_ids", "name the customers it concerns, or all", "required")
    notice = MaintenanceNotice(
        title_nb=_text("title_nb", data.title_nb, limit=200),
        title_en=_text("title_en", data.title_en, limit=200),
        body_nb=_text("body_nb", data.body_nb, limit=8000, required=False),
        body_en=_text("body_en", data.body_en, limit=8000, required=False),
        starts_at=data.starts_at, ends_at=data.ends_at, emergency=data.emergency,
        emergency_reason=reason or None, all_customers=data.all_customers,
        customer_ids=customers, created_by=actor_user_id, created_at=now)
    session.add(notice)
    session.flush()
    audit(session, "vendor.maintenance_scheduled", org_id=_vendor_org_id(session),
          actor_user_id=actor_user_id, resource=f"maintenance:{notice.id}",
          details={"new": {"starts_at": data.starts_at.isoformat(),
                           "ends_at": data.ends_at.isoformat(), "emergency": data.emergency,
                           "customers": "all" if data.all_customers else customers}})
    tenants = customers or [o.id for o in accounts.list_tenants(session) if o.disabled_at is None]
    sent = _mail_maintenance(session, notice, tenants)
    return maintenance_view(notice), sent


def _mail_maintenance(session: Session, notice: MaintenanceNotice, tenants: list[str]) -> int:
    vendor = accounts.vendor_org(session)
    subject, body = EMERGENCY_MAIL if notice.emergency else MAINTENANCE_MAIL
    sent = 0
    recipients = recipients_by_customer(session, tenants, "maintenance")
    for tenant_id in tenants:
        for r in recipients.get(tenant_id, []):
            loc = r.locale
            view = maintenance_view(notice)
            notify.queue(
                session, key_id=r.key_id, to=r.email, kind="vendor.maintenance", org_id=tenant_id,
                subject=gettext(loc, subject, title=view.title(loc)),
                body=gettext(loc, body, vendor=vendor.name if vendor else "",
                             starts=notice.starts_at.strftime("%Y-%m-%d %H:%M"),
                             ends=notice.ends_at.strftime("%Y-%m-%d %H:%M"),
                             reason=notice.emergency_reason or "", body=view.body(loc)))
            sent += 1
    return sent


def cancel_maintenance(session: Session, maintenance_id: str, *, actor_user_id: str | None
                       ) -> MaintenanceView:
    found = session.get(MaintenanceNotice, maintenance_id)
    if found is None:
        raise NotFound(detail="no such maintenance notice")
    if found.cancelled_at is None:
        found.cancelled_at = utcnow()
        audit(session, "vendor.maintenance_cancelled", org_id=_vendor_org_id(session),
              actor_user_id=actor_user_id, resource=f"maintenance:{maintenance_id}",
              details={"old": {"cancelled": False}, "new": {"cancelled": True}})
    return maintenance_view(found)
