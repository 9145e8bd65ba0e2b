"""The vendor as controller (Art. 33(1), Art. 34): its report to Datatilsynet and the authority's
form, the letter to the people concerned, when they were told, or why they are not (Art. 34(3)).
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from vern.accounts.service import Actor
from vern.core.csvsafe import SafeWriter
from vern.core.db import utcnow
from vern.core.errors import InvalidInput
from vern.core.i18n import N_, gettext
from vern.incidents.clocks import authority_due
from vern.incidents.models import EXEMPTIONS, Incident
from vern.incidents.notices import missing_items
from vern.incidents.register import MAX_TEXT, add_event, json_value, open_incident


def report_to_authority(session: Session, actor: Actor, incident_id: str, *,
                        reported_at: datetime, reference: str = "", late_reason: str = "",
                        now: datetime | None = None) -> Incident:
    """The vendor as controller reported to Datatilsynet; after 72 hours only with the reasons
    for the delay (Art. 33(1))."""
    now = now or utcnow()
    inc = open_incident(session, actor, incident_id)
    if not (inc.personal_data and inc.vendor_is_controller):
        raise InvalidInput.on("vendor_is_controller",
                              "only where the vendor is itself controller does it report")
    if reported_at.tzinfo is None or reported_at > now + timedelta(minutes=5):
        raise InvalidInput.on("reported_at", "a past time with its UTC offset")
    due = authority_due(inc)
    late_reason = late_reason.strip()
    if due is not None and reported_at > due and not late_reason:
        raise InvalidInput.on("late_reason", "reported after 72 hours: give the reasons for the "
                                             "delay (Art. 33(1))", "required")
    if len(late_reason) > MAX_TEXT or len(reference) > 200:
        raise InvalidInput.on("late_reason", "at most %(n)s characters", n=MAX_TEXT)
    old = {"authority_reported_at": json_value(inc.authority_reported_at)}
    inc.authority_reported_at = reported_at
    inc.authority_reference = reference.strip()
    inc.authority_late_reason = late_reason
    inc.updated_at = now
    add_event(session, inc, "reported_to_authority", actor,
              {"old": old, "new": {"authority_reported_at": reported_at.isoformat(),
                                   "authority_reference": inc.authority_reference,
                                   "late": bool(due and reported_at > due)}})
    return inc


def authority_form(inc: Incident) -> dict[str, Any]:
    """The fields of Datatilsynet's breach form (Altinn), for a controller's own report."""
    told = "exempt" if inc.exemption else ("yes" if inc.subjects_told_at else "no")
    return {
        "reference": f"#{inc.number}", "title": inc.title,
        "period_from": json_value(inc.occurred_from), "period_to": json_value(inc.occurred_to),
        "discovered_at": json_value(inc.discovered_at), "aware_at": json_value(inc.aware_at),
        "what_happened": inc.what_happened, "how_it_happened": inc.how_happened,
        "data_categories": "; ".join(inc.data_categories),
        "data_subject_categories": "; ".join(inc.subject_categories),
        "approx_data_subjects": inc.subjects_approx, "approx_records": inc.records_approx,
        "likely_consequences": inc.consequences, "measures_taken": inc.measures_taken,
        "measures_proposed": inc.measures_proposed, "risk": inc.risk,
        "where_the_data_is_now": inc.data_location, "contact_point": inc.contact,
        "data_subjects_told": told, "data_subjects_told_at": json_value(inc.subjects_told_at),
        "art_34_3_exemption": inc.exemption or "", "exemption_reason": inc.exemption_reason,
        "reported_late_reason": inc.authority_late_reason,
    }


def authority_form_csv(inc: Incident) -> str:
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(["field", "value"])
    for key, value in authority_form(inc).items():
        writer.writerow([key, "" if value is None else value])
    return out.getvalue()


def subject_letter(inc: Incident, locale: str) -> str:
    """The Art. 34 letter to the people concerned, in clear language (34(2): the nature of the
    breach, the contact point, the likely consequences, the measures)."""
    if inc.risk != "high":
        raise InvalidInput.on("risk", "a letter to data subjects is for a high risk (Art. 34(1))")
    missing = [e for e in missing_items(inc) if e.field in
               ("what_happened", "contact", "consequences", "measures_taken")]
    if missing:
        raise InvalidInput(detail=f"{missing[0].field}: {missing[0].message}", errors=missing)
    parts = [
        gettext(locale, "We are writing to tell you about a personal data breach that concerns "
                        "your personal data."),
        "", gettext(locale, "What happened"), inc.what_happened,
        "", gettext(locale, "What this may mean for you"), inc.consequences,
        "", gettext(locale, "What we have done and will do"),
        "\n".join(t for t in (inc.measures_taken, inc.measures_proposed) if t),
        "", gettext(locale, "Whom to contact"), inc.contact,
        "", gettext(locale, "You may complain to Datatilsynet (www.datatilsynet.no)."),
    ]
    return "\n".join(parts)


def record_subjects_told(session: Session, actor: Actor, incident_id: str, *,
                         told_at: datetime, now: datetime | None = None) -> Incident:
    now = now or utcnow()
    inc = open_incident(session, actor, incident_id)
    if told_at.tzinfo is None or told_at > now + timedelta(minutes=5):
        raise InvalidInput.on("told_at", "a past time with its UTC offset")
    old = {"subjects_told_at": json_value(inc.subjects_told_at)}
    inc.subjects_told_at = told_at
    inc.updated_at = now
    add_event(session, inc, "subjects_told", actor,
              {"old": old, "new": {"subjects_told_at": told_at.isoformat()}})
    return inc


EXEMPTION_TEXT = {
    "a": N_("the data were unintelligible to anyone not authorised (e.g. encrypted) (Art. 34(3)(a))"),
    "b": N_("later measures ensure the high risk is no longer likely (Art. 34(3)(b))"),
    "c": N_("telling each person would need disproportionate effort; a public communication "
            "was made instead (Art. 34(3)(c))"),
}


def record_exemption(session: Session, actor: Actor, incident_id: str, *, exemption: str,
                     reason: str, now: datetime | None = None) -> Incident:
    """Why the people concerned are not told although the risk is high (Art. 34(3))."""
    inc = open_incident(session, actor, incident_id)
    if exemption not in EXEMPTIONS:
        raise InvalidInput.on("exemption", "one of %(values)s (Art. 34(3))",
                              values=", ".join(EXEMPTIONS))
    reason = reason.strip()
    if not 1 <= len(reason) <= MAX_TEXT:
        raise InvalidInput.on("reason", "say why the exemption applies", "required")
    old = {"exemption": inc.exemption}
    inc.exemption, inc.exemption_reason = exemption, reason
    inc.updated_at = now or utcnow()
    add_event(session, inc, "exemption_recorded", actor,
              {"old": old, "new": {"exemption": exemption, "exemption_reason": reason}})
    return inc
