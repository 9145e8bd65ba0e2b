"""The product's hot read over HTTP: may it use each purpose for a subject (``GET
/api/v1/consent/{subject}``, the SDK's ``ConsentClient.may_use``).

``OneHopRoute`` skips FastAPI's dependency solving for it: caller, access rule and decision are
resolved in one hop to a worker thread. ``vern.consent.routes`` registers the route on its router.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

from vern.accounts.deps import access_of, permitted_actor, resolve_caller
from vern.accounts.roles import Perm
from vern.consent import service
from vern.core.db import Database, Scope
from vern.core.errors import InvalidInput, NotFound


class OneHopRoute(APIRoute):
    """For the product's hot read: FastAPI's dependency solving is skipped. The endpoint takes
    the request and its path parameters, and resolves the caller and checks the route's declared
    access rule (handed over as ``request.state.access``) itself - with the same functions as the
    dependencies - together with its look-up, in one hop to a worker thread. The declared rule
    stays on the route for the role matrix."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        rules = [a for a in (access_of(d.call) for d in self.dependant.dependencies) if a]
        if len(rules) != 1 or rules[0].kind != "perm":
            raise TypeError(f"{self.path}: a OneHopRoute needs exactly one require(...) rule")
        needed = rules[0].perms

        async def route(request: Request) -> Response:
            request.state.access = needed
            response: Response = await endpoint(request, **request.path_params)
            return response

        return route


async def api_decisions(request: Request, consent_subject: str) -> Response:
    """May the product use each purpose for this subject? With ``?purpose=`` one answer.

    The hot path of the product's checks (``vern.sdk.ConsentClient.may_use``): caller, access
    rule and decision in one worker-thread hop, the decision in a transaction scoped to the
    caller's organisation."""
    purpose = request.query_params.get("purpose")
    database: Database = request.app.state.db
    settings = request.app.state.settings
    needed: frozenset[Perm] = request.state.access

    def lookup() -> dict[str, Any] | None:
        actor = permitted_actor(resolve_caller(request, database, settings), needed)
        service.check_subject(consent_subject)
        if purpose is not None and not 0 < len(purpose) <= 40:
            raise InvalidInput.on("purpose", "a purpose key")
        with database.transaction(Scope.tenant(actor.org_id)) as session:
            if purpose is not None:
                return service.decision(session, consent_subject, purpose)
            return service.decisions(session, consent_subject)

    found = await run_in_threadpool(lookup)
    if found is None:
        raise NotFound(detail="no such purpose")
    if purpose is not None:
        return JSONResponse({"subject": consent_subject, "purpose": purpose, **found})
    return JSONResponse({"subject": consent_subject, "purposes": found})
