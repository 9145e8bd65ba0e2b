"""One product database, reached through SQLAlchemy Core (SQLite, PostgreSQL, MariaDB/MySQL).

Finds a person's rows (always inside the customer's tenant column), and writes erasures and
corrections by primary key - or, where a table has none, by the columns that matched the person
(Fides #1199). Values are converted to each column's type, so a tenant key or user id given as text
still compares with an integer column.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchTableError,
    OperationalError,
    SQLAlchemyError,
)

from vern.core.db import execute_fast
from vern.datamap.connect import NoConnection, engine_for, resolve_url
from vern.datamap.model import DatabaseDef, TenancyModel
from vern.datamap.model import Table as MapTable
from vern.rights.in_lists import bind_in as _bind_in
from vern.rights.in_lists import in_clause as _in
from vern.rights.in_lists import width_for as _width
from vern.rights.matching import column_expression
from vern.rights.typed_values import coerce, dumps, loads, plain

__all__ = [
    "IN_CHUNK",
    "PER_CUSTOMER",
    "REFUSED",
    "ProductDB",
    "Unreachable",
    "coerce",
    "customer_schema",
    "customer_url",
    "describe_failure",
    "dumps",
    "loads",
    "plain",
    "product_db",
]

IN_CHUNK = 500


class Unreachable(RuntimeError):
    """The database cannot be reached or used right now; the part fails alone and can be retried."""


REFUSED = "refused: "


def describe_failure(exc: BaseException) -> str:
    """What went wrong with a database, in one line. A database that was reached but refused a
    statement (a foreign key, a constraint, a permission) says so with its message, starting
    ``refused: ``; anything else means it could not be reached or used."""
    if isinstance(exc, NoConnection | Unreachable):
        return str(exc)
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
        text = f"{type(exc.orig).__name__}: {first[:200]}"
        if not isinstance(exc, OperationalError | InterfaceError) or _refusal(exc):
            return REFUSED + text
        return text
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _refusal(exc: DBAPIError) -> bool:
    """MariaDB reports some refusals (a foreign key, a lock wait) as operational errors: its
    error numbers say which."""
    code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    return isinstance(code, int) and code in (1205, 1213, 1216, 1217, 1451, 1452, 1142, 1143)


_products: dict[tuple[int, str, str | None], ProductDB] = {}


# A product key put into a schema or database name: identifier characters only, so a key can
# never reach another schema, database, host or file (no dots, slashes, quotes or hyphens).
_KEY = re.compile(r"[A-Za-z0-9_]{1,63}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
PER_CUSTOMER = (TenancyModel.SCHEMA, TenancyModel.DATABASE)


def _checked_key(definition: DatabaseDef, key: str | None) -> str:
    if key is None or not _KEY.fullmatch(key):
        raise Unreachable(
            f"{definition.qualified}: tenancy {definition.tenancy.model.value}: the customer's product key "
            "must be 1-63 letters, digits or underscores to name its schema or database "
            "(set product_tenant_key)"
        )
    return key


def customer_schema(definition: DatabaseDef, key: str | None) -> str:
    """The schema of the customer with product key ``key`` (tenancy ``schema``), checked."""
    name = definition.tenancy.schema_for(_checked_key(definition, key)) or ""
    if not _IDENTIFIER.fullmatch(name):
        raise Unreachable(
            f"{definition.qualified}: tenancy schema: {name!r} is not a plain identifier "
            "(letters, digits, underscores; at most 63)"
        )
    return name


def customer_url(definition: DatabaseDef, urls: dict[str, str] | None, key: str | None) -> str:
    """The database URL of the customer with product key ``key`` (tenancy ``database``): the URL
    in the environment variable ``tenancy.url_env`` names for the key, where the map declares one;
    otherwise the database's URL (``url_env``/``url_file``) as a template with ``{key}`` in its
    database name or SQLite file name - nowhere else."""
    checked = _checked_key(definition, key)
    name = definition.tenancy.url_env_for(checked)
    if name:
        url = os.environ.get(name, "")
        if not url:
            raise Unreachable(f"{definition.qualified}: no connection URL for the customer (set ${name})")
        return url
    try:
        template = resolve_url(definition, urls)
        parsed = make_url(template)
    except NoConnection as exc:
        raise Unreachable(str(exc)) from exc
    except ArgumentError as exc:
        raise Unreachable(f"{definition.qualified}: the URL template is not a database URL") from exc
    others = (parsed.username, parsed.password, parsed.host, str(parsed.query))
    if "{key}" not in (parsed.database or "") or any("{key}" in str(x or "") for x in others):
        raise Unreachable(
            f"{definition.qualified}: tenancy database: the URL must have {{key}} in its database "
            "name (or SQLite file name) and nowhere else"
        )
    return parsed.set(database=(parsed.database or "").replace("{key}", checked)).render_as_string(
        hide_password=False
    )


def product_db(
    definition: DatabaseDef, urls: dict[str, str] | None = None, key: str | None = None
) -> ProductDB:
    """One ``ProductDB`` per engine and map database, so tables are reflected once per process.
    With the ``schema`` and ``database`` tenancy models it is the customer's (``key``: the
    customer's product key): its tables are those of the customer's schema, or its engine that of
    the customer's database."""
    model = definition.tenancy.model
    schema: str | None = None
    try:
        if model is TenancyModel.DATABASE:
            engine = engine_for(customer_url(definition, urls, key))
        else:
            engine = engine_for(resolve_url(definition, urls))
    except NoConnection as exc:
        raise Unreachable(str(exc)) from exc
    if model is TenancyModel.SCHEMA:
        schema = customer_schema(definition, key)
        if engine.dialect.name == "sqlite":
            raise Unreachable(
                f"{definition.qualified}: tenancy schema needs PostgreSQL or MariaDB; SQLite has no schemas"
            )
    owner = key if model in PER_CUSTOMER else None
    cached = (id(engine), definition.qualified, schema)
    found = _products.get(cached)
    if found is None or found.engine is not engine or (
        found.definition is not definition and found.definition != definition
    ):
        found = ProductDB(definition, engine, schema=schema, owner=owner)
        _products[cached] = found
    return found


