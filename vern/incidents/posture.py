"""Open breaches on the posture page: one item per clock still running or passed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts.models import Organisation
from vern.accounts.roles import OrgKind, Role
from vern.accounts.service import Actor
from vern.i18n import gettext
from vern.incidents import service

OPEN_STATES = ("overdue", "due_soon", "running")


def items(session: Session, now: datetime) -> list[dict[str, Any]]:
    locale = session.info.get("locale", "nb")
    vendor = session.scalar(select(Organisation.id).where(
        Organisation.kind == OrgKind.VENDOR.value))
    if vendor is None:
        return []
    reader = Actor(org_id=vendor, org_kind=OrgKind.VENDOR, role=Role.AUDITOR, perms=frozenset())
    out = []
    for clock in service.clocks(session, reader, now):
        if clock["state"] not in OPEN_STATES:
            continue
        if clock["clock"] == "authority":
            title = gettext(locale, "Breach %(ref)s: report to Datatilsynet (72 hours)",
                            ref=f"#{clock['number']}")
        else:
            title = gettext(locale, "Breach %(ref)s: notice to %(customer)s",
                            ref=f"#{clock['number']}", customer=clock["customer"])
        out.append({"kind": "breach", "title": title, "due_at": clock["due_at"],
                    "overdue": clock["state"] == "overdue",
                    "href": f"/console/incidents/{clock['incident_id']}"})
    return out
