"""Bounds on every input, applied where it enters.

Two halves:

* Shared annotated types for what only a field knows - integer ranges (``Int64``, ``Int32``),
  times and dates (``Moment``, ``AwareMoment``, ``Day``: years 1970 to 9998). Models, query, path
  and form parameters use them, so that a value out of range is a 422 naming the field instead of
  an overflow deep in a service or in the database driver.
* ``InputBounds``, an ASGI layer inside the web middleware, for what holds for every field: no NUL
  character and no lone surrogate anywhere (path parameters, query strings, JSON and form
  bodies), JSON at most ``MAX_JSON_DEPTH`` levels deep, JSON numbers within 64 bits and no
  ``NaN``/``Infinity``. Routes that parse JSON themselves (the banner's text/plain posts, the
  beacon's fast path) use ``loads``, which applies the same rules.

The common case costs one search over the raw bytes; a body is parsed here only when that search
finds something that may be refused, and then only to name the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from annotated_types import Interval
from pydantic import AfterValidator, StringConstraints
from pydantic_core import PydanticCustomError

from vern.core.errors import FieldError, InvalidInput, VernError

MAX_JSON_DEPTH = 32
MAX_URL_TEXT = 2000  # characters of one path parameter or query value
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
INT32_MAX = 2**31 - 1
FIRST_YEAR = 1970
LAST_YEAR = 9998
EARLIEST = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
LATEST = datetime(LAST_YEAR, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
TIME_RANGE = f"between {FIRST_YEAR}-01-01 and {LAST_YEAR}-12-31"


# -- shared types ------------------------------------------------------------------------------


def _moment(value: datetime) -> datetime:
    """Within the years allowed (checked before any conversion, which could overflow), in UTC;
    a time without an offset is taken as UTC."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise PydanticCustomError("time_range", "must be " + TIME_RANGE)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _aware_moment(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise PydanticCustomError("timezone", "give a time with its UTC offset")
    return _moment(value)


def _day(value: date) -> date:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise PydanticCustomError("date_range", "must be " + TIME_RANGE)
    return value


Key = Annotated[str, StringConstraints(min_length=1, max_length=64)]
"""A name inside a body: a dictionary key, a purpose key, an identity kind (1 to 64 characters)."""

Value = Annotated[str, StringConstraints(max_length=2000)]
"""A text value inside a dictionary or list of a body (at most 2,000 characters)."""

Int64 = Annotated[int, Interval(ge=0, le=INT64_MAX)]
"""A count, size, position or id number: 0 to 2**63 - 1 (what a BIGINT column holds)."""

Int32 = Annotated[int, Interval(ge=0, le=INT32_MAX)]
"""A small number such as a version: 0 to 2**31 - 1 (what an INTEGER column holds)."""

Moment = Annotated[datetime, AfterValidator(_moment)]
"""A point in time in the years 1970 to 9998, returned in UTC (no offset: taken as UTC)."""

AwareMoment = Annotated[datetime, AfterValidator(_aware_moment)]
"""Like ``Moment``, but the offset must be given."""

Day = Annotated[date, AfterValidator(_day)]
"""A calendar day in the years 1970 to 9998."""


