"""Writes of the statistics domain (sites). Page views are written by ``vern.stats.ingest``."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.audit.service import record
from vern.core.errors import InvalidInput, NotFound
from vern.stats.models import StatsSite

LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN = re.compile(rf"^(?=.{{1,253}}$)({LABEL}\.)*{LABEL}$")


def create_site(session: Session, *, org_id: str, name: str, domain: str,
                actor_user_id: str | None) -> StatsSite:
    name = name.strip()
    domain = domain.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
    if not name or len(name) > 200:
        raise InvalidInput.on("name", "give a name of 1-200 characters")
    if not DOMAIN.match(domain):
        raise InvalidInput.on("domain", "give a host name such as www.example.com")
    site = StatsSite(org_id=org_id, name=name, domain=domain)
    session.add(site)
    session.flush()
    record(session, "stats.site_created", org_id=org_id, actor_user_id=actor_user_id,
           resource=f"stats_site:{site.id}", details={"new": {"name": name, "domain": domain}})
    return site


def get_site(session: Session, site_id: str) -> StatsSite:
    """A site of the session's organisation (tenant scope); another tenant's site is not found."""
    site = session.scalar(select(StatsSite).where(StatsSite.id == site_id))
    if site is None:
        raise NotFound(detail="no such site")
    return site


def list_sites(session: Session) -> list[StatsSite]:
    return list(session.scalars(select(StatsSite).order_by(StatsSite.name)))
