"""The retention rules: one per category of Vern's own data (from Vern's own data map, with the
vendor's own periods applied), the rules of other domains' records (applied through their service
functions) and the rules the product data map declares.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vern.core.errors import NotFound
from vern.datamap.categories import RETENTION_POLICIES, RETENTION_RULES
from vern.datamap.loader import MapError
from vern.datamap.own import load_own_map
from vern.datamap.service import current_map
from vern.retention import product
from vern.retention.models import RetentionPeriod
from vern.rights.service import product_keys

DETAILS_DAYS = 30  # a closed request's identities and details, after the person was answered


@dataclass(frozen=True)
class Rule:
    """One rule: what (``tables``), after how long (``days`` from ``clock``), what then
    (``action``), why (``reason`` for people, ``legal_reason``), and the least it may be."""

    key: str
    tables: tuple[str, ...]
    policy: str
    clock: str
    days: int | None
    default_days: int | None
    action: str
    reason: str
    legal_reason: str
    legal_minimum_days: int
    enforced_by: str = ""  # a job of another domain applies it (not this one)
    kind: str = "table"  # table | function | product (a table of the product data map)
    database: str = ""  # product: the map's database (system.name)

    def view(self) -> dict[str, Any]:
        return {
            "rule": self.key, "tables": list(self.tables), "policy": self.policy,
            "counted_from": self.clock or None, "days": self.days,
            "default_days": self.default_days, "action": self.action,
            "reason": self.reason, "legal_reason": self.legal_reason,
            "legal_minimum_days": self.legal_minimum_days,
            "enforced_by": self.enforced_by or ("retention.run" if self.days else None),
        } | ({"database": self.database} if self.kind == "product" else {})


_FUNCTION_RULES: tuple[tuple[str, tuple[str, ...], str, str, int | None, str, str, int], ...] = (
    ("rights_requests.details", ("rights_requests", "outbox_messages"), "request-plus-5y",
     "completed_at", DETAILS_DAYS, "anonymise",
     "Art. 5(1)(e): a closed request's identities and details (and mails sealed under its key) "
     "only until the person has been answered", 0),
    ("rights_requests", ("rights_requests", "rights_parts", "rights_tasks", "rights_ledger",
                         "rights_flags", "rights_external_steps"), "request-plus-5y",
     "completed_at", None, "delete", "", -1),
    ("consent_records", ("consent_records",), "consent-history", "retired purpose", None,
     "delete", "", -1),
    ("incidents", ("incidents", "incident_customers", "incident_notices", "incident_events",
                   "incident_warnings"), "incident-plus-5y", "closed_at", None, "delete", "", -1),
    ("control", ("control_tasks", "control_completions", "control_evidence", "control_reminders",
                 "control_changes", "control_change_events", "control_people",
                 "control_trainings", "control_media", "control_risks", "control_measures",
                 "control_dpias", "control_dpia_versions"), "internal-control",
     "the record's end (closed, completed, implemented, ended)", None, "delete", "", -1),
)


@functools.cache
def _own_map() -> dict[str, Any]:
    """The data map of Vern's own tables (files of the installed package: read once)."""
    return load_own_map()


def _policy(name: str) -> dict[str, Any]:
    return dict(RETENTION_POLICIES[name])


def rules(session: Session | None = None) -> list[Rule]:
    """Every rule, with the vendor's own periods (``retention_periods``) applied."""
    periods: dict[str, int] = {}
    own = _own_map()
    if session is not None:
        periods = {p.rule: p.days for p in session.scalars(select(RetentionPeriod))}
    out: list[Rule] = []
    covered: set[str] = set()
    for key, tables, policy_name, clock, days, action, legal, minimum in _FUNCTION_RULES:
        pol = _policy(policy_name)
        default = days if days is not None else pol["days"]
        out.append(Rule(
            key=key, tables=tables, policy=policy_name, clock=clock,
            days=periods.get(key, default), default_days=default, action=action,
            reason=RETENTION_RULES[policy_name], legal_reason=legal or str(pol["legal_reason"]),
            legal_minimum_days=minimum if minimum >= 0 else int(pol["legal_minimum_days"]),
            kind="function"))
        if key != "rights_requests.details":
            covered.update(tables)
    for table in sorted(own.values(), key=lambda t: t.name):
        if table.name in covered:
            continue
        pol = _policy(table.retention)
        default = pol["days"] if table.retention_after else None
        out.append(Rule(
            key=table.name, tables=(table.name,), policy=table.retention,
            clock=table.retention_after, days=periods.get(table.name, default) if default else None,
            default_days=default, action=str(pol["action"]), reason=RETENTION_RULES[table.retention],
            legal_reason=str(pol["legal_reason"]), legal_minimum_days=int(pol["legal_minimum_days"]),
            enforced_by=str(pol.get("enforced_by", ""))))
    if session is not None:
        out.extend(_product_rules(session))
    return out


def _product_map(session: Session) -> Any:

    try:
        return current_map(session)
    except MapError:  # published before a check it now fails: nothing of it is applied
        return None


def _product_rules(session: Session) -> list[Rule]:
    """The rules the product data map declares (``retention: {days, after, action, reason}``)."""
    out = []
    for db, table in product.tables(_product_map(session)):
        r = table.rule
        assert r is not None
        out.append(Rule(
            key=product.rule_key(db, table.name), tables=(table.name,), policy="product-map",
            clock=r.after, days=r.days, default_days=r.days, action=r.action, reason=r.reason,
            legal_reason=r.minimum_reason or r.reason, legal_minimum_days=r.minimum_days,
            kind="product", database=db.qualified))
    return out


def customer_keys(session: Session, db: Any) -> list[str]:
    """The customers' product keys, where the product has a schema or database per customer."""
    return sorted(product_keys(session)) if product.per_customer(db) else []


def product_table(session: Session | Any, r: Rule) -> tuple[Any, Any]:
    data_map = _product_map(session) if isinstance(session, Session) else None
    if data_map is None:
        raise NotFound(detail="the product data map is not published")
    db = data_map.database(r.database)
    return db, db.tables[r.tables[0]]


def rule(session: Session | None, key: str) -> Rule:
    for r in rules(session):
        if r.key == key:
            return r
    raise NotFound(detail="no such retention rule")
