"""Every write of the incidents domain, each with its timeline entry and audit record in the
caller's transaction.

The vendor's side (register, change, notify, report, close) runs in a session with a system
scope named for the register - notices are rows of the customers they go to - and every look-up
is limited to the acting vendor's own incidents here. The customer's side (their notices, the
acknowledgement) runs in the customer's own tenant scope.

Clocks (Art. 33): a processor tells each controller without undue delay after becoming aware
(33(2)); the customer's agreement sets the hours (default 24). Where the vendor is itself the
controller it reports to Datatilsynet within 72 hours of becoming aware, with reasons when later
(33(1)). A breach cannot be registered without the moment of awareness, since every clock
counts from it.

The work is done in sub-topics: ``register`` (the rows, their checks and the timeline),
``clocks``, ``notices`` (to the customers, and their side), ``authority`` (the vendor as
controller: Datatilsynet and the people concerned) and ``clock_warnings`` (the worker's); here
are closing, retention and the views, and every name the other modules use.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts.service import Actor
from vern.audit.service import record as audit
from vern.core.db import utcnow
from vern.core.errors import Conflict, InvalidInput
from vern.incidents.authority import (
    EXEMPTION_TEXT,
    authority_form,
    authority_form_csv,
    record_exemption,
    record_subjects_told,
    report_to_authority,
    subject_letter,
)
from vern.incidents.clock_warnings import (
    STAFF_ROLES,
    WARNING_MAIL,
    Due,
    due_warnings,
    raise_warning,
    recent_warnings,
)
from vern.incidents.clocks import (
    AUTHORITY_HOURS,
    authority_due,
    authority_required,
    clock_state,
    clock_texts,
    clock_view,
    clocks,
    moment_text,
    warn_before,
)
from vern.incidents.models import AffectedCustomer, BreachNotice, ClockWarning, Incident, IncidentEvent
from vern.incidents.notices import (
    ART_33_3,
    NOTICE_SUBJECT,
    RISK_TEXT,
    SentNotice,
    acknowledge,
    content_of,
    customer_notice,
    customer_notices,
    missing_items,
    notice_text,
    notice_view,
    send_notices,
    vendor_notice_view,
)
from vern.incidents.register import (
    DEFAULT_NOTICE_HOURS,
    EDITABLE,
    MAX_COUNT,
    MAX_LIST,
    MAX_TEXT,
    MOMENT_FIELDS,
    TEXT_FIELDS,
    IncidentInput,
    Recipient,
    add_customers,
    add_event,
    customers_of,
    get_incident,
    list_incidents,
    notice_hours,
    notices_of_incident,
    open_incident,
    org_names,
    recipients,
    register,
    timeline,
    update,
    warnings_of,
)
from vern.incidents.register import json_value as _json  # the name the routes read it by

__all__ = [
    "ART_33_3",
    "AUTHORITY_HOURS",
    "DEFAULT_NOTICE_HOURS",
    "EDITABLE",
    "EXEMPTION_TEXT",
    "MAX_COUNT",
    "MAX_LIST",
    "MAX_TEXT",
    "MOMENT_FIELDS",
    "NOTICE_SUBJECT",
    "RISK_TEXT",
    "STAFF_ROLES",
    "TEXT_FIELDS",
    "WARNING_MAIL",
    "Due",
    "IncidentInput",
    "Recipient",
    "SentNotice",
    "acknowledge",
    "add_customers",
    "authority_due",
    "authority_form",
    "authority_form_csv",
    "authority_required",
    "clock_state",
    "clock_texts",
    "clock_view",
    "clocks",
    "content_of",
    "customer_notice",
    "customer_notices",
    "customers_of",
    "due_warnings",
    "get_incident",
    "list_incidents",
    "missing_items",
    "moment_text",
    "notice_hours",
    "notice_text",
    "notice_view",
    "notices_of_incident",
    "org_names",
    "raise_warning",
    "recent_warnings",
    "recipients",
    "record_exemption",
    "record_subjects_told",
    "register",
    "report_to_authority",
    "send_notices",
    "subject_letter",
    "timeline",
    "update",
    "vendor_notice_view",
    "warn_before",
    "warnings_of",
]


def full_timeline(session: Session, inc: Incident) -> list[dict[str, Any]]:
    """The incident's timeline with the customers' acknowledgements (kept on their notices)
    in their places."""
    items = [event_view(e) for e in timeline(session, inc.id)]
    for notice in notices_of_incident(session, inc.id):
        if notice.acknowledged_at is not None:
            # The customer's own people and rows are theirs: the vendor sees who and which only
            # by customer and sequence.
            items.append({"at": _json(notice.acknowledged_at), "action": "notice_acknowledged",
                          "actor_user_id": None,
                          "details": {"new": {"customer_id": notice.org_id,
                                              "sequence": notice.sequence}}})
    return sorted(items, key=lambda e: e["at"])


def close(session: Session, actor: Actor, incident_id: str, *, cause: str, lessons: str,
          now: datetime | None = None) -> Incident:
    """The closing review: the cause and the lessons learned. A breach is closed only when every
    affected customer was told, the authority told where the vendor is controller, and the
    people told (or an exemption recorded) when the risk is high."""
    now = now or utcnow()
    inc = open_incident(session, actor, incident_id)
    cause, lessons = cause.strip(), lessons.strip()
    if not 1 <= len(cause) <= MAX_TEXT:
        raise InvalidInput.on("cause", "give the cause", "required")
    if not 1 <= len(lessons) <= MAX_TEXT:
        raise InvalidInput.on("lessons", "give the lessons learned", "required")
    if inc.personal_data:
        if any(r.notified_at is None for r in customers_of(session, inc.id)):
            raise Conflict(detail="customers: not every affected customer has been notified")
        if authority_required(inc) and inc.authority_reported_at is None:
            raise Conflict(detail="authority_reported_at: report the breach to Datatilsynet first")
        if inc.risk == "high" and inc.subjects_told_at is None and not inc.exemption:
            raise Conflict(detail="subjects_told_at: tell the people concerned or record the "
                                  "Art. 34(3) exemption first")
    inc.cause, inc.lessons = cause, lessons
    inc.status, inc.closed_at, inc.closed_by, inc.updated_at = "closed", now, actor.user_id, now
    add_event(session, inc, "closed", actor,
              {"old": {"status": "open"}, "new": {"status": "closed", "cause": cause,
                                                  "lessons": lessons}})
    return inc


def expire_closed(session: Session, *, closed_before: datetime, limit: int,
                  held: set[str] | None = None, dry_run: bool = False) -> list[str]:
    """Retention (``incident-plus-5y``): incidents closed before ``closed_before`` are deleted
    with everything kept for them (affected customers, notices as sent, timeline, warnings), at
    most ``limit`` per call, oldest first, skipping the incident ids in ``held`` (legal holds).
    An open incident is never taken, however old. ``dry_run``: only the ids that would go.
    One transaction: the caller's (a system scope: notices are rows of the customers)."""
    from sqlalchemy import delete

    held = held or set()
    rows = session.execute(
        select(Incident.id)
        .where(Incident.status == "closed", Incident.closed_at.is_not(None),
               Incident.closed_at < closed_before)
        .order_by(Incident.closed_at, Incident.id)
        .limit(limit + len(held))
    ).all()
    ids = [r.id for r in rows if r.id not in held][:limit]
    if dry_run or not ids:
        return ids
    for model in (ClockWarning, IncidentEvent, BreachNotice, AffectedCustomer):
        session.execute(delete(model).where(model.incident_id.in_(ids)))
    session.execute(delete(Incident).where(Incident.id.in_(ids), Incident.status == "closed"))
    audit(session, "incidents.expired", org_id=None,
          details={"new": {"incidents": len(ids), "closed_before": closed_before.isoformat()}})
    return ids


def incident_view(inc: Incident) -> dict[str, Any]:
    out = {k: _json(getattr(inc, k)) for k in (
        "id", "number", "title", "personal_data", "status", "risk", *MOMENT_FIELDS,
        *TEXT_FIELDS, "data_categories", "subject_categories", "subjects_approx",
        "records_approx", "vendor_is_controller", "authority_reported_at", "authority_reference",
        "authority_late_reason", "subjects_told_at", "exemption", "exemption_reason", "cause",
        "lessons", "closed_at", "created_at", "updated_at")}
    out["kind"] = "breach" if inc.personal_data else "deviation"
    out["authority_due_at"] = _json(authority_due(inc))
    out["missing_art_33_3"] = [e.field for e in missing_items(inc)] if inc.personal_data else []
    return out



def event_view(event: IncidentEvent) -> dict[str, Any]:
    return {"at": _json(event.at), "action": event.action, "actor_user_id": event.actor_user_id,
            "details": event.details}


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=_json)