def parse_moment(value: str, field: str) -> datetime:
    """ISO 8601 text (``Z`` allowed; no offset: UTC) as a ``Moment``, or ``InvalidInput``."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput.on(field, "not a date or time (ISO 8601)") from exc
    try:
        return _moment(parsed)
    except PydanticCustomError as exc:
        raise InvalidInput.on(field, exc.message(), exc.type) from None


def length_over(declared: str | bytes, limit: int) -> bool:
    """Whether a declared Content-Length is over ``limit`` (a run of digits too long to be
    converted is over it; anything that is not plain digits is left to the server)."""
    text = declared.decode("latin-1") if isinstance(declared, bytes) else declared
    if not (text.isascii() and text.isdigit()):
        return False
    return len(text) > len(str(limit)) or int(text) > limit


def parse_int(value: str, field: str, low: int = 0, high: int = INT64_MAX) -> int:
    """Digits as an int within ``low..high``, or ``InvalidInput`` (long digit runs refused
    before they are converted)."""
    if not value.isascii() or not value.isdigit() or len(value) > len(str(high)):
        raise InvalidInput.on(field, "a whole number from %(low)s to %(high)s", low=low, high=high)
    number = int(value)
    if not low <= number <= high:
        raise InvalidInput.on(field, "a whole number from %(low)s to %(high)s", low=low, high=high)
    return number


# -- characters, numbers and depth of any input ------------------------------------------------


def text_problem(value: str) -> str | None:
    """Why a text cannot be taken (None when it can): NUL or a lone surrogate."""
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid Unicode)"
    return None


def check_text(value: str, field: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise InvalidInput.on(field, problem, "bad-text")
    return value


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def json_problems(data: Any, path: str = "") -> Iterator[FieldError]:
    """Every NUL, lone surrogate (in keys and values) and integer beyond 64 bits, by field."""
    stack: list[tuple[str, Any]] = [(path, data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                yield FieldError(where or "body", problem, "bad-text")
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                yield FieldError(where or "body", "a number beyond 64 bits", "number-range")
        elif isinstance(value, float):
            if not math.isfinite(value):
                yield FieldError(where or "body", "a number too large", "number-range")
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = text_problem(key)
                if problem:
                    yield FieldError(where or "body", f"a key {problem}", "bad-text")
                    continue
                stack.append((_join(where, key), item))
        elif isinstance(value, list):
            stack.extend((_join(where, i), item) for i, item in enumerate(value))


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_PAIR = re.compile(rb"\[\]|\{\}")
# What may need a closer look - in strings: an escaped NUL or surrogate; outside them: a number
# of 19 or more digits or with a large exponent, the constants Python takes but JSON has not.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_SUSPECT_NUMBER = re.compile(rb"\d{19}|\d[eE][+-]?\d{3}|NaN|Infinity")


def _outside_strings(body: bytes) -> bytes:
    """The JSON text without its strings (split on quotes when no quote is escaped)."""
    if b'\\"' not in body:
        return b"".join(body.split(b'"')[0::2])
    return _STRING.sub(b"", body)


def json_depth_over(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests deeper than ``limit`` (strings ignored). Closed pairs are
    removed from the inside out, at most ``limit`` times; what is left is measured."""
    return _depth_over(_outside_strings(body), limit)


def _depth_over(outside: bytes, limit: int) -> bool:
    if outside.count(b"[") + outside.count(b"{") <= limit:
        return False  # cannot nest deeper than it has openings
    brackets = _NOT_BRACKET.sub(b"", outside)
    rounds = 0
    while brackets and rounds < limit:
        brackets, removed = _PAIR.subn(b"", brackets)
        if not removed:
            break
        rounds += 1
    if not brackets:
        return False
    if rounds == limit:
        return True  # a pair still closes more than ``limit`` levels up
    depth = deepest = 0  # malformed (unclosed or mismatched): how far a parser would descend
    for ch in brackets:
        depth = depth + 1 if ch in b"[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest > limit


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_UNREAD = object()


def _checked(body: bytes, field: str) -> Any:
    """``check_json``; returns the parsed data when it had to parse, else ``_UNREAD``."""
    outside = _outside_strings(body)
    if _depth_over(outside, MAX_JSON_DEPTH):
        raise InvalidInput.on(field, "nested deeper than %(n)s levels", "too-deep", n=MAX_JSON_DEPTH)
    if _SUSPECT_NUMBER.search(outside) is None and (
            b"\\u" not in body or _SUSPECT_ESCAPE.search(body) is None):
        return _UNREAD  # nothing below can be found: no need to parse
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except ValueError as exc:
        if "is not JSON" in str(exc):
            raise InvalidInput.on(field, "NaN and Infinity are not JSON numbers",
                                  "number-range") from None
        return _UNREAD  # not JSON at all: the parser that follows refuses it
    problems = list(json_problems(data))
    if problems:
        raise InvalidInput(detail=f"{problems[0].field}: {problems[0].message}", errors=problems)
    return data


def check_json(body: bytes, field: str = "body") -> None:
    """Refuse JSON that nests too deep or holds NUL, lone surrogates, numbers beyond 64 bits,
    ``NaN`` or ``Infinity``. Malformed JSON is left to the parser that follows."""
    _checked(body, field)


def loads(body: bytes, field: str = "body") -> Any:
    """``json.loads`` within the bounds: ``InvalidInput`` for anything ``check_json`` refuses
    and for text that is not JSON (code ``not-json``)."""
    data = _checked(body, field)
    if data is not _UNREAD:
        return data
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise InvalidInput.on(field, "not JSON", "not-json") from None


