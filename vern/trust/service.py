"""Files shared with customers, and what a customer's trust page shows.

The vendor uploads a file once and chooses the customers who may see it; a customer's session
finds a file only through its own share row, so another customer's file answers 404. Every
download is recorded in the audit trail of the customer that downloaded it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.audit.service import record as audit
from vern.control import service as control
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import InvalidInput, NotFound
from vern.records import registry
from vern.records import service as records
from vern.trust.models import TrustFile, TrustShare

MAX_FILE = 20 * 1024 * 1024
ALLOWED_TYPES = {"application/pdf": ".pdf", "text/plain": ".txt", "text/csv": ".csv",
                 "application/zip": ".zip", "image/png": ".png"}
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def upload_file(session: Session, *, org_id: str, title: str, filename: str, content_type: str,
                content: bytes, actor_user_id: str | None) -> TrustFile:
    """Keep a file the vendor will share (``session`` in the vendor's organisation)."""
    if not title.strip() or len(title) > 200:
        raise InvalidInput.on("title", "give a title of 1-200 characters")
    if content_type not in ALLOWED_TYPES:
        raise InvalidInput.on("file", "a PDF, text, CSV, ZIP or PNG file")
    if not content:
        raise InvalidInput.on("file", "the file is empty")
    if len(content) > MAX_FILE:
        raise InvalidInput.on("file", "at most 20 MB")
    name = SAFE_NAME.sub("_", filename.rsplit("/", 1)[-1]).strip("._")[:150] or "document"
    row = TrustFile(title=title.strip(), filename=name, content_type=content_type,
                    size=len(content), sha256=hashlib.sha256(content).hexdigest(), content=content,
                    uploaded_by=actor_user_id)
    session.add(row)
    session.flush()
    audit(session, "trust.file_uploaded", org_id=org_id, actor_user_id=actor_user_id,
          resource=f"trust_file:{row.id}",
          details={"new": {"title": row.title, "sha256": row.sha256, "size": row.size}})
    return row


def list_files(session: Session) -> list[TrustFile]:
    return list(session.scalars(select(TrustFile).order_by(TrustFile.uploaded_at.desc())))


def get_file(session: Session, file_id: str) -> TrustFile:
    row = session.get(TrustFile, file_id)
    if row is None or row.withdrawn_at is not None:
        raise NotFound(detail="no such file")
    return row


def share_file(database: Database, *, vendor_org_id: str, file_id: str, org_ids: list[str],
               actor_user_id: str | None) -> int:
    """Let the customers ``org_ids`` see the file: one transaction, a share row in each
    customer's organisation and an audit record in the vendor's and in each customer's trail."""
    with database.transaction(Scope.system("trust: share a file with customers")) as session:
        get_file(session, file_id)
        tenants = {o.id for o in accounts.list_tenants(session)}
        added = 0
        for i, org_id in enumerate(org_ids):
            if org_id not in tenants:
                raise InvalidInput.on(f"org_ids.{i}", "no such customer")
            found = session.scalar(select(TrustShare.id).where(TrustShare.org_id == org_id,
                                                               TrustShare.file_id == file_id))
            if found:
                continue
            share = TrustShare(org_id=org_id, file_id=file_id, shared_by=actor_user_id)
            session.add(share)
            session.flush()
            audit(session, "trust.file_shared", org_id=org_id, actor_user_id=actor_user_id,
                  resource=f"trust_share:{share.id}", details={"new": {"shared": True}})
            added += 1
        audit(session, "trust.file_shared", org_id=vendor_org_id, actor_user_id=actor_user_id,
              resource=f"trust_file:{file_id}", details={"new": {"customers": sorted(org_ids)}})
        return added


def unshare_file(database: Database, *, file_id: str, org_id: str, actor_user_id: str | None) -> None:
    with database.transaction(Scope.tenant(org_id)) as session:
        share = session.scalar(select(TrustShare).where(TrustShare.file_id == file_id))
        if share is None:
            raise NotFound(detail="the file is not shared with this customer")
        session.delete(share)
        audit(session, "trust.file_unshared", org_id=org_id, actor_user_id=actor_user_id,
              resource=f"trust_file:{file_id}", details={"old": {"shared": True}})


def shared_with(session: Session, file_id: str) -> list[str]:
    """The customers a file is shared with (a system scope: it crosses organisations)."""
    return list(session.scalars(select(TrustShare.org_id).where(TrustShare.file_id == file_id)))


def shared_files(session: Session) -> list[dict[str, Any]]:
    """The files shared with the session's customer (a tenant scope), each with its share id: the
    customer's own handle on it."""
    shares = {file_id: share_id for share_id, file_id in
              session.execute(select(TrustShare.id, TrustShare.file_id))}
    if not shares:
        return []
    rows = session.execute(select(TrustFile.id, TrustFile.title, TrustFile.filename, TrustFile.size,
                                  TrustFile.uploaded_at, TrustFile.content_type)
                           .where(TrustFile.id.in_(list(shares)), TrustFile.withdrawn_at.is_(None))
                           .order_by(TrustFile.uploaded_at.desc()))
    out = []
    for r in rows:
        item = dict(r._mapping)
        item["id"] = shares[item.pop("id")]
        out.append(item)
    return out


def download(session: Session, *, org_id: str, share_id: str, actor_user_id: str | None) -> TrustFile:
    """A file shared with the session's customer, the download recorded in its audit trail; any
    other share id answers 404 (existence does not leak)."""
    share = session.get(TrustShare, share_id)
    if share is None:
        raise NotFound(detail="no such file")
    row = get_file(session, share.file_id)
    audit(session, "trust.file_downloaded", org_id=org_id, actor_user_id=actor_user_id,
          resource=f"trust_share:{share_id}", details={"new": {"sha256": row.sha256}})
    return row


def withdraw_file(session: Session, *, org_id: str, file_id: str, actor_user_id: str | None) -> None:
    """Withdraw a file (the vendor's staff): it leaves every customer's trust page and its
    downloads answer 404; the file stays listed for the vendor as withdrawn. A file withdrawn
    already, or unknown, answers 404."""
    row = get_file(session, file_id)
    row.withdrawn_at = utcnow()
    audit(session, "trust.file_withdrawn", org_id=org_id, actor_user_id=actor_user_id,
          resource=f"trust_file:{file_id}", details={"old": {"withdrawn": False},
                                                     "new": {"withdrawn": True}})


def page(session: Session, org_id: str) -> dict[str, Any]:
    """What the customer's trust page shows (``session`` in the customer's organisation)."""
    return {
        "org": accounts.get_organisation(session, org_id),
        "subprocessors": registry.subprocessors(session, org_id),
        "measures": registry.measures(session),
        "maintenance": registry.maintenance(session, org_id),
        "notices": registry.subprocessor_notices(session),
        "agreement": records.agreement_status(session),
        "agreements": records.list_agreements(session),
        "files": shared_files(session),
        # The vendor's internal control as a customer sees it: no evidence, no internal notes.
        "control": control.customer_summary(session),
    }
