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
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.parse
from datetime import datetime
from typing import Any

log = logging.getLogger("vern.sdk.consent")


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
        conn = getattr(self._local, "conn", None)
        if conn is not None:
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
                if attempt == attempts - 1:
                    raise ConsentError(0, f"Vern could not be reached: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover
