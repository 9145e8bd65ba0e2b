"""The application factory: middleware, error mapping, discovered routers, static files, health.

Request flow: ASGI middleware (request id, client address from trusted proxies, body limit,
security headers, request audit) → route (caller resolved, API rate limit per identity or
source network, pydantic input, declared access rule)
→ domain service (tenant-scoped transaction, audit record) → JSON or a rendered page.

Fast paths: a domain's routes module may export ``FAST_PATHS``, a mapping of exact
``(method, path)`` to a raw handler ``async (scope, receive, send, client_ip) -> status``. The
middleware hands such a request over right after resolving the client address, skipping routing,
dependencies and the per-request audit record; the handler owns its input checks, its size limit
and its own accounting (the statistics beacon is the one user: it truncates the address first and
records its traffic in the audit trail per batch). The path is still declared as an ordinary route
too, for the API description and the access-rule matrix.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

import vern
from vern.accounts.deps import (
    CsrfFailed,
    DatabaseDep,
    MfaEnrolmentRequired,
    MfaRequired,
    PasswordChangeRequired,
    public,
    require,
)
from vern.accounts.pages import signed_in_layout
from vern.accounts.roles import Perm
from vern.app import openapi
from vern.audit import service as audit_service
from vern.console.templating import render_error
from vern.core.clientip import client_ip
from vern.core.config import Settings, get_settings
from vern.core.context import RequestContext, reset_request, set_request
from vern.core.crypto import KeyRing, install_keyring
from vern.core.db import Database, write_probe
from vern.core.discover import domain_modules
from vern.core.errors import (
    FieldError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
    VernError,
)
from vern.core.i18n import N_
from vern.core.inputs import InputBounds, length_over
from vern.core.quarantine import WriterCollector
from vern.core.ratelimit import Limiter
from vern.core.responses import CSP, answers
from vern.notify.service import configure

log = logging.getLogger("vern.app.web")
PACKAGE = Path(vern.__file__).resolve().parent
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
FastPath = Callable[[Scope, Receive, Send, str], Awaitable[int]]





def _client_ip_resolver(settings: Settings) -> Callable[[str, dict[str, str]], str]:

    networks = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]
    return lambda peer, headers: client_ip(peer, headers, networks)


class VernMiddleware:
    """One pass over every request: id, client address, body limit, headers, audit."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics,
                 fast_paths: dict[tuple[str, str], FastPath] | None = None) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.fast_paths = fast_paths or {}
        self.client_ip = _client_ip_resolver(settings)
        self.headers = self._security_headers()
        self.record_request = audit_service.record_request

    def _security_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-security-policy", CSP.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
        ]
        if self.settings.is_production:
            headers.append(
                (b"strict-transport-security", b"max-age=63072000; includeSubDomains; preload")
            )
        return headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        fast = self.fast_paths.get((scope["method"], scope["path"]))
        if fast is not None:
            await self._fast(fast, scope, receive, send, started)
            return
        raw_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = _request_id(raw_headers)
        ip = self.client_ip(_peer(scope), raw_headers)
        path: str = scope["path"]
        scope.setdefault("state", {})
        scope["state"]["client_ip"] = ip
        scope["state"]["request_id"] = request_id
        ctx = RequestContext(request_id, ip, raw_headers.get("user-agent"), scope["method"], path)
        token = set_request(ctx)
        status_holder = {"status": 500}
        extra_headers = [*self.headers, (b"x-request-id", request_id.encode())]

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                existing = {k.lower() for k, _ in message.get("headers", [])}
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"], *(h for h in extra_headers if h[0] not in existing)
                ]
            await send(message)

        try:
            limit = self._body_limit(path)
            within = await _body_within(scope, raw_headers, receive, limit)
            if within is None:
                await _problem_asgi(PayloadTooLarge(), path, send_wrapper)
                return
            receive = within
            # The API rate limit is applied once the caller is known (vern.core.ratelimit).
            await self.app(scope, _limited_receive(receive, limit), send_wrapper)
        finally:
            reset_request(token)
            elapsed = time.perf_counter() - started
            status = status_holder["status"]
            self.metrics.observe(scope, status, elapsed)
            self._record(scope, ctx, status, elapsed)

    def _record(self, scope: Scope, ctx: RequestContext, status: int, elapsed: float) -> None:
        """The request's own audit record (who, from where, the answer's status, how long)."""
        if self.record_request is None:
            return
        state = scope.get("state", {})
        actor = state.get("actor")
        self.record_request(
            method=scope["method"],
            path=ctx.path,  # made storable by the writer (a NUL kept as %00)
            status=status,
            actor_user_id=getattr(actor, "user_id", None),
            actor_token_id=getattr(actor, "token_id", None),
            org_id=getattr(actor, "org_id", None),
            client_ip=state.get("audit_ip", ctx.client_ip),
            user_agent=ctx.user_agent,
            request_id=ctx.request_id,
            duration_ms=round(elapsed * 1000, 3),
            tags=ctx.tags,
        )

    def _body_limit(self, path: str) -> int:
        return self.settings.max_body_bytes

    async def _fast(self, handler: FastPath, scope: Scope, receive: Receive, send: Send,
                    started: float) -> None:
        """A fast path (see the module doc): the client address, then the handler; counted."""
        raw_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        peer = _peer(scope)
        status = 500
        security = self.headers

        async def send_secured(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":  # the same security headers as any answer
                message["headers"] = [*message.get("headers", ()), *security]
            await send(message)

        try:
            status = await handler(scope, receive, send_secured, self.client_ip(peer, raw_headers))
        finally:
            self.metrics.observe_fast(scope["method"], scope["path"], status,
                                      time.perf_counter() - started)


def _request_id(headers: dict[str, str]) -> str:
    """The caller's ``X-Request-Id`` when it is a short id of letters, digits and dashes; else
    a new random one."""
    request_id = headers.get("x-request-id", "")
    if not (0 < len(request_id) <= 64 and request_id.replace("-", "").isalnum()):
        request_id = secrets.token_hex(8)
    return request_id


def _peer(scope: Scope) -> str:
    """The address of the connection's other end (a proxy, or the client itself)."""
    # S104 is wrong here: a placeholder peer, never bound to
    return scope["client"][0] if scope.get("client") else "0.0.0.0"  # noqa: S104


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _body_within(
    scope: Scope, headers: dict[str, str], receive: Receive, limit: int
) -> Receive | None:
    """The receive channel to give the app, or None when the body is over the limit.

    A chunked body has no length to check up front: it is read here, within the limit, so
    that the refusal is a 413 and not a parsing error deep in a route."""
    declared = headers.get("content-length")
    if declared is not None:
        return None if length_over(declared, limit) else receive
    if scope["method"] not in _BODY_METHODS:
        return receive
    body = await _read_within(receive, limit)
    return None if body is None else _replay(body, receive)


async def _read_within(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it grows past ``limit``."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _limited_receive(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> MutableMapping[str, Any]:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge()
        return message

    return wrapped


async def _problem_asgi(exc: VernError, path: str, send: Send) -> None:
    response = problem_response(exc, path)
    await response({"type": "http", "method": "GET", "path": path, "headers": []},
                   _empty_receive, send)


async def _empty_receive() -> MutableMapping[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def problem_response(exc: VernError, instance: str | None = None) -> JSONResponse:
    headers = {"X-Vern-Error": exc.code}
    retry = getattr(exc, "retry_after", None)
    if retry is not None:
        headers["Retry-After"] = str(retry)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="vern"'
    return JSONResponse(
        exc.problem(instance), status_code=exc.status, headers=headers,
        media_type="application/problem+json",
    )


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/metrics", "/healthz", "/readyz")):
        return False
    return "text/html" in request.headers.get("accept", "") or path.startswith(("/console", "/p/"))


def _handle_vern_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VernError)
    if _wants_html(request) and request.url.path.startswith("/console"):
        target = _console_redirect(exc, request)
        if target is not None:
            return RedirectResponse(target, status_code=303)
        return render_error(request, exc)
    if _wants_html(request):
        return render_error(request, exc)
    return problem_response(exc, request.url.path)


def _console_redirect(exc: VernError, request: Request) -> str | None:
    nxt = quote(request.url.path)
    if isinstance(exc, MfaRequired):
        return "/login/mfa"
    if isinstance(exc, MfaEnrolmentRequired):
        return "/console/account/mfa"
    if isinstance(exc, PasswordChangeRequired):
        return "/console/account/password"
    if isinstance(exc, CsrfFailed):
        return None
    if isinstance(exc, Unauthenticated):
        return f"/login?next={nxt}"
    return None


async def _answer_refused(scope: Scope, receive: Receive, send: Send, exc: VernError) -> None:
    """An input refused by ``vern.core.inputs.InputBounds``, answered like an error in a route."""
    await _handle_vern_error(Request(scope, receive), exc)(scope, receive, send)


def _handle_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(loc) or "body"
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        template, params = _validation_text(err, message)
        errors.append(FieldError(field, message, str(err.get("type", "invalid")), template, params))
    first = errors[0] if errors else FieldError("body", "invalid")
    return _handle_vern_error(
        request, InvalidInput(detail=f"{first.field}: {first.message}", errors=errors)
    )


# Pydantic's messages as catalog texts, so that a form page shows them in its language.
_VALIDATION_TEXTS = {
    "missing": (N_("is required"), None),
    "string_too_long": (N_("must be at most %(n)s characters"), "max_length"),
    "string_too_short": (N_("must be at least %(n)s characters"), "min_length"),
    "int_parsing": (N_("must be a whole number"), None),
}


def _validation_text(err: Any, message: str) -> tuple[str, dict[str, Any]]:
    template, key = _VALIDATION_TEXTS.get(str(err.get("type")), (message, None))
    ctx = err.get("ctx") or {}
    if key is not None:
        if key not in ctx:
            return message, {}
        return template, {"n": ctx[key]}
    return template, {}


def _handle_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return _handle_vern_error(request, NotFound())
    generic = VernError(detail=str(exc.detail))
    generic.status = exc.status_code  # type: ignore[misc]
    generic.code = "http-error"  # type: ignore[misc]
    generic.title = str(exc.detail)  # type: ignore[misc]
    response = problem_response(generic, request.url.path)
    if exc.headers:
        response.headers.update(exc.headers)  # e.g. Allow with 405
    return response


def _handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in request %s", getattr(request.state, "request_id", "?"))
    return problem_response(VernError(detail="An unexpected error occurred"), request.url.path)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vern_http_requests", "HTTP requests", ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vern_http_request_seconds", "HTTP request latency", ["method", "route"],
            registry=self.registry,
        )
        self._fast_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

        self.registry.register(WriterCollector())  # the background writers' drops

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        name = getattr(route, "path", "unmatched")
        self.requests.labels(scope["method"], name, str(status)).inc()
        self.latency.labels(scope["method"], name).observe(seconds)

    def observe_fast(self, method: str, path: str, status: int, seconds: float) -> None:
        key = (method, path, status)
        children = self._fast_children.get(key)
        if children is None:
            children = self._fast_children[key] = (
                self.requests.labels(method, path, str(status)), self.latency.labels(method, path))
        children[0].inc()
        children[1].observe(seconds)


def _health_router(metrics: Metrics) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", dependencies=[Depends(public)])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz", dependencies=[Depends(public)])
    def readyz(db: DatabaseDep) -> dict[str, str]:
        """Readiness: the database answers and takes writes (``vern.core.db.write_probe``)."""
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise Unavailable(detail="database: not reachable") from exc
        try:
            write_probe(db.engine)
        except Exception as exc:
            raise Unavailable(detail="database: does not take writes") from exc
        return {"status": "ready"}

    @router.get("/metrics", dependencies=[Depends(require(Perm.METRICS_READ))],
                responses=answers("text/plain"))
    def prometheus() -> Response:
        """Prometheus metrics of this process (requests, latencies, writers, rate limits); for the
        vendor's monitoring."""
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @router.get("/", dependencies=[Depends(public)], include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("/console", status_code=303)

    return router


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    database = database or Database(settings.database_url)
    install_keyring(KeyRing(database.engine, settings.master_key_bytes))

    configure(settings)  # the same mail transport as the CLI and `vern worker`
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = _start_background(database, settings)
        # Everything imported and built at start-up lives as long as the process: kept out of
        # the collector's full passes, which otherwise walk it all and pause a request (about
        # 115 ms on a 2-core machine, the p99 of every page). Not in tests, which start many
        # applications in one process.
        if settings.env != "test":
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            stop()
            await _app.state.limiter.aclose()

    app = FastAPI(
        title="Vern",
        version=vern.__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=openapi.SPEC_PATH,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.signed_in_layout = signed_in_layout  # the console layout's accounts part

    app.state.limiter = Limiter(settings.rate_limit_storage_url, registry=metrics.registry)
    app.add_exception_handler(VernError, _handle_vern_error)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(Exception, _handle_unexpected)
    routers = [_health_router(metrics)]
    fast_paths: dict[tuple[str, str], FastPath] = {}
    for module in domain_modules("routes"):
        for attr in ("router", "pages"):
            router = getattr(module, attr, None)
            if isinstance(router, APIRouter):
                routers.append(router)
        fast_paths.update(getattr(module, "FAST_PATHS", {}))
    routers.append(openapi.install(app, api_routes_of(routers)))
    for router in routers:
        app.include_router(router)
    app.state.routers = routers  # read by the role matrix test and the route listing
    for static in sorted(PACKAGE.glob("*/static")):
        app.mount(f"/static/{static.parent.name}", StaticFiles(directory=static),
                  name=f"static-{static.parent.name}")
    app.add_middleware(InputBounds, answer=_answer_refused)  # inside VernMiddleware
    app.add_middleware(VernMiddleware, settings=settings, metrics=metrics, fast_paths=fast_paths)
    return app


def _start_background(database: Database, settings: Settings) -> Callable[[], None]:
    start = getattr(audit_service, "start_writer", None)
    stop = getattr(audit_service, "stop_writer", None)
    if start is not None:
        start(database, settings)
    return stop if stop is not None else (lambda: None)


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every route Vern serves (from the discovered routers), for tests and documentation."""
    return api_routes_of(app.state.routers)


def api_routes_of(routers: list[APIRouter]) -> list[APIRoute]:
    return [r for router in routers for r in router.routes if isinstance(r, APIRoute)]
