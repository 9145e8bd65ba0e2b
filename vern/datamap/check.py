"""``vern datamap check``: does the map still describe the live databases, and can every erase
strategy actually be written? Fails (for CI) on an unmapped column, a missing table or column, and
a strategy the column cannot hold (too long, NULL into NOT NULL, text into a number)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import Boolean, Date, DateTime, Float, Integer, Numeric, String, TypeEngine

from vern.datamap.connect import NoConnection, engine_for, resolve_url
from vern.datamap.model import DatabaseDef, DataMap, Erase, Strategy, Table


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
            engine = engine_for(resolve_url(db, urls))
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
    from vern.rights.http_connector import ConnectorError, connector_settings

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
    insp = inspect(engine)
    live = set(insp.get_table_names())
    found: list[Finding] = []

    def add(place: str, message: str) -> None:
        found.append(Finding(db.qualified, place, message))

    for tname, table in sorted(db.tables.items()):
        if tname not in live:
            add(f"tables.{tname}", "in the map but not in the database")
            continue
        columns = {c["name"]: c for c in insp.get_columns(tname)}
        for cname in sorted(set(columns) - set(table.fields)):
            add(f"tables.{tname}.{cname}", "column not in the map (unmapped)")
        for cname in sorted(set(table.fields) - set(columns)):
            add(f"tables.{tname}.fields.{cname}", "in the map but not in the database")
        for fname, erase in table.strategies().items():
            col = columns.get(fname)
            if col is not None:
                for problem in strategy_problems(erase, col):
                    add(f"tables.{tname}.fields.{fname}.erase", problem)
        found.extend(Finding(db.qualified, f"tables.{tname}", p) for p in _addressing(table, insp, columns))
    for tname in sorted(live - set(db.tables)):
        add(f"tables.{tname}", "table not in the map (unmapped)")
    return found


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
