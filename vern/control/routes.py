"""Internal control: API ``/api/v1/control/…`` and console ``/console/control/…``.

Vendor-only: every route needs a ``control.*`` permission, which only vendor roles hold, and only
in the vendor's own organisation.
"""

from __future__ import annotations

from datetime import date
from html import escape
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from vern.accounts.deps import TenantDB, require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.console.templating import pick_locale, render
from vern.control import service
from vern.control.catalogue import frameworks
from vern.control.service import By
from vern.core.db import utcnow
from vern.core.errors import InvalidInput
from vern.core.inputs import Day

router = APIRouter(tags=["control"])
pages = APIRouter(include_in_schema=False)
NAV = [("/console/control", "Internal control", Perm.CONTROL_READ)]

Reader = Annotated[Actor, Depends(require(Perm.CONTROL_READ))]
Worker = Annotated[Actor, Depends(require(Perm.CONTROL_WORK))]
Manager = Annotated[Actor, Depends(require(Perm.CONTROL_MANAGE))]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _today() -> date:
    return utcnow().date()


# -- API: tasks --------------------------------------------------------------------------------


class TaskBody(Strict):
    title: str = Field(max_length=200)
    recurrence: Literal["yearly", "quarterly", "monthly", "once"]
    due_on: Day
    owner_user_id: str = Field(max_length=36)
    description: str = Field(default="", max_length=5000)


class TaskPatch(Strict):
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    owner_user_id: str | None = Field(default=None, max_length=36)
    recurrence: Literal["yearly", "quarterly", "monthly", "once"] | None = None
    due_on: Day | None = None


class SeedBody(Strict):
    owner_user_id: str | None = Field(default=None, max_length=36)


class CompleteBody(Strict):
    note: str = Field(default="", max_length=5000)


class LinkBody(Strict):
    title: str = Field(max_length=200)
    url: str = Field(max_length=2000)


class RecordBody(Strict):
    title: str = Field(max_length=200)
    record_kind: str = Field(max_length=40)
    record_ref: str = Field(max_length=200)


class ReasonBody(Strict):
    reason: str = Field(max_length=2000)


class MappingBody(Strict):
    framework: str = Field(max_length=40)
    requirement: str = Field(max_length=20)


def _task_detail(db: TenantDB, task_id: str) -> dict[str, Any]:
    task = service.get_task(db, task_id)
    view = service.task_view(task, _today())
    view["completions"] = [
        {"id": c.id, "due_on": c.due_on.isoformat() if c.due_on else None,
         "completed_by": c.completed_by, "completed_at": c.completed_at.isoformat(),
         "note": c.note, "next_due_on": c.next_due_on.isoformat() if c.next_due_on else None}
        for c in service.completions(db, task.id)]
    view["evidence"] = [service.evidence_view(e)
                        for e in service.evidence_of(db, task.id, deleted=True)]
    view["mappings"] = [{"framework": m.framework, "requirement": m.requirement}
                        for m in service.mappings_of(db, task.id)]
    return view


@router.get("/api/v1/control/tasks")
def list_tasks(actor: Reader, db: TenantDB, overdue: bool = False) -> dict[str, object]:
    """Control tasks (open ones by due date, then closed ones); ``overdue=true`` for overdue only."""
    today = _today()
    return {"tasks": [service.task_view(t, today)
                      for t in service.list_tasks(db, overdue_only=overdue, today=today)]}


@router.post("/api/v1/control/tasks", status_code=201)
def create_task(body: TaskBody, actor: Manager, db: TenantDB) -> dict[str, object]:
    """A control task with its owner (a vendor staff account), recurrence and first due date."""
    task = service.create_task(db, By.of(actor), title=body.title, recurrence=body.recurrence,
                               due_on=body.due_on, owner_user_id=body.owner_user_id,
                               description=body.description)
    return service.task_view(task, _today())


