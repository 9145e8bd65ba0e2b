"""Every write of the vendor's internal control, each with its audit record in the same transaction.

The callers pass ``By``: the person (or API token) acting, in the vendor's organisation. Two-person
rules (evidence deletion, change approval) need a person, and never the one who asked.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.accounts.roles import Role
from vern.audit.service import record
from vern.control.catalogue import CATALOGUE, REQUIRED_TRAININGS, frameworks
from vern.control.models import (
    ControlChange,
    ControlChangeEvent,
    ControlCompletion,
    ControlDpia,
    ControlDpiaVersion,
    ControlEvidence,
    ControlMapping,
    ControlMeasure,
    ControlMedia,
    ControlPerson,
    ControlReminder,
    ControlRisk,
    ControlTask,
    ControlTraining,
)
from vern.core.crypto import PII, keyring
from vern.core.csvsafe import safe_cell
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from vern.core.i18n import N_, format_day, gettext
from vern.notify import service as notify

RECURRENCES = ("yearly", "quarterly", "monthly", "once")
MONTHS = {"yearly": 12, "quarterly": 3, "monthly": 1}
THREATS = ("illegitimate_access", "unwanted_change", "disappearance")
MEASURE_STATUSES = ("planned", "in_progress", "done")
MEDIA_METHODS = ("clear", "purge", "destroy")
RECORD_KINDS = ("audit_checkpoint", "rights_request", "change_request", "breach", "access_review",
                "document", "other")
SOON_DAYS = 14
REMIND_BEFORE_DAYS = 7
MAX_EVIDENCE_BYTES = 512 * 1024
# Declared content type → how its first bytes look (None: UTF-8 text without NUL).
EVIDENCE_TYPES: dict[str, bytes | None] = {
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
    "text/plain": None,
    "text/csv": None,
    "application/json": None,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": b"PK\x03\x04",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": b"PK\x03\x04",
    "application/vnd.oasis.opendocument.text": b"PK\x03\x04",
}
DPIA_SECTIONS: dict[str, tuple[str, ...]] = {
    "context": ("overview", "processing", "responsibilities", "standards", "data", "lifecycle",
                "supporting_assets"),
    "principles": ("purposes", "legal_basis", "minimisation", "accuracy", "retention",
                   "information", "consent", "access_portability", "rectification_erasure",
                   "restriction_objection", "processors", "transfers"),
    "risks": ("measures", "illegitimate_access", "unwanted_change", "disappearance", "overview"),
    "validation": ("action_plan", "dpo_opinion", "data_subjects_opinion", "decision"),
}
RISK_PARTS = ("impacts", "threats", "sources", "measures", "severity", "likelihood")
DPIA_DECISIONS = ("", "accepted", "accepted_with_actions", "refused")


@dataclass(frozen=True)
class By:
    """Who acts: a person (``user_id``) or an API token, in the vendor's organisation."""

    org_id: str
    user_id: str | None = None
    token_id: str | None = None

    @classmethod
    def of(cls, actor: Any) -> By:
        return cls(actor.org_id, actor.user_id, actor.token_id)

    def person(self, what: str) -> str:
        if self.user_id is None:
            raise Forbidden(detail="%(what)s needs a signed-in person, not an API token",
                            params={"what": what})
        return self.user_id


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _audit(session: Session, by: By, action: str, resource: str, **details: Any) -> None:
    record(session, action, org_id=by.org_id, actor_user_id=by.user_id,
           actor_token_id=by.token_id, resource=resource, details=details or None)


