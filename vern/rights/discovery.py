"""Finding a person's rows in a product database: from the rows their identities match, through
the map's references both ways, always inside the customer's tenant column. Rows reached from
theirs that others still use (a shared address) are kept apart; tables an erasure can write in
one statement are not read at all (``set_based_tables``).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from vern.datamap.model import DatabaseDef, Strategy
from vern.datamap.model import Table as MapTable
from vern.rights.connectors import ProductDB
from vern.rights.matching import lookup_values, normalise

Conditions = list[tuple[str, list[Any]]]  # (column, values): a row matches if any column holds one


@dataclass(frozen=True)
class Subject:
    org_id: str
    tenant_value: str
    identities: dict[str, str]
    subject_ref: str
    corrections: dict[str, str] = field(default_factory=dict)



@dataclass
class Found:
    row: dict[str, Any]
    pairs: list[tuple[str, Any]]


@dataclass
class Shared:
    """A row reached from the person's rows that something outside them still refers to: kept."""

    row: dict[str, Any]
    users: list[tuple[str, int]]  # (table, rows) referring to it outside the person's rows

    @property
    def reason(self) -> str:
        return "also used by " + ", ".join(f"{n} other row(s) of {t}" for t, n in self.users)


def _wanted(mt: MapTable, conditions: list[tuple[str, list[Any]]]) -> list[tuple[str, set[str | None]]]:
    return [(col, {normalise(mt.match_of(col), v) for v in vals}) for col, vals in conditions]


def discover(
    pdb: ProductDB,
    subject: Subject,
    *,
    set_based: frozenset[str] = frozenset(),
    conn: Connection | None = None,
    shared: dict[str, list[Shared]] | None = None,
) -> tuple[dict[str, list[Found]], dict[str, Conditions]]:
    """The person's rows in every mapped table, following references from identity matches:
    (rows found by table, conditions by table). Tables in ``set_based`` are not read: their
    conditions (the person's identities, the keys of the rows found that they point at) are
    returned instead, for an erasure written as one statement.

    Identities are compared as each lookup column declares (``vern.rights.matching``). Rows reached
    through an outward ``refers_to`` link (a customer's address) that anything outside the
    person's rows still refers to are not the person's alone: they go to ``shared`` instead of the
    result, and nothing is discovered through them."""
    definition = pdb.definition
    found: dict[str, list[Found]] = {}
    where: dict[str, Conditions] = {}
    with nullcontext(conn) if conn is not None else pdb.connect() as db:
        search = _Discovery(pdb, db, subject.tenant_value, found, shared)
        for tname in definition.dependency_order():
            mt = definition.tables[tname]
            conditions = _identity_conditions(mt, subject) + _reference_conditions(mt, tname, found)
            outward = _outward_conditions(definition, tname, found, conditions)
            found[tname] = []
            if not conditions:
                continue
            if tname in set_based:
                where[tname] = conditions
                continue
            found[tname] = search.own_rows(tname, mt, conditions, outward)
    return found, where


def _identity_conditions(mt: MapTable, subject: Subject) -> Conditions:
    """The person's identities in the table's lookup columns, as each column compares them."""
    conditions: Conditions = []
    for kind, column in mt.identities.items():
        if kind in subject.identities:
            lookup = lookup_values(mt.match_of(column), subject.identities[kind])
            if lookup:
                conditions.append((column, lookup))
    return conditions


def _reference_conditions(mt: MapTable, tname: str, found: dict[str, list[Found]]) -> Conditions:
    """The keys of the person's rows found so far that the table's followed references hold."""
    conditions: Conditions = []
    for ref in mt.references:
        if not ref.follow or ref.table == tname:
            continue
        values = {f.row.get(ref.column) for f in found.get(ref.table, [])}
        values.discard(None)
        if values:
            conditions.append((ref.field, sorted(values, key=str)))
    return conditions


