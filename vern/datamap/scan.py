"""``vern datamap scan URL``: reflect a live database and write a draft data map.

Tables, columns, primary keys and foreign keys come from the database itself; each column's values
are sampled and run through the detectors to propose a data category, identity fields, the
tenancy of the database and an erase strategy the column can actually hold. The draft is a starting
point: a person reviews it before it is used.

* PostgreSQL partitions and tables inheriting from another are mapped once, as their parent (a
  statement on the parent reaches their rows).
* Lookup tables (few rows, referenced by other tables, no link to a person and nothing that
  identifies one) are not personal data, whatever their ``name`` column looks like.
* A table's own primary key, and a column linking to a person's row, is never proposed as the
  tenant column.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy import Engine, MetaData, String, Table, func, inspect, select, text
from sqlalchemy.types import (
    BINARY,
    VARBINARY,
    Boolean,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    Numeric,
    Text,
    TypeEngine,
)

from vern.datamap.detectors import CONTEXT_DETECTORS, DETECTORS, classify, column_is
from vern.datamap.model import DEFAULT_PSEUDONYM, HMAC_HEX_LENGTH
from vern.datamap.wordlists import BIRTH_COLUMNS

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
    "workspace_id",
    "client_id",
    "tenant",
)
PERSON_TABLES = (
    "users",
    "user",
    "people",
    "persons",
    "person",
    "members",
    "member",
    "accounts",
    "customers",
    "customer",
    "staff",
    "employees",
    "employee",
    "patients",
    "students",
    "contacts",
    "contact",
    "brukere",
    "personer",
)
# What a lookup table never holds: a table with any of these is about people, however small.
IDENTIFYING = frozenset(
    {"email", "phone", "national_id", "bank_account", "credential", "birth_date", "address"}
    | {"name", "username"}
)
LOOKUP_MAX_ROWS = 1000
# A shorter keyed hash is still useful to tell erased values apart; under this it is not offered.
MIN_HMAC = 8


@dataclass(frozen=True)
class ColumnGuess:
    category: str
    erase: Any = None
    identity: str | None = None
    detector: str | None = None


@dataclass
class _Scanned:
    name: str
    table: Table
    pk: list[str]
    fks: dict[str, tuple[str, str]]  # column -> (table, column)
    rows: int
    samples: dict[str, list[str]]
    detected: dict[str, str] = field(default_factory=dict)  # column -> detector name
    unique: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Survey:
    """What the scan learnt about the database as a whole, for drafting each table."""

    people: set[str]  # tables whose rows are people
    lookups: set[str]  # reference data
    tenant: str | None  # the column naming the customer, when the tables have one
    incoming: dict[str, list[tuple[str, str, str | None]]]  # table -> (referrer, column, ON DELETE)
    held: set[str]  # tables a person's row points at
    held_rows: dict[str, _Scanned]


def scan(
    engine: Engine, *, sample: int = 200, system: str = "product", url_env: str = "PRODUCT_DATABASE_URL"
) -> dict[str, Any]:
    """A draft map (as plain data) for every table of the database behind ``engine``."""
    insp = inspect(engine)
    meta = MetaData()
    children = inherited_tables(engine)
    scanned: dict[str, _Scanned] = {}
    for tname in sorted(insp.get_table_names()):
        if tname in children:
            continue
        found = _scan_table(engine, insp, Table(tname, meta, autoload_with=engine), sample)
        scanned[found.name] = found
    survey = _survey(scanned, incoming_links(insp, scanned))
    tables = {name: _table_draft(s, survey) for name, s in sorted(scanned.items())}
    database: dict[str, Any] = {"url_env": url_env}
    if survey.tenant is not None:
        database["tenancy"] = {"model": "column", "holds": "TODO: which key of the customer the column holds"}
    else:
        database["tenancy"] = {
            "model": "single",
            "customer": "TODO: the product key of the customer this database belongs to "
            "(or model: schema / database)",
        }
    database["tables"] = tables
    return _plain(
        {
            "version": 1,
            "systems": {system: {"title": system, "recipients": [], "databases": {"main": database}}},
        }
    )


def _scan_table(engine: Engine, insp: Any, table: Table, sample: int) -> _Scanned:
    """One reflected table: its keys, row count, sampled values and what the detectors saw."""
    tname = table.name
    fks = {
        fk["constrained_columns"][0]: (fk["referred_table"], fk["referred_columns"][0])
        for fk in insp.get_foreign_keys(tname)
        if len(fk["constrained_columns"]) == 1
    }
    unique = {
        u["column_names"][0] for u in insp.get_unique_constraints(tname) if len(u["column_names"]) == 1
    }
    unique |= {
        i["column_names"][0]
        for i in insp.get_indexes(tname)
        if i.get("unique") and len(i["column_names"]) == 1 and i["column_names"][0]
    }
    found = _Scanned(
        name=str(tname),
        table=table,
        pk=[c.name for c in table.primary_key.columns],
        fks={str(k): (str(v[0]), str(v[1])) for k, v in fks.items()},
        rows=_count(engine, table),
        samples=_samples(engine, table, sample),
        unique={str(u) for u in unique},
    )
    for col in table.columns:
        if col.name in found.pk or col.name in found.fks:
            continue
        detector = _detect(col.name, col.type, found.samples.get(col.name, []))
        if detector is not None:
            found.detected[col.name] = detector
    return found


def incoming_links(insp: Any, tables: Iterable[str]) -> dict[str, list[tuple[str, str, str | None]]]:
    """Who refers to whom, and with which ON DELETE: referred table -> (referring table, its
    column, the ON DELETE action in upper case or None), for the single-column foreign keys of
    ``tables``."""
    incoming: dict[str, list[tuple[str, str, str | None]]] = {}
    for tname in tables:
        for fk in insp.get_foreign_keys(tname):
            if len(fk["constrained_columns"]) == 1:
                ondelete = (fk.get("options") or {}).get("ondelete")
                incoming.setdefault(str(fk["referred_table"]), []).append(
                    (tname, str(fk["constrained_columns"][0]), str(ondelete).upper() if ondelete else None)
                )
    return incoming


def _survey(
    scanned: dict[str, _Scanned], incoming: dict[str, list[tuple[str, str, str | None]]]
) -> _Survey:
    people = _person_tables(scanned)
    held = {t for name in people for t, _ in scanned[name].fks.values() if t not in people}
    return _Survey(
        people=people,
        lookups=_lookup_tables(scanned, incoming, people),
        tenant=_tenant_column(scanned, people),
        incoming=incoming,
        held=held,
        held_rows={t: scanned[t] for t in held if t in scanned},
    )


def inherited_tables(engine: Engine) -> set[str]:
    """PostgreSQL tables that are a partition of another or inherit from one (mapped as the
    parent: a statement on the parent reaches their rows). Empty on other databases."""
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"
            )
        )
        return {str(r[0]) for r in rows}


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


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        inner = select(table).limit(LOOKUP_MAX_ROWS + 1).subquery()
        return int(conn.execute(select(func.count()).select_from(inner)).scalar_one())


def _samples(engine: Engine, table: Table, limit: int) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {c.name: [] for c in table.columns}
    with engine.connect() as conn:
        for row in conn.execute(select(table).limit(limit)).mappings():
            for name, raw in row.items():
                value = raw
                if isinstance(raw, bytes):
                    try:
                        value = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        continue
                if value is not None and isinstance(value, str | int) and not isinstance(value, bool):
                    found[name].append(str(value))
                elif value is not None and hasattr(value, "isoformat"):
                    found[name].append(value.isoformat())
    return found


def _is_text(type_: TypeEngine[Any]) -> bool:
    return isinstance(type_, String | LargeBinary | BINARY | VARBINARY)


def _detect(column: str, type_: TypeEngine[Any], values: list[str]) -> str | None:
    if isinstance(type_, Boolean):
        return None
    if isinstance(type_, Date | DateTime):
        return "birth_date" if _birth(column) else None
    found = classify(values, column)
    if found is None:
        if _is_text(type_) and isinstance(type_, Text) and column_is(column, ("password", "secret", "token")):
            return "credential"
        return None
    if not _is_text(type_) and found.name in ("credential", "text", "name", "city", "address", "email"):
        return None  # numbers are not names or secrets, whatever the column is called
    return found.name


def _birth(column: str) -> bool:

    return column_is(column, BIRTH_COLUMNS)


def _person_tables(scanned: dict[str, _Scanned]) -> set[str]:
    """Tables whose rows are people: named like it, or holding what identifies one without
    pointing at a person's row (an invoice with the payer's e-mail is the payer's, not a person)."""
    people = {name for name in scanned if name.lower() in PERSON_TABLES}
    for name, s in scanned.items():
        if name in people or any(t in people for t, _ in s.fks.values()):
            continue
        kinds = set(s.detected.values())
        if kinds & {"email", "national_id"} or (
            "name" in kinds and kinds & {"phone", "birth_date", "credential"}
        ):
            people.add(name)
    return people


