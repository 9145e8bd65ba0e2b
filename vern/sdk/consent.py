"""Asking Vern "may I use purpose P for this person?" from the vendor's product.

    from vern.sdk import ConsentClient

    consent = ConsentClient("https://vern.example.com", token="vt_…")   # consent.read
    if consent.may_use(user_id, "newsletter"):
        send_newsletter(user_id)
    for change in consent.changes(since):          # withdrawals and objections reach the product
        stop(change["subject"], change["purpose"]) if change["choice"] in ("withdrawn", "objected")
    consent.withdraw(user_id)                       # one call withdraws everything (consent.manage)

Standard library only; one keep-alive connection per thread, so a check costs one request on an
open connection. No answer is cached: a withdrawal counts from the next call.

Failure policy - strictest by default: when Vern cannot be reached or answers 5xx, ``may_use``
answers False (the purpose is not used) and counts the failure in ``failures``; a refused token
(401/403) raises ``ConsentError``, because that is a configuration error to be seen, not a "no".
An unknown purpose is False too.

Cookies the banner cannot remove. JavaScript in the browser cannot touch an HttpOnly cookie, and
it can only guess at a cookie set for a path other than ``/`` or with a Domain attribute it does
not know; the server that set such a cookie expires it. ``ConsentCookieMiddleware`` (ASGI) and
``WSGIConsentCookieMiddleware`` do that on every response: from the visitor's current consent
(the banner's ``vern_consent`` cookie by default, or any function, e.g. one asking Vern's API)
they add ``Set-Cookie: NAME=; Max-Age=0`` with the declared path and domain for each declared
cookie of a refused purpose that the request carries. ``expired_cookies`` is the same as a
function.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

log = logging.getLogger("vern.sdk.consent")


BANNER_COOKIE = "vern_consent"
_EXPIRED = "Expires=Thu, 01 Jan 1970 00:00:00 GMT"


def _declared(cookie: Any) -> tuple[str, str, str]:
    """(name or prefix*, path, domain) of one cookie of a purpose's declaration."""
    if isinstance(cookie, str):
        return cookie, "/", ""
    return (str(cookie.get("name") or ""), str(cookie.get("path") or "/"),
            str(cookie.get("domain") or "").lstrip("."))


def _necessary(purpose: Mapping[str, Any]) -> bool:
    return bool(purpose.get("required")) or purpose.get("kind") == "necessary"


def request_cookies(header: str) -> dict[str, str]:
    """The name=value pairs of a ``Cookie`` request header (later duplicates ignored)."""
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in out:
            out[name] = value
    return out


def banner_choices(cookies: Mapping[str, str], version: int | None = None) -> dict[str, bool]:
    """The purposes the visitor allowed in the banner, from its ``vern_consent`` cookie: ``{}``
    (nothing but the necessary) when there is no cookie, it cannot be read, or it was made for
    another cookie-policy version than ``version`` (the banner then asks again)."""
    raw = cookies.get(BANNER_COOKIE)
    if not raw:
        return {}
    try:
        state = json.loads(urllib.parse.unquote(raw))
    except ValueError:
        return {}
    if not isinstance(state, dict) or not isinstance(state.get("c"), dict):
        return {}
    if version is not None and state.get("v") != version:
        return {}
    return {str(k): v is True for k, v in state["c"].items()}


def expired_cookies(purposes: Iterable[Mapping[str, Any]], allowed: Mapping[str, bool],
                    present: Iterable[str]) -> list[str]:
    """``Set-Cookie`` values that expire, for every purpose not allowed (necessary ones never),
    each declared cookie among ``present`` (the request's cookie names; a declared ``_ga*``
    matches every present name with that prefix) at its declared path and domain."""
    names = list(dict.fromkeys(present))
    headers: list[str] = []
    for purpose in purposes:
        if _necessary(purpose) or allowed.get(str(purpose.get("key"))) is True:
            continue
        for cookie in purpose.get("cookies") or ():
            pattern, path, domain = _declared(cookie)
            if not pattern:
                continue
            prefix = pattern[:-1] if pattern.endswith("*") else None
            for name in names:
                if name != pattern if prefix is None else not name.startswith(prefix):
                    continue
                if name == BANNER_COOKIE:
                    continue
                value = f"{name}=; Max-Age=0; {_EXPIRED}; Path={path}"
                if domain:
                    value += f"; Domain={domain}"
                if name.startswith(("__Secure-", "__Host-")):
                    value += "; Secure"  # the browser refuses these prefixes without it
                if value not in headers:
                    headers.append(value)
    return headers


