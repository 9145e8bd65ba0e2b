"""Public routes that see visitors of the vendor's website: the statistics beacon and the banner.

These routes use ``TruncatedIpRoute``. Before anything else runs for the request, it replaces the
client address everywhere the request carries it - the ASGI scope's ``client``, the middleware's
``state.client_ip`` and ``state.audit_ip`` (what the request audit records), and the request
context that services and audit records read - with the truncated address. From there on, nothing
in Vern can see, store or log the full address of a website visitor.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Coroutine, MutableMapping
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute

from vern.accounts.deps import public
from vern.core.context import current_request, set_request
from vern.core.ip import truncate_ip

# Paths whose requests must be recorded with a truncated client address (static files are
# recorded only with VERN_AUDIT_STATIC_FILES; the rights portal ``/p/`` uses these routes too).
TRUNCATED_PREFIXES = ("/c/", "/s/", "/p/", "/static/consent/", "/static/stats/")


def truncate_scope(scope: MutableMapping[str, Any]) -> str:
    """Cut the client address of this request in place; returns the truncated address."""
    state = scope.setdefault("state", {})
    peer = scope["client"][0] if scope.get("client") else ""
    cut = truncate_ip(str(state.get("client_ip") or peer))
    state["client_ip"] = cut
    state["audit_ip"] = cut
    if scope.get("client"):
        scope["client"] = (cut, 0)
    ctx = current_request()
    if ctx is not None and ctx.client_ip != cut:
        set_request(replace(ctx, client_ip=cut))  # reset by the middleware with its own token
    return cut


class TruncatedIpRoute(APIRoute):
    """An APIRoute that truncates the client address before dependencies, body parsing or the
    endpoint run - so a refused request is recorded with the truncated address too."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            truncate_scope(request.scope)
            return await handler(request)

        return route


class RawPublicRoute(TruncatedIpRoute):
    """For the hottest public path (the beacon): the endpoint takes the bare ``Request`` and does
    its own validation; FastAPI's dependency solving is skipped. The declared access rule
    (``public``) stays on the route for the role matrix."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def route(request: Request) -> Response:
            truncate_scope(request.scope)
            response: Response = await endpoint(request)
            return response

        return route


def public_route(router: APIRouter, path: str, *, methods: list[str],
                 route_class: type[APIRoute] = TruncatedIpRoute,
                 **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a public route (access rule ``public``) whose client address is truncated."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path, func, methods=methods, route_class_override=route_class,
                             dependencies=[Depends(public), *kwargs.pop("dependencies", [])],
                             **kwargs)
        return func

    return decorator


@lru_cache(maxsize=8)
def asset(path: Path) -> tuple[bytes, bytes]:
    raw = path.read_bytes()
    return raw, gzip.compress(raw, 9, mtime=0)


def serve_asset(request: Request, path: Path, media_type: str) -> Response:
    """A static asset for other sites' pages: cacheable, cross-origin readable, gzip when asked."""
    raw, packed = asset(path)
    headers = {
        "Cache-Control": "public, max-age=3600",
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
        "Vary": "Accept-Encoding",
    }
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type=media_type, headers=headers)
    return Response(raw, media_type=media_type, headers=headers)
