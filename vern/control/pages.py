"""Internal control's console pages, ``/console/control/…`` (discovered through
``vern.control.routes``): tasks with their evidence, frameworks, risks, DPIAs, change requests,
personnel and the media log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from vern.accounts.deps import TenantDB
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.console.templating import pick_locale, render
from vern.control import service
from vern.control.catalogue import frameworks
from vern.control.service import By
from vern.control.web import (
    Manager,
    Reader,
    Worker,
    dpia_document,
    file_response,
    read_upload,
    utc_today,
)
from vern.core.errors import InvalidInput

pages = APIRouter(include_in_schema=False)
NAV = [("/console/control", "Internal control", Perm.CONTROL_READ)]


def _back(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


@pages.get("/console/control")
def console_index(request: Request, actor: Reader, db: TenantDB) -> Response:
    today = utc_today()
    tasks = service.list_tasks(db, today=today)
    return render(request, "control/index.html", {
        "tasks": tasks, "today": today, "names": service.staff_names(db),
        "overdue": [t for t in tasks if service.is_overdue(t, today)],
        "deletions": service.pending_deletions(db),
        "pending_changes": service.list_changes(db, "pending"),
        "frameworks": list(frameworks().values()),
        "can_manage": actor.can(Perm.CONTROL_MANAGE),
    })


@pages.post("/console/control/seed")
def console_seed(request: Request, actor: Manager, db: TenantDB) -> Response:
    if actor.user_id is None:  # pragma: no cover - the console is always a person
        raise InvalidInput.on("owner_user_id", "is required")
    service.seed(db, By.of(actor), owner_user_id=actor.user_id, today=utc_today())
    return _back("/console/control")


@pages.get("/console/control/tasks/{control_task}")
def console_task(request: Request, control_task: str, actor: Reader, db: TenantDB) -> Response:
    today = utc_today()
    task = service.get_task(db, control_task)
    return render(request, "control/task.html", {
        "task": task, "today": today, "overdue": service.is_overdue(task, today),
        "completions": service.completions(db, task.id),
        "evidence": service.evidence_of(db, task.id, deleted=True),
        "mappings": service.mappings_of(db, task.id), "names": service.staff_names(db),
        "can_work": actor.can(Perm.CONTROL_WORK), "can_manage": actor.can(Perm.CONTROL_MANAGE),
        "record_kinds": service.RECORD_KINDS, "me": actor.user_id,
    })


@pages.post("/console/control/tasks/{control_task}/complete")
async def console_complete(
    request: Request, control_task: str, *, actor: Worker, db: TenantDB,
    note: Annotated[str, Form(max_length=5000)] = "",
    link: Annotated[str, Form(max_length=2000)] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Complete the task, with the evidence given in the same form (a file and/or a link)."""
    by = By.of(actor)
    if file is not None and file.filename:
        data = await read_upload(file)
        service.add_file(db, by, control_task, title=file.filename, filename=file.filename,
                         content_type=file.content_type or "", data=data)
    if link.strip():
        service.add_link(db, by, control_task, title=link.strip()[:200], url=link)
    service.complete_task(db, by, control_task, note=note)
    return _back(f"/console/control/tasks/{control_task}")


