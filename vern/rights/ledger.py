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
from vern.core.db import Database, Scope
from vern.datamap.model import DatabaseDef, DataMap
from vern.datamap.model import Table as MapTable
from vern.rights.connectors import ProductDB, coerce, product_db
from vern.rights.erase_values import ledger_hash, match_hash, new_value
from vern.rights.models import LedgerEntry


@dataclass
class ReplayResult:
    database: str
    entries: int = 0
    rows: int = 0
    tables: dict[str, int] = field(default_factory=dict)


class ReplayError(RuntimeError):
    """A row the ledger recorded as erased cannot be found again: the restore, the map or the
    ledger disagree, and a silent partial replay would leave the person's data in place."""


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
    """Erase again, with the map's current strategies, every row the ledger recorded since
    ``since``. Rows are recognised with the same comparison the erasure matched them with (the
    normalised value under the column's ``match``, whatever the collation); a table whose rows
    are changed rather than deleted must show every recorded row again - still to erase or already
    erased - or ``ReplayError`` names it (nothing is written then)."""
    definition = data_map.database(database_name)
    entries = _entries_since(database, definition, since)
    result = ReplayResult(definition.qualified, entries=len(entries))
    for pdb, tname, tenant_value, todo in _scan(definition, entries, secret=secret, urls=urls):
        count = _write(pdb, definition.tables[tname], tenant_value, todo)
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


def _entries_since(database: Database, definition: DatabaseDef, since: datetime) -> list[LedgerEntry]:
    """The finished ledger entries of a database planned since ``since``, oldest first."""
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
    return entries


def _scan(
    definition: DatabaseDef, entries: list[LedgerEntry], *, secret: bytes, urls: dict[str, str] | None
) -> list[tuple[ProductDB, str, str, list[tuple[str, dict[str, Any]]]]]:
    """The writes of a replay, per table and customer in erasure order: every table scanned before
    anything is written, and ``ReplayError`` if a recorded row is not found again."""
    groups: dict[tuple[str, str, str], list[Recorded]] = {}
    for entry in entries:
        for recorded in _tables_of(entry):
            groups.setdefault((entry.org_id, recorded.table, entry.tenant_value), []).append(recorded)
    order = {name: i for i, name in enumerate(definition.erasure_order())}
    plans: list[tuple[ProductDB, str, str, list[tuple[str, dict[str, Any]]]]] = []
    missing: list[str] = []
    for (_org, tname, tenant_value), group in sorted(groups.items(), key=lambda g: order.get(g[0][1], 0)):
        if tname not in definition.tables:
            continue
        mt = definition.tables[tname]
        # the customer's schema or database with those tenancy models, as the erasure wrote it
        pdb = product_db(definition, urls, tenant_value)
        todo, seen = _scan_table(pdb, mt, tenant_value, group, secret)
        expected = sum(r.rows for r in group if _recognisable(pdb, mt, r))
        if seen < expected:
            missing.append(f"{tname}: {expected - seen} of {expected} recorded row(s) not found")
        plans.append((pdb, tname, tenant_value, todo))
    if missing:
        raise ReplayError(
            f"replay of {definition.qualified} stopped, nothing written: " + "; ".join(missing)
        )
    return plans


@dataclass
class Recorded:
    """One erased person's hashes in one table, as the ledger holds them."""

    subject_ref: str
    table: str
    hashes: list[str]
    rows: int = 0  # rows the erasure wrote (0 when not recorded, by earlier versions)
    cut: list[str] = field(default_factory=list)  # outward link columns the erasure cleared


def _tables_of(entry: LedgerEntry) -> list[Recorded]:
    """The tables of an entry: one per erased person and database (table ``*``, hashes by table),
    or one per table as written by earlier versions."""
    hashes: Any = entry.match_hashes
    if entry.table_name == "*" and isinstance(hashes, dict):
        rows = hashes.get("rows", {})
        cut = hashes.get("cut", {})
        return [
            Recorded(entry.subject_ref, t, list(h), int(rows.get(t, 0)), list(cut.get(t, [])))
            for t, h in hashes.get("tables", {}).items()
        ]
    return [Recorded(entry.subject_ref, entry.table_name, list(hashes))]


@dataclass
class _Known:
    """The recorded people of a table, by their hashes: who a matched value belonged to (``m:``),
    who a written value was written for (``w:``), and the links each erasure cleared."""

    owner: dict[str, str] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)
    cut: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, group: list[Recorded]) -> _Known:
        known = cls()
        for recorded in group:
            known.cut[recorded.subject_ref] = recorded.cut
            for h in recorded.hashes:
                if h.startswith("m:"):
                    known.owner[h[2:]] = recorded.subject_ref
                elif h.startswith("w:"):
                    known.written[h[2:]] = recorded.subject_ref
        return known


