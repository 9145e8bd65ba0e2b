"""The audit trail in the API and the console. Read-only everywhere: no route edits or deletes a
record. Every search and export is itself recorded (``audit.read``).

API: ``GET /api/v1/audit/events`` (filters, cursor, ``format=json|csv|jsonl`` export),
``POST /api/v1/audit/events`` (ingest, API token with ``audit.ingest``),
``GET /api/v1/audit/checkpoint`` (and ``checkpoint.note``, a C2SP signed note),
``GET /api/v1/audit/proofs/inclusion``,
``GET /api/v1/audit/proofs/consistency``, ``GET /api/v1/audit/alerts``.
Console: ``/console/audit`` and ``/console/audit/alerts``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from sqlalchemy import select

from vern.accounts.deps import DatabaseDep, SettingsDep, TenantDB, require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.audit import ingest as ingest_mod
from vern.audit import proofs, query, witness
from vern.audit.chain import Signer
from vern.audit.models import AuditEvent
from vern.audit.service import record
from vern.console.templating import render
from vern.core import responses as openapi
from vern.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from vern.core.inputs import Int64, parse_moment

router = APIRouter(tags=["audit"])
pages = APIRouter(include_in_schema=False)
NAV = [("/console/audit", "Audit trail", Perm.AUDIT_READ)]

ReadActor = Annotated[Actor, Depends(require(Perm.AUDIT_READ))]
ReadAllActor = Annotated[Actor, Depends(require(Perm.AUDIT_READ_ALL))]
Outcome = Literal["success", "failure", "denied", "error"]


def _time(value: str | None, field: str) -> datetime | None:
    return parse_moment(value, field) if value else None


def _filters(  # noqa: PLR0917 - the query parameters
    resource: str | None, actor: str | None, ip: str | None, action: str | None,
             outcome: str | None, since: str | None, until: str | None,
             org: str | None) -> query.Filters:
    if outcome and outcome not in ("success", "failure", "denied", "error"):
        raise InvalidInput.on("outcome", "must be success, failure, denied or error")
    return query.Filters(resource=resource or None, actor=actor or None, ip=ip or None,
                         action=action or None, outcome=outcome or None,
                         since=_time(since, "since"), until=_time(until, "until"),
                         org=org or None)


@router.get("/api/v1/audit/events",
            responses=openapi.answers("application/json", "text/csv", "application/x-ndjson"))
def list_events(  # noqa: PLR0917 - FastAPI parameters
    actor: ReadActor, db: TenantDB, settings: SettingsDep,
    resource: Annotated[str | None, Query(max_length=200)] = None,
    who: Annotated[str | None, Query(alias="actor", max_length=128)] = None,
    ip: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Outcome | None = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    org: Annotated[str | None, Query(max_length=36)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=query.MAX_LIMIT)] = 50,
    format: Literal["json", "csv", "jsonl"] = "json",
) -> Response:
    """Search the trail (newest first). ``format=csv`` or ``jsonl`` exports every match."""
    viewer = query.Viewer.of(actor)
    f = _filters(resource, who, ip, action, outcome, since, until, org)
    if format != "json":
        chunks = list(query.export(db, settings, viewer, f, format))
        media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
        name = f"audit-{datetime.now(UTC):%Y%m%d-%H%M%S}.{format}"
        return StreamingResponse(iter(chunks), media_type=media, headers={
            "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
    page = query.search(db, settings, viewer, f, cursor=cursor, limit=limit)
    from fastapi.responses import JSONResponse

    return JSONResponse({"items": page.items, "next_cursor": page.next_cursor},
                        headers={"Cache-Control": "no-store"})


@router.post("/api/v1/audit/events", status_code=202)
def ingest_events(body: ingest_mod.IngestBatch,
                  actor: Annotated[Actor, Depends(require(Perm.AUDIT_INGEST))],
                  database: DatabaseDep, settings: SettingsDep) -> dict[str, int]:
    """Store a batch of the vendor product's records (all or nothing, idempotent on ``id``).
    Meant for an API token of the vendor's product; a signed-in admin may post too (with CSRF)."""
    return ingest_mod.ingest(database, settings, org_id=actor.org_id, token_id=actor.token_id,
                             events=body.events)


