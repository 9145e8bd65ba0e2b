"""The API description (OpenAPI 3.1) and its documentation page.

The document is FastAPI's, completed from what the code already declares, so that it never drifts:

* every operation names its security (a bearer token or the session cookie, from the route's
  declared access rule; public routes have none);
* every operation lists the problem answers it can give (RFC 9457 ``application/problem+json``):
  401 and 403 where a sign-in or permission is needed, 404 where a path names an object, 409 and
  422 where a body or parameters are read, 413 for bodies, 429 everywhere (rate limits), 503 where
  the database is needed;
* the console and the public portal are HTML pages, not API, and stay out of the document.

The documentation page (``/api/docs``) uses Swagger UI 5 from the ``fastapi-offline`` package,
served by Vern itself, with its start-up script in a file, so it works under Vern's strict
Content-Security-Policy (no inline script, nothing from another origin).
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from vern.accounts.deps import access_of, public, session_cookie_name
from vern.core.responses import DESCRIPTIONS

DOCS_PATH = "/api/docs"
SPEC_PATH = "/api/openapi.json"
ASSETS_PATH = "/static/api-docs"
PROBLEM = "application/problem+json"

# Pages and scripts for browsers: served, but not part of the API description.
_NOT_API = ("/console", "/p/", "/login", "/logout", "/static/")

_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details. `code` is stable and names the problem; "
                   "`errors` names each invalid field.",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "retry_after": {"type": "integer", "description": "seconds, with 429"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message", "code"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"},
                               "code": {"type": "string"}},
            },
        },
    },
}





def _problem_response(status: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": DESCRIPTIONS[status],
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status == "429":
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                               "description": "seconds"}}
    if status == "405":
        response["headers"] = {"Allow": {"schema": {"type": "string"}}}
    return response


def _access_kind(route: APIRoute) -> str:

    for dependant in route.dependant.dependencies:
        access = access_of(dependant.call)
        if access is not None:
            return access.kind
    return "public"


def _statuses(route: APIRoute, method: str, operation: dict[str, Any]) -> list[str]:
    kind = _access_kind(route)
    statuses = ["429", "500"]
    if route.path.startswith("/api/") or kind != "public":
        statuses.append("401")  # the sign-in itself answers 401 to a wrong password
    if kind != "public":
        statuses.append("403")
    if "{" in route.path or kind != "public":
        statuses.append("404")
    if operation.get("parameters"):
        statuses += ["400", "422"]
    if method in ("post", "put", "patch", "delete"):
        statuses += ["400", "409", "413", "415", "422"]
    if route.path != "/healthz":
        statuses.append("503")
    return list(dict.fromkeys(statuses))


def build(app: FastAPI, routes: list[APIRoute]) -> dict[str, Any]:
    """The API description: FastAPI's, completed with security and problem answers."""

    api_routes = [r for r in routes if r.include_in_schema and not r.path.startswith(_NOT_API)]
    spec = get_openapi(
        title="Vern API",
        version=app.version,
        summary="Privacy and security backbone for multi-tenant SaaS vendors.",
        description=(
            "Every answer other than a success is RFC 9457 problem details "
            "(`application/problem+json`). Authenticate with an API token (`Authorization: "
            "Bearer …`) or, from a browser, the session cookie plus the `X-CSRF-Token` header on "
            "every write. Objects of another organisation answer 404, never 403."
        ),
        routes=api_routes,
    )
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = _PROBLEM_SCHEMA
    components["securitySchemes"] = {
        "bearerToken": {"type": "http", "scheme": "bearer",
                        "description": "An API token made in the console (`vt_…`)."},
        "sessionCookie": {"type": "apiKey", "in": "cookie",
                          "name": session_cookie_name(app.state.settings),
                          "description": "A browser session; writes also need `X-CSRF-Token`."},
    }
    by_path = {(r.path, m.lower()): r for r in api_routes for m in r.methods or ()}
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            route = by_path.get((path, method))
            if route is None:
                continue
            if _access_kind(route) == "public":
                operation["security"] = []
            else:
                operation["security"] = [{"bearerToken": []}, {"sessionCookie": []}]
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's own validation shape is not what Vern answers
            for status in _statuses(route, method, operation):
                responses.setdefault(status, _problem_response(status))
    spec.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
    spec.get("components", {}).get("schemas", {}).pop("ValidationError", None)
    return spec


def _swagger_ui_dir() -> str:
    """Swagger UI 5 (OpenAPI 3.1), as shipped in the ``fastapi-offline`` package's data."""
    from importlib.resources import files

    return str(files("fastapi_offline") / "static")


def install(app: FastAPI, routes: list[APIRoute]) -> APIRouter:
    """Hooks the completed description into ``app`` and returns the router of the docs pages."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app, routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    router = APIRouter()
    if not app.state.settings.api_docs_enabled:
        return router
    app.mount(f"{ASSETS_PATH}/ui", StaticFiles(directory=_swagger_ui_dir()), name="api-docs-ui")

    @router.get(DOCS_PATH, dependencies=[Depends(public)], include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return HTMLResponse(_PAGE.format(assets=ASSETS_PATH, spec=escape(SPEC_PATH)))

    @router.get(f"{ASSETS_PATH}/init.js", dependencies=[Depends(public)], include_in_schema=False)
    def api_docs_init() -> Response:
        return Response(_INIT_JS, media_type="text/javascript")

    @router.get("/docs", dependencies=[Depends(public)], include_in_schema=False)
    def docs_redirect() -> RedirectResponse:
        return RedirectResponse(DOCS_PATH, status_code=308)

    @router.get("/openapi.json", dependencies=[Depends(public)], include_in_schema=False)
    def spec_redirect() -> RedirectResponse:
        return RedirectResponse(SPEC_PATH, status_code=308)

    return router


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Vern API</title>
<link rel="stylesheet" href="{assets}/ui/swagger-ui.css">
</head>
<body>
<main id="swagger-ui" data-spec="{spec}"></main>
<script src="{assets}/ui/swagger-ui-bundle.js"></script>
<script src="{assets}/init.js"></script>
</body>
</html>
"""

# Swagger UI's start-up, as a file of its own: the page has no inline script.
_INIT_JS = """window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({url: root.dataset.spec, dom_id: "#swagger-ui", deepLinking: true});
});
"""
