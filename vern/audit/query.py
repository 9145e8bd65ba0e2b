"""Asking the trail: who accessed X between T1 and T2, what did user U do, sign-ins from address A,
failed sign-ins of the last day. Paging by cursor (newest first), CSV and JSON export.

Who sees what is decided here, explicitly (audit records are not tenant-owned rows: some have no
organisation, e.g. a failed sign-in with an unknown address): a ``Viewer`` of one organisation sees
only records of that organisation; vendor auditors and security officers holding
``audit.read_all`` in the vendor organisation see all (and may narrow to one organisation). Every
search is itself recorded (``audit.read``) in the same transaction.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from vern.accounts.models import Membership, User
from vern.accounts.roles import OrgKind, Perm
from vern.accounts.service import email_index
from vern.audit.alerts import is_person_read
from vern.audit.chain import Sealer, datetime_to_us, open_personal, us_to_datetime
from vern.audit.models import AuditAlert, AuditEvent
from vern.audit.service import record
from vern.core.config import Settings
from vern.core.csvsafe import SafeWriter
from vern.core.errors import Forbidden, InvalidInput, NotFound
from vern.core.inputs import check_text, parse_int

MAX_LIMIT = 500
ALL_ORGS = "*"
EXPORT_LIMIT = 100_000


@dataclass(frozen=True)
class Viewer:
    """Whose trail may be read: ``org_id`` None means every organisation."""

    org_id: str | None
    actor_user_id: str | None
    actor_token_id: str | None
    actor_org_id: str

    @property
    def all_orgs(self) -> bool:
        return self.org_id is None

    @classmethod
    def of(cls, actor: Any) -> Viewer:

        everything = (Perm.AUDIT_READ_ALL in actor.perms and actor.org_kind == OrgKind.VENDOR
                      and actor.home)
        if not everything and Perm.AUDIT_READ not in actor.perms:
            raise Forbidden()
        return cls(None if everything else actor.org_id, actor.user_id, actor.token_id,
                   actor.org_id)


@dataclass
class Filters:
    resource: str | None = None
    actor: str | None = None
    ip: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    org: str | None = None
    # The Vern users an ``actor`` given as an e-mail address or a name stands for (filled in by
    # ``resolve_actor``; None when ``actor`` is taken as an id as it is).
    actor_ids: tuple[str, ...] | None = None

    def used(self) -> dict[str, str]:
        """The filters given, for the read's own audit record (the address is not repeated,
        nor an e-mail address or name: the ids it stood for are)."""
        out = {}
        for k, v in asdict(self).items():
            if v is None:
                continue
            if k == "ip" or (k == "actor" and self.actor_ids is not None):
                out[k] = "(given)"
            elif k == "actor_ids":
                out[k] = ",".join(v)
            else:
                out[k] = str(v)
        return out


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(ts: int, record_id: str) -> str:
    return base64.urlsafe_b64encode(f"{ts}:{record_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, record_id = raw.split(":", 1)
        return parse_int(ts, "cursor"), check_text(record_id, "cursor")
    except InvalidInput:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput.on("cursor", "not a cursor from this API") from exc


def _statement(viewer: Viewer, f: Filters, sealer: Sealer) -> Any:  # noqa: PLR0912 - per filter
    q = select(AuditEvent)
    if viewer.org_id is not None:
        if f.org is not None and f.org != viewer.org_id:
            raise Forbidden(detail="org: you may read only your own organisation's trail")
        q = q.where(AuditEvent.org_id == viewer.org_id)
    elif f.org == ALL_ORGS:
        pass  # a deliberate read across every organisation (recorded like any other read)
    elif f.org is not None:
        q = q.where(AuditEvent.org_id == f.org)
    else:
        # Without ``org`` the vendor sees its own organisation's trail and records that belong
        # to none (e.g. failed sign-ins); reading a customer's trail is asked for explicitly.
        q = q.where(or_(AuditEvent.org_id == viewer.actor_org_id, AuditEvent.org_id.is_(None)))
    if f.resource:
        q = q.where(AuditEvent.resource == f.resource)
    if f.actor:
        match = [AuditEvent.actor_user_id == f.actor, AuditEvent.actor_ref == f.actor]
        if f.actor_ids:
            match.append(AuditEvent.actor_user_id.in_(f.actor_ids))
        q = q.where(or_(*match))
    if f.ip:
        try:
            ip = str(ipaddress.ip_address(f.ip.strip()))
        except ValueError as exc:
            raise InvalidInput.on("ip", "not an IP address") from exc
        q = q.where(AuditEvent.ip_index == sealer.ip_index(ip))
    if f.action:
        if f.action.endswith("*"):
            q = q.where(AuditEvent.action.startswith(f.action[:-1], autoescape=True))
        else:
            q = q.where(AuditEvent.action == f.action)
    if f.outcome:
        q = q.where(AuditEvent.outcome == f.outcome)
    if f.since:
        q = q.where(AuditEvent.ts >= datetime_to_us(f.since))
    if f.until:
        q = q.where(AuditEvent.ts < datetime_to_us(f.until))
    return q


ID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_NAME_SCAN = 20_000


def resolve_actor(session: Session, settings: Settings, viewer: Viewer, f: Filters) -> Filters:
    """``actor`` given as an e-mail address or a (part of a) name: the Vern users it stands for,
    within what the viewer may read - the members of the viewer's organisation, or of the
    organisation asked for (every user for a vendor reading every organisation). An address is
    found through the accounts' keyed index, a name among those members' names; the trail
    itself is never decrypted to search it. An id is used as it is."""
    text = (f.actor or "").strip()
    if not text or ID_RE.match(text):
        return f

    org = viewer.org_id or (f.org if f.org not in (None, ALL_ORGS) else None)
    # The members of the organisation asked for, read across the session's scope on purpose:
    # the viewer's own organisation, or any one for a vendor reading every organisation.
    users = select(User.id, User.name).execution_options(
        cross_tenant="audit search: the people of the organisation the viewer may read")
    if org is not None:
        members = Membership.__table__
        users = users.where(User.id.in_(
            select(members.c.user_id).where(members.c.org_id == org)))
    if "@" in text:
        rows = session.execute(users.where(User.email_index == email_index(settings, text)))
        ids = sorted(uid for uid, _name in rows)
    else:
        wanted = text.casefold()
        ids = sorted(uid for uid, name in session.execute(users.limit(MAX_NAME_SCAN))
                     if name is not None and name.value is not None
                     and wanted in name.value.casefold())
    return replace(f, actor_ids=tuple(ids))


def view(row: AuditEvent, users: dict[str, str | None] | None = None, *,
         positions: bool = True) -> dict[str, Any]:
    """A record as the API and the console show it; ``users`` maps Vern user ids to their
    e-mail address (None once erased), so that a sign-in shows who signed in. Without
    ``positions`` (a customer's view) ``seq`` is None: a record's place in the one tree of every
    organisation's records tells how many records all others wrote in between."""
    personal = open_personal(row.personal) or {}
    return {
        "id": row.id,
        "seq": row.seq if positions else None,
        "time": us_to_datetime(row.ts).isoformat().replace("+00:00", "Z"),
        "source": row.source,
        "org_id": row.org_id,
        "actor_user_id": row.actor_user_id,
        "actor_email": (users or {}).get(row.actor_user_id) if row.actor_user_id else None,
        "actor_token_id": row.actor_token_id,
        "actor": row.actor_ref,
        "actor_name": personal.get("name"),
        "ip": personal.get("ip"),
        "user_agent": personal.get("ua"),
        "personal_erased": "erased" in personal,
        "action": row.action,
        "resource": row.resource,
        "outcome": row.outcome,
        "request_id": row.request_id,
        "client_event_id": row.client_event_id,
        "details": json.loads(row.details) if row.details else None,
    }


def user_emails(session: Session, rows: Sequence[AuditEvent]) -> dict[str, str | None]:
    """The e-mail addresses of the Vern users acting in ``rows`` (one look-up)."""

    ids = sorted({r.actor_user_id for r in rows if r.actor_user_id})
    found: dict[str, str | None] = {}
    for i in range(0, len(ids), 500):
        for uid, email in session.execute(
                select(User.id, User.email).where(User.id.in_(ids[i:i + 500]))):
            found[uid] = email.value if email is not None else None
    return found


def search(session: Session, settings: Settings, viewer: Viewer, f: Filters, *,
           cursor: str | None = None, limit: int = 50, audit_read: bool = True) -> Page:
    """One page of records, newest first; the read is recorded."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput.on("limit", "must be 1-%(n)s", n=MAX_LIMIT)
    f = resolve_actor(session, settings, viewer, f)
    q = _statement(viewer, f, Sealer(settings))
    if cursor:
        ts, rid = decode_cursor(cursor)
        q = q.where(or_(AuditEvent.ts < ts, and_(AuditEvent.ts == ts, AuditEvent.id < rid)))
    rows = session.scalars(q.order_by(AuditEvent.ts.desc(), AuditEvent.id.desc())
                           .limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    users = user_emails(session, rows)
    items = [view(r, users, positions=viewer.all_orgs) for r in rows]
    if audit_read:
        _record_read(session, viewer, f, len(items), "page")
    nxt = encode_cursor(rows[-1].ts, rows[-1].id) if more and rows else None
    return Page(items, nxt)


def export(session: Session, settings: Settings, viewer: Viewer, f: Filters,
           fmt: str) -> Iterator[str]:
    """Every matching record (up to ``EXPORT_LIMIT``) as CSV or JSON lines; the export is
    recorded before the first byte is produced."""
    f = resolve_actor(session, settings, viewer, f)
    q = _statement(viewer, f, Sealer(settings)).order_by(AuditEvent.ts.desc(),
                                                         AuditEvent.id.desc())
    rows = session.scalars(q.limit(EXPORT_LIMIT)).all()
    _record_read(session, viewer, f, len(rows), fmt)
    session.flush()
    users = user_emails(session, rows)
    columns = ["id", "seq", "time", "source", "org_id", "actor_user_id", "actor_email",
               "actor_token_id",
               "actor", "actor_name", "ip", "user_agent", "action", "resource", "outcome",
               "request_id", "client_event_id", "details"]
    if fmt == "csv":
        buf = io.StringIO()
        writer = SafeWriter(buf)  # no spreadsheet formulas from a log line
        writer.writerow(columns)
        for r in rows:
            v = view(r, users, positions=viewer.all_orgs)
            v["details"] = json.dumps(v["details"]) if v["details"] is not None else ""
            writer.writerow([v[c] for c in columns])
            if buf.tell() > 65_536:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()
    else:
        for r in rows:
            yield json.dumps(view(r, users, positions=viewer.all_orgs), ensure_ascii=False) + "\n"


def _record_read(session: Session, viewer: Viewer, f: Filters, count: int, kind: str) -> None:
    record(session, "audit.read", org_id=viewer.actor_org_id, actor_user_id=viewer.actor_user_id,
           actor_token_id=viewer.actor_token_id, resource="audit:events",
           details={"filters": f.used(), "count": count, "kind": kind,
                    "scope": viewer.org_id or "all"})


def alerts(session: Session, viewer: Viewer, *, limit: int = 100) -> list[AuditAlert]:
    """Alerts of the viewer's organisation; all of them for vendor auditors/security officers
    (alerts name no person in clear: subjects are ids or keyed hashes)."""
    q = select(AuditAlert).order_by(AuditAlert.created_at.desc()).limit(limit)
    if viewer.org_id is not None:
        q = q.where(AuditAlert.org_id == viewer.org_id)
    return list(session.scalars(q).all())


ALERT_EVENTS_LIMIT = 500


def alert_events(session: Session, viewer: Viewer, alert_id: str
                 ) -> tuple[AuditAlert, list[dict[str, Any]]]:
    """An alert and the records it was raised on (``first_seq``..``last_seq``, narrowed to the
    alert's own pattern); 404 for an alert the viewer may not see. The read is recorded."""
    alert = session.get(AuditAlert, alert_id)
    if alert is None or (viewer.org_id is not None and alert.org_id != viewer.org_id):
        raise NotFound()
    q = select(AuditEvent).where(AuditEvent.seq >= alert.first_seq,
                                 AuditEvent.seq <= alert.last_seq)
    if viewer.org_id is not None:
        q = q.where(AuditEvent.org_id == viewer.org_id)
    if alert.kind == "failed_signins":
        q = q.where(AuditEvent.action == "auth.signin_failed",
                    AuditEvent.ip_index == alert.subject)
    elif alert.kind == "new_network":
        q = q.where(AuditEvent.seq == alert.last_seq)
    elif alert.kind == "mass_read":
        q = q.where(or_(AuditEvent.actor_user_id == alert.subject,
                        AuditEvent.actor_ref == alert.subject))
    rows = list(session.scalars(q.order_by(AuditEvent.seq.desc()).limit(ALERT_EVENTS_LIMIT)))
    if alert.kind == "mass_read":
        rows = [r for r in rows if is_person_read(r.action, r.resource)]
    users = user_emails(session, rows)
    items = [view(r, users, positions=viewer.all_orgs) for r in rows]
    record(session, "audit.read", org_id=viewer.actor_org_id, actor_user_id=viewer.actor_user_id,
           actor_token_id=viewer.actor_token_id, resource=f"audit:alert:{alert.id}",
           details={"count": len(items), "kind": "alert", "scope": viewer.org_id or "all"})
    return alert, items
