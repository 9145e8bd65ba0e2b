"""The vendor's registry over HTTP.

API ``/api/v1/vendor/…``: the registry for vendor staff (``vendor.read`` to read,
``vendor.manage`` to change it) and, under ``/api/v1/vendor/customer/…``, a customer's own
sub-processor notices, objections and maintenance notices (``vendor.notices``, its admins).
Console ``/console/vendor`` (vendor staff) and ``/console/vendor/notices`` (a customer's admins)
are in ``vern.vendor.pages``, discovered here with the API router.

Vendor staff work in a system-scoped transaction (``VendorDB``): a sub-processor change writes a
notice into every affected customer's rows at once. A customer's routes use ``TenantDB``, so a
customer never reaches another's notices or objections (``vern.vendor.deps``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from vern.accounts.deps import TenantDB
from vern.core.inputs import AwareMoment, Day, Int32, Key, Value
from vern.notify.service import deliver_pending
from vern.vendor import service
from vern.vendor.deps import Customer, Manager, Reader, VendorDB
from vern.vendor.pages import NAV, pages
from vern.vendor.service import (
    DEFAULT_OBJECTION_DAYS,
    MaintenanceInput,
    MeasureInput,
    NoticeView,
    SubprocessorInput,
    SystemInput,
)

router = APIRouter(tags=["vendor"])
# The console pages (vern.vendor.pages) are discovered here with the API router.
__all__ = ["NAV", "pages", "router"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Country = Annotated[str, Field(min_length=2, max_length=2)]
Short = Annotated[str, Field(max_length=200)]


class SubprocessorBody(Strict):
    name: Short
    service: Value
    data_categories: list[Annotated[str, Field(max_length=100)]] = Field(max_length=50)
    storage_locations: list[Country] = Field(max_length=50)
    processing_locations: list[Country] = Field(default_factory=list, max_length=50)
    transfer_mechanism: Annotated[str, Field(max_length=24)] | None = None
    transfer_note: Value = ""
    agreement_date: Day | None = None
    status: Annotated[str, Field(max_length=16)] = "planned"
    all_customers: bool = True
    customer_ids: list[Key] = Field(default_factory=list, max_length=10_000)
    processings: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list,
                                                                      max_length=200)
    objection_days: Int32 = DEFAULT_OBJECTION_DAYS


class AuditBody(Strict):
    audited_on: Day
    result: Annotated[str, Field(max_length=16)]
    note: Value = ""


class SystemBody(Strict):
    name: Short
    description: Value = ""
    storage_locations: list[Country] = Field(max_length=50)
    processing_locations: list[Country] = Field(default_factory=list, max_length=50)
    transfer_mechanism: Annotated[str, Field(max_length=24)] | None = None
    transfer_note: Value = ""


class EvidenceBody(Strict):
    title: Short
    url: Value


class MeasureBody(Strict):
    category: Annotated[str, Field(max_length=16)]
    title_nb: Short
    title_en: Short
    description_nb: Value = ""
    description_en: Value = ""
    area: Annotated[str, Field(max_length=40)] = ""
    owner: Short = ""
    status: Annotated[str, Field(max_length=16)] = "planned"
    evidence: list[EvidenceBody] = Field(default_factory=list, max_length=50)
    source: Short = ""


class OfficerBody(Strict):
    name: Short
    email: Annotated[str, Field(max_length=254)]
    phone: Annotated[str, Field(max_length=40)] = ""


class ProfileBody(Strict):
    org_number: Annotated[str, Field(max_length=20)] | None = None
    contract_start: Day | None = None
    contract_end: Day | None = None
    breach_notice_hours: Int32 = service.DEFAULT_BREACH_NOTICE_HOURS


class ContactBody(Strict):
    kind: Annotated[str, Field(max_length=16)]
    name: Short
    email: Annotated[str, Field(max_length=254)]
    locale: Annotated[str, Field(max_length=2)] = "nb"


class MaintenanceBody(Strict):
    title_nb: Short
    title_en: Short
    body_nb: Value = ""
    body_en: Value = ""
    starts_at: AwareMoment
    ends_at: AwareMoment
    emergency: bool = False
    emergency_reason: Value = ""
    all_customers: bool = True
    customer_ids: list[Key] = Field(default_factory=list, max_length=10_000)


class ObjectionBody(Strict):
    reason: Annotated[str, Field(min_length=1, max_length=4000)]


def _json(value: Any) -> Any:
    """A view as JSON-ready data (dataclasses, dates, tuples)."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: _json(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


