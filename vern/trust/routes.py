"""The customers' trust page and the vendor's shared files.

``/trust`` (a customer's users, signed in): the current sub-processors and measures, the
agreement's status (an administrator reads and signs it here), maintenance notices, and the
files the vendor shares with this customer. The vendor uploads files and chooses customers in
the records console. Every download is audited.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from vern.accounts.deps import DatabaseDep, TenantDB, public, require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.console.templating import pick_locale, render
from vern.core.db import Database, Scope
from vern.core.errors import InvalidInput
from vern.core.inputs import Day
from vern.records import documents
from vern.records import service as records
from vern.records.render import document_response
from vern.trust import service

router = APIRouter(tags=["trust"])
pages = APIRouter(include_in_schema=False)
NAV = [("/console/trust", "Trust", Perm.TRUST_READ)]


class SignatureBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signer_name: str | None = Field(default=None, max_length=200)
    signed_on: Day | None = None


class ShareBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    org_ids: list[str] = Field(min_length=1, max_length=1000)


def _page_view(page: dict[str, Any]) -> dict[str, Any]:
    agreement = page["agreement"]
    return {"organisation": page["org"].name, "subprocessors": page["subprocessors"],
            "measures": page["measures"],
            "maintenance": [{k: m[k] if k not in ("starts_at", "ends_at") else m[k].isoformat()
                             for k in ("title_nb", "title_en", "starts_at", "ends_at", "emergency")}
                            for m in page["maintenance"]],
            "notices": [{"id": n["id"], "name": n["name"], "change": n["change"], "open": n["open"],
                         "closes_at": n["closes_at"].isoformat(),
                         "objected": n["objected_at"] is not None} for n in page["notices"]],
            "agreement": agreement,
            "files": [{**f, "uploaded_at": f["uploaded_at"].isoformat()} for f in page["files"]],
            "internal_control": page["control"]}


def _download(row: Any) -> Response:
    return Response(row.content, media_type=row.content_type, headers={
        "Content-Disposition": f'attachment; filename="{row.filename}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})


def _agreement_document(db: Any, agreement_id: str, fmt: str, lang: str) -> Response:
    row = records.get_agreement(db, agreement_id)
    if row.status == "signed" or (row.status == "superseded" and row.signed_at):
        html = documents.signed_dpa_html(db, row, lang)
    elif row.document_id:
        html = documents.html_of(records.get_document(db, row.document_id), lang)
    else:
        html = documents.dpa_html(db, org_id=row.org_id, version=row.version)[lang == "en"]
    return document_response(html, fmt, f"dpa-v{row.version}-{lang}")


# -- API -------------------------------------------------------------------------------------------


@router.get("/api/v1/trust")
def api_trust(actor: Annotated[Actor, Depends(require(Perm.TRUST_READ))], db: TenantDB) -> dict[str, Any]:
    """The caller's organisation's trust page."""
    return _page_view(service.page(db, actor.org_id))


@router.get("/api/v1/trust/files/{trust_share_id}")
def api_download(trust_share_id: str, actor: Annotated[Actor, Depends(require(Perm.TRUST_READ))],
                 db: TenantDB) -> Response:
    """A file the vendor shares with the caller's organisation (the download is audited)."""
    return _download(service.download(db, org_id=actor.org_id, share_id=trust_share_id,
                                      actor_user_id=actor.user_id))


@router.get("/api/v1/trust/agreements/{agreement_id}")
def api_agreement(agreement_id: str, actor: Annotated[Actor, Depends(require(Perm.TRUST_READ))],
                  db: TenantDB, format: Literal["html", "pdf"] = "html",
                  lang: Literal["nb", "en"] = "nb") -> Response:
    """The organisation's agreement: as sent, or as signed with its frozen annexes."""
    return _agreement_document(db, agreement_id, format, lang)


@router.post("/api/v1/trust/agreements/{agreement_id}/signature")
def api_sign(agreement_id: str, body: SignatureBody,
             actor: Annotated[Actor, Depends(require(Perm.AGREEMENT_SIGN))], db: TenantDB) -> dict[str, Any]:
    """Sign the agreement for the organisation: refused without the signer's name and date."""
    row = records.sign_agreement(db, agreement_id=agreement_id, signer_name=body.signer_name,
                                 signed_on=body.signed_on, actor_user_id=actor.user_id)
    return {"version": row.version, "status": row.status, "annex_sha256": row.annex_sha256}


@router.post("/api/v1/trust/files", status_code=201)
async def api_upload(actor: Annotated[Actor, Depends(require(Perm.TRUST_MANAGE))],
                     database: DatabaseDep, title: Annotated[str, Form(max_length=200)],
                     file: Annotated[UploadFile, File()]) -> dict[str, Any]:
    """Upload a file to share with customers (PDF, text, CSV, ZIP or PNG; at most 20 MB)."""
    row_id = await _store(database, actor, title, file)
    return {"id": row_id}


@router.post("/api/v1/trust/files/{shared_file_id}/shares")
def api_share(shared_file_id: str, body: ShareBody,
              actor: Annotated[Actor, Depends(require(Perm.TRUST_MANAGE))],
              database: DatabaseDep) -> dict[str, Any]:
    """Let the listed customers see the file on their trust page."""
    added = service.share_file(database, vendor_org_id=actor.org_id, file_id=shared_file_id,
                               org_ids=body.org_ids, actor_user_id=actor.user_id)
    return {"added": added}


