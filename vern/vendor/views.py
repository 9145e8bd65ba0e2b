"""The frozen views the vendor registry hands out, and how each is made from its row.

No ORM object leaves the registry: systems, sub-processors, measures, officers, notice recipients,
customer profiles and maintenance notices reach other domains as these views.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from vern.vendor import regions
from vern.vendor.models import MaintenanceNotice, Measure, Subprocessor, VendorSystem


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
