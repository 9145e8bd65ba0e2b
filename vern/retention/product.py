"""Retention of the vendor's product databases: the tables of the product data map that declare a
machine-readable rule (``retention: {days, after, action, reason}``), counted for the plan and
applied in bounded batches through the same connections the rights engine uses.

A batch is one transaction in the product database: it takes the next rows, in primary-key
order after the run's cursor, whose ``after`` column is older than the cutoff, and deletes them or
writes the fields' erase strategies over them. A table without a machine-readable rule, and every
row newer than the cutoff, is never touched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, delete, func, select, update
from sqlalchemy.engine import make_url

from vern.datamap.connect import NoConnection
from vern.datamap.model import DatabaseDef, DataMap, TenancyModel
from vern.datamap.model import Table as MapTable
from vern.rights.connectors import Unreachable, customer_url, describe_failure, product_db
from vern.rights.engine import new_value

PREFIX = "product:"


def rule_key(db: DatabaseDef, table: str) -> str:
    return f"{PREFIX}{db.qualified}.{table}"


def tables(data_map: DataMap | None) -> list[tuple[DatabaseDef, MapTable]]:
    """Every (database, table) of the map with a machine-readable rule, in a stable order."""
    if data_map is None:
        return []
    out = [(db, t) for db in data_map.databases() for t in db.tables.values() if t.rule is not None]
    return sorted(out, key=lambda x: rule_key(x[0], x[1].name))


def per_customer(db: DatabaseDef) -> bool:
    """A schema or a database per customer: the rule is applied in each customer's own."""
    return db.tenancy.model in (TenancyModel.SCHEMA, TenancyModel.DATABASE)


def customers(db: DatabaseDef, keys: list[str]) -> list[str | None]:
    """Where a rule of ``db`` is applied, in a stable order: each customer's product key (a
    schema or database per customer), or ``None`` (one database: ``column`` or ``single``)."""
    return sorted(set(keys)) if per_customer(db) else [None]  # type: ignore[return-value]


def held_in(held: set[str], key: str | None) -> set[str]:
    """The primary keys held in one customer's schema or database: a hold names ``<key>:<pk>``
    for one customer's row, or the bare ``<pk>`` (then the row of that key is held in every
    customer's copy; never less than asked)."""
    if key is None:
        return set(held)
    mine = {h.split(":", 1)[1] for h in held if h.startswith(f"{key}:")}
    return mine | {h for h in held if ":" not in h}


def failures() -> tuple[type[BaseException], ...]:
    """What a product database that cannot be reached or used raises (reported, not fatal)."""
    from sqlalchemy.exc import SQLAlchemyError


    return (SQLAlchemyError, NoConnection, Unreachable)


def _product(db: DatabaseDef, key: str | None = None) -> Any:
    """The rights engine's connection: the customer's schema or database when ``key`` is given.
    A customer's SQLite database that does not exist is not created by looking for it."""
    if key is not None and db.tenancy.model is TenancyModel.DATABASE:
        url = make_url(customer_url(db, None, key))
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
                and not Path(url.database).exists():
            raise Unreachable(f"{db.qualified}: the customer {key} has no database ({url.database})")
    return product_db(db, None, key)


def _conditions(table: Any, mt: MapTable, cutoff: datetime, held: set[str]) -> list[Any]:
    assert mt.rule is not None
    clock = table.c[mt.rule.after]
    if cutoff.tzinfo is not None and not getattr(clock.type, "timezone", False):
        cutoff = cutoff.astimezone(UTC).replace(tzinfo=None)  # a column without a time zone: UTC
    cond = [clock.is_not(None), clock < cutoff]
    if held:
        pk = table.c[mt.primary_key[0]]
        cond.append(cast(pk, String(64)).not_in(sorted(held)))
    return cond


def count_due(db: DatabaseDef, mt: MapTable, cutoff: datetime, held: set[str],
              keys: list[str] | None = None) -> dict[str, Any]:
    """How many rows would go now: in all, and per customer (``due_by_tenant``) where rows carry
    a tenant column or each customer has its own schema or database (``keys``: the customers'
    product keys). A customer's schema or database that cannot be reached is reported in
    ``errors_by_tenant``; the others are counted."""
    if not per_customer(db):
        return _count_one(db, mt, cutoff, held, None)
    total, by_tenant, errors = 0, {}, {}
    for key in customers(db, keys or []):
        assert key is not None
        try:
            n = int(_count_one(db, mt, cutoff, held_in(held, key), key)["due"])
        except failures() as exc:
            errors[key] = describe_failure(exc)
            continue
        total += n
        by_tenant[key] = n
    out: dict[str, Any] = {"due": total, "due_by_tenant": by_tenant}
    if errors:
        out["errors_by_tenant"] = errors
    return out


def _count_one(db: DatabaseDef, mt: MapTable, cutoff: datetime, held: set[str],
               key: str | None) -> dict[str, Any]:
    product = _product(db, key)
    table = product.table(mt.name)
    cond = _conditions(table, mt, cutoff, held)
    with product.engine.connect() as conn:
        total = int(conn.scalar(select(func.count()).select_from(table).where(*cond)) or 0)
        by_tenant: dict[str, int] = {}
        if mt.tenant:
            col = table.c[mt.tenant]
            rows = conn.execute(select(col, func.count()).where(*cond).group_by(col).order_by(col))
            by_tenant = {str(k): int(n) for k, n in rows}
    out: dict[str, Any] = {"due": total}
    if mt.tenant:
        out["due_by_tenant"] = by_tenant
    return out


def apply_batch(db: DatabaseDef, mt: MapTable, cutoff: datetime, *, held: set[str], after: Any,
                batch: int, secret: bytes, key: str | None = None) -> tuple[int, Any]:
    """One transaction in the product database (``key``: the customer's own schema or database):
    the next ``batch`` expired rows after the cursor ``after`` deleted (or anonymised). Returns
    (rows changed, the new cursor; None when done)."""

    assert mt.rule is not None
    product = _product(db, key)
    table = product.table(mt.name)
    pk = table.c[mt.primary_key[0]]
    cond = _conditions(table, mt, cutoff, held)
    if after is not None:
        cond.append(pk > after)
    strategies = mt.strategies()
    wanted = [pk] + [table.c[name] for name in strategies if name in table.c]
    with product.engine.begin() as conn:
        rows = conn.execute(select(*wanted).where(*cond).order_by(pk).limit(batch)).all()
        if not rows:
            return 0, None
        keys = [r[0] for r in rows]
        last = keys[-1]
        if mt.rule.action == "delete":
            # the cutoff is checked again in the statement itself
            gone = conn.execute(delete(table).where(pk.in_(keys), *cond)).rowcount or 0
        else:
            gone = 0
            for row in rows:
                old = row._mapping
                where = f"{db.qualified}[{key}]" if key is not None else db.qualified
                subject = f"{where}.{mt.name}:{row[0]}"
                values = {
                    name: new_value(secret, erase, old[name], subject)
                    for name, erase in strategies.items()
                    if name in table.c
                }
                changed = {k: v for k, v in values.items() if v != old[k]}
                if changed:
                    conn.execute(update(table).where(pk == row[0], *cond).values(**changed))
                    gone += 1
    cursor = last if isinstance(last, int | str) else str(last)
    return int(gone), (cursor if len(rows) == batch else None)