@pages.post("/console/control/tasks/{control_task}/evidence")
async def console_evidence(
    request: Request, control_task: str, *, actor: Worker, db: TenantDB,
    title: Annotated[str, Form(max_length=200)] = "",
    link: Annotated[str, Form(max_length=2000)] = "",
    record_kind: Annotated[str, Form(max_length=40)] = "",
    record_ref: Annotated[str, Form(max_length=200)] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Add evidence without completing the task: a file, a link or a record in Vern."""
    by = By.of(actor)
    if file is not None and file.filename:
        data = await read_upload(file)
        service.add_file(db, by, control_task, title=title or file.filename,
                         filename=file.filename, content_type=file.content_type or "", data=data)
    elif link.strip():
        service.add_link(db, by, control_task, title=title or link.strip()[:200], url=link)
    elif record_ref.strip():
        service.add_record(db, by, control_task, title=title or record_ref.strip(),
                           record_kind=record_kind, record_ref=record_ref)
    else:
        raise InvalidInput.on("file", "give a file, a link or a record")
    return _back(f"/console/control/tasks/{control_task}")


@pages.get("/console/control/download/evidence/{control_evidence}")
def console_evidence_file(control_evidence: str, actor: Reader, db: TenantDB) -> Response:
    return file_response(db, actor, control_evidence)


@pages.post("/console/control/evidence/{control_evidence}/delete-request")
def console_delete_request(control_evidence: str, actor: Manager, db: TenantDB,
                           reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    ev = service.request_deletion(db, By.of(actor), control_evidence, reason=reason)
    return _back(f"/console/control/tasks/{ev.task_id}")


@pages.post("/console/control/evidence/{control_evidence}/delete-approve")
def console_delete_approve(control_evidence: str, actor: Manager, db: TenantDB) -> Response:
    ev = service.approve_deletion(db, By.of(actor), control_evidence)
    return _back(f"/console/control/tasks/{ev.task_id}")


@pages.post("/console/control/evidence/{control_evidence}/delete-refuse")
def console_delete_refuse(control_evidence: str, actor: Manager, db: TenantDB) -> Response:
    ev = service.refuse_deletion(db, By.of(actor), control_evidence)
    return _back(f"/console/control/tasks/{ev.task_id}")


@pages.get("/console/control/frameworks/{control_framework}")
def console_framework(request: Request, control_framework: str, actor: Reader,
                      db: TenantDB) -> Response:
    """The auditor's view of one framework."""
    return render(request, "control/framework.html", {
        "coverage": service.coverage(db, control_framework, pick_locale(request))})


@pages.get("/console/control/risks")
def console_risks(request: Request, actor: Reader, db: TenantDB) -> Response:
    return render(request, "control/risks.html", {
        "risks": [service.risk_view(db, r) for r in service.list_risks(db)],
        "dpias": service.list_dpias(db), "threats": service.THREATS,
        "can_manage": actor.can(Perm.CONTROL_MANAGE)})


@pages.post("/console/control/risks")
def console_create_risk(
    *, actor: Manager, db: TenantDB, asset: Annotated[str, Form(max_length=200)],
    threat: Annotated[str, Form(max_length=32)],
    likelihood_before: Annotated[int, Form()], consequence_before: Annotated[int, Form()],
    description: Annotated[str, Form(max_length=5000)] = "",
    measure: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    by = By.of(actor)
    risk = service.create_risk(db, by, asset=asset, threat=threat, description=description,
                               likelihood_before=likelihood_before,
                               consequence_before=consequence_before)
    if measure.strip():
        service.add_measure(db, by, risk.id, text=measure)
    return _back("/console/control/risks")


@pages.get("/console/control/dpias/{control_dpia}")
def console_dpia(request: Request, control_dpia: str, actor: Reader, db: TenantDB) -> Response:
    return dpia_document(request, db, control_dpia, None)


@pages.post("/console/control/dpias")
def console_create_dpia(*, actor: Manager, db: TenantDB,
                        processing: Annotated[str, Form(max_length=200)]) -> Response:
    """A new DPIA for a processing, opened for writing."""
    dpia = service.create_dpia(db, By.of(actor), processing=processing)
    return _back(f"/console/control/dpias/{dpia.id}/edit")


@pages.get("/console/control/dpias/{control_dpia}/edit")
def console_edit_dpia(request: Request, control_dpia: str, actor: Manager, db: TenantDB) -> Response:
    """The DPIA's newest version as a form in the CNIL PIA structure; saving makes a new version."""
    return render(request, "control/dpia_edit.html", {
        "dpia": service.dpia_export(db, control_dpia), "sections": service.DPIA_SECTIONS,
        "threats": service.THREATS, "decisions": service.DPIA_DECISIONS})


@pages.post("/console/control/dpias/{control_dpia}")
async def console_save_dpia(request: Request, control_dpia: str, actor: Manager,
                            db: TenantDB) -> Response:
    form = await request.form()
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    service.save_dpia(db, By.of(actor), control_dpia, service.dpia_from_form(values))
    return _back(f"/console/control/dpias/{control_dpia}")


@pages.get("/console/control/changes")
def console_changes(request: Request, actor: Reader, db: TenantDB) -> Response:
    return render(request, "control/changes.html", {
        "changes": service.list_changes(db), "names": service.staff_names(db),
        "can_manage": actor.can(Perm.CONTROL_MANAGE)})


@pages.post("/console/control/changes")
def console_create_change(
    *, actor: Manager, db: TenantDB, title: Annotated[str, Form(max_length=200)],
    description: Annotated[str, Form(max_length=10000)], risk: Annotated[str, Form(max_length=5000)],
    rollback: Annotated[str, Form(max_length=5000)],
) -> Response:
    change = service.create_change(db, By.of(actor), title=title, description=description,
                                   risk=risk, rollback=rollback)
    return _back(f"/console/control/changes/{change.id}")


@pages.get("/console/control/changes/{control_change}")
def console_change(request: Request, control_change: str, actor: Reader, db: TenantDB) -> Response:
    change = service.get_change(db, control_change)
    return render(request, "control/change.html", {
        "change": change, "history": service.change_history(db, change.id),
        "names": service.staff_names(db), "me": actor.user_id,
        "can_manage": actor.can(Perm.CONTROL_MANAGE)})


def _decide(db: TenantDB, actor: Actor, change_id: str, decision: str, note: str) -> Response:
    by = By.of(actor)
    if decision == "implement":
        service.implement_change(db, by, change_id, note=note)
    else:
        service.decide_change(db, by, change_id, approve=decision == "approve", note=note)
    return _back(f"/console/control/changes/{change_id}")


@pages.post("/console/control/changes/{control_change}/approve")
def console_approve(control_change: str, actor: Manager, db: TenantDB,
                    note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    return _decide(db, actor, control_change, "approve", note)


@pages.post("/console/control/changes/{control_change}/reject")
def console_reject(control_change: str, actor: Manager, db: TenantDB,
                   note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    return _decide(db, actor, control_change, "reject", note)


@pages.post("/console/control/changes/{control_change}/implement")
def console_implement(control_change: str, actor: Manager, db: TenantDB,
                      note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    return _decide(db, actor, control_change, "implement", note)


@pages.get("/console/control/personnel")
def console_personnel(request: Request, actor: Reader, db: TenantDB) -> Response:
    return render(request, "control/personnel.html", {
        "people": service.personnel(db), "can_manage": actor.can(Perm.CONTROL_MANAGE)})


@pages.post("/console/control/personnel")
def console_personnel_post(
    *, actor: Manager, db: TenantDB,
    user_id: Annotated[str, Form(max_length=36)] = "",
    person_id: Annotated[str, Form(max_length=36)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    supplier: Annotated[str, Form(max_length=200)] = "",
    function: Annotated[str, Form(max_length=200)] = "",
    nda_signed_on: Annotated[str, Form(max_length=10)] = "",
    nda_version: Annotated[str, Form(max_length=40)] = "",
    training: Annotated[str, Form(max_length=200)] = "",
    training_on: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Add a supplier's staff member, or record a confidentiality agreement or a training."""
    by = By.of(actor)
    if user_id:
        person = service.person_for_user(db, by, user_id)
    elif person_id:
        person = service.get_person(db, person_id)
    else:
        person = service.add_person(db, by, name=name, supplier=supplier, function=function)
    if nda_signed_on or nda_version:
        service.record_nda(db, by, person.id, signed_on=service.as_date("nda_signed_on",
                                                                        nda_signed_on),
                           version=nda_version)
    if training.strip():
        service.record_training(db, by, person.id, name=training,
                                completed_on=service.as_date("training_on", training_on))
    return _back("/console/control/personnel")


@pages.get("/console/control/media")
def console_media(request: Request, actor: Reader, db: TenantDB) -> Response:
    return render(request, "control/media.html", {
        "media": service.list_media(db), "names": service.staff_names(db),
        "methods": service.MEDIA_METHODS, "today": utc_today(),
        "can_manage": actor.can(Perm.CONTROL_MANAGE)})


@pages.post("/console/control/media")
def console_media_post(
    *, actor: Manager, db: TenantDB, device: Annotated[str, Form(max_length=200)],
    serial: Annotated[str, Form(max_length=100)], method: Annotated[str, Form(max_length=16)],
    done_on: Annotated[str, Form(max_length=10)], done_by: Annotated[str, Form(max_length=36)],
    witness: Annotated[str, Form(max_length=36)], note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    service.log_media(db, By.of(actor), device=device, serial=serial, method=method,
                      done_on=service.as_date("done_on", done_on), done_by=done_by,
                      witness=witness, note=note)
    return _back("/console/control/media")