def _vendor_notice(n: NoticeView, customer: str) -> dict[str, Any]:
    """A customer's notice as vendor staff see it: the customer, not its people or row ids."""
    return {"customer_id": n.tenant_id, "customer": customer, "version": n.version,
            "change": n.change, "created_at": n.created_at.isoformat(),
            "closes_at": n.closes_at.isoformat(), "open": n.open, "status": n.status,
            "closed_at": n.closed_at.isoformat() if n.closed_at else None,
            "seen": n.seen_at is not None,
            "objected_at": n.objected_at.isoformat() if n.objected_at else None,
            "objection_reason": n.objection_reason}


def _customer_notice(n: NoticeView) -> dict[str, Any]:
    return {"id": n.id, "version": n.version, "change": n.change, "summary": n.summary,
            "created_at": n.created_at.isoformat(), "closes_at": n.closes_at.isoformat(),
            "open": n.open, "status": n.status,
            "closed_at": n.closed_at.isoformat() if n.closed_at else None,
            "objected_at": n.objected_at.isoformat() if n.objected_at else None,
            "objection_reason": n.objection_reason}


def _sub_input(key: str, body: SubprocessorBody) -> SubprocessorInput:
    return SubprocessorInput(
        key=key, name=body.name, service=body.service,
        data_categories=tuple(body.data_categories),
        storage_locations=tuple(body.storage_locations),
        processing_locations=tuple(body.processing_locations),
        transfer_mechanism=body.transfer_mechanism, transfer_note=body.transfer_note,
        agreement_date=body.agreement_date, status=body.status,
        all_customers=body.all_customers, customer_ids=tuple(body.customer_ids),
        processings=tuple(body.processings))


# -- API: vendor staff ---------------------------------------------------------------------------


@router.get("/api/v1/vendor/subprocessors")
def api_subprocessors(_actor: Reader, db: VendorDB, include_retired: bool = False
                      ) -> dict[str, Any]:
    """Every sub-processor with its locations, transfer mechanism, agreement and last audit."""
    return {"subprocessors": _json(service.list_subprocessors(db,
                                                              include_retired=include_retired))}


@router.get("/api/v1/vendor/subprocessors/{subprocessor_key}")
def api_subprocessor(subprocessor_key: str, _actor: Reader, db: VendorDB) -> dict[str, Any]:
    """One sub-processor with every customer's notices and objections."""
    view = service.subprocessor_view(service.get_subprocessor(db, subprocessor_key))
    notices = service.notices_for_vendor(db, subprocessor_key=subprocessor_key)
    return {**_json(view), "notices": [_vendor_notice(n, c) for n, c in notices]}


@router.put("/api/v1/vendor/subprocessors/{subprocessor_key}")
def api_save_subprocessor(subprocessor_key: str, body: SubprocessorBody, *, actor: Manager,
                          db: VendorDB, background: BackgroundTasks, request: Request
                          ) -> dict[str, Any]:
    """Add or change a sub-processor. A new one, or a change customers must be told of, sends
    an Art. 28(2) notice to every customer it serves, with ``objection_days`` to object."""
    view, told = service.save_subprocessor(db, _sub_input(subprocessor_key, body),
                                           actor_user_id=actor.user_id,
                                           objection_days=body.objection_days)
    background.add_task(deliver_pending, request.app.state.db)
    return {**_json(view), "customers_notified": told}


@router.post("/api/v1/vendor/subprocessors/{subprocessor_key}/audit")
def api_audit_subprocessor(subprocessor_key: str, body: AuditBody, actor: Manager,
                           db: VendorDB) -> dict[str, Any]:
    """Record the vendor's latest audit of a sub-processor (no notice to customers)."""
    return _json(service.record_subprocessor_audit(
        db, subprocessor_key, audited_on=body.audited_on, result=body.result, note=body.note,
        actor_user_id=actor.user_id))


@router.post("/api/v1/vendor/subprocessors/{subprocessor_key}/retire")
def api_retire_subprocessor(subprocessor_key: str, actor: Manager, db: VendorDB
                            ) -> dict[str, Any]:
    """Stop using a sub-processor; it stays in the register as retired."""
    return _json(service.retire_subprocessor(db, subprocessor_key, actor_user_id=actor.user_id))


