"""Offboarding: ``/api/v1/offboarding/…`` and ``/console/offboarding`` for the vendor's staff;
for a customer's administrator ``POST /api/v1/offboarding/confirm`` (deletion before the notice
period ends) and ``/api/v1/end-of-contract``, ``/console/end-of-contract`` (the end of their
contract and the download of their export)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from vern.accounts import service as accounts
from vern.accounts.deps import TenantDB, require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.console.templating import render
from vern.core import responses as openapi
from vern.offboarding import service
from vern.offboarding.models import Offboarding

router = APIRouter(tags=["offboarding"])
pages = APIRouter(include_in_schema=False)
NAV = [("/console/offboarding", "End of contract", Perm.OFFBOARDING_READ),
       ("/console/end-of-contract", "End of contract", Perm.OFFBOARDING_EXPORT)]

Reader = Annotated[Actor, Depends(require(Perm.OFFBOARDING_READ))]
Manager = Annotated[Actor, Depends(require(Perm.OFFBOARDING_MANAGE))]
CustomerAdmin = Annotated[Actor, Depends(require(Perm.OFFBOARDING_EXPORT))]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestBody(Strict):
    org_id: str = Field(min_length=1, max_length=36)
    notice_days: int = Field(ge=0, le=service.MAX_NOTICE_DAYS)
    reason: str = Field(default="", max_length=500)


def _view(ob: Offboarding) -> dict[str, Any]:
    def iso(v: Any) -> str | None:
        return v.isoformat() if v is not None else None

    return {
        "id": ob.id, "customer_org_id": ob.customer_org_id, "customer_name": ob.customer_name,
        "status": ob.status, "reason": ob.reason, "notice_days": ob.notice_days,
        "requested_by": ob.requested_by, "requested_at": iso(ob.requested_at),
        "approved_by": ob.approved_by, "approved_at": iso(ob.approved_at),
        "notice_ends_at": iso(ob.notice_ends_at), "confirmed_by": ob.confirmed_by,
        "confirmed_at": iso(ob.confirmed_at), "export_sha256": ob.export_sha256,
        "exported_at": iso(ob.exported_at), "deletion_started_at": iso(ob.deletion_started_at),
        "deleted": (ob.progress or {}).get("deleted", {}), "deleted_at": iso(ob.deleted_at),
        "accounts": {"erased": int((ob.progress or {}).get("accounts_erased") or 0),
                     "kept_membership_removed": int((ob.progress or {}).get("accounts_kept") or 0)},
        "certificate": ob.certificate,
    }


@router.get("/api/v1/offboarding")
def list_offboardings(actor: Reader, db: TenantDB) -> dict[str, Any]:
    """Every end of contract, newest first."""
    return {"offboardings": [_view(ob) for ob in service.list_all(db)]}


@router.post("/api/v1/offboarding", status_code=201)
def request_offboarding(body: RequestBody, actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Ask to end a customer's contract; another member of staff approves."""
    ob = service.request(db, org_id=body.org_id, notice_days=body.notice_days, reason=body.reason,
                         actor_user_id=actor.user_id)
    return _view(ob)


@router.get("/api/v1/offboarding/{offboarding_id}")
def get_offboarding(offboarding_id: str, actor: Reader, db: TenantDB) -> dict[str, Any]:
    """One end of contract: its status, notice period, export and deletion progress."""
    return _view(service.get(db, offboarding_id))


