"""The vendor's own registry, the domain's public entry point: every read other domains use, and
every write.

Read functions take a SQLAlchemy session and return frozen views (no ORM objects leave the
registry), so the records of processing, agreements, the trust page and breach notices can build
on them without touching these tables. Writes own their transaction's audit record.

The vendor's systems and officers are kept here; the rest of the registry lives in modules of its
own and is imported back here: the views (``views``), customers' profiles, contacts and notice
recipients (``customers``, which also says who may read a customer's own rows), sub-processors
(``subprocessors``), their customers' notices, objections and objection windows (``notices``),
the measures (``measures``) and maintenance notices (``maintenance``); ``checks`` holds what
every write checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.audit.service import record as audit
from vern.core.db import utcnow
from vern.core.errors import InvalidInput, NotFound
from vern.vendor import regions
from vern.vendor.checks import EMAIL, KEY, check_choice, check_key, check_text, vendor_org_id
from vern.vendor.customers import (
    CONTACT_KINDS,
    DEFAULT_BREACH_NOTICE_HOURS,
    add_contact,
    contact_ids,
    contracts_by_customer,
    customer_profile,
    notice_recipients,
    recipients_by_customer,
    remove_contact,
    set_customer_profile,
)
from vern.vendor.maintenance import (
    EMERGENCY_MAIL,
    MAINTENANCE_MAIL,
    MIN_MAINTENANCE_NOTICE,
    MaintenanceInput,
    cancel_maintenance,
    schedule_maintenance,
)
from vern.vendor.measures import (
    MEASURE_CATEGORIES,
    MEASURE_STATUSES,
    SEED_MEASURES,
    MeasureInput,
    get_measure,
    save_measure,
    seed_measures,
)
from vern.vendor.models import MaintenanceNotice, Measure, Officer, Subprocessor, VendorSystem
from vern.vendor.notices import (
    NO_OBJECTIONS,
    OBJECTIONS,
    WINDOW_MAIL,
    WINDOW_STAFF_ROLES,
    ClosedWindow,
    NoticeView,
    close_windows,
    customer_notice,
    customer_notices,
    notice_view,
    notices_for_vendor,
    object_to_notice,
    window_staff,
)
from vern.vendor.subprocessors import (
    AUDIT_RESULTS,
    CHANGE_LABELS,
    DEFAULT_OBJECTION_DAYS,
    MAX_OBJECTION_DAYS,
    MECHANISM_LABELS,
    NOTIFIED_FIELDS,
    SUBPROCESSOR_MAIL,
    SUBPROCESSOR_STATUSES,
    SubprocessorInput,
    get_subprocessor,
    record_subprocessor_audit,
    retire_subprocessor,
    save_subprocessor,
)
from vern.vendor.views import (
    CustomerProfileView,
    Evidence,
    Location,
    MaintenanceView,
    MeasureView,
    Officers,
    OfficerView,
    Recipient,
    SubprocessorView,
    SystemView,
    maintenance_view,
    measure_view,
    subprocessor_view,
    system_view,
)

__all__ = [
    "AUDIT_RESULTS", "CHANGE_LABELS", "CONTACT_KINDS", "DATATILSYNET", "DEFAULT_BREACH_NOTICE_HOURS",
    "DEFAULT_OBJECTION_DAYS", "EMAIL", "EMERGENCY_MAIL", "KEY", "MAINTENANCE_MAIL",
    "MAX_OBJECTION_DAYS", "MEASURE_CATEGORIES", "MEASURE_STATUSES", "MECHANISM_LABELS",
    "MIN_MAINTENANCE_NOTICE", "NOTIFIED_FIELDS", "NO_OBJECTIONS", "OBJECTIONS", "OFFICER_ROLES",
    "SEED_MEASURES", "SUBPROCESSOR_MAIL", "SUBPROCESSOR_STATUSES", "WINDOW_MAIL",
    "WINDOW_STAFF_ROLES", "ClosedWindow", "CustomerProfileView", "Evidence", "Location",
    "MaintenanceInput", "MaintenanceView", "MeasureInput", "MeasureView", "NoticeView",
    "OfficerView", "Officers", "Recipient", "SubprocessorInput", "SubprocessorView",
    "SystemInput", "SystemView", "add_contact", "cancel_maintenance", "close_windows",
    "contact_ids", "contracts_by_customer", "customer_notice", "customer_notices",
    "customer_profile", "get_measure", "get_subprocessor", "get_system", "list_maintenance",
    "list_measures", "list_subprocessors", "list_systems", "maintenance_view", "measure_view",
    "notice_recipients", "notice_view", "notices_for_vendor", "object_to_notice", "officers",
    "recipients_by_customer", "record_subprocessor_audit", "remove_contact", "retire_subprocessor",
    "retire_system", "save_measure", "save_subprocessor", "save_system", "schedule_maintenance",
    "seed_measures", "set_customer_profile", "set_officer", "subprocessor_view", "system_view",
    "window_staff",
]

# How to complain to the supervisory authority (Art. 77); part of every published document.
DATATILSYNET = {
    "name": "Datatilsynet",
    "website": "https://www.datatilsynet.no",
    "complaint_url": "https://www.datatilsynet.no/om-datatilsynet/kontakt-oss/klage-til-datatilsynet/",
    "email": "postkasse@datatilsynet.no",
    "phone": "+47 22 39 69 00",
    "address": "Postboks 458 Sentrum, 0105 Oslo",
}

OFFICER_ROLES = ("dpo", "security")


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
        "name": check_text("name", data.name, limit=200),
        "description": check_text("description", data.description, limit=4000, required=False),
        "storage_locations": storage, "processing_locations": processing,
        "transfer_mechanism": regions.check_transfer([*storage, *processing],
                                                     data.transfer_mechanism),
        "transfer_note": check_text("transfer_note", data.transfer_note, limit=2000, required=False),
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
    found = session.scalar(select(VendorSystem).where(VendorSystem.key == check_key(data.key)))
    old = _system_state(found) if found is not None else None
    if found is None:
        found = VendorSystem(key=data.key, **values)
        session.add(found)
    else:
        for name, value in values.items():
            setattr(found, name, value)
        found.updated_at = utcnow()
    session.flush()
    audit(session, "vendor.system_saved", org_id=vendor_org_id(session),
          actor_user_id=actor_user_id, resource=f"vendor-system:{data.key}",
          details={"old": old, "new": _system_state(found)})
    return system_view(found)


def retire_system(session: Session, key: str, *, actor_user_id: str | None) -> SystemView:
    found = get_system(session, key)
    if found.retired_at is None:
        found.retired_at = utcnow()
        audit(session, "vendor.system_retired", org_id=vendor_org_id(session),
              actor_user_id=actor_user_id, resource=f"vendor-system:{key}",
              details={"old": {"retired": False}, "new": {"retired": True}})
    return system_view(found)


# -- officers -----------------------------------------------------------------------------------


def set_officer(session: Session, *, role: str, name: str, email: str, phone: str = "",
                actor_user_id: str | None) -> OfficerView:
    """The data protection officer (``dpo``) or security officer (``security``), as published
    in every document and on the trust page."""
    role = check_choice("role", role, OFFICER_ROLES)
    name = check_text("name", name, limit=200)
    email = check_text("email", email, limit=254)
    if not EMAIL.match(email):
        raise InvalidInput.on("email", "is not a valid e-mail address")
    phone = check_text("phone", phone, limit=40, required=False)
    if phone and not re.fullmatch(r"\+?[0-9 ()-]{5,39}", phone):
        raise InvalidInput.on("phone", "digits, spaces and an optional leading +")
    found = session.scalar(select(Officer).where(Officer.role == role))
    if found is None:
        found = Officer(role=role, name=name, email=email, phone=phone)
        session.add(found)
    else:
        found.name, found.email, found.phone, found.updated_at = name, email, phone, utcnow()
    session.flush()
    audit(session, "vendor.officer_set", org_id=vendor_org_id(session),
          actor_user_id=actor_user_id, resource=f"officer:{role}")
    return OfficerView(found.role, found.name, found.email, found.phone)
