"""Maintenance notices: planned downtime told to the affected customers' maintenance contacts
(or their administrators); less than 24 hours ahead only as an emergency, with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.audit.service import record as audit
from vern.core.db import utcnow
from vern.core.errors import InvalidInput, NotFound
from vern.core.i18n import N_, gettext
from vern.notify import service as notify
from vern.vendor.checks import check_tenants, check_text, vendor_org_id
from vern.vendor.customers import recipients_by_customer
from vern.vendor.models import MaintenanceNotice
from vern.vendor.views import MaintenanceView, maintenance_view

MIN_MAINTENANCE_NOTICE = timedelta(hours=24)


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
    reason = check_text("emergency_reason", data.emergency_reason, limit=2000, required=False)
    if data.starts_at - now < MIN_MAINTENANCE_NOTICE:
        if not data.emergency:
            raise InvalidInput.on("starts_at", "planned maintenance is announced at least 24 hours "
                                  "ahead; mark it as an emergency and give the reason",
                                  "notice-too-short")
        if not reason:
            raise InvalidInput.on("emergency_reason", "an emergency needs its reason", "required")
    elif data.emergency and not reason:
        raise InvalidInput.on("emergency_reason", "an emergency needs its reason", "required")
    customers = [] if data.all_customers else check_tenants(session, "customer_ids", data.customer_ids)
    if not data.all_customers and not customers:
        raise InvalidInput.on("customer_ids", "name the customers it concerns, or all", "required")
    notice = MaintenanceNotice(
        title_nb=check_text("title_nb", data.title_nb, limit=200),
        title_en=check_text("title_en", data.title_en, limit=200),
        body_nb=check_text("body_nb", data.body_nb, limit=8000, required=False),
        body_en=check_text("body_en", data.body_en, limit=8000, required=False),
        starts_at=data.starts_at, ends_at=data.ends_at, emergency=data.emergency,
        emergency_reason=reason or None, all_customers=data.all_customers,
        customer_ids=customers, created_by=actor_user_id, created_at=now)
    session.add(notice)
    session.flush()
    audit(session, "vendor.maintenance_scheduled", org_id=vendor_org_id(session),
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
        audit(session, "vendor.maintenance_cancelled", org_id=vendor_org_id(session),
              actor_user_id=actor_user_id, resource=f"maintenance:{maintenance_id}",
              details={"old": {"cancelled": False}, "new": {"cancelled": True}})
    return maintenance_view(found)
