"""Alerts read from the trail after it is sealed: repeated failed sign-ins from one source, a staff
sign-in from a network not seen before for that person, and one actor reading unusually many
people's data. Each alert is stored (shown in the console) and mailed to the vendor's security
officers through the outbox. The scan resumes where the last one stopped (``audit_head.alert_seq``)
and never raises the same alert twice within its window."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from vern.accounts.models import Membership, Organisation, User
from vern.accounts.roles import VENDOR_ROLES, Role
from vern.audit.chain import now_us
from vern.audit.models import AuditAlert, AuditEvent, AuditHead
from vern.core.config import AuditSettings, Settings, audit_settings
from vern.core.db import Database, Scope, utcnow
from vern.notify.service import queue

READ_SUFFIXES = (".read", ".export", ".exported", ".viewed", ".downloaded")
PERSON_PREFIXES = ("user:", "subject:", "person:", "request:")
SIGNIN_ACTIONS = ("auth.signin", "auth.mfa_passed")
KIND_TEXT = {
    "failed_signins": ("Repeated failed sign-ins from one source",
                       "Gjentatte mislykkede innlogginger fra én kilde"),
    "new_network": ("Staff sign-in from a new network", "Innlogging for ansatt fra nytt nettverk"),
    "mass_read": ("Unusually many people's data read", "Uvanlig mange personers data lest"),
    "quarantined": ("An audit record was refused by sealing (quarantined)",
                    "En revisjonshendelse ble avvist ved forsegling (satt i karantene)"),
}


def is_person_read(action: str, resource: str | None) -> bool:
    return bool(resource) and action.endswith(READ_SUFFIXES) and str(resource).startswith(
        PERSON_PREFIXES)


def scan(database: Database, settings: Settings, *, audit: AuditSettings | None = None,
         limit: int = 50_000) -> list[AuditAlert]:
    audit = audit or audit_settings()
    made: list[AuditAlert] = []
    with database.transaction(Scope.system("audit alerts")) as session:
        head = session.get(AuditHead, 1, with_for_update=True)
        if head is None:
            return made
        start = head.alert_seq
        made += _quarantined(session, head.tree_size)
        rows = session.execute(
            select(AuditEvent.seq, AuditEvent.ts, AuditEvent.action, AuditEvent.actor_user_id,
                   AuditEvent.actor_ref, AuditEvent.org_id, AuditEvent.ip_index,
                   AuditEvent.net_index, AuditEvent.resource, AuditEvent.outcome)
            .where(AuditEvent.seq >= start, AuditEvent.seq < head.tree_size)
            .order_by(AuditEvent.seq).limit(limit)
        ).all()
        if not rows:
            for alert in made:
                _notify(session, alert)
            return made
        staff = _vendor_staff(session)
        for r in rows:
            if r.action == "auth.signin_failed" and r.ip_index:
                made += _failed_signins(session, audit, r)
            elif r.action in SIGNIN_ACTIONS and r.actor_user_id in staff and r.net_index:
                made += _new_network(session, r)
            elif is_person_read(r.action, r.resource):
                made += _mass_read(session, audit, r)
        session.execute(update(AuditHead).where(AuditHead.id == 1)
                        .values(alert_seq=rows[-1].seq + 1))
        for alert in made:
            _notify(session, alert)
    return made


def _quarantined(session: Session, tree_size: int) -> list[AuditAlert]:
    """An alert for each record sealing quarantined (``vern.audit.chain.AuditLog._screen``) and
    not alerted yet: subject is the record's id, the seq range where it would have gone."""
    ids = session.execute(
        select(AuditEvent.id).where(AuditEvent.seq.is_(None), AuditEvent.quarantine.is_not(None))
        .order_by(AuditEvent.ts).limit(1000)).scalars().all()
    if not ids:
        return []
    known = set(session.execute(select(AuditAlert.subject).where(
        AuditAlert.kind == "quarantined", AuditAlert.subject.in_(ids))).scalars())
    made = []
    for rid in [i for i in ids if i not in known][:20]:
        alert = AuditAlert(org_id=None, kind="quarantined", subject=rid, first_seq=tree_size,
                           last_seq=tree_size, count=1)
        session.add(alert)
        made.append(alert)
    session.flush()
    return made


