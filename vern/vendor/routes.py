"""The vendor's registry over HTTP.

API ``/api/v1/vendor/…``: the registry for vendor staff (``vendor.read`` to read,
``vendor.manage`` to change it) and, under ``/api/v1/vendor/customer/…``, a customer's own
sub-processor notices, objections and maintenance notices (``vendor.notices``, its admins).
Console ``/console/vendor`` (vendor staff) and ``/console/vendor/notices`` (a customer's admins).

Vendor staff work in a system-scoped transaction (``VendorDB``): a sub-processor change writes a
notice into every affected customer's rows at once. A customer's routes use ``TenantDB``, so a
customer never reaches another's notices or objections.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.accounts.deps import DatabaseDep, TenantDB, require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.console.templating import render
from vern.core.db import Scope
from vern.core.errors import InvalidInput, NotFound
from vern.core.i18n import N_
from vern.core.inputs import AwareMoment, Day, Int32, Key, Value
from vern.notify.service import deliver_pending
from vern.vendor import regions, service
from vern.vendor.service import (
    DEFAULT_OBJECTION_DAYS,
    MaintenanceInput,
    MeasureInput,
    NoticeView,
    SubprocessorInput,
    SystemInput,
)

router = APIRouter(tags=["vendor"])
pages = APIRouter(include_in_schema=False)
NAV = [("/console/vendor", N_("Vendor registry"), Perm.VENDOR_READ),
       ("/console/vendor/notices", N_("Sub-processor notices"), Perm.VENDOR_NOTICES)]
# A time typed in the console without an offset is read as Norwegian time.
CONSOLE_ZONE = ZoneInfo("Europe/Oslo")

Reader = Annotated[Actor, Depends(require(Perm.VENDOR_READ))]
Manager = Annotated[Actor, Depends(require(Perm.VENDOR_MANAGE))]
Customer = Annotated[Actor, Depends(require(Perm.VENDOR_NOTICES))]


def vendor_db(_actor: Reader, db: DatabaseDep) -> Iterator[Session]:
    """The vendor staff's transaction: system scope (it reaches every customer's notices),
    only behind ``vendor.read``, which only the vendor's own staff hold."""
    with db.transaction(Scope.system("vendor registry: vendor staff")) as session:
        yield session


VendorDB = Annotated[Session, Depends(vendor_db, scope="function")]


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


# -- console: vendor staff ---------------------------------------------------------------------


def _codes(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.replace(";", ",").split(",") if c.strip())


def _lines(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.replace(",", "\n").splitlines() if x.strip())