@router.post("/api/v1/trust/files/{shared_file_id}/withdraw")
def api_withdraw(shared_file_id: str, actor: Annotated[Actor, Depends(require(Perm.TRUST_MANAGE))],
                 database: DatabaseDep) -> dict[str, Any]:
    """Withdraw a file: no customer sees or downloads it any more (404); the vendor keeps it
    listed as withdrawn."""
    _withdraw(database, actor, shared_file_id)
    return {"id": shared_file_id, "withdrawn": True}


def _withdraw(database: Database, actor: Actor, file_id: str) -> None:
    with database.transaction(Scope.tenant(actor.org_id)) as session:
        service.withdraw_file(session, org_id=actor.org_id, file_id=file_id,
                              actor_user_id=actor.user_id)


async def _store(database: Database, actor: Actor, title: str, file: UploadFile) -> str:
    content = await file.read(service.MAX_FILE + 1)
    with database.transaction(Scope.tenant(actor.org_id)) as session:
        row = service.upload_file(session, org_id=actor.org_id, title=title,
                                  filename=file.filename or "document",
                                  content_type=(file.content_type or "").split(";")[0],
                                  content=content, actor_user_id=actor.user_id)
        return row.id


# -- console ----------------------------------------------------------------------------------------


@pages.get("/trust", dependencies=[Depends(public)])
def trust_redirect() -> Response:
    """The trust page's short address."""
    return RedirectResponse("/console/trust", status_code=303)


def _trust_page(request: Request, actor: Actor, db: Any, *, error: Any = None,
                status: int = 200, done: str = "") -> Response:
    page = service.page(db, actor.org_id)
    return render(request, "trust/index.html", {
        **page, "can_sign": actor.can(Perm.AGREEMENT_SIGN), "error": error, "done": done,
        "today": date.today().isoformat(), "lang": pick_locale(request)}, status=status)


@pages.get("/console/trust")
def console_trust(request: Request, actor: Annotated[Actor, Depends(require(Perm.TRUST_READ))],
                  db: TenantDB) -> Response:
    return _trust_page(request, actor, db, done=request.query_params.get("done", "")[:20])


@pages.get("/console/trust/download/{trust_share_id}")
def console_download(trust_share_id: str, actor: Annotated[Actor, Depends(require(Perm.TRUST_READ))],
                     db: TenantDB) -> Response:
    return _download(service.download(db, org_id=actor.org_id, share_id=trust_share_id,
                                      actor_user_id=actor.user_id))


@pages.get("/console/trust/agreements/{agreement_id}")
def console_agreement(agreement_id: str, actor: Annotated[Actor, Depends(require(Perm.TRUST_READ))],
                      db: TenantDB, format: Literal["html", "pdf"] = "html",
                      lang: Literal["nb", "en"] = "nb") -> Response:
    return _agreement_document(db, agreement_id, format, lang)


@pages.post("/console/trust/agreements/{agreement_id}/sign")
def console_sign(request: Request, agreement_id: str, *,
                 actor: Annotated[Actor, Depends(require(Perm.AGREEMENT_SIGN))], db: TenantDB,
                 signer_name: Annotated[str, Form(max_length=200)] = "",
                 signed_on: Annotated[str, Form(max_length=10)] = "") -> Response:
    try:
        when = date.fromisoformat(signed_on) if signed_on else None
    except ValueError:
        when = None
    if when is not None and not 1970 <= when.year <= 9998:  # as the API's Day type
        when = None
        error: Any = InvalidInput.on("signed_on", "a date as YYYY-MM-DD")
        return _trust_page(request, actor, db, error=error, status=422)
    try:
        records.sign_agreement(db, agreement_id=agreement_id, signer_name=signer_name,
                               signed_on=when, actor_user_id=actor.user_id)
    except InvalidInput as exc:
        db.rollback()
        return _trust_page(request, actor, db, error=exc, status=422)
    return RedirectResponse("/console/trust?done=signed", status_code=303)


@pages.post("/console/trust/files")
async def console_upload(actor: Annotated[Actor, Depends(require(Perm.TRUST_MANAGE))],
                         database: DatabaseDep, title: Annotated[str, Form(max_length=200)],
                         file: Annotated[UploadFile, File()],
                         org_ids: Annotated[list[str] | None, Form()] = None) -> Response:
    file_id = await _store(database, actor, title, file)
    if org_ids:
        service.share_file(database, vendor_org_id=actor.org_id, file_id=file_id, org_ids=org_ids,
                           actor_user_id=actor.user_id)
    return RedirectResponse("/console/records#files", status_code=303)


@pages.post("/console/trust/files/{shared_file_id}/share")
def console_share(shared_file_id: str, actor: Annotated[Actor, Depends(require(Perm.TRUST_MANAGE))],
                  database: DatabaseDep, org_ids: Annotated[list[str] | None, Form()] = None) -> Response:
    if not org_ids:
        raise InvalidInput.on("org_ids", "choose at least one customer")
    service.share_file(database, vendor_org_id=actor.org_id, file_id=shared_file_id,
                       org_ids=org_ids, actor_user_id=actor.user_id)
    return RedirectResponse("/console/records#files", status_code=303)


@pages.post("/console/trust/files/{shared_file_id}/withdraw")
def console_withdraw(shared_file_id: str,
                     actor: Annotated[Actor, Depends(require(Perm.TRUST_MANAGE))],
                     database: DatabaseDep) -> Response:
    _withdraw(database, actor, shared_file_id)
    return RedirectResponse("/console/records#files", status_code=303)
