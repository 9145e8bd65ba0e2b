"""Access control over HTTP: ``/api/v1/access`` and the console's ``/console/access`` pages -
vendor access grants (asked by vendor staff, decided by the customer's administrator), role
requests that need a second person, and access reviews."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from vern.access import service
from vern.accounts import service as accounts
from vern.accounts.deps import DatabaseDep, TenantDB, require
from vern.accounts.roles import ROLE_LABELS, ROLES_FOR_KIND, OrgKind, Perm
from vern.accounts.service import Actor
from vern.console.templating import render
from vern.core.db import Scope
from vern.core.errors import Forbidden, InvalidInput, VernError
from vern.core.i18n import N_
from vern.core.inputs import AwareMoment

router = APIRouter(prefix="/api/v1/access", tags=["access"])
pages = APIRouter(include_in_schema=False)
NAV = [("/console/access", "Access control", Perm.ACCESS_REQUEST)]

Requester = Annotated[Actor, Depends(require(Perm.ACCESS_REQUEST))]
Manager = Annotated[Actor, Depends(require(Perm.ACCESS_MANAGE))]
VendorStaff = Annotated[Actor, Depends(require(Perm.ACCESS_VENDOR))]
# The vendor's staff who administer customers: a second person for customers' role requests.
TenantsAdmin = Annotated[Actor, Depends(require(Perm.TENANTS_MANAGE))]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GrantBody(Strict):
    org_id: str = Field(max_length=36)
    purpose: Literal["support", "incident"]
    reason: str = Field(max_length=2000)
    starts_at: AwareMoment | None = None
    ends_at: AwareMoment | None = None


class NoteBody(Strict):
    note: str = Field(default="", max_length=2000)


class RoleRequestBody(Strict):
    role: str = Field(max_length=32)
    need: str = Field(max_length=2000)
    user_id: str | None = Field(default=None, max_length=36)


class ReviewBody(Strict):
    title: str = Field(default="", max_length=200)
    days: int = Field(default=service.REVIEW_DAYS, ge=1, le=90)


class DecisionBody(Strict):
    decision: Literal["keep", "revoke"]
    note: str = Field(default="", max_length=2000)


def _ask_for_grant(database: Any, actor: Actor, org_id: str, **fields: Any) -> dict[str, Any]:
    """The grant is the customer's record: written in a transaction scoped to the customer."""
    with database.transaction(Scope.system("access: which customer")) as session:
        if not any(t.id == org_id for t in accounts.list_tenants(session)):
            raise InvalidInput.on("org_id", "no such customer")
    with database.transaction(Scope.tenant(org_id)) as session:
        grant = service.request_grant(session, actor=actor, org_id=org_id, **fields)
        return service.grant_view(grant, for_vendor=True)


# -- API: vendor access grants --------------------------------------------------------------------


@router.post("/grants", status_code=201)
def request_grant(body: GrantBody, actor: VendorStaff, database: DatabaseDep) -> dict[str, Any]:
    """Vendor staff ask a customer for access to its data: why (support or incident, and a
    reason), from when (default now) until when (at most 30 days). It waits for the customer's
    administrator."""
    return _ask_for_grant(database, actor, body.org_id, purpose=body.purpose, reason=body.reason,
                          starts_at=body.starts_at, ends_at=body.ends_at)