@router.post("/api/v1/control/seed")
def seed(body: SeedBody, actor: Manager, db: TenantDB) -> dict[str, object]:
    """Load the catalogue of control tasks (the ones not loaded before), owned by the given
    staff member or the caller."""
    owner = body.owner_user_id or actor.user_id
    if owner is None:
        raise InvalidInput.on("owner_user_id", "is required when an API token seeds")
    made = service.seed(db, By.of(actor), owner_user_id=owner, today=_today())
    return {"created": [service.task_view(t, _today()) for t in made]}


@router.get("/api/v1/control/tasks/{control_task}")
def get_task(control_task: str, actor: Reader, db: TenantDB) -> dict[str, object]:
    """A task with its history of completions, evidence and framework mappings."""
    return _task_detail(db, control_task)


@router.patch("/api/v1/control/tasks/{control_task}")
def update_task(control_task: str, body: TaskPatch, actor: Manager,
                db: TenantDB) -> dict[str, object]:
    """Change a task's title, description, owner, recurrence or next due date."""
    task = service.update_task(db, By.of(actor), control_task, title=body.title,
                               description=body.description, owner_user_id=body.owner_user_id,
                               recurrence=body.recurrence, due_on=body.due_on)
    return service.task_view(task, _today())


@router.post("/api/v1/control/tasks/{control_task}/complete")
def complete_task(control_task: str, body: CompleteBody, actor: Worker,
                  db: TenantDB) -> dict[str, object]:
    """Record a completion; the next due date follows from the recurrence."""
    service.complete_task(db, By.of(actor), control_task, note=body.note)
    return _task_detail(db, control_task)


@router.post("/api/v1/control/tasks/{control_task}/evidence/link", status_code=201)
def add_link(control_task: str, body: LinkBody, actor: Worker, db: TenantDB) -> dict[str, object]:
    """Add a link (http or https) as evidence of the task."""
    return service.evidence_view(service.add_link(db, By.of(actor), control_task,
                                                  title=body.title, url=body.url))


@router.post("/api/v1/control/tasks/{control_task}/evidence/record", status_code=201)
def add_record(control_task: str, body: RecordBody, actor: Worker,
               db: TenantDB) -> dict[str, object]:
    """A reference to a record in Vern (audit checkpoint, request id, change request …)."""
    return service.evidence_view(service.add_record(
        db, By.of(actor), control_task, title=body.title, record_kind=body.record_kind,
        record_ref=body.record_ref))


async def _read_upload(file: UploadFile) -> bytes:
    data = await file.read(service.MAX_EVIDENCE_BYTES + 1)
    if len(data) > service.MAX_EVIDENCE_BYTES:
        raise InvalidInput.on("file", "larger than %(n)s bytes", n=service.MAX_EVIDENCE_BYTES)
    return data


@router.post("/api/v1/control/tasks/{control_task}/evidence/file", status_code=201)
async def add_file(control_task: str, actor: Worker, db: TenantDB,
                   file: Annotated[UploadFile, File()],
                   title: Annotated[str, Form(max_length=200)] = "") -> dict[str, object]:
    """Upload a file as evidence (multipart ``file``; PDF, PNG, JPEG, text, CSV, JSON, DOCX,
    XLSX, ODT; at most 512 KiB; the content must match its type)."""
    data = await _read_upload(file)
    ev = service.add_file(db, By.of(actor), control_task, title=title,
                          filename=file.filename or "", content_type=file.content_type or "",
                          data=data)
    return service.evidence_view(ev)


def _file_response(db: TenantDB, actor: Actor, evidence_id: str) -> Response:
    ev = service.read_file(db, By.of(actor), evidence_id)
    return Response(ev.content, media_type=ev.content_type,
                    headers={"Content-Disposition": f'attachment; filename="{ev.filename}"'})