def _scan_table(
    pdb: ProductDB, mt: MapTable, tenant_value: str, group: list[Recorded], secret: bytes
) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """(writes to make, rows of the recorded people seen - still to erase or already erased)."""
    known = _Known.of(group)
    candidates = list(mt.identities.values()) + [r.field for r in mt.references if r.follow]
    candidates += [link.column for link in _outward_into(pdb, mt)]
    candidates = list(dict.fromkeys(candidates))
    table = pdb.table(mt.name)
    keys = pdb.key_columns(mt)
    cols = [table.c[n] for n in mt.fields if n in table.c]
    todo: list[tuple[str, dict[str, Any]]] = []
    seen = 0
    with pdb.connect() as conn:
        stmt = select(*cols).where(pdb.tenant_of(table, mt) == coerce(pdb.tenant_of(table, mt), tenant_value))
        for row in conn.execute(stmt).mappings():
            pairs = [(c, row[c]) for c in candidates if row.get(c) is not None]
            hit = _owner_of(pairs, mt, known, secret)
            if hit is None:
                if _erased_before(row, mt, known, secret):
                    seen += 1  # erased before, and still erased
                continue
            seen += 1
            write = _rewrite(row, mt, hit, known, secret, keys=keys, pairs=pairs)
            if write is not None:
                todo.append(write)
    return todo, seen


def _owner_of(pairs: list[tuple[str, Any]], mt: MapTable, known: _Known, secret: bytes) -> str | None:
    """The recorded person a row's lookup values belonged to, if any."""
    return next(
        (
            known.owner[h]
            for c, v in pairs
            for h in (ledger_hash(secret, mt, c, v), match_hash(secret, c, v))  # old entries: raw
            if h in known.owner
        ),
        None,
    )


def _erased_before(row: Any, mt: MapTable, known: _Known, secret: bytes) -> bool:
    """Whether a row holds a value written in place of a recorded person's (still erased)."""
    return any(
        row.get(col) is not None and match_hash(secret, col, row[col]) in known.written
        for col in mt.strategies()
    )


def _rewrite(
    row: Any,
    mt: MapTable,
    hit: str,
    known: _Known,
    secret: bytes,
    *,
    keys: list[str],
    pairs: list[tuple[str, Any]],
) -> tuple[str, dict[str, Any]] | None:
    """The write that erases a recognised row again: delete it, or set what is not erased yet
    (and clear the person's own links as the erasure did); None when nothing is left to change."""
    item: dict[str, Any] = (
        {"key": {k: row[k] for k in keys}}
        if keys
        else {"key": None, "match": [[c, v] for c, v in pairs]}
    )
    if mt.delete_row:
        return "delete", item
    changes = {}
    for col, erase in mt.strategies().items():
        current = row.get(col)
        if current is not None and match_hash(secret, col, current) in known.written:
            continue  # already erased
        value = new_value(secret, erase, current, hit)
        if value != current:
            changes[col] = value
    for col in known.cut.get(hit, []):
        if row.get(col) is not None:
            changes[col] = None  # the person's own link, cleared as the erasure did
    if not changes:
        return None
    item["set"] = changes
    if not keys:
        item["old"] = {c: row.get(c) for c in changes}
    return "update", item


def _recognisable(pdb: ProductDB, mt: MapTable, recorded: Recorded) -> bool:
    """Whether the recorded rows can be told apart after their erasure too - by a value written in
    their place, or by a lookup column the erasure leaves as it is - so that each must be seen
    again. Deleted rows, and rows whose every trace was emptied, cannot be."""
    if mt.delete_row:
        return False
    if any(h.startswith("w:") for h in recorded.hashes):
        return True
    lookups = set(mt.identities.values()) | {r.field for r in mt.references if r.follow}
    lookups |= {link.column for link in _outward_into(pdb, mt)}
    return bool(lookups - set(mt.strategies()) - set(recorded.cut))


def _outward_into(pdb: ProductDB, mt: MapTable) -> list[Any]:
    """The outward links that point into ``mt`` (its rows reached from a person's rows)."""
    tables = pdb.definition.tables.values()
    return [link for other in tables for link in other.refers_to if link.table == mt.name]


def _write(pdb: ProductDB, mt: MapTable, tenant_value: str, todo: list[tuple[str, dict[str, Any]]]) -> int:
    if not todo:
        return 0
    with pdb.connect() as conn, conn.begin():
        for op in ("delete", "update"):
            rows = [item for kind, item in todo if kind == op]
            if rows:
                pdb.apply(conn, mt, tenant_value, op, rows)
    return len(todo)