Purposes = Sequence[Mapping[str, Any]] | Callable[[], Sequence[Mapping[str, Any]]]
Decide = Callable[[Mapping[str, str]], Mapping[str, bool] | None]


class _CookieExpiry:
    def __init__(self, purposes: Purposes, *, version: int | None = None,
                 decide: Decide | None = None) -> None:
        self._purposes = purposes
        self._version = version
        self._decide = decide

    def headers(self, cookie_header: str) -> list[str]:
        cookies = request_cookies(cookie_header)
        if not cookies:
            return []
        purposes = self._purposes() if callable(self._purposes) else self._purposes
        allowed = self._decide(cookies) if self._decide else None
        if allowed is None:  # not known: what the banner says, and before a choice nothing
            allowed = banner_choices(cookies, self._version)
        return expired_cookies(purposes, allowed, cookies)


class ConsentCookieMiddleware(_CookieExpiry):
    """ASGI middleware: every HTTP response expires the vendor's own cookies of refused
    purposes (see ``expired_cookies``). ``purposes``: the purposes as Vern's API lists them
    (``ConsentClient.purposes()``), or a function returning them; ``version``: the current
    cookie-policy version (a banner cookie of another version counts as no choice); ``decide``:
    ``cookies -> {purpose: allowed}`` or None to fall back to the banner's cookie."""

    def __init__(self, app: Any, purposes: Purposes, *, version: int | None = None,
                 decide: Decide | None = None) -> None:
        super().__init__(purposes, version=version, decide=decide)
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        header = b"; ".join(v for k, v in scope.get("headers") or () if k == b"cookie")
        expire = self.headers(header.decode("latin-1"))

        async def sending(message: dict[str, Any]) -> None:
            if expire and message.get("type") == "http.response.start":
                extra = [(b"set-cookie", h.encode("latin-1")) for h in expire]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, sending)


class WSGIConsentCookieMiddleware(_CookieExpiry):
    """The same for WSGI applications (Flask, Django)."""

    def __init__(self, app: Any, purposes: Purposes, *, version: int | None = None,
                 decide: Decide | None = None) -> None:
        super().__init__(purposes, version=version, decide=decide)
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        expire = self.headers(str(environ.get("HTTP_COOKIE") or ""))

        def starting(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [*headers, *(("Set-Cookie", h) for h in expire)]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, starting)


