"""The answer packages of access and portability requests (and of a customer's export) as they
are stored, linked and downloaded: each sealed under the request's data key, reached through a
link with a secret token that expires, every download audited."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from vern.accounts.models import Organisation
from vern.audit.service import record
from vern.core.config import get_settings, rights_settings
from vern.core.crypto import PII
from vern.core.db import execute_fast, new_id, utcnow
from vern.core.errors import Conflict, NotFound
from vern.datamap.model import DataMap
from vern.rights.intake import get_request
from vern.rights.models import Package, RightsRequest
from vern.rights.packages import EXPORT_TEXT, build_zip
from vern.rights.run_inputs import ENGINE_ROWS

_T_PACKAGES: Any = Package.__table__
_INSERT = insert(_T_PACKAGES).execution_options(cross_tenant=ENGINE_ROWS)


def build_export_package(
    data_map: DataMap,
    rows: dict[str, dict[str, list[dict[str, Any]]]],
    *,
    reference: str,
    org_name: str,
    made_at: datetime,
    locale: str,
) -> bytes:
    """A customer organisation's whole data in the access package's formats (data.json, one CSV
    per table, a readable summary), for the export at the end of its contract. ``rows`` is keyed
    like an access package's: database (``system.database``), then table."""

    return build_zip(data_map, rows, request_id=reference, kind="export", org_name=org_name,
                     received=made_at, locale=locale, texts=EXPORT_TEXT)


def store_answer(session: Session, job: Any, body: bytes) -> str:
    """Store ``body`` as the answer of a finished run (``vern.rights.engine.Job``) on the engine's
    connection, in the run's closing transaction; returns its download link."""
    token = secrets.token_urlsafe(32)
    execute_fast(
        session.connection(),
        _INSERT,
        {
            "id": new_id(),
            "org_id": job.org_id,
            "request_id": job.request_id,
            "body": PII(job.key_id, base64.b64encode(body).decode()),
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "token_hash": hashlib.sha256(token.encode()).hexdigest(),
            "created_at": utcnow(),
            "expires_at": utcnow() + timedelta(days=rights_settings().download_days),
            "downloads": 0,
        },
    )
    return download_link(job.org_slug, token)


def new_package(session: Session, req: RightsRequest, body: bytes, slug: str) -> str:
    """Store ``body`` as the answer of ``req`` through the ORM session; returns its download link
    on the portal of the organisation ``slug``."""
    token = secrets.token_urlsafe(32)
    session.add(
        Package(
            org_id=req.org_id,
            request_id=req.id,
            body=PII(req.key_id, base64.b64encode(body).decode()),
            size=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            expires_at=utcnow() + timedelta(days=rights_settings().download_days),
        )
    )
    return download_link(slug, token)


def download_link(slug: str, token: str) -> str:

    return f"{get_settings().base_url.rstrip('/')}/p/{slug}/download/{token}"


def renew_link(session: Session, request_id: str, *, actor_user_id: str | None) -> str:
    """A fresh download link for a finished request (the old one stops working)."""
    req = get_request(session, request_id)
    pkg = _latest_package(session, req.id)
    if pkg is None or pkg.body is None or pkg.body.value is None:
        raise Conflict(detail="this request has no answer to download")
    token = secrets.token_urlsafe(32)
    pkg.token_hash = hashlib.sha256(token.encode()).hexdigest()
    pkg.expires_at = utcnow() + timedelta(days=rights_settings().download_days)
    org = session.get(Organisation, req.org_id)
    record(
        session,
        "rights.package.link",
        org_id=req.org_id,
        actor_user_id=actor_user_id,
        resource=f"rights_package:{pkg.id}",
    )
    return download_link(org.slug if org else req.org_id, token)


def _latest_package(session: Session, request_id: str) -> Package | None:
    return session.scalars(
        select(Package).where(Package.request_id == request_id).order_by(Package.created_at.desc())
    ).first()


def download(session: Session, token: str, *, actor_user_id: str | None = None) -> tuple[bytes, str]:
    """The zip behind a download link; every download is audited. Expired links give NotFound."""

    pkg = session.scalars(
        select(Package).where(Package.token_hash == hashlib.sha256(token.encode()).hexdigest())
    ).first()
    return _deliver(session, pkg, actor_user_id)


def download_for_staff(session: Session, request_id: str, *, actor_user_id: str | None) -> tuple[bytes, str]:
    req = get_request(session, request_id)
    pkg = _latest_package(session, req.id)
    if pkg is None:
        raise Conflict(detail="this request has no answer to download")
    return _deliver(session, pkg, actor_user_id)


def _deliver(session: Session, pkg: Package | None, actor_user_id: str | None) -> tuple[bytes, str]:
    if pkg is None or pkg.body is None or pkg.body.value is None:
        raise NotFound(detail="no such download")
    if pkg.expires_at <= utcnow():
        record(
            session,
            "rights.package.download",
            org_id=pkg.org_id,
            actor_user_id=actor_user_id,
            resource=f"rights_package:{pkg.id}",
            outcome="failure",
            details={"new": {"expired": True}},
        )
        raise NotFound(detail="the download link has expired")
    pkg.downloads += 1
    pkg.last_download_at = utcnow()
    record(
        session,
        "rights.package.download",
        org_id=pkg.org_id,
        actor_user_id=actor_user_id,
        resource=f"rights_package:{pkg.id}",
        details={"new": {"downloads": pkg.downloads}},
    )
    return base64.b64decode(pkg.body.value), f"personal-data-{pkg.request_id[:8]}.zip"