def _vendor_staff(session: Session) -> set[str]:

    rows = session.execute(
        select(Membership.user_id).join(Organisation, Organisation.id == Membership.org_id)
        .where(Organisation.kind == "vendor",
               Membership.role.in_([r.value for r in VENDOR_ROLES]))
    )
    return {uid for (uid,) in rows}


def _recent_alert(session: Session, kind: str, subject: str, since_us: int) -> bool:
    since = utcnow() - timedelta(microseconds=max(0, now_us() - since_us))
    return session.scalar(
        select(AuditAlert.id).where(AuditAlert.kind == kind, AuditAlert.subject == subject,
                                    AuditAlert.created_at >= since).limit(1)
    ) is not None


def _add(  # noqa: PLR0917 - one alert row
    session: Session, kind: str, subject: str, r: Any, count: int, first: int
) -> AuditAlert:
    alert = AuditAlert(org_id=r.org_id, kind=kind, subject=subject, first_seq=first,
                       last_seq=r.seq, count=count)
    session.add(alert)
    session.flush()
    return alert


def _failed_signins(session: Session, audit: AuditSettings, r: Any) -> list[AuditAlert]:
    window = audit.alert_failed_window_minutes * 60_000_000
    rows = session.execute(
        select(func.count(), func.min(AuditEvent.seq)).where(
            AuditEvent.ip_index == r.ip_index, AuditEvent.action == "auth.signin_failed",
            AuditEvent.ts > r.ts - window, AuditEvent.ts <= r.ts, AuditEvent.seq <= r.seq)
    ).one()
    count, first = int(rows[0]), int(rows[1] or r.seq)
    if count < audit.alert_failed_signins:
        return []
    if _recent_alert(session, "failed_signins", r.ip_index, r.ts - window):
        return []
    return [_add(session, "failed_signins", r.ip_index, r, count, first)]


def _new_network(session: Session, r: Any) -> list[AuditAlert]:
    earlier = session.execute(
        select(AuditEvent.net_index).where(
            AuditEvent.actor_user_id == r.actor_user_id, AuditEvent.action.in_(SIGNIN_ACTIONS),
            AuditEvent.seq < r.seq, AuditEvent.net_index.is_not(None))
        .limit(1000)
    ).scalars().all()
    if not earlier or r.net_index in set(earlier):
        return []  # first sign-in ever, or a known network
    subject = f"{r.actor_user_id}:{r.net_index[:8]}"
    if _recent_alert(session, "new_network", subject, r.ts - 86_400_000_000):
        return []
    return [_add(session, "new_network", subject, r, 1, r.seq)]


def _mass_read(session: Session, audit: AuditSettings, r: Any) -> list[AuditAlert]:
    actor = r.actor_user_id or r.actor_ref
    if actor is None:
        return []
    window = audit.alert_people_window_minutes * 60_000_000
    col = AuditEvent.actor_user_id if r.actor_user_id else AuditEvent.actor_ref
    resources = session.execute(
        select(AuditEvent.action, AuditEvent.resource).where(
            col == actor, AuditEvent.ts > r.ts - window, AuditEvent.ts <= r.ts,
            AuditEvent.seq <= r.seq)
    ).all()
    people = {res for act, res in resources if is_person_read(act, res)}
    if len(people) < audit.alert_people_read:
        return []
    if _recent_alert(session, "mass_read", actor, r.ts - window):
        return []
    return [_add(session, "mass_read", actor, r, len(people), r.seq)]


def _notify(session: Session, alert: AuditAlert) -> None:

    officers = session.execute(
        select(User).join(Membership, Membership.user_id == User.id)
        .join(Organisation, Organisation.id == Membership.org_id)
        .where(Organisation.kind == "vendor", Membership.role == Role.SECURITY_OFFICER.value,
               User.disabled_at.is_(None))
    ).scalars().all()
    en, nb = KIND_TEXT[alert.kind]
    body = (f"{en} / {nb}\n\nAlert {alert.id}: {alert.count} record(s), "
            f"seq {alert.first_seq}-{alert.last_seq}.\n"
            f"See /console/audit/alerts/{alert.id} for its records. / "
            f"Se /console/audit/alerts/{alert.id} for postene.\n")
    for user in officers:
        if user.email.value is None:
            continue
        queue(session, key_id=user.key_id, to=user.email.value, subject=f"Vern: {en}",
              body=body, kind="audit.alert", org_id=None)
    alert.notified_at = utcnow() if officers else None
