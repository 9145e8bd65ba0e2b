"""What the rights API and its pages share: who may read, manage and approve requests, a request
as JSON, running a request after the response, and serving an answer package."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts.deps import require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.core.db import Database, Scope
from vern.core.errors import NotFound, VernError
from vern.datamap.service import current_map
from vern.notify import service as notify
from vern.rights import external, service
from vern.rights.models import Part, RightsRequest, Status

log = logging.getLogger("vern.rights")

Reader = Annotated[Actor, Depends(require(Perm.RIGHTS_READ))]
Manager = Annotated[Actor, Depends(require(Perm.RIGHTS_MANAGE))]
Approver = Annotated[Actor, Depends(require(Perm.RIGHTS_APPROVE))]
TenantsManager = Annotated[Actor, Depends(require(Perm.TENANTS_MANAGE))]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def request_json(session: Session, req: RightsRequest, *, full: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": req.id,
        "kind": req.kind,
        "status": req.status,
        "channel": req.channel,
        "locale": req.locale,
        "received_at": iso(req.received_at),
        "due_at": iso(req.due_at),
        "extended_due_at": iso(req.extended_due_at),
        "deadline": iso(req.deadline),
        "due_state": service.due_state(req),
        "verified_at": iso(req.verified_at),
        "verification_method": req.verification_method,
        "approval_required": req.approval_required,
        "approved_at": iso(req.approved_at),
        "completed_at": iso(req.completed_at),
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
        body["recipients"] = recipients(session)
    return body


def recipients(session: Session) -> list[str]:
    """Who the person's data is disclosed to, by the published product map (Art. 15(1)(c), 19)."""

    found = current_map(session)
    return found.recipient_names() if found is not None else []


def run_later(database: Database, request_id: str) -> None:
    """Carry out a queued request after the response; failures stay on the request for the
    worker to retry, never in the response."""
    try:
        service.run(database, request_id)
    except VernError as exc:
        log.info("request %s not run now: %s", request_id, exc)
    except Exception:
        log.exception("request %s: run failed; the worker will resume it", request_id)
    notify.deliver_pending(database)


def after_change(background: BackgroundTasks, database: Database, req: RightsRequest) -> None:
    if req.status == Status.QUEUED.value:
        background.add_task(run_later, database, req.id)
    background.add_task(notify.deliver_pending, database)


def serve_download(database: Database, org_id: str, fetch: Any) -> Response:
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