def _whole_trail(actor: Actor) -> query.Viewer:
    """Checkpoints and proofs are about the one tree of every organisation's records: their
    sizes and positions tell how much every customer did, so only the vendor's staff who may
    read every trail (``audit.read_all``, in the vendor organisation) get them."""
    viewer = query.Viewer.of(actor)
    if not viewer.all_orgs:
        raise Forbidden(detail="checkpoints and proofs are given by the vendor's auditors")
    return viewer


@router.get("/api/v1/audit/checkpoint", response_model=None)
def latest_checkpoint(request: Request, actor: ReadAllActor, database: DatabaseDep,
                      settings: SettingsDep) -> dict[str, object] | Response:
    """The newest signed checkpoint and the public key that verifies it; with
    ``Accept: text/plain``, the checkpoint as a C2SP signed note (as ``checkpoint.note``)."""
    _whole_trail(actor)
    accept = request.headers.get("accept", "")
    if "text/plain" in accept and "application/json" not in accept:
        return checkpoint_note(actor, database, settings)
    with database.engine.connect() as conn:
        try:
            found = proofs._checkpoint(conn, None)
            cp = proofs.checkpoint_json(found)
        except NotFound:
            found = cp = None
    signer = Signer(settings)
    origin = witness.origin(settings)
    note = _note_of(signer, origin, found) if found is not None else None
    return {"checkpoint": cp, "public_key": signer.public_b64(),
            "algorithm": "Ed25519", "hash": "RFC 9162 SHA-256",
            "origin": origin, "verifier_key": signer.vkey(origin), "note": note}


def _note_of(signer: Signer, origin: str, cp: Any) -> str | None:
    """The C2SP note of a stored checkpoint - made only when its own signature verifies, so
    that a row changed in the database is never signed anew."""
    if not signer.verify(cp.key_id, cp.tree_size, bytes(cp.root), cp.ts, bytes(cp.signature)):
        return None
    return signer.note(origin, cp.tree_size, bytes(cp.root))


@router.get("/api/v1/audit/checkpoint.note", response_class=PlainTextResponse)
def checkpoint_note(actor: ReadAllActor, database: DatabaseDep,
                    settings: SettingsDep) -> Response:
    """The newest checkpoint as a C2SP ``tlog-checkpoint`` signed note (``text/plain``)."""
    _whole_trail(actor)
    with database.engine.connect() as conn:
        found = witness.newest_checkpoint(conn)
    if found is None:
        raise Conflict(detail="no checkpoint yet: one is signed within a minute of the first "
                              "record (or run `vern audit seal`)")
    signer = Signer(settings)
    note = _note_of(signer, witness.origin(settings), found)
    if note is None:
        raise Conflict(detail="the newest checkpoint's signature does not verify "
                              "(run `vern audit verify`)")
    return PlainTextResponse(note, headers={"Cache-Control": "no-store"})


@router.get("/api/v1/audit/proofs/inclusion")
def inclusion_proof(actor: ReadAllActor, db: TenantDB, database: DatabaseDep,
                    record_id: Annotated[str, Query(max_length=36)],
                    tree_size: Annotated[Int64 | None, Query(ge=1)] = None) -> dict[str, object]:
    """Proof that a record is in a signed tree."""
    viewer = _whole_trail(actor)
    org = db.scalar(select(AuditEvent.org_id).where(AuditEvent.id == record_id))
    exists = db.scalar(select(AuditEvent.id).where(AuditEvent.id == record_id))
    if exists is None or (viewer.org_id is not None and org != viewer.org_id):
        raise NotFound()
    record(db, "audit.proof", org_id=actor.org_id, actor_user_id=actor.user_id,
           actor_token_id=actor.token_id, resource=f"audit:{record_id}")
    return proofs.inclusion(database, record_id=record_id, tree_size=tree_size)


@router.get("/api/v1/audit/proofs/consistency")
def consistency_proof(actor: ReadAllActor, db: TenantDB, database: DatabaseDep,
                      old: Annotated[Int64, Query(ge=1)],
                      new: Annotated[Int64 | None, Query(ge=1)] = None) -> dict[str, object]:
    """Proof that the later checkpoint extends the earlier one (nothing rewritten)."""
    _whole_trail(actor)
    found = proofs.consistency(database, old=old, new=new)
    record(db, "audit.proof", org_id=actor.org_id, actor_user_id=actor.user_id,
           actor_token_id=actor.token_id, resource="audit:consistency",
           details={"old": old, "new": found["new"]["tree_size"]})
    return found


