"""``vern datamap scan URL``: reflect a live database and write a draft data map.

Tables, columns, primary keys and foreign keys come from the database itself; each column's values
are sampled and run through the Norwegian detectors to propose a data category, identity fields and
an erasure strategy. The draft is a starting point: a person reviews it before it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy import Engine, MetaData, String, Table, inspect, select
from sqlalchemy.types import Date, DateTime, Integer, Numeric, TypeEngine

from vern.datamap.detectors import classify

TENANT_NAMES = (
    "org_id",
    "tenant_id",
    "organisation_id",
    "organization_id",
    "customer_id",
    "school_id",
    "kindergarten_id",
    "company_id",
    "account_id",
    "tenant",
)
PERSON_TABLES = ("users", "user", "people", "persons", "person", "members", "accounts", "customers")


@dataclass(frozen=True)
class ColumnGuess:
    category: str
    erase: Any = None
    identity: str | None = None


def scan(
    engine: Engine, *, sample: int = 200, system: str = "product", url_env: str = "PRODUCT_DATABASE_URL"
) -> dict[str, Any]:
    """A draft map (as plain data) for every table of the database behind ``engine``."""
    insp = inspect(engine)
    meta = MetaData()
    tables: dict[str, Any] = {}
    for tname in sorted(insp.get_table_names()):
        table = Table(tname, meta, autoload_with=engine)
        tables[tname] = _table_draft(engine, table, insp, sample)
    return _plain(
        {
            "version": 1,
            "systems": {
                system: {
                    "title": system,
                    "recipients": [],
                    "databases": {"main": {"url_env": url_env, "tables": tables}},
                }
            },
        }
    )


def _plain(value: Any) -> Any:
    """Reflected names are ``str`` subclasses; YAML wants plain strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def draft_yaml(draft: dict[str, Any], source: str) -> str:
    header = (
        f"# Draft data map from a scan of {source}.\n"
        "# Review every category, identity and erase strategy before use; check with\n"
        "# `vern datamap check FILE` (it fails on unmapped columns and unwritable strategies).\n"
    )
    return header + yaml.safe_dump(draft, sort_keys=False, allow_unicode=True, width=100)


def _table_draft(engine: Engine, table: Table, insp: Any, sample: int) -> dict[str, Any]:
    fks = {
        fk["constrained_columns"][0]: f"{fk['referred_table']}.{fk['referred_columns'][0]}"
        for fk in insp.get_foreign_keys(table.name)
        if len(fk["constrained_columns"]) == 1
    }
    pk = [c.name for c in table.primary_key.columns]
    samples = _samples(engine, table, sample)
    fields: dict[str, Any] = {}
    identities: dict[str, str] = {}
    tenant = next((c.name for c in table.columns if c.name.lower() in TENANT_NAMES), None)
    for col in table.columns:
        guess = _guess(
            table.name,
            col.name,
            col.type,
            samples.get(col.name, []),
            col.name in pk,
            col.name in fks or col.name == tenant,
            bool(col.nullable),
        )
        entry: dict[str, Any] = {"category": guess.category}
        if guess.erase is not None:
            entry["erase"] = guess.erase
        fields[col.name] = entry
        if guess.identity and guess.identity not in identities:
            identities[guess.identity] = col.name
    draft: dict[str, Any] = {
        "purpose": "TODO: why this table is kept",
        "retention": "TODO: how long rows are kept",
        "tenant": tenant or "TODO: the column naming the customer",
    }
    if not pk:
        draft["primary_key"] = []
    if identities:
        draft["identities"] = identities
    refs = [{"field": col, "to": to} for col, to in fks.items() if col != tenant]
    if refs:
        draft["references"] = refs
    draft["fields"] = fields
    return draft


def _samples(engine: Engine, table: Table, limit: int) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {c.name: [] for c in table.columns}
    with engine.connect() as conn:
        for row in conn.execute(select(table).limit(limit)).mappings():
            for name, value in row.items():
                if value is not None and isinstance(value, str | int) and not isinstance(value, bool):
                    found[name].append(str(value))
    return found


def _guess(  # noqa: PLR0911, PLR0917 - one answer per kind of column
    table: str,
    column: str,
    type_: TypeEngine[Any],
    values: list[str],
    is_pk: bool,
    is_link: bool,
    nullable: bool,
) -> ColumnGuess:
    if is_pk:
        if table.lower() in PERSON_TABLES:
            return ColumnGuess("user.identifier", identity="user_id")
        return ColumnGuess("system.id")
    if is_link:
        return ColumnGuess("system.reference")
    if isinstance(type_, DateTime | Date):
        return ColumnGuess("system.timestamp")
    detector = classify(values, column) if isinstance(type_, String) or values else None
    if detector is None:
        if isinstance(type_, Integer | Numeric):
            return ColumnGuess("system.metric")
        return ColumnGuess("system.config")
    identity = {
        "email": "email",
        "phone": "phone",
        "national_id": "national_id",
    }.get(detector.name)
    erase: Any
    if detector.name == "email":
        erase = "hmac"
    elif detector.name == "name":
        erase = "pseudonym"
    else:
        erase = "null" if nullable else {"fixed": ""}
    return ColumnGuess(detector.category, erase=erase, identity=identity)