def _outward_conditions(
    definition: DatabaseDef, tname: str, found: dict[str, list[Found]], conditions: Conditions
) -> set[str]:
    """Adds to ``conditions`` the rows of ``tname`` the person's rows point at through outward
    ``refers_to`` links (an address); returns the columns so matched."""
    outward: set[str] = set()
    for other in definition.tables.values():
        for link in other.refers_to:
            if link.table != tname or other.name == tname:
                continue
            pointed = {f.row.get(link.field) for f in found.get(other.name, [])}
            pointed.discard(None)
            if pointed:
                conditions.append((link.column, sorted(pointed, key=str)))
                outward.add(link.column)
    return outward


@dataclass
class _Discovery:
    """One discovery's product connection, the customer, the rows found so far, and where the
    shared rows go."""

    pdb: ProductDB
    conn: Connection
    tenant_value: str
    found: dict[str, list[Found]]
    shared: dict[str, list[Shared]] | None

    def own_rows(self, tname: str, mt: MapTable, conditions: Conditions, outward: set[str]) -> list[Found]:
        """The table's rows that match, with the values they matched by; a row matched only
        through outward links that others still use goes to ``shared`` instead."""
        rows = self.pdb.find(self.conn, mt, self.tenant_value, conditions)
        sets = _wanted(mt, conditions)
        own: list[Found] = []
        for row in rows:
            f = Found(
                row, [(c, row[c]) for c, vals in sets if normalise(mt.match_of(c), row.get(c)) in vals]
            )
            if outward and all(c in outward for c, _v in f.pairs):
                users = _users_outside(
                    self.pdb, self.conn, self.pdb.definition, tname=tname, row=row, found=self.found,
                    tenant_value=self.tenant_value,
                )
                if users:
                    if self.shared is not None:
                        self.shared.setdefault(tname, []).append(Shared(row, users))
                    continue
            own.append(f)
        return own


def _users_outside(
    pdb: ProductDB,
    conn: Connection,
    definition: DatabaseDef,
    *,
    tname: str,
    row: dict[str, Any],
    found: dict[str, list[Found]],
    tenant_value: str,
) -> list[tuple[str, int]]:
    """Which mapped tables still refer to ``row`` outside the person's own rows, and how often:
    other people's rows through the same outward link, and records that point at it without being
    followed (a store's address, an invoice's)."""
    users: list[tuple[str, int]] = []
    for other in definition.tables.values():
        links = [r for r in other.refers_to if r.table == tname]
        links += [r for r in other.references if r.table == tname and not r.follow]
        for link in links:
            value = row.get(link.column)
            if value is None:
                continue
            own = [f.row for f in found.get(other.name, [])]
            n = pdb.count_others(conn, other, tenant_value, column_name=link.field, value=value, own=own)
            if n:
                users.append((other.name, n))
    return users


# Strategies whose new value does not depend on the old one: a table erased only with these can be
# written as one UPDATE over the person's rows instead of row by row.
_CONSTANT = (Strategy.NULL, Strategy.FIXED, Strategy.PSEUDONYM)


def set_based_tables(definition: DatabaseDef) -> frozenset[str]:
    """Tables an erasure can write without reading them first: nothing is discovered through
    them (no followed reference points at them), and their rows are deleted or get values that
    do not depend on the old ones. Their conditions are the person's identities and the keys of
    rows already found, always inside the tenant column."""
    pointed_at = {
        ref.table
        for mt in definition.tables.values()
        for ref in mt.references
        if ref.follow and ref.table != mt.name
    }
    for mt in definition.tables.values():  # outward links: both ends are read, for shared rows
        if mt.refers_to:
            pointed_at.add(mt.name)
            pointed_at.update(r.table for r in mt.refers_to)
    return frozenset(
        name
        for name, mt in definition.tables.items()
        if name not in pointed_at
        and (
            mt.delete_row
            or (mt.strategies() and all(e.strategy in _CONSTANT for e in mt.strategies().values()))
        )
    )


_set_based_cache: dict[int, tuple[DatabaseDef, frozenset[str]]] = {}


def set_based_once(definition: DatabaseDef) -> frozenset[str]:
    """``set_based_tables`` once per loaded map."""
    got = _set_based_cache.get(id(definition))
    if got is None or got[0] is not definition:
        got = (definition, set_based_tables(definition))
        _set_based_cache[id(definition)] = got
    return got[1]
