"""What the vendor registry's writes check, and the scope each is written in.

Vendor-wide rows are written in any scope the vendor's staff hold. Writes that reach a
customer's own rows (its profile and contacts, the Art. 28(2) notices of a sub-processor
change, which go to every affected customer in the change's transaction) need a system scope
or, for one customer, that customer's own scope: ``require_customer_scope`` checks it.
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.core.db import Scope
from vern.core.errors import InvalidInput, NotFound

KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def vendor_org_id(session: Session) -> str | None:
    """The vendor organisation whose trail records vendor-wide writes (None before it exists)."""
    vendor = accounts.vendor_org(session)
    return vendor.id if vendor is not None else None


def require_customer_scope(session: Session, tenant_id: str) -> None:
    """A system scope or ``tenant_id``'s own scope; any other is told NotFound."""
    scope: Scope | None = session.info.get("scope")
    if scope is None or not (scope.is_system or scope.org_id == tenant_id):
        raise NotFound()


def check_text(field_name: str, value: str, *, limit: int, required: bool = True) -> str:
    """``value`` stripped, refused when missing (if required) or longer than ``limit``."""
    value = (value or "").strip()
    if required and not value:
        raise InvalidInput.on(field_name, "is required")
    if len(value) > limit:
        raise InvalidInput.on(field_name, "at most %(n)s characters", "too-long", n=limit)
    return value


def check_key(value: str) -> str:
    """A registry key: lower-case letters, digits, - and _, at most 40."""
    if not KEY.match(value or ""):
        raise InvalidInput.on("key", "lower-case letters, digits, - and _ (at most 40)")
    return value


def check_choice(field_name: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise InvalidInput.on(field_name, "one of %(values)s", "choice",
                              values=", ".join(a for a in allowed if a) or '""')
    return value


def check_tenants(session: Session, field_name: str, ids: tuple[str, ...] | list[str]) -> list[str]:
    """The customer organisations named by ``ids``, each once, in their order."""
    out: list[str] = []
    for i, tenant_id in enumerate(ids):
        try:
            org = accounts.get_organisation(session, tenant_id)
        except NotFound:
            org = None
        if org is None or org.kind != "tenant":
            raise InvalidInput.on(f"{field_name}.{i}", "is not a customer organisation", "unknown")
        if org.id not in out:
            out.append(org.id)
    return out