@router.get("/api/v1/control/evidence/{control_evidence}/file")
def evidence_file(control_evidence: str, actor: Reader, db: TenantDB) -> Response:
    """The uploaded file of a piece of evidence (as an attachment)."""
    return _file_response(db, actor, control_evidence)


@router.post("/api/v1/control/evidence/{control_evidence}/delete-request")
def delete_request(control_evidence: str, body: ReasonBody, actor: Manager,
                   db: TenantDB) -> dict[str, object]:
    """Ask for evidence to be deleted; a second person must approve."""
    return service.evidence_view(service.request_deletion(db, By.of(actor), control_evidence,
                                                          reason=body.reason))


@router.post("/api/v1/control/evidence/{control_evidence}/delete-approve")
def delete_approve(control_evidence: str, actor: Manager, db: TenantDB) -> dict[str, object]:
    """Carry out a requested deletion (not by the person who asked: refused with 403)."""
    return service.evidence_view(service.approve_deletion(db, By.of(actor), control_evidence))


@router.post("/api/v1/control/evidence/{control_evidence}/delete-refuse")
def delete_refuse(control_evidence: str, actor: Manager, db: TenantDB) -> dict[str, object]:
    """Refuse (or, by the asker, withdraw) a requested deletion; the evidence stays."""
    return service.evidence_view(service.refuse_deletion(db, By.of(actor), control_evidence))


@router.post("/api/v1/control/tasks/{control_task}/mappings", status_code=201)
def add_mapping(control_task: str, body: MappingBody, actor: Manager,
                db: TenantDB) -> dict[str, object]:
    """Map a task to a framework requirement (e.g. ``iso27001-2022`` ``5.15``)."""
    m = service.map_task(db, By.of(actor), control_task, framework=body.framework,
                         requirement=body.requirement)
    return {"task_id": m.task_id, "framework": m.framework, "requirement": m.requirement}


@router.post("/api/v1/control/tasks/{control_task}/mappings/remove")
def remove_mapping(control_task: str, body: MappingBody, actor: Manager,
                   db: TenantDB) -> dict[str, object]:
    """Remove a task's mapping to a framework requirement."""
    service.unmap_task(db, By.of(actor), control_task, framework=body.framework,
                       requirement=body.requirement)
    return {"removed": True}


@router.get("/api/v1/control/frameworks")
def list_frameworks(actor: Reader) -> dict[str, object]:
    """The frameworks controls can be mapped to, with their requirements."""
    return {"frameworks": [
        {"key": fw.key, "name": fw.name,
         "requirements": [{"id": r.id, "title": r.title, "title_nb": r.title_nb,
                           "group": r.group, "group_title": r.group_title}
                          for r in fw.requirements]}
        for fw in frameworks().values()]}


@router.get("/api/v1/control/frameworks/{control_framework}")
def framework_coverage(control_framework: str, actor: Reader, db: TenantDB) -> dict[str, object]:
    """The auditor's view: each requirement with the controls and evidence covering it, and the
    uncovered requirements."""
    return service.coverage(db, control_framework)


# -- API: risks and DPIAs ------------------------------------------------------------------------

Threat = Literal["illegitimate_access", "unwanted_change", "disappearance"]


class RiskBody(Strict):
    asset: str = Field(max_length=200)
    threat: Threat
    description: str = Field(default="", max_length=5000)
    likelihood_before: int
    consequence_before: int
    likelihood_after: int | None = None
    consequence_after: int | None = None
    owner_user_id: str | None = Field(default=None, max_length=36)


class RiskPatch(Strict):
    asset: str | None = Field(default=None, max_length=200)
    threat: Threat | None = None
    description: str | None = Field(default=None, max_length=5000)
    likelihood_before: int | None = None
    consequence_before: int | None = None
    likelihood_after: int | None = None
    consequence_after: int | None = None
    owner_user_id: str | None = Field(default=None, max_length=36)


