"""The vendor registry's console pages.

``/console/vendor`` for vendor staff: sub-processors and their audits, systems, measures,
officers, customers' profiles and contacts, maintenance. ``/console/vendor/notices`` for a
customer's admins: its sub-processor notices, objections and maintenance notices. Every page
is a plain HTML form over ``vern.vendor.service``; access and transactions as in
``vern.vendor.deps``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import RedirectResponse, Response

from vern.accounts import service as accounts
from vern.accounts.deps import TenantDB
from vern.accounts.roles import Perm
from vern.console.templating import render
from vern.core.errors import InvalidInput, NotFound
from vern.core.i18n import N_
from vern.notify.service import deliver_pending
from vern.vendor import regions, service
from vern.vendor.deps import Customer, Manager, Reader, VendorDB
from vern.vendor.service import MaintenanceInput, MeasureInput, SubprocessorInput, SystemInput

pages = APIRouter(include_in_schema=False)
NAV = [("/console/vendor", N_("Vendor registry"), Perm.VENDOR_READ),
       ("/console/vendor/notices", N_("Sub-processor notices"), Perm.VENDOR_NOTICES)]
# A time typed in the console without an offset is read as Norwegian time.
CONSOLE_ZONE = ZoneInfo("Europe/Oslo")


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
