"""Sub-processors in the vendor registry and the Art. 28(2) notice of a change.

A new sub-processor, or a change of what customers must be told, is noticed (and mailed) to
every customer it serves in the change's transaction, with a window in which they may object.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.audit.service import record as audit
from vern.core.config import get_settings
from vern.core.db import Scope, new_id, utcnow
from vern.core.errors import InvalidInput, NotFound
from vern.core.i18n import N_, format_day, gettext
from vern.notify import service as notify
from vern.vendor import regions
from vern.vendor.checks import check_choice, check_key, check_tenants, check_text, vendor_org_id
from vern.vendor.customers import recipients_by_customer
from vern.vendor.models import Subprocessor, SubprocessorNotice
from vern.vendor.views import Recipient, SubprocessorView, subprocessor_view

SUBPROCESSOR_STATUSES = ("planned", "active", "retired")
AUDIT_RESULTS = ("", "passed", "remarks", "failed")
DEFAULT_OBJECTION_DAYS = 30
MAX_OBJECTION_DAYS = 180
# What a sub-processor change has to be told to customers for (Art. 28(2)); an audit or the
# agreement's date is kept without a notice.
NOTIFIED_FIELDS = ("name", "service", "data_categories", "storage_locations",
                   "processing_locations", "transfer_mechanism", "all_customers", "customer_ids",
                   "processings")


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
    categories = [check_text(f"data_categories.{i}", c, limit=100)
                  for i, c in enumerate(data.data_categories)]
    if not categories:
        raise InvalidInput.on("data_categories", "name at least one category of personal data",
                              "required")
    customers = [] if data.all_customers else check_tenants(session, "customer_ids", data.customer_ids)
    if not data.all_customers and not customers:
        raise InvalidInput.on("customer_ids", "name the customers it serves, or serve all",
                              "required")
    return {
        "name": check_text("name", data.name, limit=200),
        "service": check_text("service", data.service, limit=2000),
        "data_categories": categories,
        "storage_locations": storage, "processing_locations": processing,
        "transfer_mechanism": regions.check_transfer([*storage, *processing],
                                                     data.transfer_mechanism),
        "transfer_note": check_text("transfer_note", data.transfer_note, limit=2000, required=False),
        "agreement_date": data.agreement_date,
        "status": check_choice("status", data.status, SUBPROCESSOR_STATUSES[:2]),
        "all_customers": data.all_customers, "customer_ids": customers,
        "processings": [check_text(f"processings.{i}", p, limit=100)
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
    found = session.scalar(select(Subprocessor).where(Subprocessor.key == check_key(data.key)))
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
          org_id=vendor_org_id(session), actor_user_id=actor_user_id,
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
    result = check_choice("result", result, AUDIT_RESULTS[1:])
    if audited_on > utcnow().date():
        raise InvalidInput.on("audited_on", "cannot be in the future", "future")
    old = {"last_audit_date": found.last_audit_date.isoformat() if found.last_audit_date else None,
           "last_audit_result": found.last_audit_result}
    found.last_audit_date, found.last_audit_result = audited_on, result
    found.last_audit_note = check_text("note", note, limit=4000, required=False)
    found.updated_at = utcnow()
    audit(session, "vendor.subprocessor_audited", org_id=vendor_org_id(session),
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
        audit(session, "vendor.subprocessor_retired", org_id=vendor_org_id(session),
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


def base_url() -> str:
    """Vern's public address without a trailing slash, for the links in the mails."""
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
                link=f"{base_url()}/console/vendor/notices/{notice.id}"),
        )


MECHANISM_LABELS = {
    "adequacy": N_("adequacy decision (Art. 45)"),
    "scc": N_("standard contractual clauses (Art. 46(2)(c))"),
    "bcr": N_("binding corporate rules (Art. 47)"),
    "code_of_conduct": N_("approved code of conduct (Art. 46(2)(e))"),
    "certification": N_("approved certification (Art. 46(2)(f))"),
    "derogation": N_("derogation for a specific situation (Art. 49)"),
}
