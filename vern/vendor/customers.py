"""Customers in the vendor registry: each customer's profile (contract dates, the hours within
which a breach is told) and the contacts it registered per kind of notice, and who receives a
notice of each kind.

Customer-owned rows are read by the customer's id through ``_customer_rows``: allowed in a
system scope, in that customer's own scope, or in the vendor organisation's scope (vendor
staff); any other scope gets nothing. Writes need a system scope or the customer's own scope.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.accounts import service as accounts
from vern.audit.service import record as audit
from vern.core.crypto import PII, keyring
from vern.core.db import Scope, utcnow
from vern.core.errors import InvalidInput, NotFound
from vern.vendor.checks import EMAIL, check_choice, check_text, require_customer_scope
from vern.vendor.models import CustomerContact, CustomerProfile
from vern.vendor.views import CustomerProfileView, Recipient

CONTACT_KINDS = ("privacy", "security", "breach", "maintenance")
DEFAULT_BREACH_NOTICE_HOURS = 24


# -- reads ------------------------------------------------------------------------------------


def _may_read_customer(session: Session, tenant_id: str) -> bool:
    """A system scope, the customer's own scope, or the vendor organisation's scope."""
    scope: Scope | None = session.info.get("scope")
    if scope is None:
        return False
    if scope.is_system or scope.org_id == tenant_id:
        return True
    vendor = accounts.vendor_org(session)
    return vendor is not None and vendor.id == scope.org_id


def _customer_rows(session: Session, model: Any, tenant_id: str, *where: Any) -> list[Any]:
    """Rows of ``model`` owned by ``tenant_id``, read by id (see the module's docstring)."""
    if not _may_read_customer(session, tenant_id):
        return []
    table = model.__table__
    stmt = (select(table).where(table.c.org_id == tenant_id, *where)
            .execution_options(cross_tenant="vendor registry: one customer's own rows by its id"))
    return list(session.execute(stmt))


def _contacts(session: Session, tenant_id: str) -> dict[str, tuple[Recipient, ...]]:
    rows = _customer_rows(session, CustomerContact, tenant_id)
    rows.sort(key=lambda r: (r.created_at, r.id))
    out: dict[str, list[Recipient]] = {k: [] for k in CONTACT_KINDS}
    for row in rows:
        if row.email is None or row.email.value is None:
            continue  # erased
        name = row.name.value if row.name is not None and row.name.value else ""
        out.setdefault(row.kind, []).append(Recipient(name, row.email.value, row.locale, row.key_id))
    return {k: tuple(v) for k, v in out.items()}


def customer_profile(session: Session, tenant_id: str) -> CustomerProfileView:
    """The vendor's profile of one customer; defaults (no contract dates, 24 hours) until set.
    Raises NotFound for an unknown customer or one the session may not read."""
    if not _may_read_customer(session, tenant_id):
        raise NotFound()
    org = accounts.get_organisation(session, tenant_id)
    if org.kind != "tenant":
        raise NotFound()
    rows = _customer_rows(session, CustomerProfile, tenant_id)
    row = rows[0] if rows else None
    return CustomerProfileView(
        tenant_id=org.id, name=org.name, org_number=org.org_number,
        contract_start=row.contract_start if row else None,
        contract_end=row.contract_end if row else None,
        breach_notice_hours=row.breach_notice_hours if row else DEFAULT_BREACH_NOTICE_HOURS,
        contacts=_contacts(session, tenant_id),
    )


def contracts_by_customer(session: Session, tenant_ids: list[str]
                          ) -> dict[str, tuple[date | None, date | None]]:
    """Each customer's contract start and end from its profile (``(None, None)`` until set), for
    many customers at once (the record of processing per controller)."""
    allowed = [t for t in tenant_ids if _may_read_customer(session, t)]
    found: dict[str, tuple[date | None, date | None]] = dict.fromkeys(allowed, (None, None))
    table = CustomerProfile.__table__
    for start in range(0, len(allowed), 500):
        stmt = (select(table.c.org_id, table.c.contract_start, table.c.contract_end)
                .where(table.c.org_id.in_(allowed[start:start + 500]))
                .execution_options(cross_tenant="vendor registry: customers' contract dates"))
        for org_id, begins, ends in session.execute(stmt):
            found[org_id] = (begins, ends)
    return found


def notice_recipients(session: Session, tenant_id: str, kind: str) -> list[Recipient]:
    """Who gets a notice of ``kind`` (privacy, security, breach, maintenance) for one customer:
    the contacts it registered for that kind, or else its active administrators."""
    return recipients_by_customer(session, [tenant_id], kind).get(tenant_id, [])


def recipients_by_customer(session: Session, tenant_ids: list[str], kind: str
                           ) -> dict[str, list[Recipient]]:
    """``notice_recipients`` for many customers at once (a notice to every customer)."""
    if kind not in CONTACT_KINDS:
        raise InvalidInput.on("kind", "one of %(values)s", values=", ".join(CONTACT_KINDS))
    allowed = [t for t in tenant_ids if _may_read_customer(session, t)]
    table = CustomerContact.__table__
    found: dict[str, list[Recipient]] = {}
    for start in range(0, len(allowed), 500):
        stmt = (select(table).where(table.c.org_id.in_(allowed[start:start + 500]),
                                    table.c.kind == kind)
                .order_by(table.c.created_at, table.c.id)
                .execution_options(cross_tenant="vendor registry: customers' own contacts"))
        for row in session.execute(stmt):
            if row.email is None or row.email.value is None:
                continue  # erased
            name = row.name.value if row.name is not None and row.name.value else ""
            found.setdefault(row.org_id, []).append(
                Recipient(name, row.email.value, row.locale, row.key_id))
    missing = [t for t in allowed if t not in found]
    for tenant_id, users in accounts.active_admins_by_org(session, missing).items():
        for user in users:
            if user.email is None or user.email.value is None:
                continue
            name = user.name.value if user.name is not None and user.name.value else ""
            found.setdefault(tenant_id, []).append(
                Recipient(name, user.email.value, user.locale or "nb", user.key_id))
    return found


# -- writes -----------------------------------------------------------------------------------


def set_customer_profile(session: Session, tenant_id: str, *, org_number: str | None,
                         contract_start: date | None, contract_end: date | None,
                         breach_notice_hours: int = DEFAULT_BREACH_NOTICE_HOURS,
                         actor: Any = None) -> CustomerProfileView:
    """Organisation number (mod-11 checked by the accounts domain), contract start and end
    (end not before start) and the hours within which a breach is told to the customer."""
    require_customer_scope(session, tenant_id)
    org = accounts.get_organisation(session, tenant_id)
    if org.kind != "tenant":
        raise NotFound()
    if contract_start is not None and contract_end is not None and contract_end < contract_start:
        raise InvalidInput.on("contract_end", "cannot be before the contract's start", "order")
    if contract_end is not None and contract_start is None:
        raise InvalidInput.on("contract_start", "is required when the contract has an end")
    if not 1 <= breach_notice_hours <= 72:
        raise InvalidInput.on("breach_notice_hours", "must be 1-%(n)s", "range", n=72)
    accounts.set_org_number(session, org_id=tenant_id, org_number=org_number, actor=actor)
    found = session.scalar(select(CustomerProfile).where(CustomerProfile.org_id == tenant_id))
    old = None
    if found is None:
        found = CustomerProfile(org_id=tenant_id)
        session.add(found)
    else:
        old = _profile_state(found)
    found.contract_start, found.contract_end = contract_start, contract_end
    found.breach_notice_hours, found.updated_at = breach_notice_hours, utcnow()
    session.flush()
    audit(session, "vendor.customer_profile_set", org_id=tenant_id,
          actor_user_id=getattr(actor, "user_id", None), resource=f"customer:{tenant_id}",
          details={"old": old, "new": _profile_state(found)})
    return customer_profile(session, tenant_id)


def _profile_state(p: CustomerProfile) -> dict[str, Any]:
    return {"contract_start": p.contract_start.isoformat() if p.contract_start else None,
            "contract_end": p.contract_end.isoformat() if p.contract_end else None,
            "breach_notice_hours": p.breach_notice_hours}


def add_contact(session: Session, tenant_id: str, *, kind: str, name: str, email: str,
                locale: str = "nb", actor_user_id: str | None) -> str:
    """A contact for one kind of notice; name and address sealed under a key of their own."""
    require_customer_scope(session, tenant_id)
    if accounts.get_organisation(session, tenant_id).kind != "tenant":
        raise NotFound()
    kind = check_choice("kind", kind, CONTACT_KINDS)
    name = check_text("name", name, limit=200)
    email = check_text("email", email, limit=254)
    if not EMAIL.match(email):
        raise InvalidInput.on("email", "is not a valid e-mail address")
    locale = check_choice("locale", locale, ("nb", "en"))
    key_id = keyring().create(session)
    contact = CustomerContact(org_id=tenant_id, kind=kind, key_id=key_id,
                              name=PII(key_id, name), email=PII(key_id, email), locale=locale)
    session.add(contact)
    session.flush()
    audit(session, "vendor.customer_contact_added", org_id=tenant_id,
          actor_user_id=actor_user_id, resource=f"customer-contact:{contact.id}",
          details={"new": {"kind": kind, "locale": locale}})
    return contact.id


def remove_contact(session: Session, tenant_id: str, contact_id: str, *,
                   actor_user_id: str | None) -> None:
    """Remove a contact and shred its key (its name and address are gone with it)."""
    require_customer_scope(session, tenant_id)
    found = session.scalar(select(CustomerContact).where(CustomerContact.id == contact_id,
                                                         CustomerContact.org_id == tenant_id))
    if found is None:
        raise NotFound(detail="no such contact")
    kind, key_id = found.kind, found.key_id
    session.delete(found)
    session.flush()
    keyring().shred(session, key_id)
    audit(session, "vendor.customer_contact_removed", org_id=tenant_id,
          actor_user_id=actor_user_id, resource=f"customer-contact:{contact_id}",
          details={"old": {"kind": kind}})


def contact_ids(session: Session, tenant_id: str) -> list[tuple[str, str, Recipient]]:
    """(id, kind, recipient) of every contact a customer registered (vendor staff's page)."""
    require_customer_scope(session, tenant_id)
    rows = session.scalars(select(CustomerContact).where(CustomerContact.org_id == tenant_id)
                           .order_by(CustomerContact.kind, CustomerContact.created_at))
    return [(c.id, c.kind, Recipient(c.name.value or "", c.email.value or "", c.locale, c.key_id))
            for c in rows]
