"""Internal control: API ``/api/v1/control/…`` and console ``/console/control/…`` (the pages are
in ``vern.control.pages``, discovered here with the API router).

Vendor-only: every route needs a ``control.*`` permission, which only vendor roles hold, and only
in the vendor's own organisation.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from vern.accounts.deps import TenantDB
from vern.control import service
from vern.control.catalogue import frameworks
from vern.control.pages import NAV, pages
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
from vern.core.inputs import Day

router = APIRouter(tags=["control"])
__all__ = ["NAV", "pages", "router"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    view = service.task_view(task, utc_today())
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
    today = utc_today()
    return {"tasks": [service.task_view(t, today)
                      for t in service.list_tasks(db, overdue_only=overdue, today=today)]}


@router.post("/api/v1/control/tasks", status_code=201)
def create_task(body: TaskBody, actor: Manager, db: TenantDB) -> dict[str, object]:
    """A control task with its owner (a vendor staff account), recurrence and first due date."""
    task = service.create_task(db, By.of(actor), title=body.title, recurrence=body.recurrence,
                               due_on=body.due_on, owner_user_id=body.owner_user_id,
                               description=body.description)
    return service.task_view(task, utc_today())


@router.post("/api/v1/control/seed")
def seed(body: SeedBody, actor: Manager, db: TenantDB) -> dict[str, object]:
    """Load the catalogue of control tasks (the ones not loaded before), owned by the given
    staff member or the caller."""
    owner = body.owner_user_id or actor.user_id
    if owner is None:
        raise InvalidInput.on("owner_user_id", "is required when an API token seeds")
    made = service.seed(db, By.of(actor), owner_user_id=owner, today=utc_today())
    return {"created": [service.task_view(t, utc_today()) for t in made]}


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
    return service.task_view(task, utc_today())


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


@router.post("/api/v1/control/tasks/{control_task}/evidence/file", status_code=201)
async def add_file(control_task: str, actor: Worker, db: TenantDB,
                   file: Annotated[UploadFile, File()],
                   title: Annotated[str, Form(max_length=200)] = "") -> dict[str, object]:
    """Upload a file as evidence (multipart ``file``; PDF, PNG, JPEG, text, CSV, JSON, DOCX,
    XLSX, ODT; at most 512 KiB; the content must match its type)."""
    data = await read_upload(file)
    ev = service.add_file(db, By.of(actor), control_task, title=title,
                          filename=file.filename or "", content_type=file.content_type or "",
                          data=data)
    return service.evidence_view(ev)


@router.get("/api/v1/control/evidence/{control_evidence}/file")
def evidence_file(control_evidence: str, actor: Reader, db: TenantDB) -> Response:
    """The uploaded file of a piece of evidence (as an attachment)."""
    return file_response(db, actor, control_evidence)


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
    return dpia_document(request, db, control_dpia, version)


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
    name = f"personnel-{utc_today().isoformat()}.{format}"
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
