"""Engine, sessions, the declarative base, and tenant scoping of every tenant-owned query.

Tenant isolation lives here and nowhere else. Every ORM session carries a *scope*:

* ``Scope.tenant(org_id)`` - every SELECT, UPDATE and DELETE that touches a ``TenantScoped`` model
  gets ``org_id = :org`` added by construction (``with_loader_criteria``), and every object flushed
  must belong to that organisation;
* ``Scope.system(reason)`` - deliberate cross-tenant work (sign-in, the worker, migrations), named
  so that it can be found in review.

A session without a scope that touches a tenant-owned model raises ``ScopeMissing``: forgetting the
filter is an error, never a leak.

Core statements that name a tenant table itself (``select(Model.__table__)``, ``insert(table)``,
``table.c.org_id``) get no criteria from the ORM, so a session with a tenant scope refuses them
(``ScopeBypassed``) and a session without a scope raises ``ScopeMissing``, unless the statement
says why it deliberately reads across organisations: ``.execution_options(cross_tenant="why")``.
An ORM ``INSERT``/``UPDATE`` statement that sets ``org_id`` to another organisation raises
``CrossTenantWrite``. ``Prepared``/``execute_fast`` run on a bare connection (no scope at all), so
they refuse a statement on a tenant table that does not carry ``cross_tenant`` either. Statements
a caller runs on a ``Connection`` of its own (``engine.connect()``, ``session.connection()``) have
no scope and are system work by definition; see docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DateTime,
    Engine,
    MetaData,
    String,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    sessionmaker,
    with_loader_criteria,
)
from sqlalchemy.sql import visitors
from sqlalchemy.types import TypeDecorator

from vern.core.config import pool_settings
from vern.core.discover import domain_modules
from vern.core.extras import require_driver

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A time-ordered UUID (version 7 layout) as text: sortable, index-friendly, unguessable."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 62 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


class UTCDateTime(TypeDecorator[datetime]):
    """Always timezone-aware UTC in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use vern.core.db.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name in ("sqlite", "mysql") else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def id_column() -> Mapped[str]:
    return mapped_column(String(36), primary_key=True, default=new_id)


class TenantScoped:
    """Mixin for every row that belongs to one customer organisation."""

    @declared_attr
    def org_id(cls) -> Mapped[str]:  # noqa: N805 - SQLAlchemy's declared_attr takes the class
        from sqlalchemy import ForeignKey

        return mapped_column(
            String(36), ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
        )


class ScopeMissing(RuntimeError):
    """A tenant-owned model was touched by a session that has no scope."""


class CrossTenantWrite(RuntimeError):
    """A flush tried to write a row of another organisation than the session's."""


@dataclass(frozen=True)
class Scope:
    org_id: str | None
    reason: str

    @classmethod
    def tenant(cls, org_id: str) -> Scope:
        return cls(org_id=org_id, reason="tenant")

    @classmethod
    def system(cls, reason: str) -> Scope:
        if not reason:
            raise ValueError("a system scope needs a reason")
        return cls(org_id=None, reason=reason)

    @property
    def is_system(self) -> bool:
        return self.org_id is None


class ScopeBypassed(RuntimeError):
    """A Core statement named a tenant table directly in a tenant-scoped session (the ORM's
    tenant filter does not reach it) without saying it crosses organisations on purpose."""


CROSS_TENANT = "cross_tenant"  # the execution option naming why a statement crosses tenants
_tenant_tables_by_name: dict[str, Any] = {}


def _tenant_tables() -> dict[str, Any]:
    """Name -> Table of every ``TenantScoped`` model (filled once all models are mapped)."""
    if not _tenant_tables_by_name:
        for mapper in Base.registry.mappers:
            if issubclass(mapper.class_, TenantScoped):
                _tenant_tables_by_name[mapper.local_table.name] = mapper.local_table  # type: ignore[attr-defined]
    return _tenant_tables_by_name


def tenant_tables_in(stmt: Any) -> set[str]:
    """Every tenant table a statement reaches, however it is named (class, table, alias)."""
    tenant = _tenant_tables()
    found: set[str] = set()
    for node in visitors.iterate(stmt):
        el: Any = node
        kind = el.__visit_name__
        if kind == "table":
            name = getattr(el, "name", "")
        elif kind == "column":
            name = getattr(getattr(el, "table", None), "name", "")
        else:
            continue
        if name in tenant:
            found.add(name)
    return found


