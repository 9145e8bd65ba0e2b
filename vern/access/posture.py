"""What access control puts on the posture page: pending access (role) requests, pending vendor
access grants and open access reviews of the session's organisation, each with its due time.

The vendor's posture page (``/console/posture``, ``/api/v1/posture``) gathers with a system scope
across customers; there only the vendor's own organisation's items are listed. A customer's role
requests, reviews and the grants it has yet to decide are the customer's business (and their ids
the customer's data), decided by its own administrators."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from vern.access import service
from vern.accounts import service as accounts
from vern.core.i18n import gettext

# A request or grant waiting this long is overdue: the requester is blocked meanwhile.
DECISION_DAYS = 2


def items(session: Session, now: datetime, locale: str | None = None) -> list[dict[str, Any]]:
    """Posture items (``kind``, ``title`` translated, ``due_at``, ``overdue``, ``href``) for
    the organisation ``session`` is scoped to (with a system scope: the vendor's organisation)."""
    locale = locale or session.info.get("locale")
    own = _vendor_only(session)
    found: list[dict[str, Any]] = []
    for row in service.list_role_requests(session, status="pending"):
        if own is not None and row.org_id != own:
            continue
        due = row.created_at + timedelta(days=DECISION_DAYS)
        found.append({"kind": "access.role_request",
                      "title": gettext(locale, "Role request waiting: %(role)s", role=row.role),
                      "due_at": due, "overdue": due <= now,
                      "href": "/console/access#role-requests"})
    for grant in service.list_grants(session):
        if grant.status != "pending" or (own is not None and grant.org_id != own):
            continue
        # Past its start the vendor's staff wait; past its end the request has lapsed.
        due = min(grant.requested_at + timedelta(days=DECISION_DAYS), grant.ends_at)
        found.append({"kind": "access.grant",
                      "title": gettext(locale, "Vendor access grant waiting for approval"),
                      "due_at": due, "overdue": due <= now,
                      "href": f"/console/access/grants/{grant.id}"})
    for review in service.list_reviews(session):
        if review.closed_at is not None or (own is not None and review.org_id != own):
            continue
        found.append({"kind": "access.review",
                      "title": gettext(locale, "Access review open: %(title)s", title=review.title),
                      "due_at": review.due_at, "overdue": review.due_at <= now,
                      "href": f"/console/access/reviews/{review.id}"})
    return sorted(found, key=lambda item: item["due_at"])


def _vendor_only(session: Session) -> str | None:
    """With a system scope (the vendor's view across customers), the vendor organisation's id:
    the only organisation whose items are listed; with a tenant scope, None (the scope filters)."""
    scope = session.info.get("scope")
    if scope is not None and not scope.is_system:
        return None
    vendor = accounts.vendor_org(session)
    return vendor.id if vendor is not None else ""