def _linked(s: _Scanned, people: set[str], referenced_by_people: set[str] | None = None) -> bool:
    """A person's rows, rows pointing at one, or rows a person's row points at (their address)."""
    return (
        s.name in people
        or any(t in people for t, _ in s.fks.values())
        or s.name in (referenced_by_people or set())
    )


def _lookup_tables(
    scanned: dict[str, _Scanned], incoming: dict[str, list[tuple[str, str, str | None]]], people: set[str]
) -> set[str]:
    """Reference data: few rows, referenced by other tables, no link to a person and nothing that
    identifies one (category names, languages, countries, cities)."""
    found: set[str] = set()
    for name, s in scanned.items():
        if name in people or not incoming.get(name) or s.rows > LOOKUP_MAX_ROWS:
            continue
        if set(s.detected.values()) & IDENTIFYING:
            continue
        if any(t in people for t, _ in s.fks.values()):
            continue
        found.add(name)
    return found


def _tenant_column(scanned: dict[str, _Scanned], people: set[str]) -> str | None:
    """The column that says which customer a row belongs to: named like a tenant column, in most
    tables, never a table's own key, never a link to a person's row."""
    counts: dict[str, int] = {}
    for s in scanned.values():
        for col in s.table.columns:
            name = col.name
            if name.lower() not in TENANT_NAMES or name in s.pk:
                continue
            target = s.fks.get(name)
            if target is not None and (target[0] in people or target[0] == s.name):
                continue
            counts[name] = counts.get(name, 0) + 1
    # a column that is the primary key of any table here is that table's identity, not a tenant
    own_keys = {k for s in scanned.values() for k in s.pk}
    candidates = [(n, c) for n, c in counts.items() if n not in own_keys or _is_registry(n, scanned)]
    if not candidates:
        return None
    best, count = max(candidates, key=lambda item: item[1])
    return best if count * 2 >= len(scanned) else None