@router.get("/api/v1/vendor/objections")
def api_objections(_actor: Reader, db: VendorDB) -> dict[str, Any]:
    """Every customer's objections to sub-processor notices, newest first."""
    keys = {v.id: v.key for v in service.list_subprocessors(db, include_retired=True)}
    return {"objections": [{**_vendor_notice(n, c), "subprocessor": keys.get(n.subprocessor_id)}
                           for n, c in service.notices_for_vendor(db, objected_only=True)]}


@router.get("/api/v1/vendor/systems")
def api_systems(_actor: Reader, db: VendorDB, include_retired: bool = False) -> dict[str, Any]:
    """The vendor's systems with their storage and processing countries."""
    return {"systems": _json(service.list_systems(db, include_retired=include_retired))}


@router.put("/api/v1/vendor/systems/{system_key}")
def api_save_system(system_key: str, body: SystemBody, actor: Manager, db: VendorDB
                    ) -> dict[str, Any]:
    """Add or change a system; a country outside the EU/EEA needs a transfer mechanism."""
    return _json(service.save_system(db, SystemInput(
        key=system_key, name=body.name, description=body.description,
        storage_locations=tuple(body.storage_locations),
        processing_locations=tuple(body.processing_locations),
        transfer_mechanism=body.transfer_mechanism, transfer_note=body.transfer_note),
        actor_user_id=actor.user_id))


@router.post("/api/v1/vendor/systems/{system_key}/retire")
def api_retire_system(system_key: str, actor: Manager, db: VendorDB) -> dict[str, Any]:
    """A system no longer used: kept in the register as retired."""
    return _json(service.retire_system(db, system_key, actor_user_id=actor.user_id))


@router.get("/api/v1/vendor/measures")
def api_measures(_actor: Reader, db: VendorDB, include_retired: bool = False) -> dict[str, Any]:
    """The catalogue of technical and organisational measures with owner, status and evidence."""
    return {"measures": _json(service.list_measures(db, include_retired=include_retired))}


@router.put("/api/v1/vendor/measures/{measure_key}")
def api_save_measure(measure_key: str, body: MeasureBody, actor: Manager, db: VendorDB
                     ) -> dict[str, Any]:
    """Add or change a measure: owner, status and evidence links (https)."""
    return _json(service.save_measure(db, MeasureInput(
        key=measure_key, category=body.category, title_nb=body.title_nb, title_en=body.title_en,
        description_nb=body.description_nb, description_en=body.description_en, area=body.area,
        owner=body.owner, status=body.status,
        evidence=tuple((e.title, e.url) for e in body.evidence), source=body.source),
        actor_user_id=actor.user_id))


@router.post("/api/v1/vendor/measures/seed")
def api_seed_measures(actor: Manager, db: VendorDB) -> dict[str, int]:
    """Add the seed documents' measures missing from the catalogue."""
    return {"added": service.seed_measures(db, actor_user_id=actor.user_id)}


@router.get("/api/v1/vendor/officers")
def api_officers(_actor: Reader, db: VendorDB) -> dict[str, Any]:
    """The data protection officer, the security officer and how to complain to Datatilsynet."""
    return _json(service.officers(db))


@router.put("/api/v1/vendor/officers/{officer_role}")
def api_set_officer(officer_role: str, body: OfficerBody, actor: Manager, db: VendorDB
                    ) -> dict[str, Any]:
    """Set the data protection officer (dpo) or security officer (security), as published."""
    return _json(service.set_officer(db, role=officer_role, name=body.name, email=body.email,
                                     phone=body.phone, actor_user_id=actor.user_id))


def _profile(db: Session, tenant_id: str) -> dict[str, Any]:
    view = service.customer_profile(db, tenant_id)
    contacts = [{"id": cid, "kind": kind, "name": r.name, "email": r.email, "locale": r.locale}
                for cid, kind, r in service.contact_ids(db, tenant_id)]
    return {**_json(view), "contacts": contacts}


@router.get("/api/v1/vendor/customers/{tenant_id}")
def api_customer(tenant_id: str, _actor: Reader, db: VendorDB) -> dict[str, Any]:
    """A customer's profile: organisation number, contract, breach notice hours and contacts."""
    return _profile(db, tenant_id)


