"""The Art. 33 clocks: each affected customer's notice deadline and, where the vendor is
controller, the 72-hour report to Datatilsynet; their states, the warning margin, and the words
the pages show for them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.accounts.models import Organisation
from vern.accounts.service import Actor
from vern.core.db import utcnow
from vern.core.i18n import format_day, gettext
from vern.incidents.models import AffectedCustomer, BreachNotice, Incident
from vern.incidents.register import json_value, vendor_id_of

AUTHORITY_HOURS = 72  # Art. 33(1)


@lru_cache(maxsize=256)
def warn_before(hours: int) -> timedelta:
    """How long before a clock passes its warning is raised: a quarter of the clock, at most
    24 hours (6 hours of a 24-hour clock, 18 of the 72-hour one)."""
    return min(timedelta(hours=hours) / 4, timedelta(hours=24))


def clock_state(due: datetime | None, done: datetime | None, hours: int,
                now: datetime) -> str:
    """``done`` / ``late`` (done after the deadline) / ``overdue`` / ``due_soon`` / ``running``."""
    if due is None:
        return "running"
    if done is not None:
        return "late" if done > due else "done"
    if now >= due:
        return "overdue"
    if due - now <= warn_before(hours):
        return "due_soon"
    return "running"


def authority_due(inc: Any) -> datetime | None:
    if not (inc.personal_data and inc.vendor_is_controller) or inc.aware_at is None:
        return None
    return inc.aware_at + timedelta(hours=AUTHORITY_HOURS)


def authority_required(inc: Any) -> bool:
    """Art. 33(1): unless the breach is unlikely to result in a risk."""
    return bool(inc.personal_data and inc.vendor_is_controller and inc.risk != "none")


def clocks(session: Session, actor: Actor, now: datetime | None = None,
           incident_id: str | None = None) -> list[dict[str, Any]]:
    """Every clock of the open breaches (or of one incident): one per affected customer and,
    where the vendor is controller, the authority's; the most urgent first. Reads only the
    columns it shows (no ORM objects): the posture page and the clocks page call it often."""
    now = now or utcnow()
    vendor_id = vendor_id_of(actor)
    stmt = select(Incident.id, Incident.number, Incident.title, Incident.aware_at,
                  Incident.personal_data, Incident.vendor_is_controller, Incident.risk,
                  Incident.authority_reported_at).where(
        Incident.org_id == vendor_id, Incident.personal_data.is_(True))
    stmt = stmt.where(Incident.id == incident_id) if incident_id else \
        stmt.where(Incident.status == "open")
    incidents = {i.id: i for i in session.execute(stmt)}
    if not incidents:
        return []
    rows = session.execute(
        select(AffectedCustomer.incident_id, AffectedCustomer.customer_id,
               AffectedCustomer.notice_hours, AffectedCustomer.due_at,
               AffectedCustomer.notified_at, Organisation.name)
        .join(Organisation, Organisation.id == AffectedCustomer.customer_id)
        .where(AffectedCustomer.incident_id.in_(list(incidents))))
    acked = _acknowledged(session, list(incidents))
    out: list[dict[str, Any]] = []
    for row in rows:
        inc = incidents[row.incident_id]
        out.append({
            "incident_id": inc.id, "number": inc.number, "title": inc.title, "clock": "customer",
            "customer_id": row.customer_id, "customer": row.name,
            "hours": row.notice_hours, "due_at": row.due_at, "done_at": row.notified_at,
            "acknowledged_at": acked.get((inc.id, row.customer_id)),
            "state": clock_state(row.due_at, row.notified_at, row.notice_hours, now),
        })
    for inc in incidents.values():
        due = authority_due(inc)
        if due is None:
            continue
        state = clock_state(due, inc.authority_reported_at, AUTHORITY_HOURS, now) \
            if authority_required(inc) else "not_required"
        out.append({
            "incident_id": inc.id, "number": inc.number, "title": inc.title, "clock": "authority",
            "customer_id": None, "customer": "Datatilsynet", "hours": AUTHORITY_HOURS,
            "due_at": due, "done_at": inc.authority_reported_at, "acknowledged_at": None,
            "state": state,
        })
    out.sort(key=lambda c: (_ORDER[c["state"]], c["due_at"] or now, c["number"], c["customer"]))
    for clock in out:
        clock["remaining_seconds"] = int((clock["due_at"] - now).total_seconds()) \
            if clock["due_at"] is not None else None
    return out


_ORDER = {"overdue": 0, "due_soon": 1, "running": 2, "late": 3, "done": 4, "not_required": 5}


def _acknowledged(session: Session, incident_ids: list[str]) -> dict[tuple[str, str], datetime]:
    """(incident, customer) → the first acknowledgement of any of its notices."""
    rows = session.execute(
        select(BreachNotice.incident_id, BreachNotice.org_id,
               func.min(BreachNotice.acknowledged_at))
        .where(BreachNotice.incident_id.in_(incident_ids),
               BreachNotice.acknowledged_at.is_not(None))
        .group_by(BreachNotice.incident_id, BreachNotice.org_id))
    return {(r[0], r[1]): r[2] for r in rows if r[2] is not None}


def clock_view(clock: dict[str, Any]) -> dict[str, Any]:
    return {k: json_value(v) for k, v in clock.items()}


@lru_cache(maxsize=512)
def _day(day: Any, locale: str) -> str:
    return format_day(day, locale, "short")


def moment_text(value: datetime | None, locale: str) -> str:
    """``6.12.2026 07:45 UTC``: the day formatted once per day and language."""
    if value is None:
        return ""
    return f"{_day(value.date(), locale)} {value:%H:%M} UTC"


def clock_texts(clock: dict[str, Any], locale: str) -> dict[str, Any]:
    """A clock with the words a page shows (worked out here, once, not per template call)."""
    seconds, state = clock["remaining_seconds"], clock["state"]
    if state in ("done", "late"):
        done = gettext(locale, "sent") if clock["clock"] == "customer" \
            else gettext(locale, "reported")
        left = f"{done} {moment_text(clock['done_at'], locale)}"
        if state == "late":
            left += f" ({gettext(locale, 'late')})"
    elif state == "not_required":
        left = gettext(locale, "not required (no risk)")
    elif seconds is not None and seconds < 0:
        left = gettext(locale, "overdue by %(h)s h %(m)s min", h=-seconds // 3600,
                       m=-seconds % 3600 // 60)
    elif seconds is not None:
        left = gettext(locale, "%(h)s h %(m)s min left", h=seconds // 3600, m=seconds % 3600 // 60)
    else:
        left = ""
    ack = moment_text(clock["acknowledged_at"], locale) if clock["acknowledged_at"] else (
        gettext(locale, "not yet") if clock["clock"] == "customer" and clock["done_at"] else "")
    return {**clock, "due_text": moment_text(clock["due_at"], locale), "left_text": left,
            "state_text": gettext(locale, state), "ack_text": ack,
            "overdue": state == "overdue"}
