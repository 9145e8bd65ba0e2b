"""Data subject requests over HTTP: the API for a customer's systems (``/api/v1/rights``), the
console for staff (``/console/rights``) and the public self-service portal (``/p/<tenant>/rights``,
with a plain ``/p/<tenant>/delete-me``)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts.deps import (
    DatabaseDep,
    TenantDB,
    anon_csrf_token,
    check_anon_csrf,
    require,
)
from vern.accounts.models import Organisation
from vern.accounts.roles import OrgKind, Perm
from vern.accounts.service import Actor
from vern.console.templating import gettext, pick_locale, render
from vern.core.db import Database, Scope
from vern.core.errors import FieldError, Forbidden, InvalidInput, NotFound, VernError
from vern.core.i18n import N_, format_day
from vern.core.inputs import Key, Value
from vern.datamap.service import current_map
from vern.notify import service as notify
from vern.rights import external, service
from vern.rights.models import Flag, Kind, Part, RightsRequest, Status
from vern.stats.public import public_route

log = logging.getLogger("vern.rights")

router = APIRouter(prefix="/api/v1/rights", tags=["rights"])
pages = APIRouter(tags=["rights pages"])

# The console's navigation entry (label translated through the .po files).
NAV = [("/console/rights", "Data subject requests", Perm.RIGHTS_READ)]

Reader = Annotated[Actor, Depends(require(Perm.RIGHTS_READ))]
Manager = Annotated[Actor, Depends(require(Perm.RIGHTS_MANAGE))]
Approver = Annotated[Actor, Depends(require(Perm.RIGHTS_APPROVE))]
TenantsManager = Annotated[Actor, Depends(require(Perm.TENANTS_MANAGE))]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Corrections(Strict):
    corrections: dict[Key, Value] | None = Field(default=None, max_length=20)
    purpose: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=2000)


class NewRequest(Strict):
    kind: Kind
    identities: dict[Key, Value] = Field(max_length=4)
    locale: Literal["nb", "en"] = "nb"
    details: Corrections | None = None
    verification: Literal["email_code", "customer_signin", "attested"] = "email_code"


class CodeBody(Strict):
    code: str = Field(max_length=12)


class ReasonBody(Strict):
    reason: str = Field(min_length=1, max_length=2000)


class ExtendBody(Strict):
    months: int = Field(ge=1, le=2)
    reason: str = Field(min_length=1, max_length=2000)


class CheckBody(Strict):
    identities: dict[Key, Value] = Field(max_length=4)


class PolicyBody(Strict):
    # Accepted only to refuse it with 403: the mapping is the vendor's (``/tenants/{id}/policy``).
    product_tenant_key: str | None = Field(default=None, max_length=200)
    approve_erasure: bool | None = None
    approve_rectification: bool | None = None
    answer_nobody_found: bool | None = None


class TenantPolicyBody(Strict):
    product_tenant_key: str | None = Field(default=None, max_length=200)
    approve_erasure: bool | None = None
    approve_rectification: bool | None = None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def request_json(session: Session, req: RightsRequest, *, full: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": req.id,
        "kind": req.kind,
        "status": req.status,
        "channel": req.channel,
        "locale": req.locale,
        "received_at": _iso(req.received_at),
        "due_at": _iso(req.due_at),
        "extended_due_at": _iso(req.extended_due_at),
        "deadline": _iso(req.deadline),
        "due_state": service.due_state(req),
        "verified_at": _iso(req.verified_at),
        "verification_method": req.verification_method,
        "approval_required": req.approval_required,
        "approved_at": _iso(req.approved_at),
        "completed_at": _iso(req.completed_at),
        "progress": {"done": req.progress_done, "total": req.progress_total},
        "error": req.error,
    }
    if full:
        body["identities"] = service.identities_of(req)
        body["extension_reason"] = req.extension_reason
        body["decision_note"] = req.decision_note
        body["summary"] = req.summary
        body["parts"] = [
            {
                "database": p.database,
                "status": p.status,
                "error": p.error,
                "attempts": p.attempts,
                "rows_found": p.rows_found,
                "rows_done": p.rows_done,
            }
            for p in session.scalars(select(Part).where(Part.request_id == req.id).order_by(Part.database))
        ]
        body["steps"] = [external.step_json(s) for s in external.list_steps(session, req.id)]
        body["recipients"] = _recipients(session)
    return body


def _recipients(session: Session) -> list[str]:
    """Who the person's data is disclosed to, by the published product map (Art. 15(1)(c), 19)."""

    found = current_map(session)
    return found.recipient_names() if found is not None else []


