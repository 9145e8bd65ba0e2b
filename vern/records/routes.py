"""Records of processing, generated documents and agreements: API and console for the vendor.

API (``/api/v1/records/…``): processing entries, the completeness check, exports of the record
(JSON, CSV, HTML, PDF), published document versions and their diffs, agreements per customer.
Console: ``/console/records``. The customers' side (their agreement, signing) is in vern.trust.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from vern.accounts.deps import DatabaseDep, TenantDB, require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.consent import service as consent
from vern.console.templating import pick_locale, render
from vern.core.db import Database, Scope
from vern.core.errors import InvalidInput, NotFound
from vern.core.inputs import Day, Int32, Key
from vern.datamap import service as datamap
from vern.records import documents, registry, service
from vern.records import render as rendering
from vern.records.models import DOCUMENT_KINDS
from vern.records.render import document_response
from vern.trust import service as trust

router = APIRouter(tags=["records"])
pages = APIRouter(include_in_schema=False)
NAV = [("/console/records", "Records", Perm.RECORDS_READ)]

Lang = Literal["nb", "en"]
DocFormat = Literal["html", "pdf"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntryBody(Strict):
    key: Key
    name_nb: str = Field(max_length=200)
    name_en: str = Field(max_length=200)
    purpose_keys: list[Key] = Field(default_factory=list, max_length=50)
    subjects: list[Key] = Field(default_factory=list, max_length=20)
    systems: list[Key] = Field(default_factory=list, max_length=50)
    own_tables: list[Key] = Field(default_factory=list, max_length=100)
    subprocessors: list[str] = Field(default_factory=list, max_length=100)
    recipients: list[str] = Field(default_factory=list, max_length=50)


class SignatureBody(Strict):
    signer_name: str | None = Field(default=None, max_length=200)
    signed_on: Day | None = None


def _kind(document_kind: str) -> str:
    if document_kind not in DOCUMENT_KINDS or document_kind == "dpa":
        raise NotFound(detail="no such document")
    return document_kind


def _tenant(database: Database, tenant_id: str) -> str:
    with database.transaction(Scope.system("records: a customer")) as session:
        if tenant_id not in {c[0] for c in service.customers(session)}:
            raise NotFound(detail="no such customer")
    return tenant_id


# -- API ---------------------------------------------------------------------------------------------


@router.get("/api/v1/records/entries")
def api_entries(actor: Annotated[Actor, Depends(require(Perm.RECORDS_READ))],
                db: TenantDB) -> dict[str, Any]:
    """The vendor's processing activities as controller, as references."""
    return {"entries": [service.entry_view(e) for e in service.list_entries(db, include_retired=True)]}


@router.post("/api/v1/records/entries", status_code=201)
def api_create_entry(body: EntryBody, actor: Annotated[Actor, Depends(require(Perm.RECORDS_MANAGE))],
                     db: TenantDB) -> dict[str, Any]:
    """Add a processing activity: consent purposes, data subjects, product systems, Vern's own
    tables, sub-processors and other recipients, each by its key."""
    data = service.EntryInput(
        key=body.key, name_nb=body.name_nb, name_en=body.name_en,
        purpose_keys=tuple(body.purpose_keys), subjects=tuple(body.subjects),
        systems=tuple(body.systems), own_tables=tuple(body.own_tables),
        subprocessors=tuple(body.subprocessors), recipients=tuple(body.recipients))
    return service.entry_view(service.create_entry(db, org_id=actor.org_id, data=data,
                                                   actor_user_id=actor.user_id))


@router.post("/api/v1/records/entries/{entry_key}/retire")
def api_retire_entry(entry_key: str, actor: Annotated[Actor, Depends(require(Perm.RECORDS_MANAGE))],
                     db: TenantDB) -> dict[str, Any]:
    """Retire a processing entry so the record no longer lists it (audited)."""
    return service.entry_view(service.retire_entry(db, key=entry_key, actor_user_id=actor.user_id))


@router.get("/api/v1/records/check")
def api_check(actor: Annotated[Actor, Depends(require(Perm.RECORDS_READ))],
              database: DatabaseDep) -> dict[str, Any]:
    """Every mandatory field of Art. 30(1) and 30(2) that is missing."""
    missing = documents.check(database)
    return {"complete": not missing,
            "missing": [{"record": m.record, "where": m.where, "field": m.field} for m in missing]}