def _is_registry(column: str, scanned: dict[str, _Scanned]) -> bool:
    """``school_id`` is the key of ``schools``, a table of customers: still a tenant column."""
    return any(
        column in s.pk and s.name.lower() in ("tenants", "organisations", "organizations", "schools")
        for s in scanned.values()
    )


def _table_draft(s: _Scanned, survey: _Survey) -> dict[str, Any]:
    lookup = s.name in survey.lookups
    linked = _linked(s, survey.people, survey.held)
    if linked and not lookup and s.name not in survey.people and not survey.incoming.get(s.name):
        _mark_titles(s)
    fields, identities = _draft_fields(s, survey, lookup=lookup, linked=linked)
    draft: dict[str, Any] = {
        "purpose": "TODO: why this table is kept",
        "retention": "permanent-config" if lookup else "TODO: how long rows are kept",
    }
    if survey.tenant is not None:
        has_tenant = survey.tenant in s.table.c
        draft["tenant"] = survey.tenant if has_tenant else "TODO: the column naming the customer"
    if not s.pk:
        draft["primary_key"] = []
    if identities:
        draft["identities"] = identities
    outward = _outward_links(s, survey.people, survey.lookups, survey.held_rows)
    if outward:
        draft["refers_to"] = outward
    refs = _draft_references(s, survey, drawn={str(link["field"]) for link in outward})
    if refs:
        draft["references"] = refs
    if _erased_by_row(s, survey, fields, lookup=lookup):
        draft["erase"] = "delete_row"
        for f in fields.values():
            f.pop("erase", None)
    draft["fields"] = fields
    return draft


def _mark_titles(s: _Scanned) -> None:
    """A person's own leaf rows (a report, a review): their title is theirs too."""
    for col in s.table.columns:
        if col.name not in s.detected and _is_text(col.type) and column_is(col.name, ("title", "subject")):
            s.detected[col.name] = "text"


