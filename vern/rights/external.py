"""A request's work in the systems of the product map that have no database connection: HTTP
connectors (``vern.rights.http_connector``), manual tasks for a named owner, and notices to the
recipients the data was disclosed to (Art. 19).

The order is: the external systems first, then the product databases (the SQL engine). Before the
engine runs, :func:`prepare` makes one ``rights_external_steps`` row per request, system and
operation (committed before any call is made), calls each HTTP connector (tried again with
backoff; the same idempotency key on every attempt, also after a crash), and mails the owner of
each manual task. A connector that fails leaves the request ``partial`` (the worker retries it
like a database that could not be reached); an unconfirmed manual task leaves it
``awaiting_tasks`` until its owner confirms it (console, API, CLI), when it goes back to the
queue. Only then does the engine run, so a request is never ``done`` while a step is open. The
recipients' notices are queued once the request is ``done`` (:func:`send_notices`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vern.accounts.models import Organisation
from vern.audit.service import record
from vern.core.config import rights_settings
from vern.core.crypto import PII
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import Conflict, FieldError, InvalidInput, NotFound
from vern.core.i18n import N_, gettext
from vern.datamap.model import DataMap, System
from vern.notify import service as notify
from vern.rights import http_connector
from vern.rights.intake import details_of, identities_of
from vern.rights.intake import set_status as _set_status
from vern.rights.models import ExternalStep, Kind, RightsRequest, Status, StepStatus
from vern.rights.policy import policy_for
from vern.rights.run_inputs import request_row_status
from vern.rights.staff_notices import request_link as _request_link

NOTICE_KINDS = (Kind.RECTIFICATION.value, Kind.ERASURE.value, Kind.RESTRICTION.value)
# A running request passed its external steps before it was claimed: only these are prepared.
RUNNABLE = (Status.QUEUED.value, Status.AWAITING_TASKS.value)
NOTE_MAX = 2000

# Mails to a task's owner and to recipients (Art. 19): people outside Vern whose language is not
# known, so each mail carries the catalog's bokmål and English texts one after the other.
TASK_MAIL = (
    N_("Task: a data subject request (%(kind)s) in %(system)s"),
    N_("A request (%(kind)s) must be carried out by hand in %(system)s by %(due)s.\n"
       "%(instructions)s\nConfirm in the console when it is done: %(link)s"),
)
TASK_REMINDER = (
    N_("Reminder: task in %(system)s"),
    N_("The task (%(kind)s) in %(system)s is not confirmed yet, and it is due on %(due)s.\n%(link)s"),
)
NOTICE_MAIL = (
    N_("Notice of %(kind)s"),
    N_("%(org)s has carried out a data subject request (%(kind)s) concerning personal data "
       "disclosed to %(name)s. Please do the same on your side (GDPR Art. 19).\n"
       "Concerns: %(who)s\n%(changes)sReference: %(ref)s"),
)
BOTH = ("nb", "en")


def _both(text: str, separator: str, **params: Any) -> str:
    """``text`` in bokmål and in English, from the catalog; ``kind`` in each language too."""
    kind = params.pop("kind", None)
    return separator.join(
        gettext(lang, text, **params, **({"kind": gettext(lang, kind)} if kind else {}))
        for lang in BOTH
    )


# The connectors' answers to the access requests of the run in progress, by request and system,
# for ``vern.rights.service.build_package`` (set by the service around the engine's run).
ANSWERS: ContextVar[dict[str, dict[str, Any]]] = ContextVar("vern_rights_external_answers", default={})  # noqa: B039 - read only


@dataclass(frozen=True)
class Planned:
    system: str
    via: str  # http | manual | notice
    operation: str
    owner: str | None = None


def steps_for(data_map: DataMap, kind: str) -> list[Planned]:
    """What a request of ``kind`` needs outside SQL, by the map."""
    planned: list[Planned] = []
    for system in data_map.systems.values():
        if system.http is not None and kind in system.http.operations:
            planned.append(Planned(system.name, "http", kind))
        if system.manual is not None and kind in system.manual.operations:
            planned.append(Planned(system.name, "manual", kind, system.manual.owner))
        if kind in NOTICE_KINDS:
            planned.extend(
                Planned(system.name, "notice", f"notice:{r.name}"[:240], r.email)
                for r in system.notify
                if r.email  # a recipient with a system is told by that system's connector
            )
    return planned


def needed(data_map: DataMap) -> bool:
    return bool(data_map.external())


def _payload(session: Session, req: RightsRequest, operation: str) -> dict[str, Any]:

    payload: dict[str, Any] = {
        "request_id": req.id,
        "operation": operation,
        "tenant": policy_for(session, req.org_id).product_tenant_key,
        "identities": identities_of(req),
    }
    details = details_of(req)
    if operation == Kind.RECTIFICATION.value:
        payload["corrections"] = details.get("corrections", {})
    return payload


def _ensure_steps(session: Session, req: RightsRequest, data_map: DataMap) -> list[ExternalStep]:
    existing = {
        (s.system, s.operation): s
        for s in session.scalars(select(ExternalStep).where(ExternalStep.request_id == req.id))
    }
    created: list[ExternalStep] = []
    for p in steps_for(data_map, req.kind):
        if (p.system, p.operation) in existing:
            continue
        step = ExternalStep(
            org_id=req.org_id,
            request_id=req.id,
            system=p.system,
            via=p.via,
            operation=p.operation,
            owner=p.owner,
            idempotency_key=http_connector.idempotency_key(req.id, p.system, p.operation),
            status=StepStatus.PENDING.value,
        )
        session.add(step)
        existing[(p.system, p.operation)] = step
        created.append(step)
        if p.via == "manual":
            _mail_task(session, req, data_map.systems[p.system], TASK_MAIL)
    session.flush()
    for step in created:
        record(
            session,
            "rights.step.create",
            org_id=req.org_id,
            resource=f"rights_request:{req.id}",
            details={"new": {"system": step.system, "via": step.via, "operation": step.operation}},
        )
    return list(existing.values())


def _mail_task(session: Session, req: RightsRequest, system: System, template: tuple[str, str]) -> None:

    assert system.manual is not None
    subject, body = template
    notify.queue(
        session,
        key_id=req.key_id,
        to=system.manual.owner,
        kind="rights.task",
        org_id=req.org_id,
        subject=_both(subject, " / ", kind=req.kind, system=system.title),
        body=_both(body, "\n\n", kind=req.kind, system=system.title,
                   due=req.deadline.date().isoformat(), instructions=system.manual.instructions,
                   link=_request_link(req.id)),
    )


def prepare(
    database: Database,
    data_map: DataMap,
    request_id: str,
    *,
    call: Callable[..., dict[str, Any]] | None = None,
) -> str | None:
    """The external steps of a queued request, before its databases. Returns None when the
    engine may run, else the status the request was left in (``partial``, ``awaiting_tasks``)."""
    if not needed(data_map):
        return None
    try:
        todo = _open_calls(database, data_map, request_id)
    except IntegrityError:  # another runner made the same steps at this moment: it carries on

        return request_row_status(database, request_id)
    if todo is None:
        return None
    failures = _make_calls(database, data_map, todo, call or http_connector.call)
    return _after_calls(database, request_id, failures)


# A connector call still to make: (step id, system, operation, idempotency key, payload).
_Call = tuple[str, str, str, str, dict[str, Any]]


def _open_calls(database: Database, data_map: DataMap, request_id: str) -> list[_Call] | None:
    """Make the request's steps (committed before any call) and return the HTTP calls not yet
    done; None when the request is no longer to be prepared."""
    with database.transaction(Scope.system("rights external steps")) as session:
        req = session.get(RightsRequest, request_id)
        if req is None or req.status not in RUNNABLE:
            return None
        steps = _ensure_steps(session, req, data_map)
        return [
            (s.id, s.system, s.operation, s.idempotency_key, _payload(session, req, s.operation))
            for s in steps
            if s.via == "http" and s.status != StepStatus.DONE.value
        ]


def _make_calls(
    database: Database, data_map: DataMap, todo: list[_Call], call: Callable[..., dict[str, Any]]
) -> list[str]:
    """Call each connector, outside any transaction (calls wait), recording every answer or
    error; returns what failed."""
    failures: list[str] = []
    for step_id, system, operation, key, payload in todo:
        mapped = data_map.systems.get(system)
        connector = mapped.http if mapped is not None else None
        if connector is None:  # the map changed since the step was made
            failures.append(f"{system} (http): no connector in the map")
            continue
        try:
            answer: dict[str, Any] | None = call(connector, operation, payload, key)
            error = None
        except http_connector.ConnectorError as exc:
            answer, error = None, str(exc)
            failures.append(f"{system} (http): {error}")
        _record_call(database, step_id, answer, error)
    return failures


def _after_calls(database: Database, request_id: str, failures: list[str]) -> str | None:
    """Leave the request ``partial`` if a call failed, ``awaiting_tasks`` while a manual task is
    open; otherwise (None) the engine may run - a request that waited goes back to the queue."""
    with database.transaction(Scope.system("rights external steps")) as session:
        req = session.get(RightsRequest, request_id)
        if req is None or req.status not in RUNNABLE:
            return None
        if failures:
            return _leave(session, req, Status.PARTIAL, "not reached: " + "; ".join(failures))
        open_tasks = session.scalars(
            select(ExternalStep.system).where(
                ExternalStep.request_id == req.id,
                ExternalStep.via == "manual",
                ExternalStep.status != StepStatus.DONE.value,
            )
        ).all()
        if open_tasks:
            waiting = "waiting for: " + ", ".join(sorted(open_tasks))
            return _leave(session, req, Status.AWAITING_TASKS, waiting)
        if req.status == Status.AWAITING_TASKS.value:  # nothing left to wait for (the map changed)

            req.error = None
            _set_status(session, req, Status.QUEUED, actor_user_id=None, action="rights.request.resume",
                        extra={"tasks": "none open"})
    return None


def _record_call(database: Database, step_id: str, answer: dict[str, Any] | None, error: str | None) -> None:
    with database.transaction(Scope.system("rights external call")) as session:
        step = session.get(ExternalStep, step_id)
        if step is None:
            return
        req = session.get(RightsRequest, step.request_id)
        step.attempts += 1
        step.updated_at = utcnow()
        if error is None:
            step.status = StepStatus.DONE.value
            step.error = None
            step.done_at = utcnow()
            if answer and req is not None and req.kind in (Kind.ACCESS.value, Kind.PORTABILITY.value):
                step.answer = PII(req.key_id, json.dumps(answer, ensure_ascii=False))
        else:
            step.status = StepStatus.FAILED.value
            step.error = error[:500]
        record(
            session,
            "rights.step.call",
            org_id=step.org_id,
            resource=f"rights_request:{step.request_id}",
            outcome="success" if error is None else "failure",
            details={"new": {"system": step.system, "operation": step.operation, "status": step.status,
                             "attempt": step.attempts, "error": step.error}},
        )


def _leave(session: Session, req: RightsRequest, status: Status, error: str) -> str:

    if status is Status.PARTIAL:
        req.attempts += 1  # counts towards the automatic retries, as a failed database does
        req.heartbeat_at = utcnow()
    if req.status != status.value:
        _set_status(session, req, status, actor_user_id=None, action=f"rights.request.{status.value}",
                    extra={"error": error})
    req.error = error
    return status.value


def answers(database: Database, data_map: DataMap, request_id: str) -> dict[str, Any]:
    """What the HTTP connectors answered to an access request, by system (for the package)."""
    if not any(s.http for s in data_map.systems.values()):
        return {}
    with database.transaction(Scope.system("rights external answers")) as session:
        rows = session.scalars(
            select(ExternalStep).where(
                ExternalStep.request_id == request_id,
                ExternalStep.via == "http",
                ExternalStep.status == StepStatus.DONE.value,
            )
        ).all()
        return {r.system: json.loads(r.answer.value) for r in rows if r.answer and r.answer.value}


# -- manual tasks ------------------------------------------------------------------------------


def list_steps(session: Session, request_id: str) -> list[ExternalStep]:
    return list(
        session.scalars(
            select(ExternalStep)
            .where(ExternalStep.request_id == request_id)
            .order_by(ExternalStep.created_at, ExternalStep.system, ExternalStep.operation)
        )
    )


def step_json(step: ExternalStep) -> dict[str, Any]:
    return {
        "id": step.id,
        "system": step.system,
        "via": step.via,
        "operation": step.operation,
        "status": step.status,
        "owner": step.owner if step.via == "manual" else None,
        "attempts": step.attempts,
        "error": step.error,
        "note": step.note,
        "done_at": step.done_at.isoformat() if step.done_at else None,
    }


def tenant_steps(session: Session, *, open_only: bool = True, limit: int = 500) -> list[ExternalStep]:
    """The steps of the session's tenant (manual tasks and HTTP calls, not notices)."""
    stmt = (
        select(ExternalStep)
        .where(ExternalStep.via != "notice")
        .order_by(ExternalStep.status.desc(), ExternalStep.created_at)
        .limit(limit)
    )
    if open_only:
        stmt = stmt.where(ExternalStep.status != StepStatus.DONE.value)
    return list(session.scalars(stmt))


