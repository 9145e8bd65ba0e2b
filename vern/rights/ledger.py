"""Replaying the erasure ledger after a product database is restored from a backup.

The ledger lives in Vern's database, outside the product databases, and holds only keyed hashes of
the values that matched each erased person (and of the values written in their place). After a
restore, ``replay`` scans each affected table within the tenant, recognises the person's rows by
those hashes, and applies the table's current erase strategies again. Rows that are already erased
are recognised by the hashes of what was written and left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from vern.audit.service import record
from vern.datamap.model import DataMap
from vern.db import Database, Scope
from vern.rights.connectors import ProductDB, coerce, product_db
from vern.rights.engine import match_hash, new_value
from vern.rights.models import LedgerEntry


@dataclass
class ReplayResult:
    database: str
    entries: int = 0
    rows: int = 0
    tables: dict[str, int] = field(default_factory=dict)


def replay(
    database: Database,
    data_map: DataMap,
    database_name: str,
    since: datetime,
    *,
    secret: bytes,
    urls: dict[str, str] | None = None,
    actor_user_id: str | None = None,
    on_table: Callable[[str, int], None] | None = None,
) -> ReplayResult:
    definition = data_map.database(database_name)
    with database.transaction(Scope.system("read erasure ledger")) as session:
        entries = list(
            session.scalars(
                select(LedgerEntry)
                .where(
                    LedgerEntry.database == definition.qualified,
                    LedgerEntry.planned_at >= since,
                    LedgerEntry.done_at.is_not(None),
                )
                .order_by(LedgerEntry.planned_at)
            )
        )
        session.expunge_all()
    result = ReplayResult(definition.qualified, entries=len(entries))
    groups: dict[tuple[str, str, str], list[tuple[str, list[str]]]] = {}
    for entry in entries:
        for tname, hashes in _tables_of(entry):
            groups.setdefault((entry.org_id, tname, entry.tenant_value), []).append(
                (entry.subject_ref, hashes)
            )
    pdb = product_db(definition, urls)
    order = {name: i for i, name in enumerate(reversed(definition.dependency_order()))}
    for (_org, tname, tenant_value), group in sorted(groups.items(), key=lambda g: order.get(g[0][1], 0)):
        if tname not in definition.tables:
            continue
        count = _replay_table(pdb, definition.tables[tname], tenant_value, group, secret)
        result.tables[tname] = result.tables.get(tname, 0) + count
        result.rows += count
        if on_table is not None:
            on_table(tname, count)
    with database.transaction(Scope.system("erasure ledger replay")) as session:
        for org_id in sorted({e.org_id for e in entries}):
            record(
                session,
                "rights.ledger.replay",
                org_id=org_id,
                actor_user_id=actor_user_id,
                resource=f"database:{definition.qualified}",
                details={"new": {"since": since.isoformat(), "rows": result.rows, "tables": result.tables}},
            )
    return result


def _tables_of(entry: LedgerEntry) -> list[tuple[str, list[str]]]:
    """(table, hashes) of an entry: one per erased person and database (table ``*``, hashes by
    table), or one per table as written by earlier versions."""
    hashes: Any = entry.match_hashes
    if entry.table_name == "*" and isinstance(hashes, dict):
        return [(t, list(h)) for t, h in hashes.get("tables", {}).items()]
    return [(entry.table_name, list(hashes))]


def _replay_table(  # noqa: PLR0912 - scan, match, decide, write
    pdb: ProductDB, mt: Any, tenant_value: str, group: list[tuple[str, list[str]]], secret: bytes
) -> int:
    owner: dict[str, str] = {}
    written: set[str] = set()
    for subject_ref, hashes in group:
        for h in hashes:
            if h.startswith("m:"):
                owner[h[2:]] = subject_ref
            elif h.startswith("w:"):
                written.add(h[2:])
    candidates = list(mt.identities.values()) + [r.field for r in mt.references if r.follow]
    table = pdb.table(mt.name)
    keys = pdb.key_columns(mt)
    cols = [table.c[n] for n in mt.fields if n in table.c]
    todo: list[tuple[str, dict[str, Any]]] = []
    with pdb.connect() as conn:
        stmt = select(*cols).where(pdb.tenant_of(table, mt) == coerce(pdb.tenant_of(table, mt), tenant_value))
        for row in conn.execute(stmt).mappings():
            pairs = [(c, row[c]) for c in candidates if row.get(c) is not None]
            hit = next((owner[h] for c, v in pairs if (h := match_hash(secret, c, v)) in owner), None)
            if hit is None:
                continue
            item: dict[str, Any] = (
                {"key": {k: row[k] for k in keys}}
                if keys
                else {"key": None, "match": [[c, v] for c, v in pairs]}
            )
            if mt.delete_row:
                todo.append(("delete", item))
                continue
            changes = {}
            for col, erase in mt.strategies().items():
                current = row.get(col)
                if current is not None and match_hash(secret, col, current) in written:
                    continue  # already erased
                value = new_value(secret, erase, current, hit)
                if value != current:
                    changes[col] = value
            if changes:
                item["set"] = changes
                if not keys:
                    item["old"] = {c: row.get(c) for c in changes}
                todo.append(("update", item))
    if not todo:
        return 0
    with pdb.connect() as conn, conn.begin():
        for op in ("delete", "update"):
            rows = [item for kind, item in todo if kind == op]
            if rows:
                pdb.apply(conn, mt, tenant_value, op, rows)
    return len(todo)
