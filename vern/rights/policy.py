"""A customer's rights policy: which requests wait for approval, whether a search that finds
nobody is answered without review, and the key by which the product's rows of the customer are
found (the vendor's to set, never shared by two organisations)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.accounts.models import Organisation
from vern.accounts.roles import OrgKind, Perm
from vern.audit.service import record
from vern.core.config import rights_settings
from vern.core.db import utcnow
from vern.core.errors import Conflict, FieldError, Forbidden, NotFound
from vern.rights.models import Policy


@dataclass(frozen=True)


class EffectivePolicy:
    product_tenant_key: str
    approve_erasure: bool
    approve_rectification: bool
    answer_nobody_found: bool = False


def policy_for(session: Session, org_id: str) -> EffectivePolicy:
    cfg = rights_settings()
    row = session.scalars(select(Policy).where(Policy.org_id == org_id)).first()
    if row is None:
        return EffectivePolicy(org_id, cfg.approve_erasure, cfg.approve_rectification)
    return EffectivePolicy(
        row.product_tenant_key or org_id,
        row.approve_erasure,
        row.approve_rectification,
        bool(row.answer_nobody_found),
    )


def product_keys(session: Session) -> dict[str, str]:
    """Every customer organisation's product key (its ``product_tenant_key``, or its id when it
    has none), as ``{key: org_id}``: the customers whose schema or database a product with a
    schema or database per customer holds. Needs a system scope."""
    rows = session.execute(
        select(Organisation.id, Policy.product_tenant_key)
        .outerjoin(Policy, Policy.org_id == Organisation.id)
        .where(Organisation.kind == OrgKind.TENANT.value)
        .execution_options(cross_tenant="the product keys of every customer")
    )
    return {key or org_id: org_id for org_id, key in rows}


def _policy_row(session: Session, org_id: str) -> Policy:
    row = session.scalars(select(Policy).where(Policy.org_id == org_id)).first()
    if row is None:
        cfg = rights_settings()
        row = Policy(
            org_id=org_id,
            approve_erasure=cfg.approve_erasure,
            approve_rectification=cfg.approve_rectification,
        )
        session.add(row)
    return row


def _policy_values(row: Policy) -> dict[str, Any]:
    return {
        "product_tenant_key": row.product_tenant_key,
        "approve_erasure": row.approve_erasure,
        "approve_rectification": row.approve_rectification,
        "answer_nobody_found": bool(row.answer_nobody_found),
    }


def set_policy(
    session: Session,
    *,
    org_id: str,
    actor_user_id: str | None,
    approve_erasure: bool | None = None,
    approve_rectification: bool | None = None,
    answer_nobody_found: bool | None = None,
) -> Policy:
    """The customer's own choices: it may require approval, never drop it (that weakens the
    strict default; the vendor's staff decide it with ``set_tenant_policy``); and whether a
    search that finds nobody is answered without staff confirming it first."""
    row = _policy_row(session, org_id)
    for name, value in (("approve_erasure", approve_erasure),
                        ("approve_rectification", approve_rectification)):
        if value is False and getattr(row, name) is not False:
            raise Forbidden(
                detail=f"{name}: only the vendor may turn approval off",
                errors=[FieldError(name, "only the vendor may turn approval off", "vendor-only")],
            )
    old = _policy_values(row)
    if approve_erasure is not None:
        row.approve_erasure = approve_erasure
    if approve_rectification is not None:
        row.approve_rectification = approve_rectification
    if answer_nobody_found is not None:
        row.answer_nobody_found = answer_nobody_found
    row.updated_at = utcnow()
    session.flush()
    record(
        session,
        "rights.policy.update",
        org_id=org_id,
        actor_user_id=actor_user_id,
        resource=f"rights_policy:{row.id}",
        details={"old": old, "new": _policy_values(row)},
    )
    return row


def key_in_use(session: Session, org_id: str, key: str) -> bool:
    """Whether ``key`` is (or could be) another organisation's product key: its explicit key, or
    its id (the key of an organisation without one). Needs a system scope."""
    others = session.scalar(
        select(func.count()).select_from(Policy)
        .where(Policy.product_tenant_key == key, Policy.org_id != org_id)
    )
    ids = session.scalar(
        select(func.count()).select_from(Organisation)
        .where(Organisation.id == key, Organisation.id != org_id)
    )
    return bool(others or ids)


def set_tenant_policy(
    session: Session,
    *,
    actor: Any,
    tenant_id: str,
    product_tenant_key: str | None = None,
    approve_erasure: bool | None = None,
    approve_rectification: bool | None = None,
) -> Policy:
    """The vendor's staff set a customer's policy, including what the customer may not: which
    product key it maps to and whether approval may be skipped. ``session`` has a system scope
    (the change crosses organisations); it is audited in the customer's trail and in the
    vendor's, neither record naming the other organisation to the customer."""

    if actor.org_kind != OrgKind.VENDOR or not actor.home or Perm.TENANTS_MANAGE not in actor.perms:
        raise Forbidden(detail="only the vendor's staff may change a customer's mapping")
    org = session.get(Organisation, tenant_id)
    if org is None or org.kind != OrgKind.TENANT.value:
        raise NotFound(detail="no such customer")
    row = _policy_row(session, tenant_id)
    old = _policy_values(row)
    if product_tenant_key is not None:
        key = product_tenant_key.strip()
        if key and key_in_use(session, tenant_id, key):
            raise Conflict(
                detail="product_tenant_key: already the key of another organisation",
                errors=[FieldError("product_tenant_key", "already the key of another organisation",
                                   "in-use")],
            )
        row.product_tenant_key = key or None
    if approve_erasure is not None:
        row.approve_erasure = approve_erasure
    if approve_rectification is not None:
        row.approve_rectification = approve_rectification
    row.updated_at = utcnow()
    session.flush()
    details = {"old": old, "new": _policy_values(row), "by": "vendor"}
    record(session, "rights.policy.update", org_id=tenant_id, actor_user_id=actor.user_id,
           actor_token_id=actor.token_id, resource=f"rights_policy:{row.id}", details=details)
    record(session, "rights.tenant_policy.update", org_id=actor.org_id,
           actor_user_id=actor.user_id, actor_token_id=actor.token_id,
           resource=f"org:{tenant_id}", details={"old": old, "new": _policy_values(row)})
    return row


def shared_keys(session: Session, keys: dict[str, str]) -> set[str]:
    """Organisations (of ``keys``: org id -> explicit product key) whose key is also another
    organisation's: a request of theirs would reach the other's people, so it never runs. One
    query each for the keys' owners and for ids equal to a key; none when no key is set."""
    if not keys:
        return set()
    wanted = sorted(set(keys.values()))
    owners: dict[str, set[str]] = {}
    pol = Policy.__table__
    for org_id, key in session.execute(
        select(pol.c.org_id, pol.c.product_tenant_key).where(pol.c.product_tenant_key.in_(wanted))
    ):
        owners.setdefault(key, set()).add(org_id)
    for (org_id,) in session.execute(
        select(Organisation.id).where(Organisation.id.in_(wanted))
    ):
        owners.setdefault(org_id, set()).add(org_id)
    return {org for org, key in keys.items() if owners.get(key, set()) - {org}}
