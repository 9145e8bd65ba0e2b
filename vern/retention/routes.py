"""Retention: rules, the dry run, runs (evidence) and legal holds, for the vendor's staff.

API: ``/api/v1/retention/…``. Console: ``/console/retention``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from vern.accounts.deps import DatabaseDep, TenantDB, require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.console.templating import render
from vern.retention import service

router = APIRouter(tags=["retention"])
pages = APIRouter(include_in_schema=False)
NAV = [("/console/retention", "Retention", Perm.RETENTION_READ)]

Reader = Annotated[Actor, Depends(require(Perm.RETENTION_READ))]
Manager = Annotated[Actor, Depends(require(Perm.RETENTION_MANAGE))]


class PeriodBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int = Field(description="Days a row is kept after the rule's column")
    reason: str = Field(max_length=500)


class HoldBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: str = Field(max_length=80, description="A rule's key, or * for every rule")
    reason: str = Field(max_length=500)
    record_id: str | None = Field(default=None, max_length=64)
    user_id: str | None = Field(default=None, max_length=36)
    identities: dict[str, str] | None = Field(
        default=None, description="A person, as a data subject request names them")
    org_id: str | None = Field(default=None, max_length=36)


@router.get("/api/v1/retention/rules")
def list_rules(actor: Reader, db: TenantDB) -> dict[str, Any]:
    """Every rule: period, what happens then, the legal reason and the legal minimum."""
    return {"rules": [r.view() for r in service.rules(db)]}


@router.put("/api/v1/retention/rules/{retention_rule}")
def set_period(retention_rule: str, body: PeriodBody, actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Set a rule's period; one shorter than the legal minimum is refused with the reason."""
    return service.set_period(db, rule_key=retention_rule, days=body.days, reason=body.reason,
                              actor_user_id=actor.user_id).view()


@router.get("/api/v1/retention/plan")
def plan(actor: Reader, database: DatabaseDep) -> dict[str, Any]:
    """The dry run: what each rule would remove now, with counts."""
    return {"rules": service.plan(database)}


@router.get("/api/v1/retention/runs")
def list_runs(actor: Reader, db: TenantDB) -> dict[str, Any]:
    """The latest runs, with counts per rule (evidence)."""
    return {"runs": [service.run_view(r) for r in service.list_runs(db)]}


@router.get("/api/v1/retention/runs/{retention_run}")
def get_run(retention_run: str, actor: Reader, db: TenantDB) -> dict[str, Any]:
    """One retention run: what started it, its status, times and counts."""
    return service.run_view(service.get_run(db, retention_run))


@router.post("/api/v1/retention/runs", status_code=201)
def start_run(actor: Manager, database: DatabaseDep) -> dict[str, Any]:
    """Apply the rules now (the worker does so every six hours)."""
    return service.run_view(service.run(database, trigger="api", actor_user_id=actor.user_id))


@router.get("/api/v1/retention/holds")
def list_holds(actor: Reader, db: TenantDB) -> dict[str, Any]:
    """Every legal hold, newest first, released ones included."""
    return {"holds": [service.hold_view(h) for h in service.list_holds(db)]}


@router.post("/api/v1/retention/holds", status_code=201)
def create_hold(body: HoldBody, actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Pause a rule for one record, one Vern account or one person (audited)."""
    hold = service.create_hold(db, rule_key=body.rule, reason=body.reason, record_id=body.record_id,
                               user_id=body.user_id, identities=body.identities,
                               org_id=body.org_id, actor_user_id=actor.user_id)
    return service.hold_view(hold)


@router.post("/api/v1/retention/holds/{retention_hold}/release")
def release_hold(retention_hold: str, actor: Manager, db: TenantDB) -> dict[str, Any]:
    """Release a legal hold so its rule applies again at the next run (audited)."""
    return service.hold_view(service.release_hold(db, retention_hold, actor_user_id=actor.user_id))


# -- console ---------------------------------------------------------------------------------


@pages.get("/console/retention")
def console_index(request: Request, actor: Reader, db: TenantDB, database: DatabaseDep) -> Response:
    return render(request, "retention/index.html", {
        "plan": service.plan(database),
        "runs": service.list_runs(db, limit=20),
        "holds": service.list_holds(db, active_only=True),
        "can_manage": actor.can(Perm.RETENTION_MANAGE),
    })


@pages.post("/console/retention/runs")
def console_run(actor: Manager, database: DatabaseDep) -> Response:
    service.run(database, trigger="api", actor_user_id=actor.user_id)
    return RedirectResponse("/console/retention", status_code=303)


@pages.post("/console/retention/holds")
def console_hold(rule: Annotated[str, Form(max_length=80)], reason: Annotated[str, Form(max_length=500)],
                 record_id: Annotated[str, Form(max_length=64)], actor: Manager,
                 db: TenantDB) -> Response:
    service.create_hold(db, rule_key=rule.strip(), reason=reason, record_id=record_id.strip() or None,
                        actor_user_id=actor.user_id)
    return RedirectResponse("/console/retention", status_code=303)


@pages.post("/console/retention/holds/{retention_hold}/release")
def console_release(retention_hold: str, actor: Manager, db: TenantDB) -> Response:
    service.release_hold(db, retention_hold, actor_user_id=actor.user_id)
    return RedirectResponse("/console/retention", status_code=303)
