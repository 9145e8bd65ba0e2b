"""Backup state: ``GET /api/v1/backup/status`` and the console page ``/console/backup`` for the
vendor's staff; customers see one line on their overview (``overview_line``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from vern.accounts.deps import require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.backup import service
from vern.console.templating import render
from vern.core.config import backup_settings

router = APIRouter(tags=["backup"])
pages = APIRouter(include_in_schema=False)
NAV = [("/console/backup", "Backups", Perm.BACKUP_READ)]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@router.get("/api/v1/backup/status")
def backup_status(request: Request,
                  actor: Annotated[Actor, Depends(require(Perm.BACKUP_READ))]) -> dict[str, Any]:
    """The last backup, the last verified restore and the recovery window, with the newest runs
    and drills (the recorded evidence)."""
    state = service.status(request.app.state.db)
    last, drill = state["last_backup"], state["last_verified"]
    return {
        "engine": service.engine_kind(request.app.state.db),
        "last_backup": None if last is None else {
            "label": last.label, "recovery_point": _iso(last.recovery_point),
            "size_bytes": last.size_bytes, "copies": last.copies},
        "last_attempt_failed": state["last_attempt_failed"],
        "last_verified_restore": None if drill is None else {
            "label": drill.label, "at": _iso(drill.at), "audit_ok": drill.audit_ok},
        "last_drill_failed": state["last_drill_failed"],
        "recovery_window": {"start": _iso(state["window_start"]), "end": _iso(state["window_end"])},
        "runs": [{"kind": r.kind, "label": r.label, "ok": r.ok, "started_at": _iso(r.started_at),
                  "size_bytes": r.size_bytes, "copies": r.copies} for r in state["runs"]],
        "drills": [{"label": d.label, "ok": d.ok, "at": _iso(d.at), "audit_ok": d.audit_ok,
                    "seconds": d.seconds, "problem": d.problem, "replays": d.replays or []}
                   for d in state["drills"]],
    }


@pages.get("/console/backup")
def console_backup(request: Request,
                   actor: Annotated[Actor, Depends(require(Perm.BACKUP_READ))]) -> Response:

    bs = backup_settings()
    return render(request, "backup/index.html", {
        "state": service.status(request.app.state.db),
        "engine": service.engine_kind(request.app.state.db),
        "policy": {"pitr_days": bs.pitr_days, "weekly_weeks": bs.weekly_weeks,
                   "key_keep_days": bs.key_keep_days},
    })
