"""What the current request is: set once by the web middleware, read by audit and logging.

Services never take the client address or request id as arguments; they read them here, so that a
write made from the CLI or the worker simply has no request attached.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    client_ip: str | None
    user_agent: str | None
    method: str
    path: str
    # Values every audit record of this request carries in its details, set once the caller is
    # known (``access_grant``: the grant vendor staff act under in a customer's organisation).
    tags: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


_current: ContextVar[RequestContext | None] = ContextVar("vern_request", default=None)


def current_request() -> RequestContext | None:
    return _current.get()


def set_request(ctx: RequestContext | None) -> object:
    return _current.set(ctx)


def reset_request(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