class ProductDB:
    def __init__(
        self, definition: DatabaseDef, engine: Engine, *, schema: str | None = None, owner: str | None = None
    ) -> None:
        self.definition = definition
        self.engine = engine
        self.schema = schema  # tenancy schema: the customer's schema, every table is in it
        self.owner = owner  # tenancy schema/database: the product key of the customer it serves
        self._tables: dict[str, Table] = {}
        self._meta = MetaData()
        self._stmts: dict[tuple[Any, ...], Any] = {}  # prepared statements, per table and shape
        self._reflecting = threading.Lock()

    def table(self, name: str) -> Table:
        found = self._tables.get(name)
        if found is None:
            with self._reflecting:  # runs in several threads share this object (the worker pool)
                found = self._tables.get(name)
                if found is None:
                    try:
                        found = Table(name, self._meta, schema=self.schema, autoload_with=self.engine)
                    except NoSuchTableError as exc:
                        raise Unreachable(
                            f"table {name} does not exist in {self.definition.qualified}"
                        ) from exc
                    except OperationalError as exc:
                        raise Unreachable(describe_failure(exc)) from exc
                    self._tables[name] = found
        return found

    def tenant_of(self, table: Table, mt: MapTable) -> Any:
        """What ``WHERE … = <the customer's product key>`` compares: the table's tenant column, or
        for a database that belongs to one customer entirely (tenancy ``single``) that customer's
        key as a constant - so every statement still holds only for the owner's requests."""
        tenancy = self.definition.tenancy
        if tenancy.model is TenancyModel.COLUMN:
            return table.c[mt.tenant]
        if tenancy.model is TenancyModel.SINGLE:
            return literal(tenancy.customer or "", String)
        # schema/database: the tables are the customer's; its key is compared as a constant, so a
        # statement with another customer's key matches nothing here
        return literal(self.owner or "", String)

    def key_columns(self, mt: MapTable) -> list[str]:
        if mt.primary_key:
            return list(mt.primary_key)
        return [c.name for c in self.table(mt.name).primary_key.columns]

    def connect(self) -> Connection:
        try:
            return self.engine.connect()
        except SQLAlchemyError as exc:
            raise Unreachable(describe_failure(exc)) from exc

    # -- reading ---------------------------------------------------------------------------------

    def find(
        self,
        conn: Connection,
        mt: MapTable,
        tenant_value: str,
        conditions: Sequence[tuple[str, Iterable[Any]]],
    ) -> list[dict[str, Any]]:
        """Rows of ``mt`` in the tenant where any (column IN values) holds: one statement for all
        the columns (``col_a IN (…) OR col_b IN (…)``), prepared once per table and columns."""
        table = self.table(mt.name)
        tenant = coerce(self.tenant_of(table, mt), tenant_value)
        if tenant is None:
            raise Unreachable(f"tenant key {tenant_value!r} cannot be compared with {mt.name}.{mt.tenant}")
        typed: list[tuple[str, list[Any]]] = []
        for column_name, values in conditions:
            column = table.c[column_name]
            found = sorted({v for v in (coerce(column, x) for x in values) if v is not None}, key=str)
            if found:
                typed.append((column_name, found))
        if not typed:
            return []
        keyed: dict[Any, dict[str, Any]] = {}
        key_cols = self.key_columns(mt)
        if all(len(values) <= IN_CHUNK for _c, values in typed):
            rounds = [typed]
        else:  # very many values: one column and chunk at a time
            rounds = [
                [(name, values[start : start + IN_CHUNK])]
                for name, values in typed
                for start in range(0, len(values), IN_CHUNK)
            ]
        for cond in rounds:
            shape = tuple((name, _width(len(values))) for name, values in cond)
            stmt = self._find_stmt(mt, shape)
            params: dict[str, Any] = {"w_tenant": tenant}
            for i, (_n, values) in enumerate(cond):
                params.update(_bind_in(f"w_{i}", values, shape[i][1]))
            for row in conn.execute(stmt, params).mappings():
                record = dict(row)
                key = tuple(record[k] for k in key_cols) if key_cols else _row_key(record)
                keyed.setdefault(key, record)
        return list(keyed.values())

    def _find_stmt(self, mt: MapTable, shape: tuple[tuple[str, int], ...]) -> Any:
        """The prepared SELECT for a table and the columns a person is looked up by; SQLAlchemy
        keeps its compiled form, so later runs only bind values."""
        cache_key = ("find", mt.name, shape)
        stmt = self._stmts.get(cache_key)
        if stmt is None:
            table = self.table(mt.name)
            cols = [table.c[name] for name in mt.fields if name in table.c]
            conds = [_in(table.c[name], f"w_{i}", width, mt) for i, (name, width) in enumerate(shape)]
            stmt = select(*cols).where(
                self.tenant_of(table, mt) == bindparam("w_tenant"),
                conds[0] if len(conds) == 1 else or_(*conds),
            )
            self._stmts[cache_key] = stmt
        return stmt

    def count_others(
        self,
        conn: Connection,
        mt: MapTable,
        tenant_value: str,
        *,
        column_name: str,
        value: Any,
        own: list[dict[str, Any]],
    ) -> int:
        """Rows of ``mt`` in the tenant whose ``column_name`` holds ``value``, other than the
        person's own rows ``own`` (by key; by whole row where the table has none)."""
        table = self.table(mt.name)
        tenant_col = self.tenant_of(table, mt)
        tenant = coerce(tenant_col, tenant_value)
        typed = coerce(table.c[column_name], value)
        if tenant is None or typed is None:
            return 0
        keys = self.key_columns(mt)
        cols = [table.c[k] for k in keys] if keys else [table.c[n] for n in mt.fields if n in table.c]
        stmt = select(*cols).where(tenant_col == tenant, table.c[column_name] == typed)
        names = [c.name for c in cols]
        mine = {tuple(r.get(n) for n in names) for r in own}
        return sum(1 for row in conn.execute(stmt) if tuple(row) not in mine)

    # -- writing ---------------------------------------------------------------------------------

    def apply(
        self, conn: Connection, mt: MapTable, tenant_value: str, op: str, rows: list[dict[str, Any]]
    ) -> int:
        """Carry out planned writes: deletes by key, updates by key with the values computed at
        planning. Rows keyed by one column that get the same values (null, fixed, the person's
        pseudonym) share one ``UPDATE … WHERE key IN (…)``; the rest go as one executemany."""
        table = self.table(mt.name)
        tenant_col = self.tenant_of(table, mt)
        tenant = coerce(tenant_col, tenant_value)
        if op in ("delete_where", "update_where"):
            return sum(self._apply_where(conn, mt, tenant, op, row) for row in rows)
        if op == "delete":
            return self._apply_delete(conn, mt, tenant, rows)
        return self._apply_update(conn, mt, tenant, rows)

    def _apply_delete(self, conn: Connection, mt: MapTable, tenant: Any, rows: list[dict[str, Any]]) -> int:
        """Deletes by key (batched), then the rows without a key by the columns that matched."""
        table = self.table(mt.name)
        tenant_col = self.tenant_of(table, mt)
        keyed = [r for r in rows if r.get("key")]
        done = self._delete_keyed(conn, mt, tenant, keyed)
        for row in rows:
            if not row.get("key"):
                conn.execute(delete(table).where(tenant_col == tenant, _match(table, row)))
                done += 1
        return done

    def _apply_update(self, conn: Connection, mt: MapTable, tenant: Any, rows: list[dict[str, Any]]) -> int:
        """Updates: a row without a key at once, by its matched columns and old values; rows keyed
        by one column grouped by their new values; rows with a composite key by key and columns."""
        done = 0
        grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        each: dict[tuple[tuple[str, ...], tuple[str, ...]], list[dict[str, Any]]] = {}
        for row in rows:
            key = row.get("key")
            if key and len(key) == 1:
                grouped.setdefault(_same(row["set"]), []).append(row)
            elif key:
                each.setdefault((tuple(key), tuple(row["set"])), []).append(row)
            else:
                self._update_unkeyed(conn, mt, tenant, row)
                done += 1
        for group in grouped.values():
            done += self._update_same(conn, mt, tenant, group)
        for (key_names, names), group in each.items():
            done += self._update_each(conn, mt, tenant, group, key_names=key_names, names=names)
        return done

    def _update_unkeyed(self, conn: Connection, mt: MapTable, tenant: Any, row: dict[str, Any]) -> None:
        """One row of a table without a key: found by the columns that matched the person, and
        only while it still holds the old values."""
        table = self.table(mt.name)
        guards = [
            table.c[k].is_(None) if v is None else table.c[k] == v
            for k, v in (row.get("old") or {}).items()
        ]
        values = {name: self._typed(table, name, v) for name, v in row["set"].items()}
        values |= _unchanged(table, mt, values)
        where = and_(_match(table, row), *guards)
        conn.execute(update(table).where(self.tenant_of(table, mt) == tenant, where).values(values))

    def _update_same(self, conn: Connection, mt: MapTable, tenant: Any, group: list[dict[str, Any]]) -> int:
        """Rows keyed by one column that get the same values: ``UPDATE … WHERE key IN (…)``."""
        table = self.table(mt.name)
        (key_name,) = group[0]["key"]
        names = tuple(group[0]["set"])
        params: dict[str, Any] = {"w_tenant": tenant}
        params.update({f"v_{i}": self._typed(table, n, group[0]["set"][n]) for i, n in enumerate(names)})
        keys = [r["key"][key_name] for r in group]
        for start in range(0, len(keys), IN_CHUNK):
            chunk = keys[start : start + IN_CHUNK]
            width = _width(len(chunk))
            stmt = self._update_stmt(mt, (key_name,), names, width=width)
            if width == 1:
                execute_fast(conn, stmt, params | {"w_0": chunk[0]})
            else:
                execute_fast(conn, stmt, params | _bind_in("w_keys", chunk, width))
        return len(group)

    def _update_each(
        self,
        conn: Connection,
        mt: MapTable,
        tenant: Any,
        group: list[dict[str, Any]],
        *,
        key_names: tuple[str, ...],
        names: tuple[str, ...],
    ) -> int:
        """Rows with the same key columns and changed columns: one executemany by key."""
        table = self.table(mt.name)
        stmt = self._update_stmt(mt, key_names, names, width=1)
        execute_fast(
            conn,
            stmt,
            [
                {"w_tenant": tenant}
                | {f"w_{i}": r["key"][k] for i, k in enumerate(key_names)}
                | {f"v_{i}": self._typed(table, n, r["set"][n]) for i, n in enumerate(names)}
                for r in group
            ],
        )
        return len(group)

    def _where_conditions(self, table: Table, where: Iterable[Sequence[Any]]) -> list[tuple[str, list[Any]]]:
        conditions: list[tuple[str, list[Any]]] = []
        for column_name, given in where:
            column = table.c[column_name]
            typed = sorted({v for v in (coerce(column, x) for x in given) if v is not None}, key=str)
            if typed:
                conditions.append((column_name, typed))
        return conditions

    def count_where(
        self, conn: Connection, mt: MapTable, tenant_value: str, where: Iterable[Sequence[Any]]
    ) -> int:
        """How many rows of the tenant a set-based statement over ``where`` would hit now: counted
        when the erasure is planned (in the product transaction that then writes them), so that the
        count is kept with the plan and a statement repeated after a crash - which hits nothing
        any more - does not change it."""
        table = self.table(mt.name)
        tenant = coerce(self.tenant_of(table, mt), tenant_value)
        conditions = self._where_conditions(table, where)
        if tenant is None or not conditions:
            return 0
        if any(len(values) > IN_CHUNK for _c, values in conditions):  # very many values: the rows
            return len(self.find(conn, mt, tenant_value, conditions))
        clauses = [column_expression(mt.match_of(c), table.c[c]).in_(values) for c, values in conditions]
        stmt = select(func.count()).select_from(table).where(
            self.tenant_of(table, mt) == tenant, clauses[0] if len(clauses) == 1 else or_(*clauses)
        )
        return int(conn.execute(stmt).scalar() or 0)

    def _apply_where(self, conn: Connection, mt: MapTable, tenant: Any, op: str, plan: dict[str, Any]) -> int:
        """One set-based statement: every row of the tenant where ``col IN (values)`` holds for any
        of the person's conditions is deleted, or gets the same new values (a pseudonym only where
        the field is not empty). Returns the number of rows it hit; repeating it is harmless."""
        table = self.table(mt.name)
        conditions = self._where_conditions(table, plan["where"])
        if not conditions:
            return 0
        names = tuple(plan.get("set") or ())
        keep_null = tuple(plan.get("keep_null") or ())
        hit = 0
        if all(len(v) <= IN_CHUNK for _c, v in conditions):
            rounds = [conditions]
        else:
            rounds = [
                [(name, values[start : start + IN_CHUNK])]
                for name, values in conditions
                for start in range(0, len(values), IN_CHUNK)
            ]
        for cond in rounds:
            shape = tuple((c, _width(len(v))) for c, v in cond)
            cache_key = (op, mt.name, shape, names, keep_null)
            stmt = self._stmts.get(cache_key)
            if stmt is None:
                clauses = [_in(table.c[c], f"w_{i}", width, mt) for i, (c, width) in enumerate(shape)]
                where = and_(
                    self.tenant_of(table, mt) == bindparam("w_tenant"),
                    clauses[0] if len(clauses) == 1 else or_(*clauses),
                )
                if op == "delete_where":
                    stmt = delete(table).where(where)
                else:
                    values: dict[str, Any] = {}
                    for i, n in enumerate(names):
                        value: Any = bindparam(f"v_{i}", type_=table.c[n].type)
                        if n in keep_null:
                            value = case((table.c[n].is_(None), null()), else_=value)
                        values[n] = value
                    stmt = update(table).where(where).values(values | _unchanged(table, mt, values))
                self._stmts[cache_key] = stmt
            params = {"w_tenant": tenant}
            for i, (_c, v) in enumerate(cond):
                params.update(_bind_in(f"w_{i}", v, shape[i][1]))
            params.update({f"v_{i}": self._typed(table, n, plan["set"][n]) for i, n in enumerate(names)})
            hit += execute_fast(conn, stmt, params)
        return hit

    @staticmethod
    def _typed(table: Table, name: str, value: Any) -> Any:
        return coerce(table.c[name], value) if value is not None else None

    def _update_stmt(self, mt: MapTable, keys: tuple[str, ...], names: tuple[str, ...], *, width: int) -> Any:
        """``UPDATE … WHERE tenant AND key``: several keys (``width`` > 1, one column) as an
        ``IN`` list of that many parameters."""
        cache_key = ("update", mt.name, keys, names, width)
        stmt = self._stmts.get(cache_key)
        if stmt is None:
            table = self.table(mt.name)
            where: Any
            if width > 1:
                where = _in(table.c[keys[0]], "w_keys", width)
            else:
                where = and_(*(table.c[k] == bindparam(f"w_{i}") for i, k in enumerate(keys)))
            values = {n: bindparam(f"v_{i}", type_=table.c[n].type) for i, n in enumerate(names)}
            stmt = (
                update(table)
                .where(self.tenant_of(table, mt) == bindparam("w_tenant"), where)
                .values(values | _unchanged(table, mt, values))
            )
            self._stmts[cache_key] = stmt
        return stmt

    def _delete_stmt(self, mt: MapTable, key_names: tuple[str, ...], width: int) -> Any:
        cache_key = ("delete", mt.name, key_names, width)
        stmt = self._stmts.get(cache_key)
        if stmt is None:
            table = self.table(mt.name)
            if width > 1:
                where = _in(table.c[key_names[0]], "w_keys", width)
            else:
                where = and_(*(table.c[k] == bindparam(f"w_{i}") for i, k in enumerate(key_names)))
            stmt = delete(table).where(self.tenant_of(table, mt) == bindparam("w_tenant"), where)
            self._stmts[cache_key] = stmt
        return stmt

    def _delete_keyed(self, conn: Connection, mt: MapTable, tenant: Any, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        key_names = tuple(rows[0]["key"])
        many = len(key_names) == 1 and len(rows) > 1
        if many:
            keys = [r["key"][key_names[0]] for r in rows]
            for start in range(0, len(keys), IN_CHUNK):
                chunk = keys[start : start + IN_CHUNK]
                width = _width(len(chunk))
                stmt = self._delete_stmt(mt, key_names, width)
                execute_fast(conn, stmt, {"w_tenant": tenant} | _bind_in("w_keys", chunk, width))
        else:
            stmt = self._delete_stmt(mt, key_names, 1)
            execute_fast(
                conn,
                stmt,
                [
                    {"w_tenant": tenant} | {f"w_{i}": r["key"][k] for i, k in enumerate(key_names)}
                    for r in rows
                ],
            )
        return len(rows)


def _unchanged(table: Table, mt: MapTable, values: dict[str, Any]) -> dict[str, Any]:
    """``column = column`` for the columns the database would set by itself on this UPDATE
    (MariaDB's ``ON UPDATE CURRENT_TIMESTAMP``): set to their old value, they keep it."""
    return {c: table.c[c] for c in mt.auto_update_columns if c in table.c and c not in values}


def _same(values: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, repr(v)) for k, v in values.items()))


def _match(table: Table, row: dict[str, Any]) -> Any:
    pairs = row.get("match") or []
    if not pairs:
        raise ValueError("a row without a key needs the columns that matched it")
    return or_(*(table.c[col] == value for col, value in pairs))


def _row_key(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, repr(v)) for k, v in record.items()))
