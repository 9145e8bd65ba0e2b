"""A small vendor endpoint for the HTTP connector tests: a Starlette app under uvicorn in a thread
on a loopback port. It checks each call's signature and timestamp and applies an operation once
per idempotency key, as a well-behaved endpoint does."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from vern.rights import http_connector


@dataclass
class Endpoint:
    secret: bytes
    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)  # every call that got through
    refused: list[str] = field(default_factory=list)  # why calls were refused
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)  # idempotency key -> answer
    applied_count: int = 0
    fail_next: list[int] = field(default_factory=list)  # statuses to answer before working again
    data: dict[str, Any] = field(default_factory=dict)  # what access answers

    async def handle(self, request: Request) -> JSONResponse:
        body = await request.body()
        ok = http_connector.verify_signature(
            self.secret,
            request.method,
            request.url.path,
            request.headers.get(http_connector.TIMESTAMP_HEADER, ""),
            body,
            request.headers.get(http_connector.SIGNATURE_HEADER, ""),
        )
        if not ok:
            self.refused.append("signature")
            return JSONResponse({"error": "bad signature"}, status_code=401)
        key = request.headers.get(http_connector.IDEMPOTENCY_HEADER)
        if not key:
            self.refused.append("no idempotency key")
            return JSONResponse({"error": "no idempotency key"}, status_code=400)
        payload = json.loads(body)
        self.calls.append({"path": request.url.path, "key": key, "payload": payload})
        if self.fail_next:
            return JSONResponse({"error": "down"}, status_code=self.fail_next.pop(0))
        if key in self.applied:  # a repeat: the same answer, nothing applied again
            return JSONResponse(self.applied[key])
        self.applied_count += 1
        operation = request.path_params["operation"]
        answer: dict[str, Any] = {"status": "done"}
        if operation == "access":
            answer = {"status": "done", **self.data}
        self.applied[key] = answer
        return JSONResponse(answer)


@contextmanager
def running_endpoint(secret: bytes) -> Iterator[Endpoint]:
    endpoint = Endpoint(secret=secret)
    app = Starlette(routes=[Route("/rights/{operation}", endpoint.handle, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):  # bounded: up to ten seconds
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "the test endpoint did not start"
    endpoint.url = f"http://127.0.0.1:{port}/rights"
    try:
        yield endpoint
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
