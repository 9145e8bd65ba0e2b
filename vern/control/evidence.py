"""Evidence of a control task (a checked file, a link or a reference to a record in Vern), and its
deletion under the two-person rule: one person asks, another approves.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.control.common import By, audit, check_choice, check_text
from vern.control.models import ControlChange, ControlEvidence
from vern.control.tasks import get_task
from vern.core.db import utcnow
from vern.core.errors import Conflict, Forbidden, InvalidInput, NotFound

RECORD_KINDS = ("audit_checkpoint", "rights_request", "change_request", "breach", "access_review",
                "document", "other")
MAX_EVIDENCE_BYTES = 512 * 1024
# Declared content type → how its first bytes look (None: UTF-8 text without NUL).
EVIDENCE_TYPES: dict[str, bytes | None] = {
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
    "text/plain": None,
    "text/csv": None,
    "application/json": None,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": b"PK\x03\x04",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": b"PK\x03\x04",
    "application/vnd.oasis.opendocument.text": b"PK\x03\x04",
}


def check_file(content_type: str, data: bytes) -> str:
    """The declared type if the content is allowed and looks like it; refusal names ``file``."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared not in EVIDENCE_TYPES:
        raise InvalidInput.on("file", "type %(type)s is not accepted", type=declared or "?")
    if not data:
        raise InvalidInput.on("file", "is empty")
    if len(data) > MAX_EVIDENCE_BYTES:
        raise InvalidInput.on("file", "larger than %(n)s bytes", n=MAX_EVIDENCE_BYTES)
    magic = EVIDENCE_TYPES[declared]
    if magic is None:
        ok = b"\x00" not in data
        try:
            text = data.decode("utf-8")
            if declared == "application/json":
                json.loads(text)
        except ValueError:
            ok = False
    else:
        ok = data.startswith(magic)
    if not ok:
        raise InvalidInput.on("file", "content does not match its type %(type)s", type=declared)
    return declared


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def add_file(session: Session, by: By, task_id: str, *, title: str, filename: str,
             content_type: str, data: bytes) -> ControlEvidence:
    task = get_task(session, task_id)
    declared = check_file(content_type, data)
    name = _SAFE_NAME.sub("_", (filename or "evidence").rsplit("/", 1)[-1])[:200] or "evidence"
    ev = ControlEvidence(task_id=task.id, kind="file",
                         title=check_text("title", title or name, 200), filename=name,
                         content_type=declared, size=len(data),
                         sha256=hashlib.sha256(data).hexdigest(), content=data,
                         added_by=by.user_id)
    return _add_evidence(session, by, ev)


def add_link(session: Session, by: By, task_id: str, *, title: str, url: str) -> ControlEvidence:
    task = get_task(session, task_id)
    url = check_text("url", url, 2000)
    if not re.match(r"^https?://[^\s/]+", url):
        raise InvalidInput.on("url", "must be an http or https address")
    ev = ControlEvidence(task_id=task.id, kind="link", title=check_text("title", title, 200),
                         url=url, added_by=by.user_id)
    return _add_evidence(session, by, ev)


def add_record(session: Session, by: By, task_id: str, *, title: str, record_kind: str,
               record_ref: str) -> ControlEvidence:
    """A reference to a record in Vern (an audit checkpoint, a request id, a change request…).
    A change request is looked up here; other kinds are kept as given."""
    task = get_task(session, task_id)
    kind = check_choice("record_kind", record_kind, RECORD_KINDS)
    ref = check_text("record_ref", record_ref, 200)
    if kind == "change_request" and session.get(ControlChange, ref) is None:
        raise InvalidInput.on("record_ref", "no such change request")
    ev = ControlEvidence(task_id=task.id, kind="record", title=check_text("title", title, 200),
                         record_kind=kind, record_ref=ref, added_by=by.user_id)
    return _add_evidence(session, by, ev)


def _add_evidence(session: Session, by: By, ev: ControlEvidence) -> ControlEvidence:
    session.add(ev)
    session.flush()
    audit(session, by, "control.evidence.add", f"control_evidence:{ev.id}", task=ev.task_id,
          kind=ev.kind, size=ev.size, sha256=ev.sha256)
    return ev