def task_org(session: Session, step_id: str) -> str:
    org_id = session.scalar(select(ExternalStep.org_id).where(ExternalStep.id == step_id))
    if org_id is None:
        raise NotFound(detail="no such task")
    return str(org_id)


def confirm_task(session: Session, step_id: str, *, note: str, actor_user_id: str | None) -> ExternalStep:
    """The owner (or staff) confirms a manual task with a note. When it was the request's last
    open task, the request goes back to the queue to finish its databases."""

    note = (note or "").strip()
    if not note:
        raise InvalidInput(errors=[FieldError("note", "say what was done")])
    if len(note) > NOTE_MAX:
        raise InvalidInput(errors=[FieldError("note", f"at most {NOTE_MAX} characters")])
    step = session.get(ExternalStep, step_id)
    if step is None or step.via != "manual":
        raise NotFound(detail="no such task")
    if step.status == StepStatus.DONE.value:
        raise Conflict(detail="the task is already confirmed")
    req = session.get(RightsRequest, step.request_id)
    if req is None or req.status in (Status.CANCELLED.value, Status.REJECTED.value):
        raise Conflict(detail="the request is closed")
    step.status = StepStatus.DONE.value
    step.note = note
    step.confirmed_by = actor_user_id
    step.done_at = step.updated_at = utcnow()
    record(
        session,
        "rights.task.confirm",
        org_id=step.org_id,
        actor_user_id=actor_user_id,
        resource=f"rights_request:{step.request_id}",
        details={"new": {"system": step.system, "operation": step.operation, "step": step.id}},
    )
    session.flush()
    still_open = session.scalar(
        select(ExternalStep.id).where(
            ExternalStep.request_id == req.id,
            ExternalStep.via == "manual",
            ExternalStep.status != StepStatus.DONE.value,
        ).limit(1)
    )
    if still_open is None and req.status == Status.AWAITING_TASKS.value:
        req.error = None
        _set_status(session, req, Status.QUEUED, actor_user_id=actor_user_id, action="rights.request.resume",
                    extra={"tasks": "confirmed"})
    return step


