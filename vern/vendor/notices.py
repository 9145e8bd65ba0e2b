"""The customers' Art. 28(2) notices of a sub-processor change: a customer reading its notices
and objecting, the vendor's overview of every customer's notices, and the closing of each
objection window with a summary to the vendor's responsible staff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.audit.service import record as audit
from vern.core.db import Scope, utcnow
from vern.core.errors import Conflict, NotFound
from vern.core.i18n import N_, format_day, gettext
from vern.notify import service as notify
from vern.vendor.checks import check_text, vendor_org_id
from vern.vendor.models import SubprocessorNotice
from vern.vendor.subprocessors import CHANGE_LABELS, base_url, get_subprocessor
from vern.vendor.views import Recipient


@dataclass(frozen=True)
class NoticeView:
    id: str
    tenant_id: str
    subprocessor_id: str
    version: int
    change: str
    summary: dict[str, Any]
    created_at: datetime
    closes_at: datetime
    open: bool
    seen_at: datetime | None
    objected_at: datetime | None
    objected_by: str | None
    objection_reason: str | None
    closed_at: datetime | None = None  # when the closing was recorded and the staff were told

    @property
    def status(self) -> str:
        """``open`` while customers may object, ``closed`` once the window has passed."""
        return "open" if self.open and self.closed_at is None else "closed"


def notice_view(n: Any, now: datetime | None = None) -> NoticeView:
    return NoticeView(
        id=n.id, tenant_id=n.org_id, subprocessor_id=n.subprocessor_id, version=n.version,
        change=n.change, summary=dict(n.summary), created_at=n.created_at,
        closes_at=n.closes_at, open=n.closes_at > (now or utcnow()), seen_at=n.seen_at,
        objected_at=n.objected_at, objected_by=n.objected_by,
        objection_reason=n.objection_reason, closed_at=n.closed_at,
    )


def customer_notices(session: Session) -> list[NoticeView]:
    """The notices of the session's own customer (a tenant scope filters them), newest first."""
    rows = session.scalars(select(SubprocessorNotice)
                           .order_by(SubprocessorNotice.created_at.desc()))
    return [notice_view(n) for n in rows]


def customer_notice(session: Session, notice_id: str, *, mark_seen_by: str | None = None
                    ) -> NoticeView:
    """One notice of the session's own customer; the first reading by its admin is recorded."""
    found = session.scalar(select(SubprocessorNotice).where(SubprocessorNotice.id == notice_id))
    if found is None:
        raise NotFound(detail="no such notice")
    if mark_seen_by is not None and found.seen_at is None:
        found.seen_at = utcnow()
        audit(session, "vendor.subprocessor_notice_seen", org_id=found.org_id,
              actor_user_id=mark_seen_by, resource=f"subprocessor-notice:{found.id}")
    return notice_view(found)


def object_to_notice(session: Session, notice_id: str, *, reason: str, actor_user_id: str | None,
                     now: datetime | None = None) -> NoticeView:
    """The customer's objection (Art. 28(2)), with its reason, before the window closes."""
    found = session.scalar(select(SubprocessorNotice).where(SubprocessorNotice.id == notice_id))
    if found is None:
        raise NotFound(detail="no such notice")
    reason = check_text("reason", reason, limit=4000)
    if found.objected_at is not None:
        raise Conflict(detail="an objection to this notice is recorded already")
    if (now or utcnow()) >= found.closes_at:
        raise Conflict(detail="the objection window closed on %(closes)s",
                       params={"closes": found.closes_at.date().isoformat()})
    found.objected_at, found.objected_by, found.objection_reason = (
        now or utcnow(), actor_user_id, reason)
    audit(session, "vendor.subprocessor_objection", org_id=found.org_id,
          actor_user_id=actor_user_id, resource=f"subprocessor-notice:{found.id}",
          details={"new": {"objected": True}})
    return notice_view(found)


def notices_for_vendor(session: Session, *, subprocessor_key: str | None = None,
                       objected_only: bool = False) -> list[tuple[NoticeView, str]]:
    """Every customer's notices and objections (vendor staff), with the customer's name."""
    scope: Scope | None = session.info.get("scope")
    if scope is None or not scope.is_system:
        raise RuntimeError("every customer's notices: system scope")
    query = select(SubprocessorNotice).order_by(SubprocessorNotice.created_at.desc())
    if subprocessor_key is not None:
        query = query.where(SubprocessorNotice.subprocessor_id
                            == get_subprocessor(session, subprocessor_key).id)
    if objected_only:
        query = query.where(SubprocessorNotice.objected_at.is_not(None))
    names = {o.id: o.name for o in accounts.list_tenants(session)}
    return [(notice_view(n), names.get(n.org_id, "")) for n in session.scalars(query)]


