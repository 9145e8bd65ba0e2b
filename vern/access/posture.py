"""What access control puts on the posture page: pending access (role) requests, pending vendor
access grants and open access reviews of the session's organisation, each with its due time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from vern.access import service
from vern.core.i18n import gettext

# A request or grant waiting this long is overdue: the requester is blocked meanwhile.
DECISION_DAYS = 2


def items(session: Session, now: datetime, locale: str | None = None) -> list[dict[str, Any]]:
    """Posture items (``kind``, ``title`` translated, ``due_at``, ``overdue``, ``href``) for
    the organisation ``session`` is scoped to."""
    found: list[dict[str, Any]] = []
    for row in service.list_role_requests(session, status="pending"):
        due = row.created_at + timedelta(days=DECISION_DAYS)
        found.append({"kind": "access.role_request",
                      "title": gettext(locale, "Role request waiting: %(role)s", role=row.role),
                      "due_at": due, "overdue": due <= now,
                      "href": "/console/access#role-requests"})
    for grant in service.list_grants(session):
        if grant.status != "pending":
            continue
        # Past its start the vendor's staff wait; past its end the request has lapsed.
        due = min(grant.requested_at + timedelta(days=DECISION_DAYS), grant.ends_at)
        found.append({"kind": "access.grant",
                      "title": gettext(locale, "Vendor access grant waiting for approval"),
                      "due_at": due, "overdue": due <= now,
                      "href": f"/console/access/grants/{grant.id}"})
    for review in service.list_reviews(session):
        if review.closed_at is not None:
            continue
        found.append({"kind": "access.review",
                      "title": gettext(locale, "Access review open: %(title)s", title=review.title),
                      "due_at": review.due_at, "overdue": review.due_at <= now,
                      "href": f"/console/access/reviews/{review.id}"})
    return sorted(found, key=lambda item: item["due_at"])
