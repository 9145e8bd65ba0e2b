"""Publishing the product data map: validated first, stored as a new version, audited."""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.audit.service import record
from vern.datamap.loader import load_map
from vern.datamap.model import DataMap
from vern.datamap.models import ProductMap


def publish_map(session: Session, text: str, *, source: str, actor_user_id: str | None = None) -> ProductMap:
    """Store ``text`` as the map in use; raises ``MapError`` (naming each place) if it is wrong."""
    load_map(text, source=source)
    digest = hashlib.sha256(text.encode()).hexdigest()
    latest = session.scalars(select(ProductMap).order_by(ProductMap.version.desc()).limit(1)).first()
    if latest is not None and latest.sha256 == digest:
        return latest
    version = (session.scalar(select(func.max(ProductMap.version))) or 0) + 1
    row = ProductMap(version=version, source=source[:500], body=text, sha256=digest, created_by=actor_user_id)
    session.add(row)
    session.flush()
    record(
        session,
        "datamap.publish",
        org_id=None,
        actor_user_id=actor_user_id,
        resource=f"product_map:{row.id}",
        details={"new": {"version": version, "sha256": digest}},
    )
    return row


def published_from(session: Session, source: str) -> bool:
    """Whether a map from ``source`` (``"demo:laerbar"``, a file name) was ever published."""
    return session.scalar(select(ProductMap.id).where(ProductMap.source == source).limit(1)) is not None


def current_map(session: Session) -> DataMap | None:
    row = session.scalars(select(ProductMap).order_by(ProductMap.version.desc()).limit(1)).first()
    if row is None:
        return None
    return load_map(row.body, source=f"{row.source} (version {row.version})")
