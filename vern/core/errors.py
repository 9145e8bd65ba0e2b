"""One error tree. Each error has a stable code and maps to one HTTP status in one place
(``vern.app.web``), rendered as RFC 9457 problem details; the CLI prints the same message."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldError:
    """``message`` is the English text (the API's); ``template`` and ``params`` let a page show it
    in its own language (``vern.core.i18n``)."""

    field: str
    message: str
    code: str = "invalid"
    template: str = dataclasses.field(default="", compare=False)
    params: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.template:
            object.__setattr__(self, "template", self.message)

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "code": self.code}


@dataclass
class VernError(Exception):
    detail: str = ""
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # Values of a ``%(name)s`` detail: the detail stays translatable (``vern.core.i18n``).
    params: dict[str, Any] = field(default_factory=dict)
    template: str = field(default="", init=False, repr=False)

    code: ClassVar[str] = "error"
    title: ClassVar[str] = "Something went wrong"
    status: ClassVar[int] = 500

    def __post_init__(self) -> None:
        self.template = self.detail
        if self.params:
            self.detail = self.detail % self.params
        super().__init__(self.detail or self.title)

    def __str__(self) -> str:
        if self.errors:
            fields = "; ".join(f"{e.field}: {e.message}" for e in self.errors)
            return f"{self.detail or self.title} ({fields})"
        return self.detail or self.title

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


class InvalidInput(VernError):
    code = "invalid-input"
    title = "The input is not valid"
    status = 422

    @classmethod
    def on(cls, field_name: str, message: str, code: str = "invalid", **params: Any) -> InvalidInput:
        """``message`` may hold ``%(name)s`` values given as ``params``; it is translated on pages."""
        text = message % params if params else message
        return cls(detail=f"{field_name}: {message}", params=params,
                   errors=[FieldError(field_name, text, code, template=message, params=params)])


class Unauthenticated(VernError):
    code = "unauthenticated"
    title = "Sign-in required"
    status = 401


class Forbidden(VernError):
    code = "forbidden"
    title = "Not allowed"
    status = 403


class NotFound(VernError):
    """Also used for rows of another organisation, so that existence does not leak."""

    code = "not-found"
    title = "Not found"
    status = 404


class Conflict(VernError):
    code = "conflict"
    title = "The request conflicts with the current state"
    status = 409


class PayloadTooLarge(VernError):
    code = "payload-too-large"
    title = "The request body is too large"
    status = 413


class RateLimited(VernError):
    code = "rate-limited"
    title = "Too many requests"
    status = 429

    def __init__(self, retry_after: int, detail: str = "") -> None:
        super().__init__(detail=detail, extra={"retry_after": retry_after})
        self.retry_after = retry_after


class Locked(VernError):
    """A temporary lock after repeated failures; it always ends by itself."""

    code = "temporarily-locked"
    title = "Temporarily locked after repeated failures"
    status = 429

    def __init__(self, retry_after: int, detail: str = "") -> None:
        super().__init__(detail=detail, extra={"retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(VernError):
    code = "unavailable"
    title = "A dependency is not reachable"
    status = 503
