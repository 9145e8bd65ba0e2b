"""``vern datamap check``: does the map still describe the live databases, and can every erase
strategy actually be written? Fails (for CI) on an unmapped column, a missing table or column, and
a strategy the column cannot hold (too long, NULL into NOT NULL, text into a number)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import Boolean, Date, DateTime, Float, Integer, Numeric, String, TypeEngine

from vern.datamap.connect import ConnectorError, NoConnection, connector_settings, engine_for, resolve_url
from vern.datamap.model import DatabaseDef, DataMap, Erase, Strategy, Table, TenancyModel
from vern.datamap.scan import delete_refused, incoming_links, inherited_tables


@dataclass(frozen=True)
class Finding:
    database: str
    place: str
    message: str

    def __str__(self) -> str:
        return f"{self.database}: {self.place}: {self.message}"


def check_map(data_map: DataMap, urls: dict[str, str] | None = None) -> list[Finding]:
    findings: list[Finding] = []
    for db in data_map.databases():
        try:
            url = resolve_url(db, urls)
            if "{key}" in url:  # a database per customer: never connect to a name with {key} in it
                findings.append(Finding(db.qualified, "connection", (
                    "the URL is the template of the customers' databases; check one customer's "
                    f"database with --url {db.name}=<its URL>"
                )))
                continue
            engine = engine_for(url)
            findings.extend(check_database(db, engine))
        except NoConnection as exc:
            findings.append(Finding(db.qualified, "connection", str(exc)))
        except SQLAlchemyError as exc:
            findings.append(
                Finding(
                    db.qualified,
                    "connection",
                    f"unreachable ({type(getattr(exc, 'orig', None) or exc).__name__})",
                )
            )
    findings.extend(check_connectors(data_map))
    return findings


def check_connectors(data_map: DataMap) -> list[Finding]:
    """An HTTP connector's URL and secret can be read (nothing is sent)."""
    findings: list[Finding] = []
    for system in data_map.systems.values():
        if system.http is None:
            continue
        try:
            connector_settings(system.http)
        except ConnectorError as exc:
            findings.append(Finding(f"{system.name} (http)", "connection", str(exc)))
    return findings


def check_database(db: DatabaseDef, engine: Engine) -> list[Finding]:
    """What no longer matches: tables and columns neither mapped nor declared out of scope, mapped
    ones that are gone, strategies the columns cannot hold. A complete map gives no finding."""
    insp = inspect(engine)
    # Partitions and inheriting tables are reached through their parent (PostgreSQL): they need
    # no entry of their own, but a map written when they had one still matches them.
    everything = set(insp.get_table_names())
    live = everything - inherited_tables(engine)
    found: list[Finding] = []

    def add(place: str, message: str) -> None:
        found.append(Finding(db.qualified, place, message))

    incoming = incoming_links(insp, sorted(live))
    for tname in sorted(set(db.out_of_scope) & live):
        if tname in db.tables:
            add(f"out_of_scope.{tname}", "is also mapped under tables")
    for tname, table in sorted(db.tables.items()):
        if tname not in everything:
            add(f"tables.{tname}", "in the map but not in the database")
            continue
        for place, message in _table_findings(db, tname, table, insp, incoming):
            add(place, message)
    for tname in sorted(live - set(db.tables) - set(db.out_of_scope)):
        add(
            f"tables.{tname}",
            "table not in the map (unmapped; map it or declare it out_of_scope with a reason)",
        )
    return found


def _table_findings(
    db: DatabaseDef,
    tname: str,
    table: Table,
    insp: Any,
    incoming: dict[str, list[tuple[str, str, str | None]]],
) -> Iterator[tuple[str, str]]:
    """(place, message) for each way a mapped table that is in the database no longer matches."""
    columns = {c["name"]: c for c in insp.get_columns(tname)}
    yield from _column_findings(db, tname, table, columns)
    if table.delete_row:
        refused = _delete_refused(db, tname, incoming)
        if refused is not None:
            yield (
                f"tables.{tname}.erase",
                f"delete_row would be refused: {refused} refers to it without ON DELETE CASCADE "
                "and its rows are not deleted first",
            )
    if db.tenancy.model is TenancyModel.COLUMN and table.tenant:
        pk = insp.get_pk_constraint(tname).get("constrained_columns") or []
        if list(pk) == [table.tenant]:
            yield f"tables.{tname}.tenant", "is the table's own primary key, not the customer's key"
    for problem in _addressing(table, insp, columns):
        yield f"tables.{tname}", problem