class MeasureBody(Strict):
    text: str = Field(max_length=2000)
    owner_user_id: str | None = Field(default=None, max_length=36)
    status: Literal["planned", "in_progress", "done"] = "planned"


class MeasurePatch(Strict):
    status: Literal["planned", "in_progress", "done"]


@router.get("/api/v1/control/risks")
def list_risks(actor: Reader, db: TenantDB) -> dict[str, object]:
    """The risk register, highest score before measures first."""
    return {"risks": [service.risk_view(db, r) for r in service.list_risks(db)]}


@router.post("/api/v1/control/risks", status_code=201)
def create_risk(body: RiskBody, actor: Manager, db: TenantDB) -> dict[str, object]:
    """Register a risk: asset or processing, threat, likelihood and consequence (1-4 each)
    before and, optionally, after measures."""
    risk = service.create_risk(db, By.of(actor), **body.model_dump())
    return service.risk_view(db, risk)


@router.get("/api/v1/control/risks/{control_risk}")
def get_risk(control_risk: str, actor: Reader, db: TenantDB) -> dict[str, object]:
    """One risk with its scores before and after measures, and its measures."""
    return service.risk_view(db, service.get_risk(db, control_risk))


@router.patch("/api/v1/control/risks/{control_risk}")
def update_risk(control_risk: str, body: RiskPatch, actor: Manager,
                db: TenantDB) -> dict[str, object]:
    """Change a risk's description, threat, scores or owner."""
    risk = service.update_risk(db, By.of(actor), control_risk, **body.model_dump())
    return service.risk_view(db, risk)


@router.post("/api/v1/control/risks/{control_risk}/measures", status_code=201)
def add_measure(control_risk: str, body: MeasureBody, actor: Manager,
                db: TenantDB) -> dict[str, object]:
    """Add a measure against the risk, with owner and status."""
    service.add_measure(db, By.of(actor), control_risk, text=body.text,
                        owner_user_id=body.owner_user_id, status=body.status)
    return service.risk_view(db, service.get_risk(db, control_risk))


@router.patch("/api/v1/control/measures/{control_measure}")
def update_measure(control_measure: str, body: MeasurePatch, actor: Manager,
                   db: TenantDB) -> dict[str, object]:
    """Set a measure's status (planned, in_progress, done)."""
    m = service.set_measure_status(db, By.of(actor), control_measure, body.status)
    return service.risk_view(db, service.get_risk(db, m.risk_id))


class DpiaBody(Strict):
    processing: str = Field(max_length=200)
    content: dict[str, Any] = Field(default_factory=dict)


class DpiaSave(Strict):
    content: dict[str, Any]


@router.get("/api/v1/control/dpias")
def list_dpias(actor: Reader, db: TenantDB) -> dict[str, object]:
    """The DPIAs, one per processing."""
    return {"dpias": [{"id": d.id, "processing": d.processing,
                       "created_at": d.created_at.isoformat()} for d in service.list_dpias(db)]}


@router.post("/api/v1/control/dpias", status_code=201)
def create_dpia(body: DpiaBody, actor: Manager, db: TenantDB) -> dict[str, object]:
    """A DPIA of one processing (CNIL PIA structure: context, principles, risks, validation)."""
    dpia = service.create_dpia(db, By.of(actor), processing=body.processing, content=body.content)
    return service.dpia_export(db, dpia.id)


@router.get("/api/v1/control/dpias/{control_dpia}")
def get_dpia(control_dpia: str, actor: Reader, db: TenantDB,
             version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None) -> dict[str, object]:
    """The DPIA as JSON (the latest version, or ``version``)."""
    return service.dpia_export(db, control_dpia, version)


@router.put("/api/v1/control/dpias/{control_dpia}")
def save_dpia(control_dpia: str, body: DpiaSave, actor: Manager, db: TenantDB) -> dict[str, object]:
    """Save a new version of the DPIA; earlier versions are kept."""
    service.save_dpia(db, By.of(actor), control_dpia, body.content)
    return service.dpia_export(db, control_dpia)