@router.put("/api/v1/vendor/customers/{tenant_id}")
def api_set_customer(tenant_id: str, body: ProfileBody, actor: Manager, db: VendorDB
                     ) -> dict[str, Any]:
    """Change a customer's organisation number (mod-11 checked), contract dates and breach notice hours."""
    service.set_customer_profile(db, tenant_id, org_number=body.org_number,
                                 contract_start=body.contract_start,
                                 contract_end=body.contract_end,
                                 breach_notice_hours=body.breach_notice_hours, actor=actor)
    return _profile(db, tenant_id)


@router.post("/api/v1/vendor/customers/{tenant_id}/contacts", status_code=201)
def api_add_contact(tenant_id: str, body: ContactBody, actor: Manager, db: VendorDB
                    ) -> dict[str, Any]:
    """Name a customer's contact for privacy, security, breach or maintenance notices."""
    cid = service.add_contact(db, tenant_id, kind=body.kind, name=body.name, email=body.email,
                              locale=body.locale, actor_user_id=actor.user_id)
    return {"id": cid}


@router.delete("/api/v1/vendor/customers/{tenant_id}/contacts/{contact_id}", status_code=204)
def api_remove_contact(tenant_id: str, contact_id: str, actor: Manager, db: VendorDB
                       ) -> Response:
    """Remove a customer's contact; its name and address are shredded."""
    service.remove_contact(db, tenant_id, contact_id, actor_user_id=actor.user_id)
    return Response(status_code=204)


@router.get("/api/v1/vendor/maintenance")
def api_maintenance(_actor: Reader, db: VendorDB) -> dict[str, Any]:
    """Every maintenance notice, newest start first, cancelled ones included."""
    return {"maintenance": _json(service.list_maintenance(db, include_cancelled=True))}


def _maintenance_input(body: MaintenanceBody) -> MaintenanceInput:
    return MaintenanceInput(
        title_nb=body.title_nb, title_en=body.title_en, body_nb=body.body_nb,
        body_en=body.body_en, starts_at=body.starts_at, ends_at=body.ends_at,
        emergency=body.emergency, emergency_reason=body.emergency_reason,
        all_customers=body.all_customers, customer_ids=tuple(body.customer_ids))


@router.post("/api/v1/vendor/maintenance", status_code=201)
def api_schedule_maintenance(body: MaintenanceBody, actor: Manager, db: VendorDB,
                             background: BackgroundTasks, request: Request) -> dict[str, Any]:
    """Planned downtime: at least 24 hours ahead, or ``emergency`` with its reason."""
    view, sent = service.schedule_maintenance(db, _maintenance_input(body),
                                              actor_user_id=actor.user_id)
    background.add_task(deliver_pending, request.app.state.db)
    return {**_json(view), "recipients": sent}


@router.post("/api/v1/vendor/maintenance/{maintenance_id}/cancel")
def api_cancel_maintenance(maintenance_id: str, actor: Manager, db: VendorDB) -> dict[str, Any]:
    """Cancel a maintenance notice; it stays listed as cancelled."""
    return _json(service.cancel_maintenance(db, maintenance_id, actor_user_id=actor.user_id))


# -- API: a customer's own notices ------------------------------------------------------------


@router.get("/api/v1/vendor/customer/notices")
def api_my_notices(_actor: Customer, db: TenantDB) -> dict[str, Any]:
    """This customer's Art. 28(2) notices, newest first."""
    return {"notices": [_customer_notice(n) for n in service.customer_notices(db)]}


@router.get("/api/v1/vendor/customer/notices/{notice_id}")
def api_my_notice(notice_id: str, actor: Customer, db: TenantDB) -> dict[str, Any]:
    """One of this customer's notices; the first reading is recorded."""
    return _customer_notice(service.customer_notice(db, notice_id, mark_seen_by=actor.user_id))


@router.post("/api/v1/vendor/customer/notices/{notice_id}/objection")
def api_object(notice_id: str, body: ObjectionBody, actor: Customer, db: TenantDB
               ) -> dict[str, Any]:
    """Object to a new or changed sub-processor, with the reason, before the window closes."""
    return _customer_notice(service.object_to_notice(db, notice_id, reason=body.reason,
                                                     actor_user_id=actor.user_id))


@router.get("/api/v1/vendor/customer/maintenance")
def api_my_maintenance(actor: Customer, db: TenantDB) -> dict[str, Any]:
    """Maintenance notices that concern this customer, newest first."""
    return {"maintenance": _json(service.list_maintenance(db, actor.org_id))}
