"""The demo's mail page: what the demo's mail server received, for the vendor's staff.

Only ``vern demo`` runs that server (``vern.notify.sink``); elsewhere the page says so and
shows nothing. It lets a person testing the demo complete every e-mail flow by hand (the
portal's e-mail code, download links, notices).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from vern.accounts.deps import require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.console.templating import render
from vern.notify import sink

pages = APIRouter(tags=["console"], include_in_schema=False)

VendorStaff = Annotated[Actor, Depends(require(Perm.TENANTS_READ))]


@pages.get("/console/mail")
def demo_mail(request: Request, actor: VendorStaff) -> Response:
    """The demo's received mail, newest first (demo only)."""
    settings = request.app.state.settings
    running = sink.running() if settings.env == "demo" else None
    messages = running.messages() if running is not None else []
    return render(request, "notify/mail.html", {
        "running": running is not None, "messages": messages,
        "address": running.url if running is not None else None,
    })