@router.post("/api/v1/offboarding/{offboarding_id}/approve")
def approve_offboarding(offboarding_id: str, actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Approve (not the person who asked); the notice period starts."""
    return _view(service.approve(db, offboarding_id, actor_user_id=actor.user_id))


@router.post("/api/v1/offboarding/{offboarding_id}/cancel")
def cancel_offboarding(offboarding_id: str, actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Cancel an end of contract that is not yet deleting (audited)."""
    return _view(service.cancel(db, offboarding_id, actor_user_id=actor.user_id))


@router.post("/api/v1/offboarding/{offboarding_id}/export", response_class=Response,
             responses=openapi.answers("application/zip"))
def export_offboarding(offboarding_id: str, request: Request, actor: Manager) -> Response:
    """Make the customer's export (the access package's formats: data.json, one CSV per table,
    a readable summary, and a manifest of row counts) and send it."""
    path = service.export(request.app.state.db, request.app.state.settings, offboarding_id,
                          actor_user_id=actor.user_id)
    return Response(path.read_bytes(), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{path.name}"'})


@router.post("/api/v1/offboarding/{offboarding_id}/delete")
def delete_offboarding(offboarding_id: str, request: Request, actor: Manager) -> dict[str, Any]:
    """Start the deletion (after the export, and the notice period or the customer's
    confirmation); the first ten bounded steps run now, the worker takes the rest (every five
    minutes, ``offboarding.work``)."""
    database = request.app.state.db
    service.start_deletion(database, offboarding_id, actor_user_id=actor.user_id)
    service.run_deletion(database, request.app.state.settings, offboarding_id, max_steps=10)
    with database.transaction(None) as session:
        return _view(service.get(session, offboarding_id))


@router.post("/api/v1/offboarding/confirm")
def confirm_offboarding(actor: Annotated[Actor, Depends(require(Perm.OFFBOARDING_CONFIRM))],
                        db: TenantDB) -> dict[str, Any]:
    """A customer's administrator agrees that their data is deleted before the notice ends."""
    return _view(service.confirm_early(db, org_id=actor.org_id, actor_user_id=actor.user_id))


def _customer_view(ob: Offboarding | None) -> dict[str, Any]:
    if ob is None:
        return {"end_of_contract": None}
    return {"end_of_contract": {
        "id": service.customer_ref(ob), "status": ob.status, "notice_days": ob.notice_days,
        "approved_at": ob.approved_at.isoformat() if ob.approved_at else None,
        "notice_ends_at": ob.notice_ends_at.isoformat() if ob.notice_ends_at else None,
        "confirmed_at": ob.confirmed_at.isoformat() if ob.confirmed_at else None,
        "exported_at": ob.exported_at.isoformat() if ob.exported_at else None,
        "export_sha256": ob.export_sha256,
        "export_url": f"/api/v1/end-of-contract/{service.customer_ref(ob)}/export"
        if ob.exported_at else None,
    }}


def _zip(body: bytes, name: str) -> Response:
    return Response(body, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@router.get("/api/v1/end-of-contract")
def customer_end_of_contract(actor: CustomerAdmin, db: TenantDB) -> dict[str, Any]:
    """The end of the caller's organisation's contract (after approval), or null."""
    return _customer_view(service.for_customer(db, actor.org_id))


@router.get("/api/v1/end-of-contract/{end_of_contract_id}/export", response_class=Response,
            responses=openapi.answers("application/zip"))
def customer_export(end_of_contract_id: str, actor: CustomerAdmin, db: TenantDB) -> Response:
    """The organisation's export (the access package's formats: data.json, CSV, summary), during
    the notice period; every download is in the organisation's audit trail."""
    body, name = service.download_export(db, end_of_contract_id, org_id=actor.org_id,
                                         actor_user_id=actor.user_id, actor_token_id=actor.token_id)
    return _zip(body, name)


# -- console ------------------------------------------------------------------------------------


@pages.get("/console/offboarding")
def console_index(request: Request, actor: Reader, db: TenantDB) -> Response:

    return render(request, "offboarding/index.html", {
        "items": service.list_all(db), "can_manage": actor.can(Perm.OFFBOARDING_MANAGE),
        "customers": [o for o in accounts.switchable_orgs(db, actor.user_id or "") if o.kind == "tenant"]
        if actor.can(Perm.OFFBOARDING_MANAGE) else [],
    })


@pages.post("/console/offboarding")
def console_request(  # noqa: PLR0917 - the form's fields
        request: Request, org_id: Annotated[str, Form(max_length=36)],
                    notice_days: Annotated[int, Form(ge=0, le=service.MAX_NOTICE_DAYS)],
                    actor: Manager, db: TenantDB,
                    reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    ob = service.request(db, org_id=org_id, notice_days=notice_days, reason=reason,
                         actor_user_id=actor.user_id)
    return RedirectResponse(f"/console/offboarding/{ob.id}", status_code=303)


@pages.get("/console/offboarding/{offboarding_id}")
def console_detail(request: Request, offboarding_id: str, actor: Reader, db: TenantDB) -> Response:
    return render(request, "offboarding/detail.html", {
        "ob": service.get(db, offboarding_id), "can_manage": actor.can(Perm.OFFBOARDING_MANAGE),
    })


@pages.post("/console/offboarding/{offboarding_id}/approve")
def console_approve(request: Request, offboarding_id: str, actor: Manager, db: TenantDB) -> Response:
    service.approve(db, offboarding_id, actor_user_id=actor.user_id)
    return RedirectResponse(f"/console/offboarding/{offboarding_id}", status_code=303)


@pages.post("/console/offboarding/{offboarding_id}/delete")
def console_delete(request: Request, offboarding_id: str, actor: Manager) -> Response:
    service.start_deletion(request.app.state.db, offboarding_id, actor_user_id=actor.user_id)
    return RedirectResponse(f"/console/offboarding/{offboarding_id}", status_code=303)


@pages.get("/console/end-of-contract")
def console_customer(request: Request, actor: CustomerAdmin, db: TenantDB) -> Response:
    ob = service.for_customer(db, actor.org_id)
    return render(request, "offboarding/customer.html",
                  {"ob": ob, "ref": service.customer_ref(ob) if ob else None})


@pages.get("/console/end-of-contract/{end_of_contract_id}/export")
def console_customer_export(end_of_contract_id: str, actor: CustomerAdmin, db: TenantDB) -> Response:
    body, name = service.download_export(db, end_of_contract_id, org_id=actor.org_id,
                                         actor_user_id=actor.user_id)
    return _zip(body, name)
