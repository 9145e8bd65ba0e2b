"""Data subject requests on the posture page: open requests due within the reminder window or
overdue, read through the rights service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from vern.core.i18n import gettext
from vern.rights import service

PAGE = 500
MOST = 5000  # open requests looked at; beyond this the rights pages are the place to look


def items(session: Session, now: datetime) -> list[dict[str, Any]]:
    locale = session.info.get("locale", "nb")
    out = []
    for offset in range(0, MOST, PAGE):
        page = service.list_requests(session, status="open", limit=PAGE, offset=offset)
        for req in page:
            state = service.due_state(req, now)
            if state not in ("due_soon", "overdue"):
                continue
            out.append({"kind": "request",
                        "title": gettext(locale, "Data subject request (%(kind)s)",
                                         kind=gettext(locale, req.kind)),
                        "due_at": req.deadline, "overdue": state == "overdue",
                        "href": f"/console/rights/requests/{req.id}"})
        if len(page) < PAGE:
            break
    return out