def raw_tenant_tables(stmt: Any) -> set[str]:
    """Tenant tables a statement names as Core objects - the table itself or one of its columns,
    not through the mapped class - which the ORM's tenant criteria do not filter. Mapped
    attributes (``Model.org_id``) and the class's own table in an ORM statement are copies of
    the Core objects, so identity tells them apart; a table whose class the statement uses
    (directly or through an alias) is filtered as a whole, so plain columns of it are too
    (``session.get`` compares the plain primary key)."""
    tenant = _tenant_tables()
    tables: set[str] = set()
    columns: set[str] = set()
    mapped: set[str] = set()
    for node in visitors.iterate(stmt):
        el: Any = node
        kind = el.__visit_name__
        if kind == "table":
            table: Any = tenant.get(getattr(el, "name", ""))
            if table is None:
                continue
            if el is table:
                tables.add(table.name)
            else:
                mapped.add(table.name)
        elif kind == "alias":
            inner: Any = getattr(el, "element", None)
            name = str(getattr(inner, "name", ""))
            if inner is not None and tenant.get(name) is inner:
                mapped.add(name)
        elif kind == "column":
            owner: Any = getattr(el, "table", None)
            of: Any = tenant.get(getattr(owner, "name", "")) if owner is not None else None
            if of is None or owner is not of:
                continue
            if el is of.c.get(el.key):
                columns.add(of.name)
            else:
                mapped.add(of.name)
    # A mapped column's table is visited as the plain table too: only a table named without a
    # mapped use of it is a Core reference.
    return (columns | tables) - mapped


# Compiled statement -> the tenant tables it names directly. A compiled form is made once per
# statement shape and reused by SQLAlchemy, so each shape is looked at once.
_raw_of_compiled: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()
_SCOPE_OPTION = "vern_scope"  # set by a session's statements: its organisation, "" for none


@event.listens_for(Engine, "before_cursor_execute")
def _refuse_raw_tenant_tables(  # noqa: PLR0917 - the event's signature
    conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, executemany: bool
) -> None:
    """A statement of a tenant-scoped (or unscoped) session that names a tenant table as a
    Core object is refused before it reaches the database, unless it says ``cross_tenant``."""
    if context is None:
        return
    options = context.execution_options
    scope = options.get(_SCOPE_OPTION)
    compiled = context.compiled
    if scope is None or compiled is None or options.get(CROSS_TENANT):
        return
    raw = _raw_of_compiled.get(compiled)
    if raw is None:
        raw = _raw_of_compiled[compiled] = frozenset(raw_tenant_tables(compiled.statement))
    if not raw:
        return
    if scope == "":
        raise ScopeMissing(f"tenant table {sorted(raw)[0]} reached without a scope")
    raise ScopeBypassed(
        f"tenant table {sorted(raw)[0]} named directly in a tenant-scoped session: use the "
        f"mapped class, or execution_options({CROSS_TENANT}='why') for a deliberate "
        "cross-organisation read"
    )


def _touches_tenant_model(state: ORMExecuteState) -> bool:
    return any(issubclass(mapper.class_, TenantScoped) for mapper in state.all_mappers)


_ORG_VALUE = re.compile(r"^org_id(?:_m\d+)?$")


_TENANT_WRITE = "vern_tenant_write"  # set on a tenant session's INSERT/UPDATE: the scope's org


@event.listens_for(Engine, "before_execute")
def _check_org_values(
    conn: Any, clause: Any, multiparams: Any, params: Any, options: Any
) -> None:
    """An INSERT or UPDATE of a tenant-scoped session must not set another ``org_id`` (checked
    on the Core statement the ORM hands the connection; other statements pass at once)."""
    org_id = options.get(_TENANT_WRITE)
    if org_id is None or not hasattr(clause, "compile"):
        return
    values: list[Any] = [
        v for k, v in clause.compile(dialect=conn.dialect).params.items() if _ORG_VALUE.match(k)
    ]
    rows: list[Any] = []
    for given in (multiparams, params):
        if isinstance(given, dict):
            rows.append(given)
        elif isinstance(given, list | tuple):
            rows += [r for r in given if isinstance(r, dict)]
            rows += [x for r in given if isinstance(r, list | tuple) for x in r if isinstance(x, dict)]
    values += [row["org_id"] for row in rows if "org_id" in row]
    if any(v is not None and v != org_id for v in values):
        raise CrossTenantWrite("a statement sets org_id to another organisation")