def remind_tasks(database: Database, data_map: DataMap | None, *, now: datetime | None = None) -> int:
    """Remind each owner of an unconfirmed task once, when its request's deadline is near."""
    now = now or utcnow()
    horizon = now + timedelta(days=rights_settings().remind_days_before)
    sent = 0
    with database.transaction(Scope.system("rights task reminders")) as session:
        rows = session.execute(
            select(ExternalStep, RightsRequest)
            .join(RightsRequest, RightsRequest.id == ExternalStep.request_id)
            .where(
                ExternalStep.via == "manual",
                ExternalStep.status != StepStatus.DONE.value,
                ExternalStep.reminded_at.is_(None),
                RightsRequest.status == Status.AWAITING_TASKS.value,
            )
            .limit(500)
        ).all()
        for step, req in rows:
            if req.deadline > horizon:
                continue
            system = data_map.systems.get(step.system) if data_map else None
            if system is None or system.manual is None:
                continue
            _mail_task(session, req, system, TASK_REMINDER)
            step.reminded_at = now
            record(session, "rights.task.remind", org_id=step.org_id, resource=f"rights_request:{req.id}",
                   details={"new": {"system": step.system}})
            sent += 1
    return sent


# -- recipients (Art. 19) ------------------------------------------------------------------------


def send_notices(database: Database, data_map: DataMap, request_id: str | None = None) -> int:
    """Queue the notices to recipients of requests that are done (each once: the step is marked
    done in the transaction that queues its mail). ``request_id`` limits it to one request."""
    if not any(s.notify for s in data_map.systems.values()):
        return 0
    sent = 0
    with database.transaction(Scope.system("rights recipient notices")) as session:
        stmt = (
            select(ExternalStep, RightsRequest)
            .join(RightsRequest, RightsRequest.id == ExternalStep.request_id)
            .where(
                ExternalStep.via == "notice",
                ExternalStep.status == StepStatus.PENDING.value,
                RightsRequest.status == Status.DONE.value,
            )
            .limit(500)
        )
        if request_id is not None:
            stmt = stmt.where(ExternalStep.request_id == request_id)

        for step, req in session.execute(stmt).all():
            who = ", ".join(f"{k}: {v}" for k, v in sorted(identities_of(req).items()))
            corrections = details_of(req).get("corrections") or {}
            changes = "".join(f"{k} = {v}\n" for k, v in sorted(corrections.items()))

            org = session.get(Organisation, req.org_id)
            name = step.operation.removeprefix("notice:")
            subject, body = NOTICE_MAIL
            if step.owner:
                notify.queue(
                    session,
                    key_id=req.key_id,
                    to=step.owner,
                    kind="rights.notice",
                    org_id=req.org_id,
                    subject=_both(subject, " / ", kind=req.kind),
                    body=_both(body, "\n\n", kind=req.kind, name=name, org=org.name if org else "",
                               ref=req.id, who=who, changes=changes),
                )
            step.status = StepStatus.DONE.value
            step.done_at = step.updated_at = utcnow()
            record(session, "rights.recipient.notify", org_id=req.org_id, resource=f"rights_request:{req.id}",
                   details={"new": {"recipient": name}})
            sent += 1
    return sent


def recipients_of(data_map: DataMap | None) -> list[str]:
    """Who the data is disclosed to (every system's recipients), for the person."""
    return data_map.recipient_names() if data_map else []