def _run_later(database: Database, request_id: str) -> None:
    """Carry out a queued request after the response; failures stay on the request for the
    worker to retry, never in the response."""
    try:
        service.run(database, request_id)
    except VernError as exc:
        log.info("request %s not run now: %s", request_id, exc)
    except Exception:
        log.exception("request %s: run failed; the worker will resume it", request_id)
    notify.deliver_pending(database)


def _after_change(background: BackgroundTasks, database: Database, req: RightsRequest) -> None:
    if req.status == Status.QUEUED.value:
        background.add_task(_run_later, database, req.id)
    background.add_task(notify.deliver_pending, database)


# -- API -------------------------------------------------------------------------------------------


@router.get("/requests")
def list_requests(
    actor: Reader,
    db: TenantDB,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict[str, Any]:
    """Data subject requests of the caller's organisation, newest first, with their deadlines;
    a page at a time (``next_offset`` is set while there are more)."""
    rows = service.list_requests(db, status=status, limit=limit + 1, offset=offset)
    more = len(rows) > limit
    return {
        "items": [request_json(db, r) for r in rows[:limit]],
        "next_offset": offset + limit if more else None,
    }


class ConfirmBody(Strict):
    note: str = Field(min_length=1, max_length=2000)


@router.get("/tasks")
def list_tasks(actor: Reader, db: TenantDB, include_done: bool = False) -> dict[str, Any]:
    """Steps in systems outside SQL: manual tasks to confirm and HTTP calls (open ones only
    unless ``include_done``)."""

    return {"items": [external.step_json(s) for s in external.tenant_steps(db, open_only=not include_done)]}


@router.post("/tasks/{rights_task_id}/confirm")
def confirm_task(  # noqa: PLR0917 - FastAPI dependencies
    rights_task_id: str,
    body: ConfirmBody,
    actor: Manager,
    db: TenantDB,
    database: DatabaseDep,
    background: BackgroundTasks,
) -> dict[str, Any]:
    """The owner confirms a manual task with a note; the request goes on once all are confirmed."""

    step = external.confirm_task(db, rights_task_id, note=body.note, actor_user_id=actor.user_id)
    req = service.get_request(db, step.request_id)
    _after_change(background, database, req)
    return {"task": external.step_json(step), "request": request_json(db, req)}


@router.post("/requests", status_code=201)
def create_request(
    body: NewRequest, actor: Manager, db: TenantDB, database: DatabaseDep, background: BackgroundTasks
) -> dict[str, Any]:
    """File a data subject request (access, portability, rectification, erasure, restriction,
    objection) for a person identified by e-mail, phone or another key."""
    verified_by = None if body.verification == "email_code" else body.verification
    if verified_by == "customer_signin" and actor.token_id is None:
        raise InvalidInput.on("verification", "customer_signin is for the customer's own systems (API token)")
    req = service.create_request(
        db,
        org_id=actor.org_id,
        kind=body.kind.value,
        identities=body.identities,
        channel="api" if actor.token_id else "staff",
        locale=body.locale,
        details=body.details.model_dump(exclude_none=True) if body.details else None,
        actor_user_id=actor.user_id,
        verified_by=verified_by,
        person_id=actor.person_id,
    )
    if verified_by is None:
        service.send_code(db, req.id)
    _after_change(background, database, req)
    return request_json(db, req, full=True)


@router.get("/requests/{rights_request_id}")
def get_request(rights_request_id: str, actor: Reader, db: TenantDB) -> dict[str, Any]:
    """One request: status, deadline, identity verification, plan, counts and outcome."""
    return request_json(db, service.get_request(db, rights_request_id), full=True)


@router.post("/requests/{rights_request_id}/code")
def send_code(
    rights_request_id: str, actor: Manager, db: TenantDB, database: DatabaseDep, background: BackgroundTasks
) -> dict[str, str]:
    """Send the person a one-time code by e-mail to verify that the request is theirs."""
    service.send_code(db, rights_request_id)
    background.add_task(notify.deliver_pending, database)
    return {"status": "sent"}


@router.post("/requests/{rights_request_id}/verify")
def verify(
    rights_request_id: str, body: CodeBody, actor: Manager, database: DatabaseDep, background: BackgroundTasks
) -> dict[str, Any]:
    """Verify the person's identity: the code they received, or staff attesting how it was checked."""
    with database.transaction(Scope.tenant(actor.org_id)) as session:
        result = service.check_code(session, rights_request_id, body.code)
        req = service.get_request(session, rights_request_id)
        answer = request_json(session, req)
    if result is not service.CodeResult.OK:
        raise service.code_error(result)
    _after_change(background, database, req)
    return answer


@router.post("/requests/{rights_request_id}/approve")
def approve(
    rights_request_id: str, actor: Approver, db: TenantDB, database: DatabaseDep, background: BackgroundTasks
) -> dict[str, Any]:
    """Approve a verified request for execution."""
    req = service.approve(db, rights_request_id, actor_user_id=actor.user_id,
                          person_id=actor.person_id)
    _after_change(background, database, req)
    return request_json(db, req)


@router.post("/requests/{rights_request_id}/reject")
def reject(rights_request_id: str, body: ReasonBody, actor: Approver, db: TenantDB) -> dict[str, Any]:
    """Reject a request with a reason the person is told."""
    return request_json(
        db, service.reject(db, rights_request_id, actor_user_id=actor.user_id, reason=body.reason)
    )


@router.post("/requests/{rights_request_id}/extend")
def extend(  # noqa: PLR0917 - FastAPI dependencies
    rights_request_id: str,
    body: ExtendBody,
    actor: Manager,
    db: TenantDB,
    database: DatabaseDep,
    background: BackgroundTasks,
) -> dict[str, Any]:
    """Extend the deadline by one or two months (GDPR Art. 12(3)) with a reason the person is told."""
    req = service.extend(
        db, rights_request_id, months=body.months, reason=body.reason, actor_user_id=actor.user_id
    )
    background.add_task(notify.deliver_pending, database)
    return request_json(db, req)


@router.post("/requests/{rights_request_id}/cancel")
def cancel(rights_request_id: str, actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Cancel a request that has not been executed."""
    return request_json(db, service.cancel(db, rights_request_id, actor_user_id=actor.user_id))


@router.post("/requests/{rights_request_id}/retry")
def retry(
    rights_request_id: str, actor: Manager, db: TenantDB, database: DatabaseDep, background: BackgroundTasks
) -> dict[str, Any]:
    """Run a partly done request again (the steps already done are not repeated)."""
    req = service.retry(db, rights_request_id, actor_user_id=actor.user_id)
    _after_change(background, database, req)
    return request_json(db, req)


class NobodyFoundBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000)


@router.post("/requests/{rights_request_id}/confirm-nobody-found")
def confirm_nobody_found(
    rights_request_id: str, actor: Manager, db: TenantDB, body: NobodyFoundBody | None = None
) -> dict[str, Any]:
    """Staff confirm that a request which matched no one is answered "no data held"."""
    note = body.note if body is not None else ""
    req = service.confirm_nobody_found(db, rights_request_id, actor_user_id=actor.user_id, note=note)
    return request_json(db, req)


@router.post("/requests/{rights_request_id}/download-link")
def new_link(rights_request_id: str, actor: Manager, db: TenantDB) -> dict[str, str]:
    """Make a new download link for the request's package and send it to the person."""
    return {"url": service.renew_link(db, rights_request_id, actor_user_id=actor.user_id)}


@router.get("/requests/{rights_request_id}/package")
def package(rights_request_id: str, actor: Manager, database: DatabaseDep) -> Response:
    """Download the request's package (ZIP with JSON, CSV and a readable summary)."""
    return _download(
        database,
        actor.org_id,
        lambda session: service.download_for_staff(session, rights_request_id, actor_user_id=actor.user_id),
    )


@router.post("/check")
def check(body: CheckBody, actor: Reader, db: TenantDB) -> dict[str, Any]:
    """For the vendor's product: may this person's data be processed, and for what?"""
    flags = service.active_flags(db, body.identities)
    return {
        "restricted": any(f.kind == Kind.RESTRICTION.value for f in flags),
        "objections": sorted({f.purpose or "*" for f in flags if f.kind == Kind.OBJECTION.value}),
        "withdrawals": sorted({f.purpose or "*" for f in flags if f.kind == Kind.WITHDRAWAL.value}),
    }


@router.get("/flags")
def list_flags(actor: Reader, db: TenantDB) -> dict[str, Any]:
    """Restriction and objection flags in force (rows the product must not process)."""
    rows = db.scalars(select(Flag).where(Flag.lifted_at.is_(None)).order_by(Flag.created_at.desc()))
    seen: set[str] = set()
    items = []
    for f in rows:
        if f.request_id and f.request_id in seen:
            continue
        seen.add(f.request_id or f.id)
        items.append(
            {
                "id": f.id,
                "kind": f.kind,
                "purpose": f.purpose,
                "request_id": f.request_id,
                "created_at": _iso(f.created_at),
            }
        )
    return {"items": items}


@router.post("/flags/{rights_flag_id}/lift")
def lift(rights_flag_id: str, actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Lift a restriction or objection flag, with a reason."""
    flag = service.lift_flag(db, rights_flag_id, actor_user_id=actor.user_id)
    return {"id": flag.id, "lifted_at": _iso(flag.lifted_at)}


@router.get("/policy")
def get_policy(actor: Reader, db: TenantDB) -> dict[str, Any]:
    """The organisation's rights policy: approval, verification and how product rows are found."""
    pol = service.policy_for(db, actor.org_id)
    return {
        "product_tenant_key": pol.product_tenant_key,
        "approve_erasure": pol.approve_erasure,
        "approve_rectification": pol.approve_rectification,
        "answer_nobody_found": pol.answer_nobody_found,
    }


@router.put("/policy")
def put_policy(body: PolicyBody, actor: Approver, db: TenantDB) -> dict[str, Any]:
    """The customer's own choices: it may require approval, not drop it, and never choose its
    product key (both are the vendor's: ``PUT /tenants/{id}/policy``)."""
    if body.product_tenant_key is not None:
        raise Forbidden(
            detail="product_tenant_key: only the vendor may set the product key",
            errors=[FieldError("product_tenant_key", "only the vendor may set the product key",
                               "vendor-only")],
        )
    service.set_policy(
        db,
        org_id=actor.org_id,
        actor_user_id=actor.user_id,
        approve_erasure=body.approve_erasure,
        approve_rectification=body.approve_rectification,
        answer_nobody_found=body.answer_nobody_found,
    )
    return get_policy(actor, db)


def _tenant_policy(database: Database, tenant_id: str) -> dict[str, Any]:
    with database.transaction(Scope.system("vendor reads a customer's rights policy")) as session:
        org = session.get(Organisation, tenant_id)
        if org is None or org.kind != OrgKind.TENANT.value:
            raise NotFound(detail="no such customer")
        pol = service.policy_for(session, tenant_id)
        return {
            "tenant_id": tenant_id,
            "product_tenant_key": pol.product_tenant_key,
            "approve_erasure": pol.approve_erasure,
            "approve_rectification": pol.approve_rectification,
        }


@router.get("/tenants/{tenant_id}/policy")
def get_tenant_policy(tenant_id: str, actor: TenantsManager, database: DatabaseDep) -> dict[str, Any]:
    """The vendor's view of a customer's policy (vendor staff with ``tenants.manage``)."""
    return _tenant_policy(database, tenant_id)


@router.put("/tenants/{tenant_id}/policy")
def put_tenant_policy(
    tenant_id: str, body: TenantPolicyBody, actor: TenantsManager, database: DatabaseDep
) -> dict[str, Any]:
    """Settings that cross customers (the product key) or weaken a strict default (approval off):
    the vendor's staff only, audited in the customer's trail and in the vendor's."""
    with database.transaction(Scope.system("vendor sets a customer's rights policy")) as session:
        service.set_tenant_policy(
            session,
            actor=actor,
            tenant_id=tenant_id,
            product_tenant_key=body.product_tenant_key,
            approve_erasure=body.approve_erasure,
            approve_rectification=body.approve_rectification,
        )
    return _tenant_policy(database, tenant_id)


def _download(database: Database, org_id: str, fetch: Any) -> Response:
    """Serve a package; a refused (expired) download is audited too, so its record must commit
    before the error is raised."""
    refused: NotFound | None = None
    with database.transaction(Scope.tenant(org_id)) as session:
        try:
            body, name = fetch(session)
        except NotFound as exc:
            refused = exc
    if refused is not None:
        raise refused
    return _zip(body, name)


def _zip(body: bytes, name: str) -> Response:
    return Response(
        body,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


# -- console ------------------------------------------------------------------------------------------


@pages.get("/console/rights")
def console_list(request: Request, actor: Reader, db: TenantDB, status: str = "open") -> Response:
    rows = service.list_requests(db, status=None if status == "all" else status)
    items = [{"req": r, "due": service.due_state(r)} for r in rows]
    counts = {k: sum(1 for i in items if i["due"] == k) for k in ("overdue", "due_soon")}
    return render(request, "rights/list.html", {"items": items, "counts": counts, "status": status})


@pages.get("/console/rights/new")
def console_new(request: Request, actor: Manager) -> Response:
    return render(request, "rights/new.html", {"kinds": [k.value for k in Kind], "error": None})


@pages.post("/console/rights/new")
async def console_create(
    request: Request, actor: Manager, database: DatabaseDep, background: BackgroundTasks
) -> Response:
    form = await request.form()
    kind = str(form.get("kind") or "")
    note = str(form.get("note") or "").strip()
    identities = {k: str(form.get(k) or "") for k in ("email", "phone", "national_id", "user_id")}
    verification = str(form.get("verification") or "email_code")
    details: dict[str, Any] = {"note": note} if note else {}
    field, value = str(form.get("correct_field") or ""), str(form.get("correct_value") or "")
    if kind == Kind.RECTIFICATION.value and field:
        details["corrections"] = {field: value}
    try:
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            req = service.create_request(
                session,
                org_id=actor.org_id,
                kind=kind,
                identities=identities,
                channel="staff",
                locale=pick_locale(request),
                details=details,
                actor_user_id=actor.user_id,
                verified_by="attested" if verification == "attested" else None,
                person_id=actor.person_id,
            )
            if verification != "attested":
                service.send_code(session, req.id)
    except InvalidInput as exc:
        return render(
            request, "rights/new.html", {"kinds": [k.value for k in Kind], "error": exc}, status=422
        )
    _after_change(background, database, req)
    return RedirectResponse(f"/console/rights/requests/{req.id}", status_code=303)


@pages.get("/console/rights/requests/{rights_request_id}")
def console_detail(request: Request, rights_request_id: str, actor: Reader, db: TenantDB) -> Response:
    req = service.get_request(db, rights_request_id)
    data = request_json(db, req, full=True)
    return render(
        request,
        "rights/detail.html",
        {
            "r": data,
            "req": req,
            "can_manage": actor.can(Perm.RIGHTS_MANAGE),
            "can_approve": actor.can(Perm.RIGHTS_APPROVE),
            # four-eyes: whoever filed or attested the request is refused on approval, so the
            # button is not offered to them either (service.approve decides either way)
            "may_approve": actor.can(Perm.RIGHTS_APPROVE)
            and actor.person_id not in {req.created_by, req.attested_by},
        },
    )


@pages.post("/console/rights/tasks/{rights_task_id}/confirm")
async def console_confirm_task(  # noqa: PLR0917 - FastAPI dependencies
    request: Request,
    rights_task_id: str,
    actor: Manager,
    db: TenantDB,
    database: DatabaseDep,
    background: BackgroundTasks,
) -> Response:

    note = await _form_text(request, "note")
    step = external.confirm_task(db, rights_task_id, note=note, actor_user_id=actor.user_id)
    _after_change(background, database, service.get_request(db, step.request_id))
    return RedirectResponse(f"/console/rights/requests/{step.request_id}", status_code=303)


async def _form_text(request: Request, name: str) -> str:
    form = await request.form()
    return str(form.get(name) or "").strip()


@pages.post("/console/rights/requests/{rights_request_id}/approve")
def console_approve(
    rights_request_id: str, actor: Approver, db: TenantDB, database: DatabaseDep, background: BackgroundTasks
) -> Response:
    req = service.approve(db, rights_request_id, actor_user_id=actor.user_id,
                          person_id=actor.person_id)
    _after_change(background, database, req)
    return RedirectResponse(f"/console/rights/requests/{rights_request_id}", status_code=303)


@pages.post("/console/rights/requests/{rights_request_id}/reject")
async def console_reject(request: Request, rights_request_id: str, actor: Approver, db: TenantDB) -> Response:
    service.reject(
        db, rights_request_id, actor_user_id=actor.user_id, reason=await _form_text(request, "reason")
    )
    return RedirectResponse(f"/console/rights/requests/{rights_request_id}", status_code=303)


@pages.post("/console/rights/requests/{rights_request_id}/extend")
async def console_extend(  # noqa: PLR0917 - FastAPI dependencies
    request: Request,
    rights_request_id: str,
    actor: Manager,
    db: TenantDB,
    database: DatabaseDep,
    background: BackgroundTasks,
) -> Response:
    months = await _form_text(request, "months")
    if months not in ("1", "2"):
        raise InvalidInput.on("months", "choose 1 or 2 months")
    service.extend(
        db,
        rights_request_id,
        months=int(months),
        reason=await _form_text(request, "reason"),
        actor_user_id=actor.user_id,
    )
    background.add_task(notify.deliver_pending, database)
    return RedirectResponse(f"/console/rights/requests/{rights_request_id}", status_code=303)


@pages.post("/console/rights/requests/{rights_request_id}/retry")
def console_retry(
    rights_request_id: str, actor: Manager, db: TenantDB, database: DatabaseDep, background: BackgroundTasks
) -> Response:
    req = service.retry(db, rights_request_id, actor_user_id=actor.user_id)
    _after_change(background, database, req)
    return RedirectResponse(f"/console/rights/requests/{rights_request_id}", status_code=303)


@pages.post("/console/rights/requests/{rights_request_id}/confirm-nobody-found")
def console_confirm_nobody_found(
    rights_request_id: str, actor: Manager, db: TenantDB, database: DatabaseDep, background: BackgroundTasks
) -> Response:
    service.confirm_nobody_found(db, rights_request_id, actor_user_id=actor.user_id)
    background.add_task(notify.deliver_pending, database)
    return RedirectResponse(f"/console/rights/requests/{rights_request_id}", status_code=303)


@pages.post("/console/rights/requests/{rights_request_id}/cancel")
def console_cancel(rights_request_id: str, actor: Manager, db: TenantDB) -> Response:
    service.cancel(db, rights_request_id, actor_user_id=actor.user_id)
    return RedirectResponse(f"/console/rights/requests/{rights_request_id}", status_code=303)


@pages.get("/console/rights/requests/{rights_request_id}/package")
def console_package(rights_request_id: str, actor: Manager, database: DatabaseDep) -> Response:
    return _download(
        database,
        actor.org_id,
        lambda session: service.download_for_staff(session, rights_request_id, actor_user_id=actor.user_id),
    )


# -- the public portal ---------------------------------------------------------------------------------

PORTAL_KINDS = ("access", "portability", "rectification", "erasure", "restriction", "objection", "withdrawal")
CORRECTABLE = ("user.name", "user.contact.email", "user.contact.phone", "user.contact.address")


def _tenant(database: Database, slug: str) -> Organisation:
    with database.transaction(Scope.system("portal tenant")) as session:
        org = session.scalar(select(Organisation).where(Organisation.slug == slug))
        if org is None or org.kind != OrgKind.TENANT.value or org.disabled_at is not None:
            raise NotFound(detail="no such organisation")
        session.expunge(org)
        return org


def _portal_request(database: Database, org: Organisation, request_id: str) -> RightsRequest:
    with database.transaction(Scope.tenant(org.id)) as session:
        req = service.get_request(session, request_id)
        if req.channel != "portal":
            raise NotFound(detail="no such request")
        session.expunge(req)
        return req


@public_route(pages, "/p/{dsr_tenant}/rights", methods=["GET"])
def portal_start(request: Request, dsr_tenant: str, database: DatabaseDep) -> Response:
    org = _tenant(database, dsr_tenant)
    return render(
        request, "rights/portal_start.html", {"org": org, "kinds": PORTAL_KINDS, "labels": KIND_LABELS}
    )


@public_route(pages, "/p/{dsr_tenant}/rights/new", methods=["GET"])
def portal_form(request: Request, dsr_tenant: str, database: DatabaseDep, kind: str = "access") -> Response:
    org = _tenant(database, dsr_tenant)
    if kind not in PORTAL_KINDS:
        kind = "access"
    return render(
        request,
        "rights/portal_form.html",
        {
            "org": org,
            "kind": kind,
            "error": None,
            "correctable": CORRECTABLE,
            "form_token": anon_csrf_token(request),
        },
    )


@public_route(pages, "/p/{dsr_tenant}/delete-me", methods=["GET"])
def portal_delete_me(request: Request, dsr_tenant: str, database: DatabaseDep) -> Response:
    return portal_form(request, dsr_tenant, database, kind="erasure")


@public_route(pages, "/p/{dsr_tenant}/rights/new", methods=["POST"])
async def portal_create(
    request: Request, dsr_tenant: str, database: DatabaseDep, background: BackgroundTasks
) -> Response:
    org = _tenant(database, dsr_tenant)
    await check_anon_csrf(request)
    form = await request.form()
    kind = str(form.get("kind") or "")
    email = str(form.get("email") or "").strip()
    details: dict[str, Any] = {}
    if kind == Kind.RECTIFICATION.value:
        details["corrections"] = {str(form.get("correct_field") or ""): str(form.get("correct_value") or "")}
    if kind in (Kind.OBJECTION.value, Kind.WITHDRAWAL.value) and form.get("purpose"):
        details["purpose"] = str(form.get("purpose"))[:200]
    locale = pick_locale(request)
    try:
        if kind not in PORTAL_KINDS:
            raise InvalidInput.on("kind", "choose what you want to ask for")
        with database.transaction(Scope.tenant(org.id)) as session:
            req = service.create_request(
                session,
                org_id=org.id,
                kind=kind,
                identities={"email": email},
                channel="portal",
                locale=locale,
                details=details,
            )
            service.send_code(session, req.id)
    except InvalidInput as exc:
        return render(
            request,
            "rights/portal_form.html",
            {
                "org": org,
                "kind": kind if kind in PORTAL_KINDS else "access",
                "error": exc,
                "correctable": CORRECTABLE,
                "form_token": anon_csrf_token(request),
            },
            status=422,
        )
    background.add_task(notify.deliver_pending, database)
    return RedirectResponse(f"/p/{org.slug}/rights/{req.id}/verify", status_code=303)


@public_route(pages, "/p/{dsr_tenant}/rights/{rights_request_id}/verify", methods=["GET"])
def portal_verify_form(
    request: Request, dsr_tenant: str, rights_request_id: str, database: DatabaseDep
) -> Response:
    org = _tenant(database, dsr_tenant)
    req = _portal_request(database, org, rights_request_id)
    if req.status != Status.UNVERIFIED.value:
        return RedirectResponse(f"/p/{org.slug}/rights/{req.id}", status_code=303)
    return render(
        request,
        "rights/portal_verify.html",
        {"org": org, "error": None, "form_token": anon_csrf_token(request)},
    )


@public_route(pages, "/p/{dsr_tenant}/rights/{rights_request_id}/verify", methods=["POST"])
async def portal_verify(
    request: Request,
    dsr_tenant: str,
    rights_request_id: str,
    database: DatabaseDep,
    background: BackgroundTasks,
) -> Response:
    org = _tenant(database, dsr_tenant)
    await check_anon_csrf(request)
    req = _portal_request(database, org, rights_request_id)
    form = await request.form()
    if form.get("resend"):
        with database.transaction(Scope.tenant(org.id)) as session:
            service.send_code(session, req.id)
        background.add_task(notify.deliver_pending, database)
        return RedirectResponse(f"/p/{org.slug}/rights/{req.id}/verify", status_code=303)
    with database.transaction(Scope.tenant(org.id)) as session:
        result = service.check_code(session, req.id, str(form.get("code") or ""))
        session.flush()
        req = service.get_request(session, req.id)
        session.expunge(req)
    if result is not service.CodeResult.OK:
        return render(
            request,
            "rights/portal_verify.html",
            {"org": org, "error": service.code_error(result), "form_token": anon_csrf_token(request)},
            status=422,
        )
    _after_change(background, database, req)
    return RedirectResponse(f"/p/{org.slug}/rights/{req.id}", status_code=303)


@public_route(pages, "/p/{dsr_tenant}/rights/{rights_request_id}", methods=["GET"])
def portal_status(
    request: Request, dsr_tenant: str, rights_request_id: str, database: DatabaseDep
) -> Response:
    org = _tenant(database, dsr_tenant)
    req = _portal_request(database, org, rights_request_id)
    locale = pick_locale(request)
    return render(
        request,
        "rights/portal_status.html",
        {
            "org": org,
            "kind": gettext(locale, KIND_LABELS[req.kind]),
            "status": req.status,
            "deadline": format_day(req.deadline, locale),
            "recipients": _portal_recipients(database),
        },
    )


def _portal_recipients(database: Database) -> list[str]:
    with database.transaction(Scope.system("portal recipients")) as session:
        return _recipients(session)


@public_route(pages, "/p/{dsr_tenant}/download/{download_token}", methods=["GET"])
def portal_download(dsr_tenant: str, download_token: str, database: DatabaseDep) -> Response:
    org = _tenant(database, dsr_tenant)
    return _download(database, org.id, lambda session: service.download(session, download_token))


KIND_LABELS = {
    "access": N_("See my data"),
    "portability": N_("Get my data to take elsewhere"),
    "rectification": N_("Correct my data"),
    "erasure": N_("Delete me"),
    "restriction": N_("Limit the use of my data"),
    "objection": N_("Object to a use of my data"),
    "withdrawal": N_("Withdraw my consent"),
}