@router.get("/api/v1/control/dpias/{control_dpia}/export.html")
def dpia_html(control_dpia: str, request: Request, actor: Reader, db: TenantDB,
              version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None) -> Response:
    """The DPIA as a stand-alone HTML document."""
    return _dpia_html(request, db, control_dpia, version)


def _dpia_html(request: Request, db: TenantDB, dpia_id: str, version: int | None) -> Response:
    data = service.dpia_export(db, dpia_id, version)
    return render(request, "control/dpia_export.html", {"dpia": data, "escape": escape})


# -- API: change requests ------------------------------------------------------------------------


class ChangeBody(Strict):
    title: str = Field(max_length=200)
    description: str = Field(max_length=10000)
    risk: str = Field(max_length=5000)
    rollback: str = Field(max_length=5000)


class NoteBody(Strict):
    note: str = Field(default="", max_length=2000)


@router.get("/api/v1/control/changes")
def list_changes(actor: Reader, db: TenantDB,
                 status: Literal["pending", "approved", "rejected", "implemented"] | None = None
                 ) -> dict[str, object]:
    """Change requests, newest first; ``status`` filters them."""
    return {"changes": [service.change_view(db, c) for c in service.list_changes(db, status)]}


@router.post("/api/v1/control/changes", status_code=201)
def create_change(body: ChangeBody, actor: Manager, db: TenantDB) -> dict[str, object]:
    """File a change request; it counts as approved only after a second person approves it."""
    change = service.create_change(db, By.of(actor), title=body.title,
                                   description=body.description, risk=body.risk,
                                   rollback=body.rollback)
    return service.change_view(db, change, history=True)


@router.get("/api/v1/control/changes/{control_change}")
def get_change(control_change: str, actor: Reader, db: TenantDB) -> dict[str, object]:
    """A change request with its history."""
    return service.change_view(db, service.get_change(db, control_change), history=True)


@router.post("/api/v1/control/changes/{control_change}/approve")
def approve_change(control_change: str, body: NoteBody, actor: Manager,
                   db: TenantDB) -> dict[str, object]:
    """Approve (the author cannot: 403 with the reason)."""
    change = service.decide_change(db, By.of(actor), control_change, approve=True, note=body.note)
    return service.change_view(db, change, history=True)


@router.post("/api/v1/control/changes/{control_change}/reject")
def reject_change(control_change: str, body: NoteBody, actor: Manager,
                  db: TenantDB) -> dict[str, object]:
    """Reject a pending change request (the author may withdraw it this way)."""
    change = service.decide_change(db, By.of(actor), control_change, approve=False,
                                   note=body.note)
    return service.change_view(db, change, history=True)


@router.post("/api/v1/control/changes/{control_change}/implement")
def implement_change(control_change: str, body: NoteBody, actor: Manager,
                     db: TenantDB) -> dict[str, object]:
    """Mark an approved change request as implemented."""
    change = service.implement_change(db, By.of(actor), control_change, note=body.note)
    return service.change_view(db, change, history=True)


# -- API: personnel and media ----------------------------------------------------------------------


class PersonBody(Strict):
    user_id: str | None = Field(default=None, max_length=36)
    name: str | None = Field(default=None, max_length=200)
    supplier: str | None = Field(default=None, max_length=200)
    function: str = Field(default="", max_length=200)
    sensitive_access: bool = True


class NdaBody(Strict):
    signed_on: Day
    version: str = Field(max_length=40)


class TrainingBody(Strict):
    name: str = Field(max_length=200)
    completed_on: Day


class EndBody(Strict):
    ended_on: Day


@router.get("/api/v1/control/personnel")
def list_personnel(actor: Reader, db: TenantDB) -> dict[str, object]:
    """Vendor staff and supplier staff with access: confidentiality agreement, trainings and
    what is missing."""
    return {"people": [r.as_dict() for r in service.personnel(db)]}