@router.get("/grants")
def list_grants(actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Every access grant asked of this organisation, newest first, with its state now."""
    return {"items": [service.grant_view(g) for g in service.list_grants(db)]}


@router.get("/my-grants")
def my_grants(actor: VendorStaff, database: DatabaseDep) -> dict[str, Any]:
    """The caller's own grants across customers (vendor staff)."""
    if actor.user_id is None:
        return {"items": []}  # a token is nobody's: grants are given to named people
    with database.transaction(Scope.system("access: own grants")) as session:
        return {"items": [service.grant_view(g, for_vendor=True)
                          for g in service.grants_of(session, user_id=actor.user_id)]}


@router.get("/grants/{access_grant_id}")
def get_grant(access_grant_id: str, actor: Manager, db: TenantDB) -> dict[str, Any]:
    """One grant and every access made under it (records of this organisation's trail)."""
    grant = service.get_grant(db, access_grant_id)
    return {**service.grant_view(grant), "accesses": service.accesses_under(db, grant)}


@router.post("/grants/{access_grant_id}/approve")
def approve_grant(access_grant_id: str, body: NoteBody, actor: Manager, db: TenantDB
                  ) -> dict[str, Any]:
    """The customer's administrator approves a pending grant."""
    return service.grant_view(service.decide_grant(db, access_grant_id, approve=True,
                                                   actor=actor, note=body.note))


@router.post("/grants/{access_grant_id}/refuse")
def refuse_grant(access_grant_id: str, body: NoteBody, actor: Manager, db: TenantDB
                 ) -> dict[str, Any]:
    """The customer's administrator refuses a pending grant (with a note)."""
    return service.grant_view(service.decide_grant(db, access_grant_id, approve=False,
                                                   actor=actor, note=body.note))


@router.post("/grants/{access_grant_id}/revoke")
def revoke_grant(access_grant_id: str, actor: Manager, db: TenantDB) -> dict[str, Any]:
    """End a grant now: the vendor's staff are refused from their next request."""
    return service.grant_view(service.revoke_grant(db, access_grant_id, actor=actor))


# -- API: role requests ---------------------------------------------------------------------------


@router.post("/requests", status_code=201)
def request_role(body: RoleRequestBody, actor: Requester, db: TenantDB) -> dict[str, Any]:
    """Ask for a role with a stated need (for oneself, or - an administrator - for a member)."""
    return service.role_request_view(service.request_role(
        db, actor=actor, role=body.role, need=body.need, user_id=body.user_id))


@router.get("/requests")
def list_role_requests(actor: Manager, db: TenantDB, status: str | None = None
                       ) -> dict[str, Any]:
    """Role requests of this organisation (``status=pending`` for those waiting)."""
    return {"items": [service.role_request_view(r)
                      for r in service.list_role_requests(db, status=status)]}


@router.post("/requests/{access_request_id}/approve")
def approve_role_request(access_request_id: str, body: NoteBody, actor: Manager, db: TenantDB
                         ) -> dict[str, Any]:
    """A second administrator approves: the role is given at once."""
    return service.role_request_view(service.decide_role_request(
        db, access_request_id, approve=True, actor=actor, note=body.note))


@router.post("/requests/{access_request_id}/refuse")
def refuse_role_request(access_request_id: str, body: NoteBody, actor: Manager, db: TenantDB
                        ) -> dict[str, Any]:
    """Refuse a role request (with a note)."""
    return service.role_request_view(service.decide_role_request(
        db, access_request_id, approve=False, actor=actor, note=body.note))


# -- API: customers' role requests, decided by the vendor's staff ---------------------------------


def customer_requests(database: Any, actor: Actor) -> list[dict[str, Any]]:
    with database.transaction(Scope.system("access: customers' pending role requests")) as s:
        return service.customer_role_requests(s, actor=actor)


def decide_customer_request(database: Any, actor: Actor, request_id: str, *, approve: bool,
                            note: str) -> dict[str, Any]:
    """Find the customer the request belongs to, then decide in that customer's scope: the
    records are the customer's."""
    if not service.tenant_administrator(actor):
        raise Forbidden(detail="only the vendor's staff who administer customers decide here")
    with database.transaction(Scope.system("access: which customer's request")) as session:
        org_id = service.customer_request_org(session, request_id)
    with database.transaction(Scope.tenant(org_id)) as session:
        row = service.decide_role_request(session, request_id, approve=approve, actor=actor,
                                          note=note)
        return {"id": row.id, "org_id": row.org_id, "role": row.role, "status": row.status,
                "decided_at": row.decided_at.isoformat() if row.decided_at else None,
                "decision_note": row.decision_note}


@router.get("/customer-requests")
def list_customer_requests(actor: TenantsAdmin, database: DatabaseDep) -> dict[str, Any]:
    """Pending role requests of every customer (vendor staff who administer customers): whom
    the role is for, which role, the stated need and who asked - nothing else of theirs."""
    return {"items": customer_requests(database, actor)}


@router.post("/customer-requests/{customer_request_id}/approve")
def approve_customer_request(customer_request_id: str, body: NoteBody, actor: TenantsAdmin,
                             database: DatabaseDep) -> dict[str, Any]:
    """The vendor's staff approve a customer's role request as the second person (never one
    they asked for or that is for them): the role is given at once."""
    return decide_customer_request(database, actor, customer_request_id, approve=True,
                                   note=body.note)


@router.post("/customer-requests/{customer_request_id}/refuse")
def refuse_customer_request(customer_request_id: str, body: NoteBody, actor: TenantsAdmin,
                            database: DatabaseDep) -> dict[str, Any]:
    """The vendor's staff refuse a customer's role request (with a note)."""
    return decide_customer_request(database, actor, customer_request_id, approve=False,
                                   note=body.note)


# -- API: access reviews --------------------------------------------------------------------------


@router.post("/reviews", status_code=201)
def open_review(body: ReviewBody, actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Open a campaign over every privileged account of this organisation."""
    review = service.open_review(db, actor=actor, title=body.title, days=body.days)
    return service.review_evidence(db, review.id)


@router.get("/reviews")
def list_reviews(actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Campaigns, newest first."""
    return {"items": [{"id": r.id, "title": r.title, "opened_at": r.opened_at.isoformat(),
                       "due_at": r.due_at.isoformat(),
                       "closed_at": r.closed_at.isoformat() if r.closed_at else None}
                      for r in service.list_reviews(db)]}


@router.get("/reviews/{access_review_id}")
def review_evidence(access_review_id: str, actor: Manager, db: TenantDB) -> JSONResponse:
    """The campaign and every decision: the evidence, as a JSON file to keep."""
    body = service.review_evidence(db, access_review_id)
    return JSONResponse(body, headers={
        "Content-Disposition": f'attachment; filename="access-review-{access_review_id}.json"'})


@router.post("/reviews/{access_review_id}/items/{access_review_item_id}")
def decide_review_item(access_review_id: str, access_review_item_id: str, body: DecisionBody,
                       actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Keep or revoke one account; a revocation takes effect at once."""
    item = service.decide_item(db, access_review_id, access_review_item_id,
                               decision=body.decision, actor=actor, note=body.note)
    return {"id": item.id, "user_id": item.user_id, "role": item.role, "decision": item.decision}


@router.post("/reviews/{access_review_id}/close")
def close_review(access_review_id: str, actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Close a campaign once every account is decided; its result is kept."""
    service.close_review(db, access_review_id, actor=actor)
    return service.review_evidence(db, access_review_id)


STATE_LABELS = {
    "support": N_("support"), "incident": N_("incident"), "pending": N_("pending"),
    "approved": N_("approved"), "refused": N_("refused"), "revoked": N_("revoked"),
    "scheduled": N_("scheduled"), "active": N_("active"), "expired": N_("expired"),
    "keep": N_("kept"), "revoke": N_("revoked"),
}


def _render(request: Request, template: str, ctx: dict[str, Any], status: int = 200) -> Response:

    return render(request, template, {
        **ctx, "labels": STATE_LABELS,
        "role_labels": {role.value: label for role, label in ROLE_LABELS.items()}}, status=status)


# -- console --------------------------------------------------------------------------------------


def _names(session: Session, ids: set[str | None]) -> dict[str, str]:
    return service.person_names(session, {i for i in ids if i})


def _index_context(session: Session, database: Any, actor: Actor) -> dict[str, Any]:
    ctx: dict[str, Any] = {"can_manage": actor.home and actor.can(Perm.ACCESS_MANAGE),
                           "can_vendor": actor.home and actor.can(Perm.ACCESS_VENDOR),
                           "grants": [], "mine": [], "requests": [], "reviews": [],
                           "customers": [], "now": datetime.now(UTC)}
    org = accounts.get_organisation(session, actor.org_id)

    ctx["roles"] = [(r.value, label) for r, label in ROLE_LABELS.items()
                    if r in ROLES_FOR_KIND[OrgKind(org.kind)]]
    ctx["is_tenant"] = org.kind == OrgKind.TENANT.value
    if ctx["can_manage"]:
        ctx["grants"] = [service.grant_view(g) for g in service.list_grants(session)]
        ctx["requests"] = [service.role_request_view(r)
                           for r in service.list_role_requests(session)]
        ctx["reviews"] = service.list_reviews(session)
    ctx["can_decide_customers"] = service.tenant_administrator(actor)
    ctx["customer_requests"] = customer_requests(database, actor) \
        if ctx["can_decide_customers"] else []
    if ctx["can_vendor"] and actor.user_id is not None:
        with database.transaction(Scope.system("access: own grants")) as system:
            tenants = accounts.list_tenants(system)
            ctx["customers"] = [(t.id, t.name) for t in tenants if t.disabled_at is None]
            ctx["mine"] = [service.grant_view(g, for_vendor=True)
                           for g in service.grants_of(system, user_id=actor.user_id)]
            ctx["org_names"] = {t.id: t.name for t in tenants}
    ctx["names"] = _names(session, {g["grantee_user_id"] for g in ctx["grants"]}
                          | {r["user_id"] for r in ctx["requests"]}
                          | {r["requested_by"] for r in ctx["requests"]})
    return ctx


def _index(request: Request, database: Any, actor: Actor, *, error: VernError | None = None,
           values: dict[str, str] | None = None, done: str | None = None) -> Response:
    with database.transaction(Scope.tenant(actor.org_id)) as session:
        ctx = _index_context(session, database, actor)
    ctx.update({"error": error, "values": values or {}, "done": done})
    return _render(request, "access/index.html", ctx, status=error.status if error else 200)


@pages.get("/console/access")
def console_index(request: Request, actor: Requester, database: DatabaseDep,
                  done: str | None = None) -> Response:
    return _index(request, database, actor, done=done)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(v)[:2000] for k, v in form.items() if isinstance(v, str)}


def _moment(value: str, field: str) -> datetime | None:
    """A ``datetime-local`` field, read as UTC (the form says so)."""
    if not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput.on(field, "give a date and time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@pages.post("/console/access/grants")
async def console_request_grant(request: Request, actor: VendorStaff,
                                database: DatabaseDep) -> Response:
    form = await _form(request)
    try:
        _ask_for_grant(database, actor, form.get("org_id", "")[:36],
                       purpose=form.get("purpose", ""), reason=form.get("reason", ""),
                       starts_at=_moment(form.get("starts_at", ""), "starts_at"),
                       ends_at=_moment(form.get("ends_at", ""), "ends_at"))
    except VernError as exc:
        return _index(request, database, actor, error=exc, values=form)
    return RedirectResponse("/console/access?done=grant-requested", status_code=303)


def _grant_page(request: Request, db: Session, grant_id: str, *,
                error: VernError | None = None) -> Response:
    grant = service.get_grant(db, grant_id)
    return _render(request, "access/grant.html", {
        "g": service.grant_view(grant), "accesses": service.accesses_under(db, grant),
        "names": _names(db, {grant.grantee_user_id, grant.decided_by}), "error": error,
    }, status=error.status if error else 200)


@pages.get("/console/access/grants/{access_grant_id}")
def console_grant(request: Request, access_grant_id: str, actor: Manager, db: TenantDB
                  ) -> Response:
    return _grant_page(request, db, access_grant_id)


def _grant_action(verb: str) -> None:
    async def decide(request: Request, access_grant_id: str, actor: Manager,
                     database: DatabaseDep) -> Response:
        form = await _form(request)
        try:
            with database.transaction(Scope.tenant(actor.org_id)) as session:
                if verb == "revoke":
                    service.revoke_grant(session, access_grant_id, actor=actor)
                else:
                    service.decide_grant(session, access_grant_id, approve=verb == "approve",
                                         actor=actor, note=form.get("note", ""))
        except VernError as exc:
            if exc.status == 404:
                raise
            with database.transaction(Scope.tenant(actor.org_id)) as session:
                return _grant_page(request, session, access_grant_id, error=exc)
        return RedirectResponse(f"/console/access/grants/{access_grant_id}", status_code=303)

    decide.__name__ = f"console_{verb}_grant"
    pages.post(f"/console/access/grants/{{access_grant_id}}/{verb}")(decide)


for _verb in ("approve", "refuse", "revoke"):
    _grant_action(_verb)


@pages.post("/console/access/requests")
async def console_request_role(request: Request, actor: Requester,
                               database: DatabaseDep) -> Response:
    form = await _form(request)
    try:
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            service.request_role(session, actor=actor, role=form.get("role", "")[:32],
                                 need=form.get("need", ""))
    except VernError as exc:
        return _index(request, database, actor, error=exc, values=form)
    return RedirectResponse("/console/access?done=role-requested", status_code=303)


def _role_action(verb: str) -> None:
    async def decide(request: Request, access_request_id: str, actor: Manager,
                     database: DatabaseDep) -> Response:
        form = await _form(request)
        try:
            with database.transaction(Scope.tenant(actor.org_id)) as session:
                service.decide_role_request(session, access_request_id,
                                            approve=verb == "approve", actor=actor,
                                            note=form.get("note", ""))
        except VernError as exc:
            if exc.status == 404:
                raise
            return _index(request, database, actor, error=exc, values=form)
        return RedirectResponse(f"/console/access?done=role-{verb}", status_code=303)

    decide.__name__ = f"console_{verb}_role_request"
    pages.post(f"/console/access/requests/{{access_request_id}}/{verb}")(decide)


for _verb in ("approve", "refuse"):
    _role_action(_verb)


def _customer_request_action(verb: str) -> None:
    async def decide(request: Request, customer_request_id: str, actor: TenantsAdmin,
                     database: DatabaseDep) -> Response:
        form = await _form(request)
        try:
            decide_customer_request(database, actor, customer_request_id,
                                    approve=verb == "approve", note=form.get("note", ""))
        except VernError as exc:
            if exc.status == 404:
                raise
            return _index(request, database, actor, error=exc, values=form)
        return RedirectResponse(f"/console/access?done=role-{verb}", status_code=303)

    decide.__name__ = f"console_{verb}_customer_request"
    pages.post(f"/console/access/customer-requests/{{customer_request_id}}/{verb}")(decide)


for _verb in ("approve", "refuse"):
    _customer_request_action(_verb)


@pages.post("/console/access/reviews")
async def console_open_review(request: Request, actor: Manager, database: DatabaseDep
                              ) -> Response:
    form = await _form(request)
    with database.transaction(Scope.tenant(actor.org_id)) as session:
        review = service.open_review(session, actor=actor, title=form.get("title", ""))
        review_id = review.id
    return RedirectResponse(f"/console/access/reviews/{review_id}", status_code=303)


def _review_page(request: Request, db: Session, review_id: str, *,
                 error: VernError | None = None) -> Response:
    review = service.get_review(db, review_id)
    items = service.review_items(db, review_id)
    return _render(request, "access/review.html", {
        "review": review, "items": items, "error": error,
        "names": _names(db, {*(i.user_id for i in items), *(i.decided_by for i in items)}),
    }, status=error.status if error else 200)


@pages.get("/console/access/reviews/{access_review_id}")
def console_review(request: Request, access_review_id: str, actor: Manager, db: TenantDB
                   ) -> Response:
    return _review_page(request, db, access_review_id)


@pages.post("/console/access/reviews/{access_review_id}/items/{access_review_item_id}")
async def console_decide_item(request: Request, access_review_id: str,
                              access_review_item_id: str, actor: Manager,
                              database: DatabaseDep) -> Response:
    form = await _form(request)
    try:
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            service.decide_item(session, access_review_id, access_review_item_id,
                                decision=form.get("decision", ""), actor=actor,
                                note=form.get("note", ""))
    except VernError as exc:
        if exc.status == 404:
            raise
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            return _review_page(request, session, access_review_id, error=exc)
    return RedirectResponse(f"/console/access/reviews/{access_review_id}", status_code=303)


@pages.post("/console/access/reviews/{access_review_id}/close")
def console_close_review(request: Request, access_review_id: str, actor: Manager,
                         database: DatabaseDep) -> Response:
    try:
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            service.close_review(session, access_review_id, actor=actor)
    except VernError as exc:
        if exc.status == 404:
            raise
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            return _review_page(request, session, access_review_id, error=exc)
    return RedirectResponse(f"/console/access/reviews/{access_review_id}", status_code=303)
