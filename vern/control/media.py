"""The log of wiped or destroyed media (sanitisation), each with another staff member as witness.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.control.common import By, audit, check_choice, check_text, staff_member
from vern.control.models import ControlMedia
from vern.core.db import utcnow
from vern.core.errors import InvalidInput

MEDIA_METHODS = ("clear", "purge", "destroy")


def log_media(session: Session, by: By, *, device: str, serial: str, method: str, done_on: date,
              done_by: str, witness: str, note: str = "") -> ControlMedia:
    """One wiped or destroyed medium; the witness is another member of the staff."""
    staff_member(session, "done_by", done_by)
    staff_member(session, "witness", witness)
    if witness == done_by:
        raise InvalidInput.on("witness", "must be another person than the one who did it")
    if done_on > utcnow().date():
        raise InvalidInput.on("done_on", "cannot be in the future")
    row = ControlMedia(device=check_text("device", device, 200),
                       serial=check_text("serial", serial, 100),
                       method=check_choice("method", method, MEDIA_METHODS), done_on=done_on,
                       done_by=done_by, witness=witness,
                       note=check_text("note", note, 2000, required=False), recorded_by=by.user_id)
    session.add(row)
    session.flush()
    audit(session, by, "control.media.log", f"control_media:{row.id}", serial=row.serial,
          method=method)
    return row


def list_media(session: Session) -> list[ControlMedia]:
    return list(session.scalars(select(ControlMedia).order_by(ControlMedia.done_on.desc(),
                                                              ControlMedia.created_at.desc())))


def media_view(row: ControlMedia) -> dict[str, Any]:
    return {"id": row.id, "device": row.device, "serial": row.serial, "method": row.method,
            "done_on": row.done_on.isoformat(), "done_by": row.done_by, "witness": row.witness,
            "note": row.note, "recorded_by": row.recorded_by}
