"""Organisations: the vendor's own and its customers (tenants) - creating them, their numbers in
the Brønnøysund register, and look-ups by id and slug."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum.no import orgnr

from vern.accounts.actor import Actor, record_as
from vern.accounts.models import Organisation
from vern.accounts.roles import OrgKind
from vern.core.errors import Conflict, InvalidInput, NotFound

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def create_organisation(
    session: Session,
    *,
    name: str,
    slug: str,
    kind: OrgKind,
    actor: Actor | None,
    org_number: str | None = None,
) -> Organisation:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput.on("name", "must be 1-200 characters")
    if not SLUG_RE.match(slug):
        raise InvalidInput.on("slug", "must be lowercase letters, digits and dashes")
    if org_number is not None:
        org_number = check_org_number(org_number)
    if session.scalar(select(Organisation.id).where(Organisation.slug == slug)):
        raise Conflict(detail="slug: already in use", errors=[])
    if kind is OrgKind.VENDOR and session.scalar(
        select(Organisation.id).where(Organisation.kind == OrgKind.VENDOR.value)
    ):
        raise Conflict(detail="kind: there is already a vendor organisation")
    org = Organisation(name=name, slug=slug, kind=kind.value, org_number=org_number)
    session.add(org)
    session.flush()
    record_as(session, "org.created", actor, org_id=org.id, resource=f"org:{org.id}",
              details={"new": {"slug": slug, "kind": kind.value}})
    return org


def check_org_number(value: str) -> str:
    """A Norwegian organisation number: nine digits whose last is the mod-11 check digit
    (weights 3, 2, 7, 6, 5, 4, 3, 2; remainder 0 gives 0, remainder 1 is never issued), as the
    Brønnøysund Register Centre assigns them. Spaces between groups are allowed and dropped."""
    number = re.sub(r"\s", "", value)
    if not re.fullmatch(r"\d{9}", number):
        raise InvalidInput.on("org_number", "must be nine digits")
    if not orgnr.is_valid(number):
        raise InvalidInput.on("org_number", "is not a valid organisation number (check digit)",
                              "check-digit")
    return number


def get_organisation(session: Session, org_id: str) -> Organisation:
    org = session.get(Organisation, org_id)
    if org is None:
        raise NotFound()
    return org


def org_id_by_slug(session: Session, slug: str) -> str | None:
    """The id of the organisation with this slug (for commands that name it), or None."""
    return session.scalar(select(Organisation.id).where(Organisation.slug == slug))


def list_tenants(session: Session) -> list[Organisation]:
    return list(
        session.scalars(
            select(Organisation)
            .where(Organisation.kind == OrgKind.TENANT.value)
            .order_by(Organisation.name)
        )
    )


def vendor_org(session: Session) -> Organisation | None:
    return session.scalar(select(Organisation).where(Organisation.kind == OrgKind.VENDOR.value))



def set_org_number(session: Session, *, org_id: str, org_number: str | None,
                   actor: Actor | None) -> Organisation:
    """Change an organisation's number (checked as ``check_org_number``); None clears it."""
    org = get_organisation(session, org_id)
    new = check_org_number(org_number) if org_number else None
    if new != org.org_number:
        old, org.org_number = org.org_number, new
        record_as(session, "org.number_changed", actor, org_id=org.id, resource=f"org:{org.id}",
                  details={"old": {"org_number": old}, "new": {"org_number": new}})
    return org