@router.post("/api/v1/control/personnel", status_code=201)
def add_person(body: PersonBody, actor: Manager, db: TenantDB) -> dict[str, object]:
    """A vendor staff member's record (``user_id``) or a supplier's staff member (``name``,
    ``supplier``)."""
    person = service.add_person(db, By.of(actor), **body.model_dump())
    return {"id": person.id, "user_id": person.user_id}


@router.get("/api/v1/control/personnel/export")
def export_personnel(actor: Reader, db: TenantDB,
                     format: Literal["csv", "json"] = "csv") -> Response:
    """The list of vendor and supplier staff with access to sensitive data, for a customer's
    audit (CSV or JSON)."""
    text, media = service.export_personnel(db, By.of(actor), format)
    name = f"personnel-{_today().isoformat()}.{format}"
    return Response(text, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/api/v1/control/personnel/{control_person}/nda")
def record_nda(control_person: str, body: NdaBody, actor: Manager,
               db: TenantDB) -> dict[str, object]:
    """Record the person's signed confidentiality agreement (date and version)."""
    person = service.record_nda(db, By.of(actor), control_person, signed_on=body.signed_on,
                                version=body.version)
    return {"id": person.id, "nda_signed_on": body.signed_on.isoformat(),
            "nda_version": person.nda_version}


@router.post("/api/v1/control/personnel/{control_person}/trainings", status_code=201)
def record_training(control_person: str, body: TrainingBody, actor: Manager,
                    db: TenantDB) -> dict[str, object]:
    """Record a training the person completed."""
    row = service.record_training(db, By.of(actor), control_person, name=body.name,
                                  completed_on=body.completed_on)
    return {"id": row.id, "person_id": row.person_id, "name": row.name,
            "completed_on": row.completed_on.isoformat()}


@router.post("/api/v1/control/personnel/{control_person}/end")
def end_person(control_person: str, body: EndBody, actor: Manager,
               db: TenantDB) -> dict[str, object]:
    """The person no longer has access from ``ended_on``."""
    person = service.end_person(db, By.of(actor), control_person, ended_on=body.ended_on)
    return {"id": person.id, "ended_on": body.ended_on.isoformat()}


class MediaBody(Strict):
    device: str = Field(max_length=200)
    serial: str = Field(max_length=100)
    method: Literal["clear", "purge", "destroy"]
    done_on: Day
    done_by: str = Field(max_length=36)
    witness: str = Field(max_length=36)
    note: str = Field(default="", max_length=2000)


@router.get("/api/v1/control/media")
def list_media(actor: Reader, db: TenantDB) -> dict[str, object]:
    """The media sanitisation log (NIST SP 800-88 clear, purge or destroy)."""
    return {"media": [service.media_view(m) for m in service.list_media(db)]}


@router.post("/api/v1/control/media", status_code=201)
def log_media(body: MediaBody, actor: Manager, db: TenantDB) -> dict[str, object]:
    """Log a sanitised medium; the witness must be another person than the one who did it."""
    return service.media_view(service.log_media(db, By.of(actor), **body.model_dump()))


# -- console -------------------------------------------------------------------------------------


def _back(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


@pages.get("/console/control")
def console_index(request: Request, actor: Reader, db: TenantDB) -> Response:
    today = _today()
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
    service.seed(db, By.of(actor), owner_user_id=actor.user_id, today=_today())
    return _back("/console/control")


@pages.get("/console/control/tasks/{control_task}")
def console_task(request: Request, control_task: str, actor: Reader, db: TenantDB) -> Response:
    today = _today()
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
        data = await _read_upload(file)
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
        data = await _read_upload(file)
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
    return _file_response(db, actor, control_evidence)


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
    return _dpia_html(request, db, control_dpia, None)


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
        "methods": service.MEDIA_METHODS, "today": _today(),
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