def _text(name: str, value: str | None, limit: int, *, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise InvalidInput.on(name, "is required")
    if len(value) > limit:
        raise InvalidInput.on(name, "at most %(n)s characters", n=limit)
    return value


def _choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InvalidInput.on(name, "must be one of %(allowed)s", allowed=", ".join(allowed))
    return value


def _score(name: str, value: int | None, *, required: bool = True) -> int | None:
    if value is None and not required:
        return None
    if value is None or not 1 <= value <= 4:
        raise InvalidInput.on(name, "must be 1-4")
    return value


def staff(session: Session) -> list[tuple[Any, Any]]:
    """The vendor's staff accounts (user, membership), in the vendor's scope."""
    return accounts.list_members(session)


def _staff_member(session: Session, name: str, user_id: str | None) -> str:
    """``user_id`` if it is a member of the vendor's staff (the session's organisation)."""
    if not user_id:
        raise InvalidInput.on(name, "is required")
    try:
        accounts.get_member(session, user_id)
    except NotFound:
        raise InvalidInput.on(name, "is not a member of the vendor's staff") from None
    return user_id


def staff_names(session: Session) -> dict[str, str]:
    """user id → name of the vendor's staff, for display."""
    return {u.id: (u.name.value or "") for u, _m in staff(session)}


# -- due dates ---------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """``day`` ``months`` later, on the same day of the month or the month's last day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def next_due(recurrence: str, due_on: date | None, completed_on: date) -> date | None:
    """The due date after a completion: one period after the current due date, moved on by whole
    periods until it lies after the day of completion (a late completion does not leave the task
    overdue at once). A task done once has none."""
    months = MONTHS.get(recurrence)
    if months is None:
        return None
    base = due_on or completed_on
    step = 1
    nxt = add_months(base, months)
    while nxt <= completed_on:
        step += 1
        nxt = add_months(base, months * step)
    return nxt


def is_overdue(task: ControlTask, today: date) -> bool:
    return task.closed_at is None and task.due_on is not None and task.due_on < today


# -- tasks -------------------------------------------------------------------------------------


def _task_view_key(task: ControlTask) -> str:
    return f"control_task:{task.id}"


def create_task(
    session: Session, by: By, *, title: str, recurrence: str, due_on: date,
    owner_user_id: str | None, description: str = "", key: str | None = None,
) -> ControlTask:
    """A new control task owned by a member of the vendor's staff, first due on ``due_on``."""
    task = ControlTask(
        title=_text("title", title, 200), description=_text("description", description, 5000,
                                                            required=False),
        recurrence=_choice("recurrence", recurrence, RECURRENCES),
        owner_user_id=_staff_member(session, "owner", owner_user_id), due_on=due_on, key=key,
    )
    session.add(task)
    session.flush()
    _audit(session, by, "control.task.create", _task_view_key(task), key=key,
           recurrence=recurrence, due_on=due_on.isoformat(), owner=owner_user_id)
    return task


def create_tasks(
    database: Database, org_id: str, owner_user_id: str, specs: Iterable[tuple[str, str, date]],
) -> list[str]:
    """Create many control tasks in one transaction (for benchmarks and imports): ``specs`` are
    (title, recurrence, due_on); the owner is a member of the vendor's staff. Returns the ids."""
    by = By(org_id)
    with database.transaction(Scope.tenant(org_id)) as session:
        owner = _staff_member(session, "owner", owner_user_id)
        tasks = [ControlTask(title=_text("title", title, 200), description="",
                             recurrence=_choice("recurrence", rec, RECURRENCES),
                             owner_user_id=owner, due_on=due) for title, rec, due in specs]
        session.add_all(tasks)
        session.flush()
        _audit(session, by, "control.task.create_many", "control_task:*", count=len(tasks))
        return [t.id for t in tasks]


def seed(session: Session, by: By, *, owner_user_id: str, today: date) -> list[ControlTask]:
    """Load the catalogue: each task not loaded before, first due one period from ``today``
    (a task done once: in 30 days), with its framework mappings."""
    made = []
    for item in CATALOGUE:
        if session.scalar(select(ControlTask.id).where(ControlTask.key == item.key)):
            continue
        months = MONTHS.get(item.recurrence)
        due = add_months(today, months) if months else today + timedelta(days=30)
        task = create_task(session, by, title=item.title, recurrence=item.recurrence,
                           due_on=due, owner_user_id=owner_user_id,
                           description=item.description, key=item.key)
        for framework, requirement in item.mappings:
            session.add(ControlMapping(task_id=task.id, framework=framework,
                                       requirement=requirement))
        made.append(task)
    _audit(session, by, "control.seed", "control_task:*", loaded=[t.key for t in made])
    return made


def get_task(session: Session, task_id: str) -> ControlTask:
    task = session.get(ControlTask, task_id)
    if task is None:
        raise NotFound()
    return task


def list_tasks(session: Session, *, overdue_only: bool = False,
               today: date | None = None) -> list[ControlTask]:
    stmt = select(ControlTask).where(ControlTask.closed_at.is_(None))
    if overdue_only:
        stmt = stmt.where(ControlTask.due_on < (today or utcnow().date()))
    closed = select(ControlTask).where(ControlTask.closed_at.is_not(None))
    rows = list(session.scalars(stmt.order_by(ControlTask.due_on, ControlTask.title)))
    if not overdue_only:
        rows += list(session.scalars(closed.order_by(ControlTask.closed_at.desc())))
    return rows


def update_task(
    session: Session, by: By, task_id: str, *, title: str | None = None,
    description: str | None = None, owner_user_id: str | None = None,
    recurrence: str | None = None, due_on: date | None = None,
) -> ControlTask:
    task = get_task(session, task_id)
    old: dict[str, Any] = {}
    if title is not None:
        old["title"], task.title = task.title, _text("title", title, 200)
    if description is not None:
        old["description"] = "(changed)"
        task.description = _text("description", description, 5000, required=False)
    if owner_user_id is not None:
        old["owner"] = task.owner_user_id
        task.owner_user_id = _staff_member(session, "owner", owner_user_id)
    if recurrence is not None:
        old["recurrence"], task.recurrence = (task.recurrence,
                                              _choice("recurrence", recurrence, RECURRENCES))
    if due_on is not None:
        old["due_on"] = task.due_on.isoformat() if task.due_on else None
        task.due_on = due_on
        task.closed_at = None
    _audit(session, by, "control.task.update", _task_view_key(task), old=old,
           new={k: str(getattr(task, "owner_user_id" if k == "owner" else k)) for k in old})
    return task


def complete_task(
    session: Session, by: By, task_id: str, *, note: str = "", today: date | None = None,
) -> ControlCompletion:
    """Record a completion: the current due date is met, the next one follows from the
    recurrence (a task done once is closed). Evidence added before, not yet tied to a completion,
    is tied to this one."""
    task = get_task(session, task_id)
    if task.closed_at is not None:
        raise Conflict(detail="task: this task is closed (done once)")
    today = today or utcnow().date()
    nxt = next_due(task.recurrence, task.due_on, today)
    done = ControlCompletion(task_id=task.id, due_on=task.due_on, completed_by=by.user_id,
                             note=_text("note", note, 5000, required=False), next_due_on=nxt)
    session.add(done)
    session.flush()
    for ev in session.scalars(select(ControlEvidence).where(
            ControlEvidence.task_id == task.id, ControlEvidence.completion_id.is_(None))):
        ev.completion_id = done.id
    old_due = task.due_on
    task.due_on = nxt
    if nxt is None:
        task.closed_at = utcnow()
    _audit(session, by, "control.task.complete", _task_view_key(task), completion=done.id,
           old={"due_on": old_due.isoformat() if old_due else None},
           new={"due_on": nxt.isoformat() if nxt else None})
    return done


def completions(session: Session, task_id: str) -> list[ControlCompletion]:
    return list(session.scalars(select(ControlCompletion).where(
        ControlCompletion.task_id == task_id).order_by(ControlCompletion.completed_at.desc())))


# -- evidence ----------------------------------------------------------------------------------


def check_file(content_type: str, data: bytes) -> str:
    """The declared type if the content is allowed and looks like it; refusal names ``file``."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared not in EVIDENCE_TYPES:
        raise InvalidInput.on("file", "type %(type)s is not accepted", type=declared or "?")
    if not data:
        raise InvalidInput.on("file", "is empty")
    if len(data) > MAX_EVIDENCE_BYTES:
        raise InvalidInput.on("file", "larger than %(n)s bytes", n=MAX_EVIDENCE_BYTES)
    magic = EVIDENCE_TYPES[declared]
    if magic is None:
        ok = b"\x00" not in data
        try:
            text = data.decode("utf-8")
            if declared == "application/json":
                json.loads(text)
        except ValueError:
            ok = False
    else:
        ok = data.startswith(magic)
    if not ok:
        raise InvalidInput.on("file", "content does not match its type %(type)s", type=declared)
    return declared


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def add_file(session: Session, by: By, task_id: str, *, title: str, filename: str,
             content_type: str, data: bytes) -> ControlEvidence:
    task = get_task(session, task_id)
    declared = check_file(content_type, data)
    name = _SAFE_NAME.sub("_", (filename or "evidence").rsplit("/", 1)[-1])[:200] or "evidence"
    ev = ControlEvidence(task_id=task.id, kind="file", title=_text("title", title or name, 200),
                         filename=name, content_type=declared, size=len(data),
                         sha256=hashlib.sha256(data).hexdigest(), content=data,
                         added_by=by.user_id)
    return _add_evidence(session, by, ev)


def add_link(session: Session, by: By, task_id: str, *, title: str, url: str) -> ControlEvidence:
    task = get_task(session, task_id)
    url = _text("url", url, 2000)
    if not re.match(r"^https?://[^\s/]+", url):
        raise InvalidInput.on("url", "must be an http or https address")
    ev = ControlEvidence(task_id=task.id, kind="link", title=_text("title", title, 200), url=url,
                         added_by=by.user_id)
    return _add_evidence(session, by, ev)


def add_record(session: Session, by: By, task_id: str, *, title: str, record_kind: str,
               record_ref: str) -> ControlEvidence:
    """A reference to a record in Vern (an audit checkpoint, a request id, a change request…).
    A change request is looked up here; other kinds are kept as given."""
    task = get_task(session, task_id)
    kind = _choice("record_kind", record_kind, RECORD_KINDS)
    ref = _text("record_ref", record_ref, 200)
    if kind == "change_request" and session.get(ControlChange, ref) is None:
        raise InvalidInput.on("record_ref", "no such change request")
    ev = ControlEvidence(task_id=task.id, kind="record", title=_text("title", title, 200),
                         record_kind=kind, record_ref=ref, added_by=by.user_id)
    return _add_evidence(session, by, ev)


def _add_evidence(session: Session, by: By, ev: ControlEvidence) -> ControlEvidence:
    session.add(ev)
    session.flush()
    _audit(session, by, "control.evidence.add", f"control_evidence:{ev.id}", task=ev.task_id,
           kind=ev.kind, size=ev.size, sha256=ev.sha256)
    return ev


def get_evidence(session: Session, evidence_id: str) -> ControlEvidence:
    ev = session.get(ControlEvidence, evidence_id)
    if ev is None:
        raise NotFound()
    return ev


def evidence_of(session: Session, task_id: str, *, deleted: bool = False) -> list[ControlEvidence]:
    stmt = select(ControlEvidence).where(ControlEvidence.task_id == task_id)
    if not deleted:
        stmt = stmt.where(ControlEvidence.deleted_at.is_(None))
    return list(session.scalars(stmt.order_by(ControlEvidence.added_at)))


def read_file(session: Session, by: By, evidence_id: str) -> ControlEvidence:
    ev = get_evidence(session, evidence_id)
    if ev.kind != "file" or ev.content is None:
        raise NotFound()
    _audit(session, by, "control.evidence.read", f"control_evidence:{ev.id}")
    return ev


def request_deletion(session: Session, by: By, evidence_id: str, *, reason: str) -> ControlEvidence:
    """Ask for evidence to be deleted; another person must approve."""
    who = by.person("Asking to delete evidence")
    ev = get_evidence(session, evidence_id)
    if ev.deleted_at is not None:
        raise Conflict(detail="evidence: already deleted")
    if ev.delete_requested_by is not None:
        raise Conflict(detail="evidence: a deletion is already waiting for approval")
    ev.delete_requested_by = who
    ev.delete_requested_at = utcnow()
    ev.delete_reason = _text("reason", reason, 2000)
    _audit(session, by, "control.evidence.delete_request", f"control_evidence:{ev.id}")
    return ev


def approve_deletion(session: Session, by: By, evidence_id: str) -> ControlEvidence:
    """Carry out a requested deletion: the content is removed, the entry stays as a trace."""
    who = by.person("Approving a deletion")
    ev = get_evidence(session, evidence_id)
    if ev.delete_requested_by is None or ev.deleted_at is not None:
        raise Conflict(detail="evidence: no deletion is waiting for approval")
    if ev.delete_requested_by == who:  # the refused request is in the trail as a 403
        raise Forbidden(detail="The person who asked for the deletion cannot approve it; "
                               "another person must")
    ev.content = None
    ev.url = None
    ev.deleted_by = who
    ev.deleted_at = utcnow()
    _audit(session, by, "control.evidence.delete_approve", f"control_evidence:{ev.id}",
           requested_by=ev.delete_requested_by)
    return ev


def refuse_deletion(session: Session, by: By, evidence_id: str) -> ControlEvidence:
    """Withdraw (the asker) or refuse (anyone else) a requested deletion: the evidence stays."""
    by.person("Refusing a deletion")
    ev = get_evidence(session, evidence_id)
    if ev.delete_requested_by is None or ev.deleted_at is not None:
        raise Conflict(detail="evidence: no deletion is waiting for approval")
    requested = ev.delete_requested_by
    ev.delete_requested_by = ev.delete_requested_at = ev.delete_reason = None
    _audit(session, by, "control.evidence.delete_refuse", f"control_evidence:{ev.id}",
           requested_by=requested)
    return ev


def pending_deletions(session: Session) -> list[ControlEvidence]:
    return list(session.scalars(select(ControlEvidence).where(
        ControlEvidence.delete_requested_by.is_not(None), ControlEvidence.deleted_at.is_(None))
        .order_by(ControlEvidence.delete_requested_at)))


# -- framework mapping ---------------------------------------------------------------------------


def map_task(session: Session, by: By, task_id: str, *, framework: str,
             requirement: str) -> ControlMapping:
    task = get_task(session, task_id)
    fw = frameworks().get(framework)
    if fw is None:
        raise InvalidInput.on("framework", "unknown framework %(name)s", name=framework)
    if fw.get(requirement) is None:
        raise InvalidInput.on("requirement", "not a requirement of %(name)s", name=framework)
    found = session.scalar(select(ControlMapping).where(
        ControlMapping.task_id == task.id, ControlMapping.framework == framework,
        ControlMapping.requirement == requirement))
    if found is not None:
        return found
    row = ControlMapping(task_id=task.id, framework=framework, requirement=requirement)
    session.add(row)
    session.flush()
    _audit(session, by, "control.mapping.add", _task_view_key(task), framework=framework,
           requirement=requirement)
    return row


def unmap_task(session: Session, by: By, task_id: str, *, framework: str,
               requirement: str) -> None:
    task = get_task(session, task_id)
    found = session.scalar(select(ControlMapping).where(
        ControlMapping.task_id == task.id, ControlMapping.framework == framework,
        ControlMapping.requirement == requirement))
    if found is None:
        raise NotFound()
    session.delete(found)
    _audit(session, by, "control.mapping.remove", _task_view_key(task), framework=framework,
           requirement=requirement)


def mappings_of(session: Session, task_id: str) -> list[ControlMapping]:
    return list(session.scalars(select(ControlMapping).where(ControlMapping.task_id == task_id)
                                .order_by(ControlMapping.framework, ControlMapping.requirement)))


def coverage(session: Session, framework: str, locale: str = "en") -> dict[str, Any]:
    """An auditor's view: each requirement with the controls and evidence that cover it, and the
    requirements nothing covers."""
    fw = frameworks().get(framework)
    if fw is None:
        raise NotFound()
    tasks = {t.id: t for t in session.scalars(select(ControlTask))}
    by_req: dict[str, list[str]] = {}
    for m in session.scalars(select(ControlMapping).where(ControlMapping.framework == framework)):
        by_req.setdefault(m.requirement, []).append(m.task_id)
    counts = dict(session.execute(
        select(ControlEvidence.task_id, func.count()).where(ControlEvidence.deleted_at.is_(None))
        .group_by(ControlEvidence.task_id)).all())
    last = dict(session.execute(
        select(ControlCompletion.task_id, func.max(ControlCompletion.completed_at))
        .group_by(ControlCompletion.task_id)).all())
    rows = []
    for req in fw.requirements:
        controls = [{"id": tid, "title": tasks[tid].title, "key": tasks[tid].key,
                     "due_on": _iso(tasks[tid].due_on), "evidence": int(counts.get(tid, 0)),
                     "last_completed_at": _iso(last.get(tid))}
                    for tid in by_req.get(req.id, []) if tid in tasks]
        rows.append({"id": req.id, "title": req.title_in(locale), "group": req.group,
                     "group_title": req.group_in(locale), "controls": controls,
                     "covered": bool(controls)})
    return {"framework": fw.key, "name": fw.name, "requirements": rows,
            "uncovered": [r["id"] for r in rows if not r["covered"]]}


def customer_summary(session: Session) -> dict[str, Any]:
    """What a customer may see of the vendor's internal control (its trust page): the controls in
    place (open tasks: title, how often, when last completed) and, per framework, how many
    requirements a control covers. Nothing else - no owners, notes, evidence or its files, risks
    or changes - leaves the vendor's own records."""
    tasks = list(session.scalars(select(ControlTask).where(ControlTask.closed_at.is_(None))
                                 .order_by(ControlTask.title)))
    last = dict(session.execute(
        select(ControlCompletion.task_id, func.max(ControlCompletion.completed_at))
        .group_by(ControlCompletion.task_id)).all())
    open_ids = {t.id for t in tasks}
    covered: dict[str, set[str]] = {}
    for m in session.scalars(select(ControlMapping)):
        if m.task_id in open_ids:
            covered.setdefault(m.framework, set()).add(m.requirement)
    framework_rows = []
    for key, fw in sorted(frameworks().items()):
        ids = {r.id for r in fw.requirements}
        framework_rows.append({"framework": key, "name": fw.name,
                               "covered": len(covered.get(key, set()) & ids),
                               "requirements": len(ids)})
    return {
        "controls": [{"title": t.title, "recurrence": t.recurrence,
                      "last_completed_on": _iso(last[t.id].date()) if t.id in last else None}
                     for t in tasks],
        "frameworks": framework_rows,
    }


# -- risks -------------------------------------------------------------------------------------


def risk_level(likelihood: int | None, consequence: int | None) -> str | None:
    if likelihood is None or consequence is None:
        return None
    score = likelihood * consequence
    return "low" if score <= 3 else "medium" if score <= 8 else "high"


def create_risk(
    session: Session, by: By, *, asset: str, threat: str, likelihood_before: int,
    consequence_before: int, description: str = "", likelihood_after: int | None = None,
    consequence_after: int | None = None, owner_user_id: str | None = None,
) -> ControlRisk:
    risk = ControlRisk(
        asset=_text("asset", asset, 200), threat=_choice("threat", threat, THREATS),
        description=_text("description", description, 5000, required=False),
        likelihood_before=_score("likelihood_before", likelihood_before),
        consequence_before=_score("consequence_before", consequence_before),
        likelihood_after=_score("likelihood_after", likelihood_after, required=False),
        consequence_after=_score("consequence_after", consequence_after, required=False),
        owner_user_id=(_staff_member(session, "owner", owner_user_id) if owner_user_id
                       else None),
    )
    session.add(risk)
    session.flush()
    _audit(session, by, "control.risk.create", f"control_risk:{risk.id}", threat=threat,
           before=[likelihood_before, consequence_before],
           after=[likelihood_after, consequence_after])
    return risk


def update_risk(session: Session, by: By, risk_id: str, **changes: Any) -> ControlRisk:
    risk = get_risk(session, risk_id)
    old, new = {}, {}
    for name, given in changes.items():
        if given is None:
            continue
        value: Any = given
        if name in ("likelihood_before", "consequence_before", "likelihood_after",
                    "consequence_after"):
            value = _score(name, value)
        elif name == "threat":
            value = _choice("threat", value, THREATS)
        elif name == "asset":
            value = _text("asset", value, 200)
        elif name == "description":
            value = _text("description", value, 5000, required=False)
        elif name == "owner_user_id":
            value = _staff_member(session, "owner", value)
        else:
            raise InvalidInput.on(name, "unknown field")
        old[name], new[name] = getattr(risk, name), value
        setattr(risk, name, value)
    risk.updated_at = utcnow()
    _audit(session, by, "control.risk.update", f"control_risk:{risk.id}", old=old, new=new)
    return risk


def get_risk(session: Session, risk_id: str) -> ControlRisk:
    risk = session.get(ControlRisk, risk_id)
    if risk is None:
        raise NotFound()
    return risk


def list_risks(session: Session) -> list[ControlRisk]:
    rows = list(session.scalars(select(ControlRisk).order_by(ControlRisk.asset)))
    rows.sort(key=lambda r: -(r.likelihood_before * r.consequence_before))
    return rows


def add_measure(session: Session, by: By, risk_id: str, *, text: str,
                owner_user_id: str | None = None, status: str = "planned") -> ControlMeasure:
    risk = get_risk(session, risk_id)
    m = ControlMeasure(risk_id=risk.id, text=_text("text", text, 2000),
                       owner_user_id=(_staff_member(session, "owner", owner_user_id)
                                      if owner_user_id else None),
                       status=_choice("status", status, MEASURE_STATUSES))
    session.add(m)
    session.flush()
    _audit(session, by, "control.measure.add", f"control_risk:{risk.id}", measure=m.id,
           status=status)
    return m


def set_measure_status(session: Session, by: By, measure_id: str, status: str) -> ControlMeasure:
    m = session.get(ControlMeasure, measure_id)
    if m is None:
        raise NotFound()
    old, m.status = m.status, _choice("status", status, MEASURE_STATUSES)
    _audit(session, by, "control.measure.status", f"control_risk:{m.risk_id}", measure=m.id,
           old=old, new=status)
    return m


def measures_of(session: Session, risk_id: str) -> list[ControlMeasure]:
    return list(session.scalars(select(ControlMeasure).where(ControlMeasure.risk_id == risk_id)
                                .order_by(ControlMeasure.created_at)))


def risk_view(session: Session, risk: ControlRisk) -> dict[str, Any]:
    return {
        "id": risk.id, "asset": risk.asset, "threat": risk.threat,
        "description": risk.description,
        "before": {"likelihood": risk.likelihood_before, "consequence": risk.consequence_before,
                   "score": risk.likelihood_before * risk.consequence_before,
                   "level": risk_level(risk.likelihood_before, risk.consequence_before)},
        "after": {"likelihood": risk.likelihood_after, "consequence": risk.consequence_after,
                  "score": (risk.likelihood_after * risk.consequence_after
                            if risk.likelihood_after and risk.consequence_after else None),
                  "level": risk_level(risk.likelihood_after, risk.consequence_after)},
        "owner_user_id": risk.owner_user_id,
        "measures": [{"id": m.id, "text": m.text, "owner_user_id": m.owner_user_id,
                      "status": m.status} for m in measures_of(session, risk.id)],
        "updated_at": risk.updated_at.isoformat(),
    }


# -- DPIA --------------------------------------------------------------------------------------


def check_dpia(content: Any) -> dict[str, Any]:
    """The DPIA content in the CNIL PIA structure; unknown sections or fields are refused by
    name, texts are bounded, severity and likelihood are 1-4."""
    if not isinstance(content, dict):
        raise InvalidInput.on("content", "must be an object")
    clean: dict[str, Any] = {}
    for section, value in content.items():
        if section not in DPIA_SECTIONS:
            raise InvalidInput.on(f"content.{section}", "unknown section")
        if not isinstance(value, dict):
            raise InvalidInput.on(f"content.{section}", "must be an object")
        part: dict[str, Any] = {}
        for name, text in value.items():
            where = f"content.{section}.{name}"
            if name not in DPIA_SECTIONS[section]:
                raise InvalidInput.on(where, "unknown field")
            if section == "risks" and name in THREATS:
                part[name] = _check_risk_part(where, text)
            elif section == "validation" and name == "decision":
                part[name] = _choice(where, str(text), DPIA_DECISIONS)
            else:
                if not isinstance(text, str):
                    raise InvalidInput.on(where, "must be text")
                part[name] = _text(where, text, 20000, required=False)
        clean[section] = part
    return clean


def _check_risk_part(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput.on(where, "must be an object")
    out: dict[str, Any] = {}
    for name, item in value.items():
        if name not in RISK_PARTS:
            raise InvalidInput.on(f"{where}.{name}", "unknown field")
        if name in ("severity", "likelihood"):
            if item is None:
                out[name] = None
                continue
            if not isinstance(item, int) or isinstance(item, bool):
                raise InvalidInput.on(f"{where}.{name}", "must be 1-4")
            out[name] = _score(f"{where}.{name}", item)
        else:
            if not isinstance(item, str):
                raise InvalidInput.on(f"{where}.{name}", "must be text")
            out[name] = _text(f"{where}.{name}", item, 20000, required=False)
    return out


def dpia_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """DPIA content from the console's form, whose fields are named ``section.field`` (and
    ``risks.<threat>.<part>`` for a threat's analysis); an empty severity or likelihood is none,
    anything else must be a number 1-4 (refused naming the field). ``check_dpia`` checks the rest."""
    content: dict[str, Any] = {}
    for section, fields in DPIA_SECTIONS.items():
        part: dict[str, Any] = {}
        for name in fields:
            if section == "risks" and name in THREATS:
                risk: dict[str, Any] = {}
                for item in RISK_PARTS:
                    raw = str(form.get(f"risks.{name}.{item}", "")).strip()
                    if item in ("severity", "likelihood"):
                        if raw and not raw.isdigit():
                            raise InvalidInput.on(f"content.risks.{name}.{item}", "must be 1-4")
                        risk[item] = int(raw) if raw else None
                    else:
                        risk[item] = raw
                part[name] = risk
            else:
                part[name] = str(form.get(f"{section}.{name}", ""))
        content[section] = part
    return content


def create_dpia(session: Session, by: By, *, processing: str,
                content: dict[str, Any] | None = None) -> ControlDpia:
    dpia = ControlDpia(processing=_text("processing", processing, 200))
    session.add(dpia)
    session.flush()
    session.add(ControlDpiaVersion(dpia_id=dpia.id, version=1, content=check_dpia(content or {}),
                                   author_user_id=by.user_id))
    _audit(session, by, "control.dpia.create", f"control_dpia:{dpia.id}", version=1)
    return dpia


def save_dpia(session: Session, by: By, dpia_id: str, content: dict[str, Any]) -> ControlDpiaVersion:
    """A new version of the DPIA; earlier versions are kept."""
    dpia = get_dpia(session, dpia_id)
    clean = check_dpia(content)
    latest = session.scalar(select(func.max(ControlDpiaVersion.version)).where(
        ControlDpiaVersion.dpia_id == dpia.id)) or 0
    version = ControlDpiaVersion(dpia_id=dpia.id, version=latest + 1, content=clean,
                                 author_user_id=by.user_id)
    session.add(version)
    session.flush()
    _audit(session, by, "control.dpia.save", f"control_dpia:{dpia.id}", version=latest + 1)
    return version


def get_dpia(session: Session, dpia_id: str) -> ControlDpia:
    dpia = session.get(ControlDpia, dpia_id)
    if dpia is None:
        raise NotFound()
    return dpia


def list_dpias(session: Session) -> list[ControlDpia]:
    return list(session.scalars(select(ControlDpia).order_by(ControlDpia.processing)))


def dpia_versions(session: Session, dpia_id: str) -> list[ControlDpiaVersion]:
    return list(session.scalars(select(ControlDpiaVersion).where(
        ControlDpiaVersion.dpia_id == dpia_id).order_by(ControlDpiaVersion.version.desc())))


def dpia_export(session: Session, dpia_id: str, version: int | None = None) -> dict[str, Any]:
    dpia = get_dpia(session, dpia_id)
    versions = dpia_versions(session, dpia.id)
    chosen = versions[0] if version is None else next(
        (v for v in versions if v.version == version), None)
    if chosen is None:
        raise NotFound()
    return {"id": dpia.id, "processing": dpia.processing, "structure": "CNIL PIA",
            "version": chosen.version, "saved_at": chosen.created_at.isoformat(),
            "author_user_id": chosen.author_user_id,
            "versions": [v.version for v in versions],
            "content": {s: {f: chosen.content.get(s, {}).get(f) for f in fields}
                        for s, fields in DPIA_SECTIONS.items()}}


# -- change requests (four eyes) -----------------------------------------------------------------


def _change_event(session: Session, change: ControlChange, action: str, by: By,
                  note: str = "") -> None:
    session.add(ControlChangeEvent(change_id=change.id, action=action, actor_user_id=by.user_id,
                                   note=_text("note", note, 2000, required=False)))


def create_change(session: Session, by: By, *, title: str, description: str, risk: str,
                  rollback: str) -> ControlChange:
    author = by.person("Filing a change request")
    change = ControlChange(title=_text("title", title, 200),
                           description=_text("description", description, 10000),
                           risk=_text("risk", risk, 5000), rollback=_text("rollback", rollback, 5000),
                           status="pending", author_user_id=author)
    session.add(change)
    session.flush()
    _change_event(session, change, "filed", by)
    _audit(session, by, "control.change.create", f"control_change:{change.id}")
    return change


def get_change(session: Session, change_id: str) -> ControlChange:
    change = session.get(ControlChange, change_id)
    if change is None:
        raise NotFound()
    return change


def list_changes(session: Session, status: str | None = None) -> list[ControlChange]:
    stmt = select(ControlChange)
    if status:
        stmt = stmt.where(ControlChange.status == _choice("status", status, (
            "pending", "approved", "rejected", "implemented")))
    return list(session.scalars(stmt.order_by(ControlChange.created_at.desc())))


def change_history(session: Session, change_id: str) -> list[ControlChangeEvent]:
    return list(session.scalars(select(ControlChangeEvent).where(
        ControlChangeEvent.change_id == change_id).order_by(ControlChangeEvent.at)))


def decide_change(session: Session, by: By, change_id: str, *, approve: bool,
                  note: str = "") -> ControlChange:
    """Approve (a person other than the author) or reject a pending change request."""
    who = by.person("Deciding a change request")
    change = get_change(session, change_id)
    if change.status != "pending":
        raise Conflict(detail="status: the change request is %(status)s, not pending",
                       params={"status": change.status})
    if approve and change.author_user_id == who:  # the refused request is in the trail (403)
        raise Forbidden(detail="The author of a change request cannot approve it; another "
                               "person must")
    change.status = "approved" if approve else "rejected"
    change.decided_by, change.decided_at = who, utcnow()
    _change_event(session, change, change.status, by, note)
    _audit(session, by, f"control.change.{'approve' if approve else 'reject'}",
           f"control_change:{change.id}", author=change.author_user_id)
    return change


def implement_change(session: Session, by: By, change_id: str, *, note: str = "") -> ControlChange:
    who = by.person("Implementing a change request")
    change = get_change(session, change_id)
    if change.status != "approved":
        raise Conflict(detail="status: only an approved change request can be implemented")
    change.status = "implemented"
    change.implemented_by, change.implemented_at = who, utcnow()
    _change_event(session, change, "implemented", by, note)
    _audit(session, by, "control.change.implement", f"control_change:{change.id}")
    return change


def change_view(session: Session, change: ControlChange, *, history: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": change.id, "title": change.title, "description": change.description,
        "risk": change.risk, "rollback": change.rollback, "status": change.status,
        "author_user_id": change.author_user_id, "decided_by": change.decided_by,
        "decided_at": change.decided_at.isoformat() if change.decided_at else None,
        "implemented_by": change.implemented_by,
        "implemented_at": change.implemented_at.isoformat() if change.implemented_at else None,
        "created_at": change.created_at.isoformat(),
    }
    if history:
        view["history"] = [{"action": e.action, "actor_user_id": e.actor_user_id, "note": e.note,
                            "at": e.at.isoformat()} for e in change_history(session, change.id)]
    return view


# -- personnel -----------------------------------------------------------------------------------


def _person_for_user(session: Session, by: By, user_id: str) -> ControlPerson:
    _staff_member(session, "user_id", user_id)
    person = session.scalar(select(ControlPerson).where(ControlPerson.user_id == user_id))
    if person is None:
        person = ControlPerson(user_id=user_id, sensitive_access=True)
        session.add(person)
        session.flush()
        _audit(session, by, "control.person.create", f"control_person:{person.id}",
               user=user_id)
    return person


def add_person(session: Session, by: By, *, user_id: str | None = None, name: str | None = None,
               supplier: str | None = None, function: str = "",
               sensitive_access: bool = True) -> ControlPerson:
    """A vendor staff member's record (``user_id``), or a supplier's staff member without an
    account (``name`` and ``supplier``; the name is sealed under its own data key)."""
    if user_id:
        person = _person_for_user(session, by, user_id)
        person.function = _text("function", function, 200, required=False) or person.function
        person.sensitive_access = sensitive_access
        return person
    name = _text("name", name, 200)
    supplier = _text("supplier", supplier, 200)
    key_id = keyring().create(session)
    person = ControlPerson(key_id=key_id, name=PII(key_id, name), supplier=supplier,
                           function=_text("function", function, 200, required=False),
                           sensitive_access=sensitive_access)
    session.add(person)
    session.flush()
    _audit(session, by, "control.person.create", f"control_person:{person.id}",
           supplier=supplier)
    return person


def get_person(session: Session, person_id: str) -> ControlPerson:
    person = session.get(ControlPerson, person_id)
    if person is None:
        raise NotFound()
    if person.user_id is not None:
        try:
            accounts.get_member(session, person.user_id)
        except NotFound:
            raise NotFound() from None
    return person


def person_for_user(session: Session, by: By, user_id: str) -> ControlPerson:
    return _person_for_user(session, by, user_id)


def record_nda(session: Session, by: By, person_id: str, *, signed_on: date,
               version: str) -> ControlPerson:
    person = get_person(session, person_id)
    if signed_on > utcnow().date():
        raise InvalidInput.on("signed_on", "cannot be in the future")
    person.nda_signed_on = signed_on
    person.nda_version = _text("version", version, 40)
    _audit(session, by, "control.person.nda", f"control_person:{person.id}",
           signed_on=signed_on.isoformat(), version=person.nda_version)
    return person


def record_training(session: Session, by: By, person_id: str, *, name: str,
                    completed_on: date) -> ControlTraining:
    person = get_person(session, person_id)
    if completed_on > utcnow().date():
        raise InvalidInput.on("completed_on", "cannot be in the future")
    row = ControlTraining(person_id=person.id, name=_text("name", name, 200),
                          completed_on=completed_on)
    session.add(row)
    session.flush()
    _audit(session, by, "control.person.training", f"control_person:{person.id}",
           training=row.name, completed_on=completed_on.isoformat())
    return row


def end_person(session: Session, by: By, person_id: str, *, ended_on: date) -> ControlPerson:
    """The person's access ends on ``ended_on``. A supplier's staff member's name is shredded
    that day (now, when the day has come; else by the worker, ``shred_ended_names``): what stays
    as evidence is the supplier, the function and the agreements' dates."""
    person = get_person(session, person_id)
    person.ended_on = ended_on
    _audit(session, by, "control.person.end", f"control_person:{person.id}",
           ended_on=ended_on.isoformat())
    if ended_on <= utcnow().date():
        _shred_name(session, by, person)
    return person


def _shred_name(session: Session, by: By, person: ControlPerson) -> None:
    if person.user_id is not None or person.key_id is None:
        return
    keyring().shred(session, person.key_id)
    person.key_id, person.name = None, None
    _audit(session, by, "control.person.name_shredded", f"control_person:{person.id}",
           ended_on=person.ended_on.isoformat() if person.ended_on else None)


def shred_ended_names(database: Database, *, today: date | None = None) -> int:
    """Shred the names of supplier staff whose access has ended (``end_person`` with a later
    day); each in the transaction that records it. Returns how many were shredded."""
    today = today or utcnow().date()
    with database.transaction(Scope.system("control: find the vendor")) as session:
        vendor = accounts.vendor_org(session)
        if vendor is None:
            return 0
        vendor_id = vendor.id
    with database.transaction(Scope.tenant(vendor_id)) as session:
        due = list(session.scalars(select(ControlPerson).where(
            ControlPerson.user_id.is_(None), ControlPerson.key_id.is_not(None),
            ControlPerson.ended_on.is_not(None), ControlPerson.ended_on <= today)))
        for person in due:
            _shred_name(session, By(vendor_id), person)
        return len(due)


@dataclass
class PersonRow:
    """One line of the personnel list, vendor staff and supplier staff alike."""

    person_id: str | None
    user_id: str | None
    name: str
    email: str | None
    organisation: str
    kind: str  # vendor | supplier
    role: str | None
    function: str
    sensitive_access: bool
    nda_signed_on: date | None
    nda_version: str | None
    trainings: list[tuple[str, date]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"person_id": self.person_id, "user_id": self.user_id, "name": self.name,
                "email": self.email, "organisation": self.organisation, "kind": self.kind,
                "role": self.role, "function": self.function,
                "sensitive_access": self.sensitive_access,
                "nda_signed_on": self.nda_signed_on.isoformat() if self.nda_signed_on else None,
                "nda_version": self.nda_version,
                "trainings": [{"name": n, "completed_on": d.isoformat()} for n, d in self.trainings],
                "missing": self.missing}


def _missing(person: ControlPerson | None, trainings: list[tuple[str, date]], today: date) -> list[str]:
    found = []
    if person is None or person.nda_signed_on is None:
        found.append("confidentiality_agreement")
    year_ago = today - timedelta(days=365)
    done = {n.strip().lower() for n, d in trainings if d >= year_ago}
    found += [f"training:{t}" for t in REQUIRED_TRAININGS if t.lower() not in done]
    return found


def personnel(session: Session, *, today: date | None = None,
              sensitive_only: bool = False) -> list[PersonRow]:
    """Every vendor staff member (from the accounts) and every supplier staff member still with
    access, with confidentiality agreement, trainings and what is missing."""
    today = today or utcnow().date()
    people = list(session.scalars(select(ControlPerson)))
    by_user = {p.user_id: p for p in people if p.user_id}
    trainings: dict[str, list[tuple[str, date]]] = {}
    for t in session.scalars(select(ControlTraining).order_by(ControlTraining.completed_on)):
        trainings.setdefault(t.person_id, []).append((t.name, t.completed_on))
    vendor = accounts.get_organisation(session, _scope_org(session))
    rows = []
    for user, membership in staff(session):
        if user.disabled_at is not None:
            continue
        person = by_user.get(user.id)
        if person is not None and person.ended_on is not None and person.ended_on <= today:
            continue
        done = trainings.get(person.id, []) if person else []
        rows.append(PersonRow(
            person.id if person else None, user.id, user.name.value or "", user.email.value,
            vendor.name, "vendor", membership.role, person.function if person else "",
            person.sensitive_access if person else True,
            person.nda_signed_on if person else None, person.nda_version if person else None,
            done, _missing(person, done, today)))
    for person in people:
        if person.user_id or (person.ended_on is not None and person.ended_on <= today):
            continue
        done = trainings.get(person.id, [])
        rows.append(PersonRow(
            person.id, None, (person.name.value if person.name else None) or "", None,
            person.supplier or "", "supplier", None, person.function, person.sensitive_access,
            person.nda_signed_on, person.nda_version, done, _missing(person, done, today)))
    if sensitive_only:
        rows = [r for r in rows if r.sensitive_access]
    return rows


def _scope_org(session: Session) -> str:
    scope = session.info.get("scope")
    org = getattr(scope, "org_id", None)
    if not org:
        raise RuntimeError("the personnel list needs the vendor's scope")
    return str(org)


EXPORT_COLUMNS = ("name", "email", "organisation", "kind", "role", "function", "nda_signed_on",
                  "nda_version", "trainings", "missing")


def export_personnel(session: Session, by: By, fmt: str) -> tuple[str, str]:
    """The people with access to sensitive data, for a customer's audit: (text, media type)."""
    fmt = _choice("format", fmt, ("csv", "json"))
    rows = personnel(session, sensitive_only=True)
    _audit(session, by, "control.personnel.export", "control_person:*", format=fmt,
           count=len(rows))
    if fmt == "json":
        return (json.dumps({"generated_at": utcnow().isoformat(),
                            "people": [r.as_dict() for r in rows]}, ensure_ascii=False, indent=2),
                "application/json")
    import csv
    import io


    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(EXPORT_COLUMNS)
    for r in rows:
        d = r.as_dict()
        d["trainings"] = "; ".join(f"{t['name']} ({t['completed_on']})" for t in d["trainings"])
        d["missing"] = "; ".join(d["missing"])
        writer.writerow([safe_cell(d[c] if d[c] is not None else "") for c in EXPORT_COLUMNS])
    return buf.getvalue(), "text/csv; charset=utf-8"


# -- media sanitisation --------------------------------------------------------------------------


def log_media(session: Session, by: By, *, device: str, serial: str, method: str, done_on: date,
              done_by: str, witness: str, note: str = "") -> ControlMedia:
    """One wiped or destroyed medium; the witness is another member of the staff."""
    _staff_member(session, "done_by", done_by)
    _staff_member(session, "witness", witness)
    if witness == done_by:
        raise InvalidInput.on("witness", "must be another person than the one who did it")
    if done_on > utcnow().date():
        raise InvalidInput.on("done_on", "cannot be in the future")
    row = ControlMedia(device=_text("device", device, 200), serial=_text("serial", serial, 100),
                       method=_choice("method", method, MEDIA_METHODS), done_on=done_on,
                       done_by=done_by, witness=witness,
                       note=_text("note", note, 2000, required=False), recorded_by=by.user_id)
    session.add(row)
    session.flush()
    _audit(session, by, "control.media.log", f"control_media:{row.id}", serial=row.serial,
           method=method)
    return row


def list_media(session: Session) -> list[ControlMedia]:
    return list(session.scalars(select(ControlMedia).order_by(ControlMedia.done_on.desc(),
                                                              ControlMedia.created_at.desc())))


# -- reminders (the worker) ----------------------------------------------------------------------


REMINDER_SUBJECT = {
    "soon": N_("Control task due soon: %(title)s"),
    "overdue": N_("Control task overdue: %(title)s"),
}
REMINDER_BODY = N_("The control task \"%(title)s\" was due %(due)s.\n\nOpen it in the console: "
                   "%(link)s\n")
REMINDER_BODY_SOON = N_("The control task \"%(title)s\" is due %(due)s.\n\nOpen it in the "
                        "console: %(link)s\n")


# -- retention ("internal-control": five years after each record's own end) --------------------


def expire_records(session: Session, *, before: datetime, limit: int,
                   held: set[str] | None = None, dry_run: bool = False) -> list[str]:
    """Retention of the internal control's history: what ended before ``before`` (five years
    ago) is deleted, at most ``limit`` records per call, oldest first; what is still in use
    (open tasks, risks, DPIAs, people with access, mappings) is kept. A record ends:

    * a closed task (``closed_at``): with its completions, evidence, reminders and mappings;
    * a completion (``completed_at``): with the evidence tied to it;
    * an evidence entry whose content was deleted (``deleted_at``);
    * a reminder, on its due date;
    * a change request implemented (``implemented_at``) or rejected (``decided_at``): with its
      history;
    * a person whose access ended (``ended_on``): with their trainings, their data key destroyed;
    * a media sanitisation entry (``done_on``).

    ``held``: ids under a legal hold (a task's id holds its completions and evidence; a person's
    account id holds the person). Returns ``kind:id`` of every record taken (or, ``dry_run``,
    that would be). One transaction: the caller's."""
    from sqlalchemy import delete, or_

    held = held or set()
    day = before.date()
    out: list[str] = []

    def room() -> int:
        return limit - len(out)

    def take(kind: str, stmt: Any, keep: Any) -> list[str]:
        if room() <= 0:
            return []
        rows = session.execute(stmt.limit(room() + len(held))).all()
        ids = [r[0] for r in rows if not keep(r)][: room()]
        out.extend(f"{kind}:{i}" for i in ids)
        return ids

    tasks = take("task", select(ControlTask.id).where(
        ControlTask.closed_at.is_not(None), ControlTask.closed_at < before)
        .order_by(ControlTask.closed_at, ControlTask.id), lambda r: r[0] in held)
    completions = take("completion", select(
        ControlCompletion.id, ControlCompletion.task_id).where(
        ControlCompletion.completed_at < before, ControlCompletion.task_id.not_in(tasks or [""]))
        .order_by(ControlCompletion.completed_at, ControlCompletion.id),
        lambda r: r[0] in held or r[1] in held)
    evidence = take("evidence", select(
        ControlEvidence.id, ControlEvidence.task_id, ControlEvidence.completion_id).where(
        ControlEvidence.deleted_at.is_not(None), ControlEvidence.deleted_at < before,
        ControlEvidence.task_id.not_in(tasks or [""]))
        .order_by(ControlEvidence.deleted_at, ControlEvidence.id),
        lambda r: held & {r[0], r[1], r[2]})
    reminders = take("reminder", select(ControlReminder.id, ControlReminder.task_id).where(
        ControlReminder.due_on < day, ControlReminder.task_id.not_in(tasks or [""]))
        .order_by(ControlReminder.due_on, ControlReminder.id), lambda r: held & {r[0], r[1]})
    changes = take("change", select(ControlChange.id).where(or_(
        and_(ControlChange.status == "implemented", ControlChange.implemented_at < before),
        and_(ControlChange.status == "rejected", ControlChange.decided_at < before)))
        .order_by(ControlChange.created_at, ControlChange.id), lambda r: r[0] in held)
    people = take("person", select(ControlPerson.id, ControlPerson.user_id).where(
        ControlPerson.ended_on.is_not(None), ControlPerson.ended_on < day)
        .order_by(ControlPerson.ended_on, ControlPerson.id), lambda r: held & {r[0], r[1]})
    media = take("media", select(ControlMedia.id).where(ControlMedia.done_on < day)
                 .order_by(ControlMedia.done_on, ControlMedia.id), lambda r: r[0] in held)
    if dry_run or not out:
        return out
    if tasks:
        for model in (ControlEvidence, ControlCompletion, ControlReminder, ControlMapping):
            session.execute(delete(model).where(model.task_id.in_(tasks)))
        session.execute(delete(ControlTask).where(ControlTask.id.in_(tasks)))
    if completions:
        session.execute(delete(ControlEvidence).where(
            ControlEvidence.completion_id.in_(completions)))
        session.execute(delete(ControlCompletion).where(ControlCompletion.id.in_(completions)))
    if evidence:
        session.execute(delete(ControlEvidence).where(ControlEvidence.id.in_(evidence)))
    if reminders:
        session.execute(delete(ControlReminder).where(ControlReminder.id.in_(reminders)))
    if changes:
        session.execute(delete(ControlChangeEvent).where(ControlChangeEvent.change_id.in_(changes)))
        session.execute(delete(ControlChange).where(ControlChange.id.in_(changes)))
    if people:
        for key_id in session.scalars(select(ControlPerson.key_id).where(
                ControlPerson.id.in_(people), ControlPerson.key_id.is_not(None))):
            keyring().shred(session, str(key_id))
        session.execute(delete(ControlTraining).where(ControlTraining.person_id.in_(people)))
        session.execute(delete(ControlPerson).where(ControlPerson.id.in_(people)))
    if media:
        session.execute(delete(ControlMedia).where(ControlMedia.id.in_(media)))
    counts = {k: n for k, n in (("tasks", tasks), ("completions", completions),
                                ("evidence", evidence), ("reminders", reminders),
                                ("changes", changes), ("people", people), ("media", media)) if n}
    record(session, "control.expired", org_id=None,
           details={"new": {k: len(v) for k, v in counts.items()}
                    | {"before": before.isoformat()}})
    return out


def send_reminders(database: Database, *, base_url: str = "", today: date | None = None) -> int:
    """Queue a mail to the owner of each task due within a week (once per due date) and of each
    overdue task (once per due date). The reminder row and the mail are written in one
    transaction, so a restart never sends one twice and never loses one."""

    today = today or utcnow().date()
    with database.transaction(Scope.system("control reminders: find the vendor")) as session:
        vendor = accounts.vendor_org(session)
        if vendor is None:
            return 0
        vendor_id = vendor.id
    soon_until = today + timedelta(days=REMIND_BEFORE_DAYS)
    with database.transaction(Scope.tenant(vendor_id)) as session:
        due = [(t.id, t.due_on) for t in session.scalars(select(ControlTask).where(
            ControlTask.closed_at.is_(None), ControlTask.due_on <= soon_until))]
        sent = {(r.task_id, r.due_on, r.kind) for r in session.scalars(
            select(ControlReminder).where(ControlReminder.due_on <= soon_until))}
    queued = 0
    for task_id, due_on in due:
        if due_on is None:
            continue
        kind = "overdue" if due_on < today else "soon"
        if (task_id, due_on, kind) in sent:
            continue
        try:
            with database.transaction(Scope.tenant(vendor_id)) as session:
                task = session.get(ControlTask, task_id)
                if task is None or task.due_on != due_on or task.closed_at is not None:
                    continue
                session.add(ControlReminder(task_id=task.id, due_on=due_on, kind=kind))
                session.flush()
                for user in _recipients(session, task):
                    locale = user.locale or "nb"
                    title = gettext(locale, task.title)
                    params = {"title": title, "due": format_day(due_on, locale),
                              "link": f"{base_url}/console/control/tasks/{task.id}"}
                    body = REMINDER_BODY if kind == "overdue" else REMINDER_BODY_SOON
                    notify.queue(session, key_id=user.key_id, to=user.email.value,
                                 subject=gettext(locale, REMINDER_SUBJECT[kind], **params),
                                 body=gettext(locale, body, **params),
                                 kind=f"control.{kind}", org_id=None)
                record(session, "control.task.remind", org_id=vendor_id,
                       resource=f"control_task:{task.id}",
                       details={"kind": kind, "due_on": due_on.isoformat()})
                queued += 1
        except IntegrityError:
            continue  # another worker queued this one first
    return queued


def _recipients(session: Session, task: ControlTask) -> list[Any]:
    members = [(u, m) for u, m in staff(session) if u.disabled_at is None and u.email.value]
    owner = [u for u, _m in members if u.id == task.owner_user_id]
    if owner:
        return owner
    return [u for u, m in members if m.role == Role.SECURITY_OFFICER.value]


# -- views -------------------------------------------------------------------------------------


def task_view(task: ControlTask, today: date) -> dict[str, Any]:
    return {
        "id": task.id, "key": task.key, "title": task.title, "description": task.description,
        "owner_user_id": task.owner_user_id, "recurrence": task.recurrence,
        "due_on": task.due_on.isoformat() if task.due_on else None,
        "overdue": is_overdue(task, today),
        "closed_at": task.closed_at.isoformat() if task.closed_at else None,
    }


def evidence_view(ev: ControlEvidence) -> dict[str, Any]:
    return {
        "id": ev.id, "task_id": ev.task_id, "completion_id": ev.completion_id, "kind": ev.kind,
        "title": ev.title, "url": ev.url, "record_kind": ev.record_kind,
        "record_ref": ev.record_ref, "filename": ev.filename, "content_type": ev.content_type,
        "size": ev.size, "sha256": ev.sha256, "added_by": ev.added_by,
        "added_at": ev.added_at.isoformat(),
        "delete_requested_by": ev.delete_requested_by,
        "delete_reason": ev.delete_reason,
        "deleted_at": ev.deleted_at.isoformat() if ev.deleted_at else None,
        "deleted_by": ev.deleted_by,
    }


def media_view(row: ControlMedia) -> dict[str, Any]:
    return {"id": row.id, "device": row.device, "serial": row.serial, "method": row.method,
            "done_on": row.done_on.isoformat(), "done_by": row.done_by, "witness": row.witness,
            "note": row.note, "recorded_by": row.recorded_by}


def overdue_count(session: Session, today: date) -> int:
    return int(session.scalar(select(func.count()).select_from(ControlTask).where(
        ControlTask.closed_at.is_(None), ControlTask.due_on < today)) or 0)


def as_date(name: str, value: str | date | None) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        raise InvalidInput.on(name, "must be a date (YYYY-MM-DD)") from None


def now_day(now: datetime | None = None) -> date:
    return (now or utcnow()).date()
