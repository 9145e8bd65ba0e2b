"""Data subject requests over HTTP: the API for a customer's systems (``/api/v1/rights``). The
console for staff (``/console/rights``) and the public self-service portal (``/p/<tenant>/rights``,
with a plain ``/p/<tenant>/delete-me``) are in vern.rights.pages, served with it from here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from vern.accounts.deps import DatabaseDep, TenantDB
from vern.accounts.models import Organisation
from vern.accounts.roles import OrgKind, Perm
from vern.core.db import Database, Scope
from vern.core.errors import FieldError, Forbidden, InvalidInput, NotFound
from vern.core.inputs import Key, Value
from vern.notify import service as notify
from vern.rights import external, service
from vern.rights.models import Flag, Kind
from vern.rights.pages import pages
from vern.rights.views import (
    Approver,
    Manager,
    Reader,
    TenantsManager,
    after_change,
    iso,
    request_json,
    serve_download,
)

router = APIRouter(prefix="/api/v1/rights", tags=["rights"])
# The console's and the portal's pages (vern.rights.pages) are discovered here with the API router.
__all__ = ["NAV", "pages", "router"]

# The console's navigation entry (label translated through the .po files).
NAV = [("/console/rights", "Data subject requests", Perm.RIGHTS_READ)]


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
    after_change(background, database, req)
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
    after_change(background, database, req)
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
    after_change(background, database, req)
    return answer


@router.post("/requests/{rights_request_id}/approve")
def approve(
    rights_request_id: str, actor: Approver, db: TenantDB, database: DatabaseDep, background: BackgroundTasks
) -> dict[str, Any]:
    """Approve a verified request for execution."""
    req = service.approve(db, rights_request_id, actor_user_id=actor.user_id,
                          person_id=actor.person_id)
    after_change(background, database, req)
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
    after_change(background, database, req)
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
    return serve_download(
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
                "created_at": iso(f.created_at),
            }
        )
    return {"items": items}


@router.post("/flags/{rights_flag_id}/lift")
def lift(rights_flag_id: str, actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Lift a restriction or objection flag, with a reason."""
    flag = service.lift_flag(db, rights_flag_id, actor_user_id=actor.user_id)
    return {"id": flag.id, "lifted_at": iso(flag.lifted_at)}


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


