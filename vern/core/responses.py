"""``responses=`` descriptions for routes whose answers are not JSON, shared by the domains' routes
and the API description (``vern.app.openapi``)."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

# The content security policy of every answer (set by vern.app.web's middleware).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


def csp_for_own_styles(html: str) -> str:
    """The policy for a stand-alone document Vern rendered itself (a DPA, a record) whose style
    sits in its own ``<style>`` element: those exact styles are allowed by their hash, nothing
    else inline."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in _STYLE.findall(html)
    )
    return CSP.replace("style-src 'self'", f"style-src 'self' {hashes}".rstrip(), 1)

DESCRIPTIONS = {
    "400": "The request could not be read (for example a malformed JSON body).",
    "401": "Sign-in required: no valid bearer token or session.",
    "403": "Signed in, but not allowed (missing permission, MFA or CSRF token).",
    "404": "No such object in the caller's organisation (also for another organisation's objects).",
    "405": "The method is not allowed on this path; `Allow` lists those that are.",
    "409": "The request conflicts with the current state.",
    "413": "The request body is larger than the limit.",
    "415": "The body's media type is not accepted.",
    "422": "The input is not valid; `errors` names each field and rule.",
    "429": "Too many requests or a temporary lock; `Retry-After` says when to try again.",
    "500": "An unexpected error (never expected; reported).",
    "503": "A service Vern needs (the database) is not available now.",
}


def answers(*media_types: str, status: int = 200, description: str = "OK") -> dict[int | str, Any]:
    """``responses=`` for a route whose success is not JSON (a script, a style sheet, text), or
    not only JSON (an export that answers CSV or JSON lines when asked)."""
    return {status: {"description": description,
                     "content": {media_type: {} for media_type in media_types}}}


def bodiless(*statuses: int) -> dict[int | str, Any]:
    """``responses=`` for refusals answered without a body (the statistics beacon): the
    ``X-Vern-Error`` header names the reason."""
    header = {"X-Vern-Error": {"schema": {"type": "string"}, "description": "the reason"}}
    return {status: {"description": DESCRIPTIONS[str(status)] + " No body.", "headers": header}
            for status in statuses}
