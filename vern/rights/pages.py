"""The rights pages: the console for staff (``/console/rights``) and the public self-service portal
(``/p/<tenant>/rights``, with a plain ``/p/<tenant>/delete-me``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from vern.accounts.deps import DatabaseDep, TenantDB, anon_csrf_token, check_anon_csrf
from vern.accounts.models import Organisation
from vern.accounts.roles import OrgKind, Perm
from vern.console.templating import gettext, pick_locale, render
from vern.core.db import Database, Scope
from vern.core.errors import InvalidInput, NotFound
from vern.core.i18n import N_, format_day
from vern.notify import service as notify
from vern.rights import external, service
from vern.rights.models import Kind, RightsRequest, Status
from vern.rights.views import (
    Approver,
    Manager,
    Reader,
    after_change,
    recipients,
    request_json,
    serve_download,
)
from vern.stats.public import public_route

pages = APIRouter(tags=["rights pages"])


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
    after_change(background, database, req)
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
    after_change(background, database, service.get_request(db, step.request_id))
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
    after_change(background, database, req)
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
    after_change(background, database, req)
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
    return serve_download(
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
    after_change(background, database, req)
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
        return recipients(session)


@public_route(pages, "/p/{dsr_tenant}/download/{download_token}", methods=["GET"])
def portal_download(dsr_tenant: str, download_token: str, database: DatabaseDep) -> Response:
    org = _tenant(database, dsr_tenant)
    return serve_download(database, org.id, lambda session: service.download(session, download_token))


KIND_LABELS = {
    "access": N_("See my data"),
    "portability": N_("Get my data to take elsewhere"),
    "rectification": N_("Correct my data"),
    "erasure": N_("Delete me"),
    "restriction": N_("Limit the use of my data"),
    "objection": N_("Object to a use of my data"),
    "withdrawal": N_("Withdraw my consent"),
}