def get_evidence(session: Session, evidence_id: str) -> ControlEvidence:
    ev = session.get(ControlEvidence, evidence_id)
    if ev is None:
        raise NotFound()
    return ev


def evidence_of(session: Session, task_id: str, *, deleted: bool = False) -> list[ControlEvidence]:
    stmt = select(ControlEvidence).where(ControlEvidence.task_id == task_id)
    if not deleted:
        stmt = stmt.where(ControlEvidence.deleted_at.is_(None))
    return list(session.scalars(stmt.order_by(ControlEvidence.added_at)))


def read_file(session: Session, by: By, evidence_id: str) -> ControlEvidence:
    ev = get_evidence(session, evidence_id)
    if ev.kind != "file" or ev.content is None:
        raise NotFound()
    audit(session, by, "control.evidence.read", f"control_evidence:{ev.id}")
    return ev


def request_deletion(session: Session, by: By, evidence_id: str, *, reason: str) -> ControlEvidence:
    """Ask for evidence to be deleted; another person must approve."""
    who = by.person("Asking to delete evidence")
    ev = get_evidence(session, evidence_id)
    if ev.deleted_at is not None:
        raise Conflict(detail="evidence: already deleted")
    if ev.delete_requested_by is not None:
        raise Conflict(detail="evidence: a deletion is already waiting for approval")
    ev.delete_requested_by = who
    ev.delete_requested_at = utcnow()
    ev.delete_reason = check_text("reason", reason, 2000)
    audit(session, by, "control.evidence.delete_request", f"control_evidence:{ev.id}")
    return ev


def approve_deletion(session: Session, by: By, evidence_id: str) -> ControlEvidence:
    """Carry out a requested deletion: the content is removed, the entry stays as a trace."""
    who = by.person("Approving a deletion")
    ev = get_evidence(session, evidence_id)
    if ev.delete_requested_by is None or ev.deleted_at is not None:
        raise Conflict(detail="evidence: no deletion is waiting for approval")
    if ev.delete_requested_by == who:  # the refused request is in the trail as a 403
        raise Forbidden(detail="The person who asked for the deletion cannot approve it; "
                               "another person must")
    ev.content = None
    ev.url = None
    ev.deleted_by = who
    ev.deleted_at = utcnow()
    audit(session, by, "control.evidence.delete_approve", f"control_evidence:{ev.id}",
          requested_by=ev.delete_requested_by)
    return ev


def refuse_deletion(session: Session, by: By, evidence_id: str) -> ControlEvidence:
    """Withdraw (the asker) or refuse (anyone else) a requested deletion: the evidence stays."""
    by.person("Refusing a deletion")
    ev = get_evidence(session, evidence_id)
    if ev.delete_requested_by is None or ev.deleted_at is not None:
        raise Conflict(detail="evidence: no deletion is waiting for approval")
    requested = ev.delete_requested_by
    ev.delete_requested_by = ev.delete_requested_at = ev.delete_reason = None
    audit(session, by, "control.evidence.delete_refuse", f"control_evidence:{ev.id}",
          requested_by=requested)
    return ev


def pending_deletions(session: Session) -> list[ControlEvidence]:
    return list(session.scalars(select(ControlEvidence).where(
        ControlEvidence.delete_requested_by.is_not(None), ControlEvidence.deleted_at.is_(None))
        .order_by(ControlEvidence.delete_requested_at)))


def evidence_view(ev: ControlEvidence) -> dict[str, Any]:
    return {
        "id": ev.id, "task_id": ev.task_id, "completion_id": ev.completion_id, "kind": ev.kind,
        "title": ev.title, "url": ev.url, "record_kind": ev.record_kind,
        "record_ref": ev.record_ref, "filename": ev.filename, "content_type": ev.content_type,
        "size": ev.size, "sha256": ev.sha256, "added_by": ev.added_by,
        "added_at": ev.added_at.isoformat(),
        "delete_requested_by": ev.delete_requested_by,
        "delete_reason": ev.delete_reason,
        "deleted_at": ev.deleted_at.isoformat() if ev.deleted_at else None,
        "deleted_by": ev.deleted_by,
    }