class ConsentError(Exception):
    """Vern refused the request (``status``) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail


class ConsentClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 2.0) -> None:
        parts = urllib.parse.urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url: give http(s)://host[:port][/path]")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                         "User-Agent": "vern-sdk-consent"}
        self._local = threading.local()
        self._open: list[http.client.HTTPConnection] = []  # every thread's, for close()
        self._lock = threading.Lock()
        self.failures = 0

    # -- questions -------------------------------------------------------------------------

    def may_use(self, subject: str, purpose: str) -> bool:
        """True only when Vern says this purpose may be used for this subject now."""
        try:
            status, body = self._request("GET", self._subject_path(subject),
                                         {"purpose": purpose})
        except ConsentError as exc:
            self.failures += 1
            log.warning("consent check failed, answering no: %s", exc.detail)
            return False
        if status == 200:
            return json.loads(body).get("allowed") is True
        if status in (401, 403):
            raise ConsentError(status, "the token is not accepted for consent.read")
        if status >= 500:
            self.failures += 1
            log.warning("consent check failed (%d), answering no", status)
        return False  # 404 (unknown purpose), 422 (a malformed subject id) and the rest: no

    def decisions(self, subject: str) -> dict[str, Any]:
        """Every purpose's decision for one subject: ``{purpose: {"allowed": …, …}}``."""
        purposes: dict[str, Any] = self._json("GET", self._subject_path(subject))["purposes"]
        return purposes

    def allowed(self, subject: str) -> dict[str, bool]:
        """``{purpose: allowed}`` for one subject (for ``ConsentCookieMiddleware(decide=…)``)."""
        return {k: bool(v.get("allowed")) for k, v in self.decisions(subject).items()}

    def purposes(self) -> list[dict[str, Any]]:
        """The organisation's purposes with their cookie declarations (name, path, domain)."""
        purposes: list[dict[str, Any]] = self._json("GET", "/api/v1/consent/purposes")["purposes"]
        return purposes

    def history(self, subject: str) -> list[dict[str, Any]]:
        """Every consent record of one subject, newest first (the proof)."""
        records: list[dict[str, Any]] = self._json(
            "GET", self._subject_path(subject) + "/history")["records"]
        return records

    def changes(self, since: datetime, limit: int = 1000) -> list[dict[str, Any]]:
        """Every record after ``since`` (timezone-aware), oldest first: poll it to learn of
        withdrawals and objections without asking per person."""
        if since.tzinfo is None:
            raise ValueError("since: give a timezone-aware time")
        records: list[dict[str, Any]] = self._json(
            "GET", "/api/v1/consent/changes", {"since": since.isoformat(), "limit": str(limit)}
        )["records"]
        return records

    # -- changes made in the product -------------------------------------------------------

    def record(self, subject: str, choices: dict[str, str], *, method: str = "form",
               notice_version: int | None = None, verified: bool = False) -> list[dict[str, Any]]:
        """Record choices made in the product (``{"newsletter": "granted"}``)."""
        body: dict[str, Any] = {"choices": choices, "method": method, "verified": verified}
        if notice_version is not None:
            body["notice_version"] = notice_version
        records: list[dict[str, Any]] = self._json("POST", self._subject_path(subject),
                                                   body=body)["records"]
        return records

    def withdraw(self, subject: str, purposes: list[str] | None = None) -> list[dict[str, Any]]:
        """Withdraw every consent and object to every legitimate interest (or the named
        purposes only), in one call."""
        body = {} if purposes is None else {"purposes": purposes}
        records: list[dict[str, Any]] = self._json(
            "POST", self._subject_path(subject) + "/withdraw", body=body)["records"]
        return records

    def close(self) -> None:
        """Close the connections of every thread that used this client."""
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            conn.close()
        self._local.conn = None

    def __enter__(self) -> ConsentClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- HTTP ------------------------------------------------------------------------------

    def _subject_path(self, subject: str) -> str:
        return "/api/v1/consent/" + urllib.parse.quote(subject, safe="")

    def _json(self, method: str, path: str, params: dict[str, str] | None = None, *,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, raw = self._request(method, path, params, body)
        if status >= 400:
            try:
                detail = str(json.loads(raw).get("detail") or raw[:200].decode(errors="replace"))
            except ValueError:
                detail = raw[:200].decode(errors="replace")
            raise ConsentError(status, detail)
        result: dict[str, Any] = json.loads(raw)
        return result

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
            with self._lock:
                self._open.append(conn)
        return conn

    def _request(self, method: str, path: str, params: dict[str, str] | None = None,
                 body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        target = self._prefix + path + ("?" + urllib.parse.urlencode(params) if params else "")
        payload = None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        # A kept-alive connection the server has closed fails on first use: one fresh try, for
        # reads only (a write is not repeated behind the caller's back).
        attempts = 2 if method == "GET" else 1
        for attempt in range(attempts):
            conn = self._connection()
            try:
                conn.request(method, target, body=payload, headers=headers)
                res = conn.getresponse()
                return res.status, res.read()
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                self._local.conn = None
                with self._lock:
                    if conn in self._open:
                        self._open.remove(conn)
                if attempt == attempts - 1:
                    raise ConsentError(0, f"Vern could not be reached: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover
