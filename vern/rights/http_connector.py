"""Calling a vendor's endpoint for a system Vern has no database connection to (a CRM, a
newsletter tool, a helpdesk with an API).

Every call is ``POST <base>/<operation>`` with a JSON body, signed with HMAC-SHA256 under the
system's own secret (from an environment variable or a secret file named in the map):

* ``X-Vern-Timestamp``: seconds since the epoch, as text;
* ``X-Vern-Signature``: ``v1=`` and the hex HMAC-SHA256 of
  ``METHOD "\\n" PATH "\\n" TIMESTAMP "\\n"`` followed by the body's bytes;
* ``Idempotency-Key``: the same for every attempt of one request, system and operation, so a call
  repeated after a crash or a lost answer is not applied twice by the receiving end.

The receiving end checks the signature with :func:`verify_signature` (or the same few lines in
its own language) and refuses a timestamp outside the replay window. A 2xx answer is success (its
JSON body, for access, is the person's data in that system); 408, 425, 429 and 5xx answers and
network errors are tried again with backoff; any other answer fails the step at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from vern.datamap.connect import ConnectorError, connector_settings
from vern.datamap.model import HttpConnector

SIGNATURE_HEADER = "X-Vern-Signature"
TIMESTAMP_HEADER = "X-Vern-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAY_WINDOW_SECONDS = 300
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_ANSWER_BYTES = 5 * 1024 * 1024




def idempotency_key(request_id: str, system: str, operation: str) -> str:
    return hashlib.sha256(f"vern-rights:{request_id}:{system}:{operation}".encode()).hexdigest()


def signature(secret: bytes, method: str, path: str, timestamp: str, body: bytes) -> str:
    message = f"{method.upper()}\n{path}\n{timestamp}\n".encode() + body
    return "v1=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify_signature(  # noqa: PLR0917 - the parts of a signed request
    secret: bytes,
    method: str,
    path: str,
    timestamp: str,
    body: bytes,
    given: str,
    *,
    now: float | None = None,
    window: int = REPLAY_WINDOW_SECONDS,
) -> bool:
    """For the receiving end: the signature is right and the timestamp within the window."""
    try:
        moment = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - moment) > window:
        return False
    return hmac.compare_digest(signature(secret, method, path, timestamp, body), given)




@dataclass
class Call:
    """What one attempt sends (kept for the record: the body holds no more than it must)."""

    url: str
    path: str
    body: bytes
    headers: dict[str, str]




def build_call(connector: HttpConnector, operation: str, payload: dict[str, Any], key: str) -> Call:
    base, secret = connector_settings(connector)
    url = f"{base}/{operation}"
    path = httpx.URL(url).raw_path.decode("ascii")
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, "POST", path, timestamp, body),
        IDEMPOTENCY_HEADER: key,
    }
    return Call(url=url, path=path, body=body, headers=headers)


def call(
    connector: HttpConnector,
    operation: str,
    payload: dict[str, Any],
    key: str,
    *,
    attempts: int = 3,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    client: httpx.Client | None = None,
) -> dict[str, Any]:
    """One operation, tried up to ``attempts`` times (waiting ``backoff``, then twice that, …);
    each attempt is signed afresh (a new timestamp) with the same idempotency key."""
    last: ConnectorError | None = None
    own = client is None
    http = client or httpx.Client(timeout=connector.timeout, follow_redirects=False)
    try:
        for attempt in range(max(1, attempts)):
            if attempt:
                sleep(backoff * 2 ** (attempt - 1))
            prepared = build_call(connector, operation, payload, key)
            try:
                response = http.post(prepared.url, content=prepared.body, headers=prepared.headers)
            except httpx.HTTPError as exc:
                last = ConnectorError(f"{type(exc).__name__} calling {operation}", retryable=True)
                continue
            if 200 <= response.status_code < 300:
                return _answer(response)
            last = ConnectorError(
                f"HTTP {response.status_code} from {operation}",
                retryable=response.status_code in RETRY_STATUSES,
            )
            if not last.retryable:
                break
    finally:
        if own:
            http.close()
    assert last is not None
    raise last


def _answer(response: httpx.Response) -> dict[str, Any]:
    if len(response.content) > MAX_ANSWER_BYTES:
        raise ConnectorError("the answer is larger than 5 MB", retryable=False)
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError as exc:
        raise ConnectorError("the answer is not JSON", retryable=False) from exc
    return data if isinstance(data, dict) else {"data": data}
