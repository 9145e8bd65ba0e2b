"""The vendor's own registry: every read other domains use, and every write.

Read functions take a SQLAlchemy session and return frozen views (no ORM objects leave this
module), so the records of processing, agreements, the trust page and breach notices can build
on them without touching these tables. Writes own their transaction's audit record.

Customer-owned rows (profile, contacts, change notices, objections) are read by the customer's id
through ``_customer_rows``: allowed in a system scope, in that customer's own scope, or in the
vendor organisation's scope (vendor staff); any other scope gets nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.db import Scope, utcnow
from vern.errors import InvalidInput, NotFound
from vern.vendor import regions
from vern.vendor.models import (
    CustomerContact,
    CustomerProfile,
    MaintenanceNotice,
    Measure,
    Officer,
    Subprocessor,
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


def notice_recipients(session: Session, tenant_id: str, kind: str) -> list[Recipient]:
    """Who gets a notice of ``kind`` (privacy, security, breach, maintenance) for one customer:
    the contacts it registered for that kind, or else its active administrators."""
    if kind not in CONTACT_KINDS:
        raise InvalidInput.on("kind", "one of %(values)s", values=", ".join(CONTACT_KINDS))
    if not _may_read_customer(session, tenant_id):
        return []
    registered = list(_contacts(session, tenant_id).get(kind, ()))
    if registered:
        return registered
    out = []
    for user in accounts.active_admins(session, tenant_id):
        if user.email is None or user.email.value is None:
            continue
        name = user.name.value if user.name is not None and user.name.value else ""
        out.append(Recipient(name, user.email.value, user.locale or "nb", user.key_id))
    return out