@event.listens_for(Session, "do_orm_execute")
def _scope_tenant_queries(state: ORMExecuteState) -> None:
    if state.is_column_load or state.is_relationship_load:
        return  # criteria already applied to the parent statement
    scope: Scope | None = state.session.info.get("scope")
    if scope is not None and scope.is_system:
        return
    # Core references to tenant tables are looked for once the statement is compiled
    # (``_refuse_raw_tenant_tables``), once per statement shape.
    state.update_execution_options(**{_SCOPE_OPTION: scope.org_id if scope is not None else ""})
    if (state.is_insert or state.is_update) and scope is not None and _touches_tenant_model(state):
        state.update_execution_options(**{_TENANT_WRITE: scope.org_id})
    if not (state.is_select or state.is_update or state.is_delete):
        if scope is None and _touches_tenant_model(state):
            raise ScopeMissing("tenant-owned data written without a scope")
        return
    if scope is None:
        if _touches_tenant_model(state):
            raise ScopeMissing("tenant-owned data queried without a scope")
        return
    org_id = scope.org_id
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped,
            lambda cls: cls.org_id == org_id,
            include_aliases=True,
        )
    )


@event.listens_for(Session, "before_flush")
def _check_tenant_writes(session: Session, _ctx: Any, _instances: Any) -> None:
    scope: Scope | None = session.info.get("scope")
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        if not isinstance(obj, TenantScoped):
            continue
        if scope is None:
            raise ScopeMissing(f"{type(obj).__name__} written without a scope")
        if scope.is_system:
            continue
        if obj.org_id is None and obj in session.new:
            obj.org_id = scope.org_id
        if obj.org_id != scope.org_id:
            raise CrossTenantWrite(f"{type(obj).__name__} belongs to another organisation")


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url in ("sqlite://", "sqlite:///:memory:"):
        return None
    return Path(url[len(prefix) :].split("?", 1)[0])


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine with Vern's connection settings (SQLite: WAL, foreign keys, busy timeout).
    A URL whose driver is an extra that is not installed raises ``MissingExtra``."""

    require_driver(url, "VERN_DATABASE_URL")
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["pool_size"] = pool_settings().pool_size
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "handle_error", _renew_read_only)
    return engine


# SQLSTATE 25006 read_only_sql_transaction (PostgreSQL); SQLite's read-only and I/O error codes.
_READ_ONLY_STATES = frozenset({"25006"})


def is_read_only_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or the driver error inside it) says the connection cannot write: a
    PostgreSQL session opened read-only (``default_transaction_read_only``, a standby), a
    SQLite file opened read-only or one whose write failed."""
    for _ in range(4):
        if exc is None:
            return False
        if getattr(exc, "sqlstate", None) in _READ_ONLY_STATES:
            return True
        name = getattr(exc, "sqlite_errorname", None)
        if isinstance(name, str) and name.startswith(("SQLITE_READONLY", "SQLITE_IOERR")):
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__
    return False


def _renew_read_only(context: Any) -> None:
    """A connection that could not write is replaced (with the rest of the pool): a session
    opened while the database was read-only stays read-only after writes come back, so it must
    not be used again."""
    if is_read_only_error(context.original_exception):
        context.is_disconnect = True


def write_probe(engine: Engine) -> None:
    """Raise unless the database takes writes now: an UPDATE that changes nothing, in a
    transaction that is rolled back (a read-only PostgreSQL session and a read-only SQLite file
    refuse it all the same; for SQLite the file's permission is checked too). A connection that
    could not write is replaced and the probe tried once more, so the answer is about the
    database, not about one stale connection."""
    from sqlalchemy import text

    path = _sqlite_path(str(engine.url)) if engine.dialect.name == "sqlite" else None
    if path is not None:
        # A connection opened before the file became read-only may still get a write through;
        # the file's own permission says what every new connection will find.
        for file in (path, path.with_name(path.name + "-wal")):
            if file.exists() and not os.access(file, os.W_OK):
                raise PermissionError(f"the database file {file.name} is read-only")
    for attempt in range(2):
        try:
            with engine.connect() as conn, conn.begin() as trans:
                conn.execute(text("UPDATE worker_jobs SET runs = runs WHERE 1 = 0"))
                trans.rollback()
            return
        except Exception as exc:
            if attempt or not is_read_only_error(exc):
                raise


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # Move the write-ahead log into the database every 10,000 pages (40 MiB) instead of SQLite's
    # 1,000: a page that many commits change (an index's inner pages) is copied back once, not
    # after every few commits - about half the write work of large appends.
    cur.execute("PRAGMA wal_autocheckpoint=10000")
    cur.close()