def _column_findings(
    db: DatabaseDef, tname: str, table: Table, columns: dict[str, Any]
) -> Iterator[tuple[str, str]]:
    """Columns not in the map, mapped fields not in the database, strategies a column cannot hold."""
    for cname in sorted(set(columns) - set(table.fields)):
        if not db.is_out_of_scope(tname, cname):
            yield f"tables.{tname}.{cname}", "column not in the map (unmapped)"
    for cname in sorted(set(table.fields) - set(columns)):
        yield f"tables.{tname}.fields.{cname}", "in the map but not in the database"
    for fname, erase in table.strategies().items():
        col = columns.get(fname)
        if col is not None:
            for problem in strategy_problems(erase, col):
                yield f"tables.{tname}.fields.{fname}.erase", problem


def _delete_refused(
    db: DatabaseDef, tname: str, incoming: dict[str, list[tuple[str, str, str | None]]]
) -> str | None:
    """A foreign key that refuses deleting ``tname``'s rows: its table is not erased with
    delete_row through a followed reference to ``tname`` (which deletes the referring rows first)."""
    for referrer, column, ondelete in incoming.get(tname, []):
        if referrer == tname or ondelete in ("CASCADE", "SET NULL", "SET DEFAULT"):
            continue
        mapped = db.tables.get(referrer)
        followed = (
            mapped is not None
            and mapped.delete_row
            and any(r.field == column and r.table == tname and r.follow for r in mapped.references)
        )
        if not followed and delete_refused(tname, {tname: [(referrer, column, ondelete)]}):
            return f"{referrer}.{column}"
    return None


def strategy_problems(erase: Erase, column: Any) -> list[str]:
    """Why ``erase`` cannot be written into ``column`` (empty when it can) - Fides #2547."""
    type_: TypeEngine[Any] = column["type"]
    nullable = bool(column.get("nullable", True))
    problems: list[str] = []
    if erase.strategy is Strategy.NULL and not nullable:
        problems.append("null cannot be written: the column is NOT NULL")
    written = erase.written_length()
    if written is None:
        return problems
    if _is_number(type_) or isinstance(type_, Date | DateTime | Boolean):
        if erase.strategy is Strategy.FIXED and _fits_number(erase.value or "", type_):
            return problems
        problems.append(f"{erase.strategy.value} writes text but the column is {type_.__class__.__name__}")
        return problems
    length = getattr(type_, "length", None)
    if isinstance(type_, String) and length is not None and written > length:
        problems.append(f"{erase.strategy.value} writes {written} characters but the column holds {length}")
    return problems


def _is_number(type_: TypeEngine[Any]) -> bool:
    return isinstance(type_, Integer | Numeric | Float)


def _fits_number(value: str, type_: TypeEngine[Any]) -> bool:
    try:
        int(value) if isinstance(type_, Integer) else float(value)
    except ValueError:
        return False
    return True


def _addressing(table: Table, insp: Any, columns: dict[str, Any]) -> list[str]:
    """Rows must be addressable: a primary key, a unique key, or the person's match columns."""
    if table.primary_key:
        return []
    pk = insp.get_pk_constraint(table.name).get("constrained_columns") or []
    if pk:
        return []
    uniques = [u["column_names"] for u in insp.get_unique_constraints(table.name)]
    if uniques:
        return []
    if table.identities or table.references:
        return []  # addressed by the columns that matched the person (Fides #1199)
    return ["no primary key, unique key, identity or reference: rows cannot be addressed"]
