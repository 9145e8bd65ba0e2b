"""What the records read from the vendor registry (``vern.vendor.service``): sub-processors,
measures, systems, officers, customers' contacts, maintenance notices and notice recipients.

The registry owns those facts; this module reads them through its service functions and turns
its views into plain JSON values, the shape the record, its exports, the frozen annexes of a
signed agreement and the trust page use.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from vern.vendor import service as vendor


def _day(value: date | datetime | None) -> str:
    return value.isoformat() if value else ""


def subprocessor_json(s: vendor.SubprocessorView) -> dict[str, Any]:
    locations = sorted({loc.country for loc in (*s.storage_locations, *s.processing_locations)})
    outside = sorted({loc.country for loc in (*s.storage_locations, *s.processing_locations)
                      if not loc.in_eea})
    return {
        "id": s.id, "key": s.key, "name": s.name, "service": s.service,
        "data_categories": list(s.data_categories),
        "storage_locations": [loc.country for loc in s.storage_locations],
        "processing_locations": [loc.country for loc in s.processing_locations],
        "locations": locations, "outside_eea": outside,
        "transfer_mechanism": s.transfer_mechanism or "", "transfer_note": s.transfer_note,
        "agreement_date": _day(s.agreement_date), "last_audit": _day(s.last_audit_date),
        "audit_result": s.last_audit_result, "status": s.status,
        "all_customers": s.all_customers, "customers": len(s.customer_ids),
    }


def subprocessors(session: Session, tenant_id: str | None = None) -> list[dict[str, Any]]:
    """Every sub-processor in use, or only those serving ``tenant_id``."""
    return [subprocessor_json(s) for s in vendor.list_subprocessors(session, tenant_id=tenant_id)]


def measures(session: Session) -> list[dict[str, Any]]:
    return [{"key": m.key, "kind": m.category, "area": m.area, "title_nb": m.title_nb,
             "title_en": m.title_en, "owner": m.owner, "status": m.status,
             "evidence": [e.title for e in m.evidence]} for m in vendor.list_measures(session)]


def systems(session: Session) -> list[dict[str, Any]]:
    out = []
    for s in vendor.list_systems(session):
        every = (*s.storage_locations, *s.processing_locations)
        out.append({"key": s.key, "name": s.name,
                    "locations": sorted({loc.country for loc in every}),
                    "outside_eea": sorted({loc.country for loc in every if not loc.in_eea}),
                    "transfer_mechanism": s.transfer_mechanism or ""})
    return out


def officers(session: Session) -> dict[str, Any]:
    """The DPO and security officer with their published contact details, and how to complain to
    Datatilsynet: part of every record and document."""
    found = vendor.officers(session)

    def one(o: vendor.OfficerView | None) -> dict[str, str] | None:
        return {"name": o.name, "email": o.email, "phone": o.phone} if o else None

    return {"dpo": one(found.dpo), "security_officer": one(found.security),
            "complaint": {k: found.complaint[k] for k in ("name", "complaint_url", "phone", "address")
                          if found.complaint.get(k)}}


def privacy_contacts(session: Session, org_ids: list[str]) -> dict[str, list[str]]:
    """Each customer's privacy contacts' addresses, else its active administrators' (batched)."""
    found = vendor.recipients_by_customer(session, org_ids, "privacy")
    return {o: [r.email for r in found.get(o, [])] for o in org_ids}


def maintenance(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    return [{**asdict(m), "customer_ids": None} for m in vendor.list_maintenance(session, tenant_id,
                                                                                 include_past=False)]


def notice_recipients(session: Session, org_id: str, kind: str) -> list[vendor.Recipient]:
    return vendor.notice_recipients(session, org_id, kind)


def subprocessors_serving(session: Session, org_ids: list[str]) -> dict[str, list[str]]:
    """The names of the sub-processors serving each customer (Art. 30(2): per controller)."""
    views = vendor.list_subprocessors(session)
    return {o: [s.name for s in views if s.serves(o)] for o in org_ids}


def subprocessor_notices(session: Session) -> list[dict[str, Any]]:
    """The Art. 28(2) notices of new or changed sub-processors sent to the session's customer."""
    return [{"id": n.id, "name": str(n.summary.get("name", "")), "change": n.change,
             "created_at": n.created_at, "closes_at": n.closes_at, "open": n.open,
             "objected_at": n.objected_at} for n in vendor.customer_notices(session)]


def privacy_recipients(session: Session, org_ids: list[str]) -> dict[str, list[vendor.Recipient]]:
    """Each customer's privacy contacts, else its active administrators, with their language and
    data key (for mail through the outbox)."""
    return vendor.recipients_by_customer(session, org_ids, "privacy")


def contracts(session: Session, org_ids: list[str]) -> dict[str, dict[str, str]]:
    """Each customer's contract start and end (ISO dates, empty when not set)."""
    found = vendor.contracts_by_customer(session, org_ids)
    return {o: {"start": _day(found.get(o, (None, None))[0]), "end": _day(found.get(o, (None, None))[1])}
            for o in org_ids}