# -- the ASGI layer ----------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ErrorAnswer = Callable[[Scope, Receive, Send, VernError], Awaitable[None]]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _text_problem(value: str, limit: int | None = MAX_URL_TEXT) -> FieldError | None:
    """A path, query or form text: no NUL, at most ``limit`` characters (field set later)."""
    if "\x00" in value:
        return FieldError("", "contains a NUL character", "bad-text")
    if limit is not None and len(value) > limit:
        return FieldError("", f"longer than {limit} characters", "too-long",
                          template="longer than %(n)s characters", params={"n": limit})
    return None


def _path_problems(scope: Scope) -> list[FieldError]:
    path: str = scope["path"]
    if "\x00" not in path and len(path) <= MAX_URL_TEXT:
        return []
    state = getattr(scope.get("app"), "state", None)
    for router in getattr(state, "routers", []):  # the app's discovered routers (vern.app.web)
        for route in router.routes:
            regex = getattr(route, "path_regex", None)
            found = regex.match(path) if regex is not None else None
            if found is None:
                continue
            named = [FieldError(k, p.message, p.code, p.template, p.params)
                     for k, v in found.groupdict().items() if (p := _text_problem(v)) is not None]
            if named:
                return named
    whole = _text_problem(path, MAX_URL_TEXT * 4)
    return [FieldError("path", whole.message, whole.code, whole.template, whole.params)] if whole else []


def _query_problems(query: bytes, limit: int | None = MAX_URL_TEXT) -> list[FieldError]:
    """Of a query string, or of a form body (``limit`` None: its fields have their own)."""
    if b"%00" not in query and b"\x00" not in query and (limit is None or len(query) <= limit):
        return []
    found = []
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        problem = _text_problem(key, limit)
        if problem is not None:
            found.append(FieldError("query", "a parameter name " + problem.message,
                                    problem.code))
        elif (problem := _text_problem(value, limit)) is not None:
            found.append(FieldError(key, problem.message, problem.code, problem.template, problem.params))
    return found


async def _form_problems(scope: Scope, body: bytes, content_type: bytes) -> list[FieldError]:
    if not content_type.startswith(b"multipart/"):
        return _query_problems(body.replace(b"+", b" "), None)
    if b"\x00" not in body:
        return []
    from starlette.requests import Request

    async def once() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    named: list[FieldError] = []
    try:
        async with Request(scope, once).form() as form:
            named = [FieldError(k, "contains a NUL character", "bad-text")
                     for k, v in form.multi_items() if isinstance(v, str) and "\x00" in v]
    except Exception:  # noqa: BLE001 - malformed: refused below without a name
        return [FieldError("body", "contains a NUL character", "bad-text")]
    # NUL bytes inside an uploaded file are its content (a PDF, an image), not text.
    return named


def _is_json(content_type: bytes) -> bool:
    if not content_type:
        return True  # FastAPI reads a body without a type as JSON
    main = content_type.split(b";", 1)[0].strip().lower()
    return main == b"application/json" or (main.startswith(b"application/")
                                           and main.endswith(b"+json"))


async def _read(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class InputBounds:
    """Refuses a request whose path, query string or body breaks the rules in the module doc,
    with a 422 naming the field (answered by ``answer``, the app's own error rendering)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 answer: ErrorAnswer) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problems = _path_problems(scope) + _query_problems(scope.get("query_string", b""))
        if not problems and scope["method"] in _BODY_METHODS:
            content_type = b""
            for name, value in scope["headers"]:
                if name == b"content-type":
                    content_type = value
                    break
            form = content_type.startswith((b"application/x-www-form-urlencoded",
                                            b"multipart/form-data"))
            if form or _is_json(content_type):
                try:
                    body = await _read(receive)
                except VernError as exc:  # the body limit of the web middleware
                    await self.answer(scope, _replay(b"", receive), send, exc)
                    return
                receive = _replay(body, receive)
                try:
                    if form:
                        problems = await _form_problems(scope, body, content_type)
                    elif body:
                        check_json(body)
                except InvalidInput as exc:
                    problems = exc.errors
        if problems:
            first = problems[0]
            error = InvalidInput(detail=f"{first.field}: {first.message}", errors=problems)
            await self.answer(scope, receive, send, error)
            return
        await self.app(scope, receive, send)