@router.get("/api/v1/records/export")
def api_export(actor: Annotated[Actor, Depends(require(Perm.RECORDS_READ))], database: DatabaseDep,
               format: Literal["json", "csv", "html", "pdf"] = "json",
               controller: Annotated[str, Query(max_length=36)] = "vendor",
               lang: Lang = "nb") -> Response:
    """The record for ``vendor`` (as controller and processor), ``customers`` (every customer's
    processor record, JSON) or one customer's organisation id."""
    if controller not in ("vendor", "customers"):
        _tenant(database, controller)
    data = documents.export(database, controller=controller, fmt=format, locale=lang)
    name = f"record-of-processing-{controller}.{format}"
    return Response(data, media_type=documents.MEDIA[format], headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@router.get("/api/v1/records/tenants/{tenant_id}/record")
def api_customer_record(tenant_id: str, actor: Annotated[Actor, Depends(require(Perm.RECORDS_READ))],
                        database: DatabaseDep) -> dict[str, Any]:
    """The processor record kept for one customer (Art. 30(2))."""
    vendor = documents.vendor_id(database)
    return documents.customer_record(database, vendor, _tenant(database, tenant_id))


@router.get("/api/v1/records/documents/{document_kind}")
def api_document_versions(document_kind: str,
                          actor: Annotated[Actor, Depends(require(Perm.RECORDS_READ))],
                          db: TenantDB) -> dict[str, Any]:
    """The published versions of the vendor's privacy statement, record or cookie policy; for
    the privacy statement, when each version was announced by e-mail and to how many people."""
    kind = _kind(document_kind)
    told = service.announcements(db, kind)
    return {"versions": [{"version": d.version, "published_at": d.published_at.isoformat(),
                          "sha256": d.sha256,
                          "announced_at": told[d.id].announced_at.isoformat() if d.id in told else None,
                          "announced_to": told[d.id].recipients if d.id in told else None}
                         for d in service.document_versions(db, kind)]}


@router.post("/api/v1/records/documents/{document_kind}", status_code=201)
def api_publish_document(document_kind: str,
                         actor: Annotated[Actor, Depends(require(Perm.RECORDS_MANAGE))],
                         database: DatabaseDep) -> dict[str, Any]:
    """Publish a new version from the records as they stand (nothing when unchanged)."""
    row = documents.publish(database, kind=_kind(document_kind), vendor_org_id=actor.org_id,
                            actor_user_id=actor.user_id)
    return {"published": row is not None, "version": row.version if row else None}


@router.get("/api/v1/records/documents/{document_kind}/diff")
def api_document_diff(document_kind: str, *, actor: Annotated[Actor, Depends(require(Perm.RECORDS_READ))],
                      db: TenantDB, old: Annotated[Int32, Query(alias="from", ge=1)],
                      new: Annotated[Int32, Query(alias="to", ge=1)], lang: Lang = "nb") -> dict[str, Any]:
    """The changes between two published versions, line by line (unified diff of the text)."""
    kind = _kind(document_kind)
    a, b = service.document_version(db, kind, old), service.document_version(db, kind, new)
    return {"diff": rendering.diff(documents.html_of(a, lang), documents.html_of(b, lang),
                                   f"{kind} v{old}", f"{kind} v{new}")}


@router.get("/api/v1/records/documents/{document_kind}/{document_version}")
def api_document(document_kind: str, document_version: Int32, *,
                 actor: Annotated[Actor, Depends(require(Perm.RECORDS_READ))], db: TenantDB,
                 format: DocFormat = "html", lang: Lang = "nb") -> Response:
    """One published version of the privacy statement, cookie statement or record, as HTML or PDF."""
    kind = _kind(document_kind)
    row = service.document_version(db, kind, document_version)
    return document_response(documents.html_of(row, lang), format, f"{kind}-v{row.version}-{lang}")


@router.get("/api/v1/records/agreements")
def api_agreements(actor: Annotated[Actor, Depends(require(Perm.RECORDS_READ))],
                   database: DatabaseDep) -> dict[str, Any]:
    """Every customer's agreement status (versions, sent, signed and when)."""
    return {"customers": agreements_overview(database)}


@router.post("/api/v1/records/tenants/{tenant_id}/agreements", status_code=201)
def api_issue_agreement(tenant_id: str, actor: Annotated[Actor, Depends(require(Perm.RECORDS_MANAGE))],
                        database: DatabaseDep) -> dict[str, Any]:
    """A new DPA version for the customer, sent to its administrators (nothing when the text
    is unchanged since its latest sent or signed version)."""
    row = documents.publish_dpa(database, org_id=_tenant(database, tenant_id),
                                actor_user_id=actor.user_id)
    return {"published": row is not None}


@router.post("/api/v1/records/tenants/{tenant_id}/signature")
def api_register_signature(tenant_id: str, body: SignatureBody,
                           actor: Annotated[Actor, Depends(require(Perm.RECORDS_MANAGE))],
                           database: DatabaseDep) -> dict[str, Any]:
    """Register a signature given outside Vern (on paper) for the customer's sent agreement:
    refused without the signer's name and the date."""
    org_id = _tenant(database, tenant_id)
    with database.transaction(Scope.tenant(org_id)) as session:
        pending = service.agreement_status(session)["pending"]
        if pending is None:
            raise InvalidInput.on("tenant_id", "the customer has no agreement waiting for a signature")
        row = service.sign_agreement(session, agreement_id=pending["id"], signer_name=body.signer_name,
                                     signed_on=body.signed_on, actor_user_id=actor.user_id)
        return {"version": row.version, "status": row.status,
                "signed_at": row.signed_at.isoformat() if row.signed_at else None}


def agreements_overview(database: Database) -> list[dict[str, Any]]:
    out = []
    with database.transaction(Scope.system("records: customers")) as session:
        customers = service.customers(session)
    for org_id, name, number in customers:
        with database.transaction(Scope.tenant(org_id)) as session:
            status = service.agreement_status(session)
        signed, pending = status["signed"], status["pending"]
        out.append({"org_id": org_id, "name": name, "org_number": number,
                    "signed_version": signed["version"] if signed else None,
                    "signed_at": signed["signed_at"] if signed else None,
                    "pending_version": pending["version"] if pending else None,
                    "sent_at": pending["sent_at"] if pending else None})
    return out


# -- console -----------------------------------------------------------------------------------------


def _index(request: Request, actor: Actor, database: Database, *, error: Any = None,
           status: int = 200) -> Response:
    with database.transaction(Scope.tenant(actor.org_id)) as session:

        entries = service.list_entries(session, include_retired=True)
        versions = {k: service.document_versions(session, k) for k in ("privacy", "record", "cookie")}
        purposes = [p.key for p in consent.list_purposes(session)]
        dm = datamap.current_map(session)
        systems = sorted(dm.systems) if dm else []
        subs = registry.subprocessors(session)

    with database.transaction(Scope.system("records console: files and customers")) as session:
        files = [{"row": f, "shared": trust.shared_with(session, f.id)} for f in trust.list_files(session)]
    return render(request, "records/index.html", {
        "entries": entries, "versions": versions, "missing": documents.check(database),
        "agreements": agreements_overview(database), "subjects": service.SUBJECTS,
        "purposes": purposes, "systems": systems, "subprocessors": subs, "files": files,
        "can_manage": actor.can(Perm.RECORDS_MANAGE), "can_share": actor.can(Perm.TRUST_MANAGE),
        "error": error,
    }, status=status)


@pages.get("/console/records")
def console_index(request: Request, actor: Annotated[Actor, Depends(require(Perm.RECORDS_READ))],
                  database: DatabaseDep) -> Response:
    return _index(request, actor, database)


@pages.post("/console/records/entries")
def console_create_entry(
    request: Request, *, actor: Annotated[Actor, Depends(require(Perm.RECORDS_MANAGE))],
    database: DatabaseDep, key: Annotated[str, Form(max_length=40)],
    name_nb: Annotated[str, Form(max_length=200)], name_en: Annotated[str, Form(max_length=200)],
    purpose_keys: Annotated[list[str] | None, Form()] = None,
    subjects: Annotated[list[str] | None, Form()] = None,
    systems: Annotated[list[str] | None, Form()] = None,
    subprocessors: Annotated[list[str] | None, Form()] = None,
    own_tables: Annotated[str, Form(max_length=4000)] = "",
    recipients: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """``own_tables`` separated by commas; ``recipients`` one category per line."""
    data = service.EntryInput(
        key=key, name_nb=name_nb, name_en=name_en, purpose_keys=tuple(purpose_keys or ()),
        subjects=tuple(subjects or ()), systems=tuple(systems or ()),
        subprocessors=tuple(subprocessors or ()),
        own_tables=tuple(t.strip() for t in own_tables.split(",") if t.strip()),
        recipients=tuple(r.strip() for r in recipients.splitlines() if r.strip()))
    try:
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            service.create_entry(session, org_id=actor.org_id, data=data, actor_user_id=actor.user_id)
    except InvalidInput as exc:
        return _index(request, actor, database, error=exc, status=422)
    return RedirectResponse("/console/records", status_code=303)


@pages.post("/console/records/entries/{entry_key}/retire")
def console_retire_entry(request: Request, entry_key: str, *,
                         actor: Annotated[Actor, Depends(require(Perm.RECORDS_MANAGE))],
                         db: TenantDB) -> Response:
    service.retire_entry(db, key=entry_key, actor_user_id=actor.user_id)
    return RedirectResponse("/console/records", status_code=303)


@pages.post("/console/records/documents")
def console_publish(request: Request, *, actor: Annotated[Actor, Depends(require(Perm.RECORDS_MANAGE))],
                    database: DatabaseDep, kind: Annotated[str, Form(max_length=16)]) -> Response:
    if kind == "dpa":
        documents.publish_dpa_all(database, actor_user_id=actor.user_id)
    else:
        documents.publish(database, kind=_kind(kind), vendor_org_id=actor.org_id,
                          actor_user_id=actor.user_id)
    return RedirectResponse("/console/records", status_code=303)


@pages.get("/console/records/download/record")
def console_export(request: Request, actor: Annotated[Actor, Depends(require(Perm.RECORDS_READ))],
                   database: DatabaseDep,
                   format: Literal["json", "csv", "html", "pdf"] = "pdf",
                   lang: Lang = "nb") -> Response:
    data = documents.export(database, controller="vendor", fmt=format, locale=lang)
    return Response(data, media_type=documents.MEDIA[format], headers={
        "Content-Disposition": f'attachment; filename="record-of-processing.{format}"',
        "Cache-Control": "no-store"})


@pages.get("/console/records/documents/{document_kind}")
def console_versions(request: Request, document_kind: str, *,
                     actor: Annotated[Actor, Depends(require(Perm.RECORDS_READ))], db: TenantDB,
                     old: Annotated[Int32 | None, Query(alias="from", ge=1)] = None,
                     new: Annotated[Int32 | None, Query(alias="to", ge=1)] = None) -> Response:
    """The versions of a document, and the diff between two of them."""
    kind = _kind(document_kind)
    versions = service.document_versions(db, kind)
    lang = pick_locale(request)
    diff: list[str] = []
    if old and new:
        a, b = service.document_version(db, kind, old), service.document_version(db, kind, new)
        diff = rendering.diff(documents.html_of(a, lang), documents.html_of(b, lang),
                              f"v{old}", f"v{new}")
    return render(request, "records/versions.html", {
        "kind": kind, "title": documents.TITLES[kind], "versions": versions, "diff": diff,
        "old": old, "new": new, "announced": service.announcements(db, kind),
        "announces": kind in service.ANNOUNCED_KINDS})


@pages.get("/console/records/documents/{document_kind}/{document_version}")
def console_document(request: Request, document_kind: str, document_version: Int32, *,
                     actor: Annotated[Actor, Depends(require(Perm.RECORDS_READ))], db: TenantDB,
                     format: DocFormat = "html", lang: Lang = "nb") -> Response:
    kind = _kind(document_kind)
    row = service.document_version(db, kind, document_version)
    return document_response(documents.html_of(row, lang), format, f"{kind}-v{row.version}-{lang}")