class Prepared:
    """A Core INSERT, UPDATE or DELETE kept for repeated use (module constants, a cache of
    statements), run by ``Connection.execute``: SQLAlchemy compiles it once per dialect into its
    compiled cache (keyed by the statement's structure), and several rows go to the driver's
    ``executemany`` (psycopg sends them in one pipeline).

    A bare connection has no scope, so a statement on a tenant table must say why it may run
    without one (``.execution_options(cross_tenant="why")``) - checked once, when it is made.
    ``run`` returns the rows matched (summed over several rows; for an INSERT of several rows,
    which SQLAlchemy may send as one multi-row statement whose count the driver does not give,
    the rows given: an INSERT that does not fail writes them all)."""

    __slots__ = ("stmt",)

    def __init__(self, stmt: Any) -> None:
        raw = tenant_tables_in(stmt)
        if raw and not stmt.get_execution_options().get(CROSS_TENANT):
            raise ScopeMissing(f"tenant table {sorted(raw)[0]} in a prepared statement without "
                               f"a {CROSS_TENANT} reason")
        self.stmt = stmt

    def run(self, conn: Any, params: dict[str, Any] | list[dict[str, Any]]) -> int:
        """Execute on the SQLAlchemy ``Connection`` ``conn`` (in its transaction)."""
        if isinstance(params, list) and not params:
            return 0
        count = conn.execute(self.stmt, params).rowcount
        if count < 0 and self.stmt.is_insert:
            return len(params) if isinstance(params, list) else 1
        return int(count or 0)


@contextmanager
def pipeline(conn: Any) -> Iterator[None]:
    """PostgreSQL: the statements run inside go to the server without waiting for each answer
    (psycopg's pipeline mode) - one round trip for all of them when the block ends, where any
    error comes out, as SQLAlchemy's. Only for statements whose row counts are not needed (they
    are not known until the end). Elsewhere it does nothing."""
    if conn.dialect.name != "postgresql":
        yield
        return
    raw = conn.connection.driver_connection
    try:
        with raw.pipeline():
            yield
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, None, "(statements sent in a pipeline)", None, exc) from exc


_prepared: dict[int, tuple[Any, Prepared]] = {}


def execute_fast(conn: Any, stmt: Any, params: dict[str, Any] | list[dict[str, Any]]) -> int:
    """``conn.execute(stmt, params).rowcount`` through a ``Prepared`` made once per statement
    object - for statements that are kept (module constants, a cache of prepared statements),
    not ones built for a single call."""
    found = _prepared.get(id(stmt))
    if found is None or found[0] is not stmt:
        if len(_prepared) > 1000:  # statements of replaced caches: compiled again when used
            _prepared.clear()
        found = _prepared[id(stmt)] = (stmt, Prepared(stmt))
    return found[1].run(conn, params)


def _wrapped(conn: Any, cur: Any, sql: str, params: Any, exc: BaseException) -> BaseException:
    """The DBAPI error as SQLAlchemy would raise it (``IntegrityError``, ``OperationalError``);
    a lost connection is invalidated, as SQLAlchemy does, so that the pool does not hand it out
    again."""
    from sqlalchemy.exc import DBAPIError

    dialect = conn.dialect
    gone = False
    with contextlib.suppress(Exception):
        gone = bool(dialect.is_disconnect(exc, conn.connection.dbapi_connection, cur))
    if gone:
        with contextlib.suppress(Exception):
            conn.invalidate(exc)
    return DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error, dialect=dialect,
                               connection_invalidated=gone)


class Database:
    """An engine plus a session factory; one per process (tests make their own)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    def session(self, scope: Scope | None) -> Session:
        session = self._factory()
        session.info["scope"] = scope
        return session

    @contextmanager
    def transaction(
        self, scope: Scope | None, *, keep_on: tuple[type[BaseException], ...] = ()
    ) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any error - except the errors
        named in ``keep_on``, which commit first (a failed sign-in keeps its counters and its
        audit record) and are then raised."""
        session = self.session(scope)
        try:
            yield session
            session.commit()
        except keep_on:
            session.commit()
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def create_all(self) -> None:
        import_models()
        Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


def import_models() -> None:
    """Import every domain's models so that ``Base.metadata`` is complete."""
    import importlib


    importlib.import_module("vern.core.crypto")
    importlib.import_module("vern.core.worker")
    importlib.import_module("vern.core.quarantine")
    domain_modules("models")
