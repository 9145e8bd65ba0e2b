"""Open breaches on the posture page: for each, one item for the customer notices still due
(the first deadline, and how many) and one for the report to Datatilsynet where the vendor is
controller. The clocks page lists every clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts.models import Organisation
from vern.accounts.roles import OrgKind, Role
from vern.accounts.service import Actor
from vern.core.i18n import gettext
from vern.incidents import service

OPEN_STATES = ("overdue", "due_soon", "running")


def items(session: Session, now: datetime) -> list[dict[str, Any]]:
    locale = session.info.get("locale", "nb")
    vendor = session.scalar(select(Organisation.id).where(
        Organisation.kind == OrgKind.VENDOR.value))
    if vendor is None:
        return []
    reader = Actor(org_id=vendor, org_kind=OrgKind.VENDOR, role=Role.AUDITOR, perms=frozenset())
    notices: dict[str, list[dict[str, Any]]] = {}
    out = []
    for clock in service.clocks(session, reader, now):  # the most urgent first
        if clock["state"] not in OPEN_STATES:
            continue
        if clock["clock"] == "authority":
            out.append(_item(clock, gettext(locale, "Breach %(ref)s: report to Datatilsynet "
                                                    "(72 hours)", ref=f"#{clock['number']}")))
        else:
            notices.setdefault(clock["incident_id"], []).append(clock)
    for due in notices.values():
        first = due[0]
        ref, customer = f"#{first['number']}", first["customer"]
        title = gettext(locale, "Breach %(ref)s: notice to %(customer)s", ref=ref,
                        customer=customer) if len(due) == 1 else gettext(
            locale, "Breach %(ref)s: %(n)s customer notices due, first to %(customer)s",
            ref=ref, n=len(due), customer=customer)
        out.append(_item(first, title))
    return out


def _item(clock: dict[str, Any], title: str) -> dict[str, Any]:
    return {"kind": "breach", "title": title, "due_at": clock["due_at"],
            "overdue": clock["state"] == "overdue",
            "href": f"/console/incidents/{clock['incident_id']}"}
