"""The error tree: stable codes, one HTTP status each, RFC 9457 bodies naming the field."""

from __future__ import annotations

import pytest

from vern.core.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    Locked,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    Unavailable,
    VernError,
)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [(InvalidInput, 422, "invalid-input"), (Unauthenticated, 401, "unauthenticated"),
     (Forbidden, 403, "forbidden"), (NotFound, 404, "not-found"), (Conflict, 409, "conflict"),
     (PayloadTooLarge, 413, "payload-too-large"), (Unavailable, 503, "unavailable")],
)
def test_each_error_has_one_status_and_a_stable_code(
    error: type[VernError], status: int, code: str
) -> None:
    body = error().problem("/api/v1/x")
    assert body == {"type": f"/problems/{code}", "title": error.title, "status": status,
                    "code": code, "instance": "/api/v1/x"}


def test_an_input_error_names_the_field() -> None:
    error = InvalidInput.on("email", "is not a valid e-mail address")
    assert error.problem()["errors"] == [
        {"field": "email", "message": "is not a valid e-mail address", "code": "invalid"}]
    assert error.problem()["detail"] == "email: is not a valid e-mail address"
    assert str(error) == "email: is not a valid e-mail address (email: is not a valid e-mail address)"


def test_several_fields_are_listed_in_the_message() -> None:
    error = InvalidInput(detail="two problems", errors=[FieldError("name", "missing"),
                                                         FieldError("role", "unknown")])
    assert str(error) == "two problems (name: missing; role: unknown)"


@pytest.mark.parametrize("error", [RateLimited, Locked])
def test_waiting_errors_say_how_long(error: type[RateLimited | Locked]) -> None:
    raised = error(retry_after=42)
    assert raised.status == 429
    assert raised.retry_after == 42
    assert raised.problem()["retry_after"] == 42


def test_a_lock_is_told_apart_from_a_rate_limit() -> None:
    assert Locked(retry_after=1).code == "temporarily-locked"
    assert RateLimited(retry_after=1).code == "rate-limited"
