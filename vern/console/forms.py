"""What every console form needs: its fields, the answer after a write (303), and where to go after
sign-in without leaving the console."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse

DEFAULT_NEXT = "/console"


def safe_next(value: str | None) -> str:
    """A local path to continue to after sign-in; anything else (another host, a scheme,
    ``//host``, backslashes, control characters) becomes the console's start page."""
    if not value or len(value) > 512 or not value.startswith("/") or value.startswith("//"):
        return DEFAULT_NEXT
    if "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return value


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def form_data(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}