def _day(field_name: str, text: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput.on(field_name, "a date such as 2026-12-24") from None


def _local_time(field_name: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput.on(field_name, "a time such as 2026-12-24T22:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=CONSOLE_ZONE)


@pages.get("/console/vendor")
def console_index(request: Request, actor: Reader, db: VendorDB) -> Response:
    return render(request, "vendor/index.html", {
        "subprocessors": service.list_subprocessors(db, include_retired=True),
        "systems": service.list_systems(db, include_retired=True),
        "measures": service.list_measures(db, include_retired=True),
        "officers": service.officers(db),
        "maintenance": service.list_maintenance(db, include_cancelled=True),
        "customers": accounts.list_tenants(db),
        "objections": service.notices_for_vendor(db, objected_only=True),
        "mechanisms": service.MECHANISM_LABELS, "can_manage": actor.can(Perm.VENDOR_MANAGE),
        "country": regions.country_name, "eea": regions.eea(),
    })


@pages.post("/console/vendor/subprocessors")
def console_save_subprocessor(
    request: Request, background: BackgroundTasks, *, actor: Manager, db: VendorDB,
    key: Annotated[str, Form(max_length=40)], name: Annotated[str, Form(max_length=200)],
    service_text: Annotated[str, Form(alias="service", max_length=2000)],
    data_categories: Annotated[str, Form(max_length=2000)],
    storage_locations: Annotated[str, Form(max_length=400)],
    processing_locations: Annotated[str, Form(max_length=400)] = "",
    transfer_mechanism: Annotated[str, Form(max_length=24)] = "",
    transfer_note: Annotated[str, Form(max_length=2000)] = "",
    agreement_date: Annotated[str, Form(max_length=10)] = "",
    status: Annotated[str, Form(max_length=16)] = "planned",
    customers: Annotated[list[str] | None, Form(max_length=10_000)] = None,
    processings: Annotated[str, Form(max_length=4000)] = "",
    objection_days: Annotated[int, Form(ge=1, le=service.MAX_OBJECTION_DAYS)] = 30,
) -> Response:
    """``customers``: the checked customers; none checked means every customer."""
    chosen = tuple(customers or ())
    service.save_subprocessor(db, SubprocessorInput(
        key=key, name=name, service=service_text, data_categories=_lines(data_categories),
        storage_locations=_codes(storage_locations),
        processing_locations=_codes(processing_locations),
        transfer_mechanism=transfer_mechanism or None, transfer_note=transfer_note,
        agreement_date=_day("agreement_date", agreement_date), status=status,
        all_customers=not chosen, customer_ids=chosen, processings=_lines(processings)),
        actor_user_id=actor.user_id, objection_days=objection_days)
    background.add_task(deliver_pending, request.app.state.db)
    return RedirectResponse(f"/console/vendor/subprocessors/{key}", status_code=303)


@pages.get("/console/vendor/subprocessors/{subprocessor_key}")
def console_subprocessor(request: Request, subprocessor_key: str, actor: Reader, db: VendorDB
                         ) -> Response:
    found = service.subprocessor_view(service.get_subprocessor(db, subprocessor_key))
    return render(request, "vendor/subprocessor.html", {
        "s": found, "notices": service.notices_for_vendor(db, subprocessor_key=subprocessor_key),
        "customers": accounts.list_tenants(db), "mechanisms": service.MECHANISM_LABELS,
        "can_manage": actor.can(Perm.VENDOR_MANAGE), "country": regions.country_name,
        "results": service.AUDIT_RESULTS[1:],
    })


@pages.post("/console/vendor/subprocessors/{subprocessor_key}/audit")
def console_audit_subprocessor(
    request: Request, subprocessor_key: str, *, actor: Manager, db: VendorDB,
    audited_on: Annotated[str, Form(max_length=10)], result: Annotated[str, Form(max_length=16)],
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    day = _day("audited_on", audited_on)
    if day is None:
        raise InvalidInput.on("audited_on", "is required")
    service.record_subprocessor_audit(db, subprocessor_key, audited_on=day, result=result,
                                      note=note, actor_user_id=actor.user_id)
    return RedirectResponse(f"/console/vendor/subprocessors/{subprocessor_key}", status_code=303)


@pages.post("/console/vendor/subprocessors/{subprocessor_key}/retire")
def console_retire_subprocessor(request: Request, subprocessor_key: str, *, actor: Manager,
                                db: VendorDB) -> Response:
    service.retire_subprocessor(db, subprocessor_key, actor_user_id=actor.user_id)
    return RedirectResponse("/console/vendor", status_code=303)


@pages.post("/console/vendor/systems")
def console_save_system(
    request: Request, *, actor: Manager, db: VendorDB,
    key: Annotated[str, Form(max_length=40)], name: Annotated[str, Form(max_length=200)],
    storage_locations: Annotated[str, Form(max_length=400)],
    processing_locations: Annotated[str, Form(max_length=400)] = "",
    transfer_mechanism: Annotated[str, Form(max_length=24)] = "",
    transfer_note: Annotated[str, Form(max_length=2000)] = "",
    description: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    service.save_system(db, SystemInput(
        key=key, name=name, description=description, storage_locations=_codes(storage_locations),
        processing_locations=_codes(processing_locations),
        transfer_mechanism=transfer_mechanism or None, transfer_note=transfer_note),
        actor_user_id=actor.user_id)
    return RedirectResponse("/console/vendor#systems", status_code=303)


@pages.post("/console/vendor/measures")
def console_save_measure(
    request: Request, *, actor: Manager, db: VendorDB,
    key: Annotated[str, Form(max_length=40)], category: Annotated[str, Form(max_length=16)],
    title_nb: Annotated[str, Form(max_length=200)], title_en: Annotated[str, Form(max_length=200)],
    owner: Annotated[str, Form(max_length=200)] = "",
    status: Annotated[str, Form(max_length=16)] = "planned",
    evidence: Annotated[str, Form(max_length=8000)] = "",
) -> Response:
    """``evidence``: one per line, ``title | https://…``. Descriptions and source are kept."""
    items = []
    for line in evidence.splitlines():
        if line.strip():
            title, _, url = line.partition("|")
            items.append((title.strip(), url.strip()))
    try:
        old: service.MeasureView | None = service.measure_view(service.get_measure(db, key))
    except NotFound:
        old = None  # a new measure
    service.save_measure(db, MeasureInput(
        key=key, category=category, title_nb=title_nb, title_en=title_en,
        description_nb=old.description_nb if old else "",
        description_en=old.description_en if old else "", area=old.area if old else "",
        owner=owner, status=status, evidence=tuple(items), source=old.source if old else ""),
        actor_user_id=actor.user_id)
    return RedirectResponse("/console/vendor#measures", status_code=303)


@pages.post("/console/vendor/measures/seed")
def console_seed_measures(request: Request, *, actor: Manager, db: VendorDB) -> Response:
    service.seed_measures(db, actor_user_id=actor.user_id)
    return RedirectResponse("/console/vendor#measures", status_code=303)


@pages.post("/console/vendor/officers")
def console_set_officer(
    request: Request, *, actor: Manager, db: VendorDB,
    role: Annotated[str, Form(max_length=16)], name: Annotated[str, Form(max_length=200)],
    email: Annotated[str, Form(max_length=254)], phone: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    service.set_officer(db, role=role, name=name, email=email, phone=phone,
                        actor_user_id=actor.user_id)
    return RedirectResponse("/console/vendor#officers", status_code=303)


@pages.get("/console/vendor/customers/{tenant_id}")
def console_customer(request: Request, tenant_id: str, actor: Reader, db: VendorDB) -> Response:
    return render(request, "vendor/customer.html", {
        "profile": service.customer_profile(db, tenant_id),
        "contacts": service.contact_ids(db, tenant_id), "kinds": service.CONTACT_KINDS,
        "subprocessors": service.list_subprocessors(db, tenant_id=tenant_id),
        "can_manage": actor.can(Perm.VENDOR_MANAGE),
    })


@pages.post("/console/vendor/customers/{tenant_id}")
def console_set_customer(
    request: Request, tenant_id: str, *, actor: Manager, db: VendorDB,
    org_number: Annotated[str, Form(max_length=20)] = "",
    contract_start: Annotated[str, Form(max_length=10)] = "",
    contract_end: Annotated[str, Form(max_length=10)] = "",
    breach_notice_hours: Annotated[int, Form(ge=1, le=72)] = 24,
) -> Response:
    service.set_customer_profile(
        db, tenant_id, org_number=org_number or None,
        contract_start=_day("contract_start", contract_start),
        contract_end=_day("contract_end", contract_end),
        breach_notice_hours=breach_notice_hours, actor=actor)
    return RedirectResponse(f"/console/vendor/customers/{tenant_id}", status_code=303)


@pages.post("/console/vendor/customers/{tenant_id}/contacts")
def console_add_contact(
    request: Request, tenant_id: str, *, actor: Manager, db: VendorDB,
    kind: Annotated[str, Form(max_length=16)], name: Annotated[str, Form(max_length=200)],
    email: Annotated[str, Form(max_length=254)], locale: Annotated[str, Form(max_length=2)] = "nb",
) -> Response:
    service.add_contact(db, tenant_id, kind=kind, name=name, email=email, locale=locale,
                        actor_user_id=actor.user_id)
    return RedirectResponse(f"/console/vendor/customers/{tenant_id}", status_code=303)


@pages.post("/console/vendor/customers/{tenant_id}/contacts/{contact_id}/remove")
def console_remove_contact(request: Request, tenant_id: str, contact_id: str, *,
                           actor: Manager, db: VendorDB) -> Response:
    service.remove_contact(db, tenant_id, contact_id, actor_user_id=actor.user_id)
    return RedirectResponse(f"/console/vendor/customers/{tenant_id}", status_code=303)


@pages.post("/console/vendor/maintenance")
def console_schedule_maintenance(
    request: Request, background: BackgroundTasks, *, actor: Manager, db: VendorDB,
    title_nb: Annotated[str, Form(max_length=200)], title_en: Annotated[str, Form(max_length=200)],
    starts_at: Annotated[str, Form(max_length=40)], ends_at: Annotated[str, Form(max_length=40)],
    body_nb: Annotated[str, Form(max_length=8000)] = "",
    body_en: Annotated[str, Form(max_length=8000)] = "",
    emergency: Annotated[bool, Form()] = False,
    emergency_reason: Annotated[str, Form(max_length=2000)] = "",
    customers: Annotated[list[str] | None, Form(max_length=10_000)] = None,
) -> Response:
    chosen = tuple(customers or ())
    service.schedule_maintenance(db, MaintenanceInput(
        title_nb=title_nb, title_en=title_en, body_nb=body_nb, body_en=body_en,
        starts_at=_local_time("starts_at", starts_at), ends_at=_local_time("ends_at", ends_at),
        emergency=emergency, emergency_reason=emergency_reason, all_customers=not chosen,
        customer_ids=chosen), actor_user_id=actor.user_id)
    background.add_task(deliver_pending, request.app.state.db)
    return RedirectResponse("/console/vendor#maintenance", status_code=303)


@pages.post("/console/vendor/maintenance/{maintenance_id}/cancel")
def console_cancel_maintenance(request: Request, maintenance_id: str, *, actor: Manager,
                               db: VendorDB) -> Response:
    service.cancel_maintenance(db, maintenance_id, actor_user_id=actor.user_id)
    return RedirectResponse("/console/vendor#maintenance", status_code=303)


# -- console: a customer's admins ----------------------------------------------------------------


@pages.get("/console/vendor/notices")
def console_notices(request: Request, actor: Customer, db: TenantDB) -> Response:
    return render(request, "vendor/notices.html", {
        "notices": service.customer_notices(db),
        "maintenance": service.list_maintenance(db, actor.org_id, include_past=False),
        "mechanisms": service.MECHANISM_LABELS,
    })


@pages.get("/console/vendor/notices/{notice_id}")
def console_notice(request: Request, notice_id: str, actor: Customer, db: TenantDB) -> Response:
    return render(request, "vendor/notice.html", {
        "n": service.customer_notice(db, notice_id, mark_seen_by=actor.user_id),
        "mechanisms": service.MECHANISM_LABELS, "country": regions.country_name,
    })


@pages.post("/console/vendor/notices/{notice_id}/objection")
def console_object(request: Request, notice_id: str, *, actor: Customer, db: TenantDB,
                   reason: Annotated[str, Form(max_length=4000)] = "") -> Response:
    service.object_to_notice(db, notice_id, reason=reason, actor_user_id=actor.user_id)
    return RedirectResponse(f"/console/vendor/notices/{notice_id}", status_code=303)