def _alert_view(a: object, viewer: query.Viewer) -> dict[str, object]:
    # Positions in the tree are shared by every organisation: a customer gets none.
    fields = ("id", "org_id", "kind", "subject", "count") + (
        ("first_seq", "last_seq") if viewer.all_orgs else ())
    return {k: getattr(a, k) for k in fields} | {
        "created_at": a.created_at.isoformat(),  # type: ignore[attr-defined]
        "notified_at": a.notified_at.isoformat() if a.notified_at else None,  # type: ignore[attr-defined]
    }


@router.get("/api/v1/audit/alerts")
def list_alerts(actor: ReadActor, db: TenantDB) -> dict[str, object]:
    """Alerts raised on the caller's trail (repeated failed sign-ins, mass reads, quarantined
    records), newest first."""
    viewer = query.Viewer.of(actor)
    found = query.alerts(db, viewer)
    record(db, "audit.read", org_id=actor.org_id, actor_user_id=actor.user_id,
           actor_token_id=actor.token_id, resource="audit:alerts", details={"count": len(found)})
    return {"alerts": [_alert_view(a, viewer) for a in found]}


@router.get("/api/v1/audit/alerts/{alert_id}/events")
def alert_events(alert_id: str, actor: ReadActor, db: TenantDB) -> dict[str, object]:
    """An alert and the records it was raised on (its ``first_seq``..``last_seq``)."""
    viewer = query.Viewer.of(actor)
    alert, items = query.alert_events(db, viewer, alert_id)
    return {"alert": _alert_view(alert, viewer), "items": items}


# -- console -----------------------------------------------------------------------------------


@pages.get("/console/audit")
def console_index(  # noqa: PLR0917 - FastAPI parameters
    request: Request, actor: ReadActor, db: TenantDB, settings: SettingsDep,
    resource: Annotated[str | None, Query(max_length=200)] = None,
    who: Annotated[str | None, Query(alias="actor", max_length=128)] = None,
    ip: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Annotated[str | None, Query(max_length=16)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    org: Annotated[str | None, Query(max_length=36)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    viewer = query.Viewer.of(actor)
    form = {"resource": resource or "", "actor": who or "", "ip": ip or "",
            "action": action or "", "outcome": outcome or "", "since": since or "",
            "until": until or "", "org": org or ""}
    error = None
    page = query.Page([], None)
    try:
        f = _filters(resource, who, ip, action, outcome, since, until, org)
        page = query.search(db, settings, viewer, f, cursor=cursor, limit=50)
    except (InvalidInput, Forbidden) as exc:
        error = exc
    given = {k: v for k, v in form.items() if v}
    next_url = ("/console/audit?" + urlencode({**given, "cursor": page.next_cursor})
                if page.next_cursor else None)
    export = "/api/v1/audit/events?" + urlencode(given)
    return render(request, "audit/index.html", {
        "form": form, "items": page.items, "next_url": next_url, "error": error,
        "export_csv": export + ("&" if given else "") + "format=csv",
        "export_json": export + ("&" if given else "") + "format=jsonl",
        "all_orgs": viewer.org_id is None,
    })


@pages.get("/console/audit/alerts")
def console_alerts(request: Request, actor: ReadActor, db: TenantDB) -> Response:
    viewer = query.Viewer.of(actor)
    found = query.alerts(db, viewer)
    record(db, "audit.read", org_id=actor.org_id, actor_user_id=actor.user_id,
           actor_token_id=actor.token_id, resource="audit:alerts", details={"count": len(found)})
    return render(request, "audit/alerts.html", {"alerts": found, "positions": viewer.all_orgs})


@pages.get("/console/audit/alerts/{alert_id}")
def console_alert(request: Request, alert_id: str, actor: ReadActor, db: TenantDB) -> Response:
    """One alert and the records it was raised on."""
    viewer = query.Viewer.of(actor)
    alert, items = query.alert_events(db, viewer, alert_id)
    return render(request, "audit/alert.html", {
        "alert": alert, "items": items, "all_orgs": viewer.org_id is None,
        "positions": viewer.all_orgs,
    })
