"""Control tasks mapped to the frameworks' requirements, and what they cover: the auditor's view
per framework and the customer's summary on the trust page.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.control.catalogue import frameworks
from vern.control.common import By, audit, iso
from vern.control.models import ControlCompletion, ControlEvidence, ControlMapping, ControlTask
from vern.control.tasks import get_task, task_resource
from vern.core.errors import InvalidInput, NotFound


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
    audit(session, by, "control.mapping.add", task_resource(task), framework=framework,
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
    audit(session, by, "control.mapping.remove", task_resource(task), framework=framework,
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
                     "due_on": iso(tasks[tid].due_on), "evidence": int(counts.get(tid, 0)),
                     "last_completed_at": iso(last.get(tid))}
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
                      "last_completed_on": iso(last[t.id].date()) if t.id in last else None}
                     for t in tasks],
        "frameworks": framework_rows,
    }
