"""The console's pages for API tokens: the organisation's tokens, creating one (its value is
shown once) and revoking one."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts import service
from vern.accounts.deps import DatabaseDep, SettingsDep, TenantDB, require
from vern.accounts.models import ApiToken
from vern.accounts.pagerouter import pages
from vern.accounts.roles import ROLE_LABELS, Perm, Role
from vern.accounts.service import Actor
from vern.accounts.userpages import roles_for
from vern.console.forms import form_data, redirect
from vern.console.templating import render
from vern.core.db import Scope
from vern.core.errors import Conflict, Forbidden, InvalidInput, NotFound, VernError
from vern.core.i18n import N_

TokensManager = Annotated[Actor, Depends(require(Perm.TOKENS_MANAGE))]


# -- API tokens ----------------------------------------------------------------------------------


def _token_rows(db: Session) -> list[dict[str, Any]]:
    return [{"id": t.id, "name": t.name, "prefix": t.prefix, "role": t.role,
             "role_label": ROLE_LABELS.get(Role(t.role), t.role), "expires_at": t.expires_at,
             "last_used_at": t.last_used_at, "revoked": t.revoked_at is not None}
            for t in service.list_tokens(db)]


def _tokens_page(request: Request, db: Session, actor: Actor, *, values: dict[str, str],
                 error: VernError | None = None, new_token: str | None = None,
                 done: str | None = None, status: int = 200) -> Response:
    org = service.get_organisation(db, actor.org_id)
    settings = request.app.state.settings
    return render(request, "accounts/tokens.html", {
        "tokens": _token_rows(db), "roles": roles_for(org.kind), "values": values,
        "error": error, "new_token": new_token, "done": done,
        "max_days": settings.api_token_max_days,
    }, status=status)


@pages.get("/console/tokens")
def tokens(request: Request, actor: TokensManager, db: TenantDB, done: str | None = None) -> Response:
    """API tokens of the current organisation: for machines, scoped to a role, expiring."""
    return _tokens_page(request, db, actor, values={"days": "90"}, done=done)


@pages.post("/console/tokens")
async def token_create(request: Request, actor: TokensManager, database: DatabaseDep,
                       settings: SettingsDep) -> Response:
    form = await form_data(request)
    values = {k: form.get(k, "").strip()[:100] for k in ("name", "role", "days")}
    try:
        if not re.fullmatch(r"\d{1,5}", values["days"]):
            raise InvalidInput.on("days", "must be a whole number of days")
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            token, _row = service.create_token(session, settings, name=values["name"],
                                               role=values["role"], days=int(values["days"]),
                                               actor=actor)
    except (InvalidInput, Conflict, Forbidden) as exc:
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            return _tokens_page(request, session, actor, values=values, error=exc, status=422)
    with database.transaction(Scope.tenant(actor.org_id)) as session:
        return _tokens_page(request, session, actor, values={"days": "90"}, new_token=token,
                            status=201)


def _token(db: Session, token_id: str) -> ApiToken:
    row = db.scalar(select(ApiToken).where(ApiToken.id == token_id))  # the scope filters it
    if row is None:
        raise NotFound()
    return row


@pages.get("/console/tokens/{token_id}/revoke")
def token_revoke_confirm(request: Request, token_id: str, actor: TokensManager,
                         db: TenantDB) -> Response:
    """Confirmation before a token stops working."""
    row = _token(db, token_id)
    texts = {"title": N_("Revoke this token?"), "button": N_("Revoke"),
             "explain": N_("Programs using it are refused from now on. This cannot be undone.")}
    return render(request, "confirm.html", {
        "texts": texts, "action": f"/console/tokens/{token_id}/revoke", "cancel": "/console/tokens",
        "subject": {"name": row.name, "email": row.prefix + "…"},
    })


@pages.post("/console/tokens/{token_id}/revoke")
def token_revoke(request: Request, token_id: str, actor: TokensManager, db: TenantDB) -> Response:
    service.revoke_token(db, token_id=token_id, actor=actor)
    return redirect("/console/tokens?done=revoked")