def _draft_fields(
    s: _Scanned, survey: _Survey, *, lookup: bool, linked: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each column's category and erase strategy, and the first column of each identity kind."""
    fields: dict[str, Any] = {}
    identities: dict[str, str] = {}
    for col in s.table.columns:
        guess = _guess(s, col, survey.people, lookup=lookup, linked=linked, tenant=survey.tenant)
        entry: dict[str, Any] = {"category": guess.category}
        if guess.erase is not None:
            entry["erase"] = guess.erase
        fields[col.name] = entry
        if guess.identity and guess.identity not in identities:
            identities[guess.identity] = col.name
    return fields, identities


def _draft_references(s: _Scanned, survey: _Survey, *, drawn: set[str]) -> list[dict[str, Any]]:
    """The table's foreign keys (but the tenant column and those drawn as ``refers_to``)."""
    refs: list[dict[str, Any]] = [
        {"field": col, "to": f"{t}.{c}"}
        for col, (t, c) in s.fks.items()
        if col != survey.tenant and col not in drawn
    ]
    for ref in refs:
        target = str(ref["to"]).split(".")[0]
        if target == s.name or target not in survey.people or s.name in survey.lookups:
            # Only rows pointing straight at a person's row are that person's; a link to shared
            # rows (a store, a course, a category) is recorded but not followed.
            ref["follow"] = False
    return refs


def _erased_by_row(s: _Scanned, survey: _Survey, fields: dict[str, Any], *, lookup: bool) -> bool:
    """Rows pointing at a person's row, with personal fields, that can be deleted outright."""
    personal = [f for f in fields.values() if str(f["category"]).startswith("user.")]
    return bool(
        any(t in survey.people for t, _ in s.fks.values())
        and not lookup
        and personal
        and delete_refused(s.name, survey.incoming) is None
        and s.name not in survey.people
    )


def _outward_links(
    s: _Scanned, people: set[str], lookups: set[str], held: dict[str, _Scanned]
) -> list[dict[str, Any]]:
    """``refers_to`` links drafted from a person's foreign keys to rows that hold personal data
    and are no person of their own (a customer's address): the person's package holds them, an
    erasure reaches them unless something else still points at them."""
    if s.name not in people:
        return []
    links: list[dict[str, Any]] = []
    for col, (target, column) in sorted(s.fks.items()):
        other = held.get(target)
        if other is None or target in people or target in lookups or target == s.name:
            continue
        if any(kind != "text" for kind in other.detected.values()):
            links.append({"field": col, "to": f"{target}.{column}"})
    return links


def delete_refused(table: str, incoming: dict[str, list[tuple[str, str, str | None]]]) -> str | None:
    """A foreign key that would refuse deleting a row of ``table`` (no ON DELETE CASCADE or SET
    NULL), as ``referrer.column``; None when a delete is not refused."""
    for referrer, column, ondelete in incoming.get(table, []):
        if referrer != table and ondelete not in ("CASCADE", "SET NULL", "SET DEFAULT"):
            return f"{referrer}.{column}"
    return None


def _guess(  # noqa: PLR0911 - one answer per kind of column
    s: _Scanned,
    col: Any,
    people: set[str],
    *,
    lookup: bool,
    linked: bool,
    tenant: str | None,
) -> ColumnGuess:
    name = col.name
    if name == tenant and name not in s.pk:
        return ColumnGuess("system.reference")
    if name in s.pk:
        if s.name in people and len(s.pk) == 1:
            return ColumnGuess("user.identifier", identity="user_id")
        return ColumnGuess("system.id")
    if name in s.fks:
        if s.fks[name][0] in people and not lookup:
            return ColumnGuess("user.identifier")  # a link to a person's row
        return ColumnGuess("system.reference")
    detector = s.detected.get(name)
    if lookup or detector is None or (detector in CONTEXT_DETECTORS and not linked):
        if isinstance(col.type, DateTime | Date):
            return ColumnGuess("system.timestamp")
        if isinstance(col.type, Integer | Numeric):
            return ColumnGuess("system.metric")
        return ColumnGuess("system.config")

    category = next(d.category for d in DETECTORS if d.name == detector)
    identity = {"email": "email", "phone": "phone", "national_id": "national_id"}.get(detector)
    if s.name not in people and detector == "phone":
        identity = None  # a store's or an address's phone is not how a person is found
    return ColumnGuess(
        category, erase=propose_erase(detector, col, name in s.unique), identity=identity, detector=detector
    )


def propose_erase(detector: str, col: Any, unique: bool = False) -> Any:  # noqa: PLR0911 - per case
    """An erase strategy the column can hold: its length, type, NOT NULL and uniqueness."""
    type_: TypeEngine[Any] = col.type
    nullable = bool(col.nullable)
    textual = _is_text(type_)
    length = getattr(type_, "length", None) if textual else None

    def fits(n: int) -> bool:
        return length is None or n <= length

    if detector == "credential":
        return "null" if nullable else ({"fixed": ""} if textual else None)
    if textual and detector == "email":
        if fits(HMAC_HEX_LENGTH):
            return "hmac"
        if length is not None and length >= MIN_HMAC:
            return {"hmac": length}  # a truncated keyed hash: still tells erased values apart
    if textual and detector == "name" and fits(len(DEFAULT_PSEUDONYM.replace("{id}", "x" * 12))):
        return "pseudonym"
    if nullable:
        return "null"
    if textual and not unique:
        return {"fixed": ""}
    if textual and length is not None and length >= MIN_HMAC:
        return {"hmac": min(length, HMAC_HEX_LENGTH)}  # unique and NOT NULL: a distinct value per person
    return {"keep": "TODO: NOT NULL and no text value fits; choose delete_row for the table or a reason"}
