"""What a customer's staff are told about its requests, by mail through the outbox: who is told
(its administrators and the vendor's privacy officers), reminders of deadlines near, and the
link to a request in the console."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from vern.accounts.models import Membership, User
from vern.accounts.roles import Role
from vern.audit.service import record
from vern.core.config import get_settings, rights_settings
from vern.core.db import Database, Scope, utcnow
from vern.core.i18n import N_, format_day, gettext
from vern.notify import service as notify
from vern.rights.models import OPEN_STATUSES, RightsRequest

REMINDER_MAIL = (
    N_("A request's deadline is near"),
    N_("A request (%(kind)s) is due on %(due)s.\n%(link)s"),
)


def staff_to_tell(session: Session, org_id: str) -> list[Any]:
    """Who is told about a customer's requests: its admins and the vendor's privacy officers."""

    return list(
        session.execute(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(
                or_(Membership.org_id == org_id, Membership.role == Role.PRIVACY_OFFICER.value),
                Membership.role.in_([Role.TENANT_ADMIN.value, Role.PRIVACY_OFFICER.value]),
                User.disabled_at.is_(None),
            )
        )
        .scalars()
        .unique()
        .all()
    )


def request_link(request_id: str) -> str:
    """The request's page in the console, for the mails to staff."""
    return f"{get_settings().base_url.rstrip('/')}/console/rights/requests/{request_id}"


GIVEN_UP_MAIL = (
    N_("A request could not be completed"),
    N_("A request (%(kind)s) is only partly done after %(attempts)s attempts (%(error)s). "
       "It is not retried automatically any more; fix the fault and retry it from the console.\n%(link)s"),
)


def staff_for_last_attempts(database: Database, jobs: list[Any]) -> None:
    """Read who is to be told for the jobs whose run is their last automatic attempt (before the
    run: the finish writes the mail without reading anything)."""
    last = [j for j in jobs if j.attempts + 1 >= rights_settings().retry_max_attempts]
    if not last:
        return
    found: dict[str, list[tuple[str, str, str]]] = {}
    with database.transaction(Scope.system("rights staff to tell")) as session:
        for job in last:
            if job.org_id not in found:
                found[job.org_id] = [
                    (user.key_id, user.email.value, user.locale)
                    for user in staff_to_tell(session, job.org_id)
                    if user.email.value is not None
                ]
            job.staff = found[job.org_id]


def send_reminders(database: Database, *, now: datetime | None = None) -> int:
    """Remind each customer's admins (and the vendor's privacy officers) of requests due soon."""
    now = now or utcnow()
    sent = 0
    horizon = now + timedelta(days=rights_settings().remind_days_before)
    with database.transaction(Scope.system("rights reminders")) as session:
        due = session.scalars(
            select(RightsRequest).where(
                RightsRequest.status.in_([s.value for s in OPEN_STATUSES]),
                RightsRequest.reminded_at.is_(None),
                or_(
                    RightsRequest.extended_due_at <= horizon,
                    RightsRequest.extended_due_at.is_(None) & (RightsRequest.due_at <= horizon),
                ),
            )
        ).all()
        for req in due:
            link = request_link(req.id)
            for user in staff_to_tell(session, req.org_id):
                if user.email.value is None:
                    continue
                lang = user.locale
                subject, body = REMINDER_MAIL
                notify.queue(
                    session,
                    key_id=user.key_id,
                    to=user.email.value,
                    kind="rights.reminder",
                    org_id=req.org_id,
                    subject=gettext(lang, subject),
                    body=gettext(lang, body, kind=gettext(lang, req.kind),
                                 due=format_day(req.deadline, lang), link=link),
                )
                sent += 1
            req.reminded_at = now
            record(session, "rights.request.remind", org_id=req.org_id, resource=f"rights_request:{req.id}")
    return sent