# -- closing of objection windows ---------------------------------------------------------------

# Who on the vendor's side is told that a window closed: its privacy officers, else its owners.
WINDOW_STAFF_ROLES = (("privacy_officer",), ("owner",))
WINDOW_MAIL = (
    N_("Objection window closed: %(name)s"),
    N_("The window for customers to object to %(change)s, %(name)s (version %(version)s), "
       "closed on %(closes)s (GDPR Art. 28(2)). %(count)s customers were told.\n\n"
       "%(objections)s\n\nEvery customer's notice and objection: %(link)s"),
)
NO_OBJECTIONS = N_("No customer objected.")
OBJECTIONS = N_("Objections by customer:")


@dataclass(frozen=True)
class ClosedWindow:
    subprocessor_id: str
    key: str
    name: str
    version: int
    closes_at: datetime
    customers: int
    objections: tuple[tuple[str, str], ...]  # (customer name, reason), by customer name


def window_staff(session: Session) -> list[Recipient]:
    """The vendor's privacy officers, else its owners (active accounts only)."""
    vendor = accounts.vendor_org(session)
    if vendor is None:
        return []
    for roles in WINDOW_STAFF_ROLES:
        users = accounts.active_with_roles(session, vendor.id, roles)
        found = [Recipient(u.name.value if u.name is not None and u.name.value else "",
                           u.email.value, u.locale or "nb", u.key_id)
                 for u in users if u.email is not None and u.email.value]
        if found:
            return found
    return []


def close_windows(session: Session, *, now: datetime | None = None) -> list[ClosedWindow]:
    """Record the closing of every objection window that has passed and not been closed yet,
    and mail the vendor's responsible staff one summary per window (the objections by customer,
    or none) - in the caller's transaction, so each window is closed and told once. A window is
    one sub-processor version's notices to all its customers. A system scope."""
    scope: Scope | None = session.info.get("scope")
    if scope is None or not scope.is_system:
        raise RuntimeError("closing objection windows reaches every customer's notices: system scope")
    now = now or utcnow()
    due = list(session.scalars(select(SubprocessorNotice).where(
        SubprocessorNotice.closes_at <= now, SubprocessorNotice.closed_at.is_(None))
        .order_by(SubprocessorNotice.closes_at, SubprocessorNotice.id)))
    if not due:
        return []
    groups: dict[tuple[str, int], list[SubprocessorNotice]] = {}
    for n in due:
        groups.setdefault((n.subprocessor_id, n.version), []).append(n)
    names = {o.id: o.name for o in accounts.list_tenants(session)}
    staff = window_staff(session)
    closed = []
    for (sub_id, version), notices in groups.items():
        ids = [n.id for n in notices]
        taken = session.execute(
            update(SubprocessorNotice)
            .where(SubprocessorNotice.id.in_(ids), SubprocessorNotice.closed_at.is_(None))
            .values(closed_at=now).execution_options(synchronize_session=False))
        if getattr(taken, "rowcount", 0) != len(ids):
            raise Conflict(detail="an objection window was closed by another process")
        first = notices[0]
        window = ClosedWindow(
            subprocessor_id=sub_id, key=str(first.summary.get("key", "")),
            name=str(first.summary.get("name", "")), version=version,
            closes_at=max(n.closes_at for n in notices), customers=len(notices),
            objections=tuple(sorted((names.get(n.org_id, n.org_id), n.objection_reason or "")
                                    for n in notices if n.objected_at is not None)))
        closed.append(window)
        _mail_window(session, window, first.change, staff)
        audit(session, "vendor.objection_window_closed", org_id=vendor_org_id(session),
              actor_user_id=None, resource=f"subprocessor:{window.key}",
              details={"new": {"version": version, "customers": window.customers,
                               "objections": len(window.objections)}})
    return closed


def _mail_window(session: Session, window: ClosedWindow, change: str,
                 staff: list[Recipient]) -> None:
    subject, body = WINDOW_MAIL
    for r in staff:
        loc = r.locale
        lines = ([gettext(loc, OBJECTIONS)] + [f"- {c}: {reason}" for c, reason in window.objections]
                 if window.objections else [gettext(loc, NO_OBJECTIONS)])
        notify.queue(
            session, key_id=r.key_id, to=r.email, kind="vendor.objection_window_closed",
            org_id=vendor_org_id(session), subject=gettext(loc, subject, name=window.name),
            body=gettext(loc, body, change=gettext(loc, CHANGE_LABELS.get(change, change)),
                         name=window.name, version=window.version,
                         closes=format_day(window.closes_at, loc), count=window.customers,
                         objections="\n".join(lines),
                         link=f"{base_url()}/console/vendor/subprocessors/{window.key}"))
