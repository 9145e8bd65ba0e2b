"""ASGI and WSGI middleware that record each request of the host application.

The record (method, path, status, duration, client address, user agent, request id, and the
actor if the host tells who it is) is queued on the ``AuditClient`` after the response is sent;
the request never waits for Vern. Tell the middleware who the actor is by setting
``request.state.audit_actor`` (ASGI) or ``environ["vern.audit_actor"]`` (WSGI), or pass
``actor_from``. The client address honours ``X-Forwarded-For``/``Forwarded`` only from
``trusted_proxies``.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from vern.sdk.client import AuditClient

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Common:
    def __init__(self, client: AuditClient, *, action: str, skip_paths: Iterable[str],
                 trusted_proxies: Iterable[str]) -> None:
        self.client = client
        self.action = action
        self.skip = tuple(skip_paths)
        self.trusted = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_proxies)


class AuditMiddleware(_Common):
    """ASGI middleware."""

    def __init__(
        self,
        app: ASGIApp,
        client: AuditClient,
        *,
        action: str = "http.request",
        skip_paths: Iterable[str] = ("/healthz", "/readyz", "/metrics"),
        trusted_proxies: Iterable[str] = (),
        actor_from: Callable[[Scope], Any] | None = None,
    ) -> None:
        super().__init__(client, action=action, skip_paths=skip_paths,
                         trusted_proxies=trusted_proxies)
        self.app = app
        self.actor_from = actor_from

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(self.skip):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if self.actor_from is not None:
                actor = self.actor_from(scope)
            else:
                state = scope.get("state")
                actor = state.get("audit_actor") if isinstance(state, dict) else None
            client = scope.get("client")
            # Only a tuple is queued here; the record is built on the client's thread.
            self.client.record_raw((
                time.time(), scope["method"], scope["path"], status,
                round((time.perf_counter() - started) * 1000, 3),
                client[0] if client else "", scope["headers"], actor, self.trusted, self.action,
            ))


class WSGIAuditMiddleware(_Common):
    """WSGI middleware."""

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        client: AuditClient,
        *,
        action: str = "http.request",
        skip_paths: Iterable[str] = ("/healthz", "/readyz", "/metrics"),
        trusted_proxies: Iterable[str] = (),
        actor_from: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        super().__init__(client, action=action, skip_paths=skip_paths,
                         trusted_proxies=trusted_proxies)
        self.app = app
        self.actor_from = actor_from

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(self.skip):
            return self.app(environ, start_response)
        started = time.perf_counter()
        seen = {"status": 500}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info) if exc_info else start_response(
                status, headers)

        def done() -> None:
            headers = [(k[5:].replace("_", "-").lower(), v) for k, v in environ.items()
                       if k.startswith("HTTP_")]
            actor = (self.actor_from(environ) if self.actor_from is not None
                     else environ.get("vern.audit_actor"))
            self.client.record_raw((
                time.time(), environ.get("REQUEST_METHOD", "GET"), path, seen["status"],
                round((time.perf_counter() - started) * 1000, 3), environ.get("REMOTE_ADDR", ""),
                headers, actor, self.trusted, self.action,
            ))

        try:
            result = self.app(environ, start)
        except BaseException:
            done()
            raise
        return _Closing(result, done)


class _Closing:
    """Passes the body through and records when the server closes it (the response is sent)."""

    def __init__(self, inner: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self.inner = inner
        self.on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.inner)

    def close(self) -> None:
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            self.on_close()
