"""What the internal control's API and console pages share: who may read, work and manage
(``control.read``, ``control.work``, ``control.manage``), today's date, an uploaded file read
within the evidence bound, an evidence file's answer and a DPIA as a document.
"""

from __future__ import annotations

from datetime import date
from html import escape
from typing import Annotated

from fastapi import Depends, Request, UploadFile
from fastapi.responses import Response

from vern.accounts.deps import TenantDB, require
from vern.accounts.roles import Perm
from vern.accounts.service import Actor
from vern.console.templating import render
from vern.control import service
from vern.control.service import By
from vern.core.db import utcnow
from vern.core.errors import InvalidInput

Reader = Annotated[Actor, Depends(require(Perm.CONTROL_READ))]
Worker = Annotated[Actor, Depends(require(Perm.CONTROL_WORK))]
Manager = Annotated[Actor, Depends(require(Perm.CONTROL_MANAGE))]


def utc_today() -> date:
    return utcnow().date()


async def read_upload(file: UploadFile) -> bytes:
    data = await file.read(service.MAX_EVIDENCE_BYTES + 1)
    if len(data) > service.MAX_EVIDENCE_BYTES:
        raise InvalidInput.on("file", "larger than %(n)s bytes", n=service.MAX_EVIDENCE_BYTES)
    return data


def file_response(db: TenantDB, actor: Actor, evidence_id: str) -> Response:
    ev = service.read_file(db, By.of(actor), evidence_id)
    return Response(ev.content, media_type=ev.content_type,
                    headers={"Content-Disposition": f'attachment; filename="{ev.filename}"'})


def dpia_document(request: Request, db: TenantDB, dpia_id: str, version: int | None) -> Response:
    data = service.dpia_export(db, dpia_id, version)
    return render(request, "control/dpia_export.html", {"dpia": data, "escape": escape})
