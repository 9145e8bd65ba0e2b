"""The execution engine: a request becomes parts (one per product database) and a stored plan,
every step committed to Vern's database before the next starts.

Order of work, resumable at any point (``Engine.process``, for one request or a worker's batch):

1. *read*: load the requests, find each person's rows from their identities through the
   references, always inside the tenant column, and decide what to do with every row (the HMAC of
   the old value, the pseudonym, the key) - no side effects, so a crash here changes nothing;
2. *plan*, one durable Vern transaction: claim each request (only if nobody changed it since it
   was read), store its plan sealed under the request's data key with the ledger entry; requests
   that write nothing to a product (access, portability, the flags) are finished here too;
3. *write* (erasure, rectification): the product transaction that read the rows writes them, by
   key with the planned values or set-based (one statement over the person's rows of a table that
   nothing is discovered through and whose new values do not depend on the old ones); a plan over
   ``batch_rows`` rows goes in chunks, each followed by a checkpoint in Vern;
4. *checkpoint and finish*, one Vern transaction: tasks, part and ledger entry done, the plan
   cleared, the request done - or ``partial`` if a database failed, retryable, never "done".

Writes are idempotent - values are computed once, at planning, and written by key, and a
set-based statement matches the same rows again or none - so a crash between the product commit
and the checkpoint repeats the same write, and every row of the person ends up handled exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Integer, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from vern.audit.models import AuditEvent
from vern.audit.service import event_row, record
from vern.core.crypto import PII, blind_index
from vern.core.db import Database, Scope, UTCDateTime, execute_fast, new_id, pipeline, utcnow
from vern.datamap.model import DatabaseDef, DataMap, Erase, Strategy
from vern.datamap.model import Table as MapTable
from vern.notify.models import OutboxMessage
from vern.rights.connectors import (
    PER_CUSTOMER,
    ProductDB,
    Unreachable,
    describe_failure,
    dumps,
    loads,
    product_db,
)
from vern.rights.matching import lookup_values, normalise
from vern.rights.models import (
    Kind,
    LedgerEntry,
    Part,
    PartStatus,
    RightsRequest,
    Status,
    Task,
)

Step = Callable[[str], None]
# The engine's own bookkeeping addresses Vern rows only by the ids of one request, which the caller
# has already loaded inside the customer's tenant scope; product rows are always filtered by the
# tenant column in SQL.
_SCOPE = Scope.system("rights engine")
Progress = Callable[[int, int], None]

WRITE_KINDS = (Kind.ERASURE.value, Kind.RECTIFICATION.value)
READ_KINDS = (Kind.ACCESS.value, Kind.PORTABILITY.value)
FLAG_KINDS = (Kind.RESTRICTION.value, Kind.OBJECTION.value, Kind.WITHDRAWAL.value)
SET_OPS = ("delete_where", "update_where")  # one statement over the person's rows of a table
WHOLE = "*"  # a task or ledger entry that covers every table of the part
WHOLE_OP = "tables"  # a whole part's plan: [[table, op, rows], ...]


@dataclass(frozen=True)
class Subject:
    org_id: str
    tenant_value: str
    identities: dict[str, str]
    subject_ref: str
    corrections: dict[str, str] = field(default_factory=dict)


# -- keyed values ------------------------------------------------------------------------------


def _table(model: type[Any]) -> Table:
    """The Core table of a model, for bookkeeping statements that need no ORM unit of work."""
    return cast(Table, model.__table__)


def _derive(secret: bytes, purpose: str) -> bytes:
    return hashlib.sha256(secret + b"\x00" + purpose.encode()).digest()


def hmac_value(secret: bytes, value: Any, length: int | None) -> str:
    digest = hmac.new(_derive(secret, "rights.erase.hmac"), str(value).encode(), hashlib.sha256)
    return digest.hexdigest()[: length or 64]


def pseudonym_id(secret: bytes, subject_ref: str) -> str:
    digest = hmac.new(_derive(secret, "rights.erase.pseudonym"), subject_ref.encode(), hashlib.sha256)
    return digest.hexdigest()[:12]


def match_hash(secret: bytes, column: str, value: Any) -> str:
    return blind_index(secret, f"{column}={value}", "rights.ledger")


def ledger_hash(secret: bytes, mt: MapTable, column: str, value: Any) -> str:
    """The ledger's hash of a value that matched the person: of its normalised form under the
    column's comparison, so a replay recognises the row whichever case or spacing it is stored in
    and whatever the collation that matched it."""
    return match_hash(secret, column, normalise(mt.match_of(column), value))


_HEX = frozenset("0123456789abcdef")
_PSEUDONYM_FORMS: dict[str, re.Pattern[str]] = {}


def already_erased(erase: Erase, old: Any) -> bool:
    """Whether ``old`` is already what this strategy writes for someone: a pseudonym in the
    field's format, or a keyed hash of the field's length (16 hex characters or more - shorter
    ones could be real values). Such a value is left as it is, so erasing an erased person again
    - under another of their identities, whose pseudonym would differ - changes nothing."""
    if not isinstance(old, str):
        return False
    if erase.strategy is Strategy.HMAC:
        n = erase.length or 64
        return n >= 16 and len(old) == n and set(old) <= _HEX
    if erase.strategy is Strategy.PSEUDONYM:
        fmt = erase.value or "anon-{id}"
        pattern = _PSEUDONYM_FORMS.get(fmt)
        if pattern is None:
            pattern = _PSEUDONYM_FORMS[fmt] = re.compile(
                re.escape(fmt).replace(re.escape("{id}"), "[0-9a-f]{12}")
            )
        return pattern.fullmatch(old) is not None
    return False


def new_value(secret: bytes, erase: Erase, old: Any, subject_ref: str) -> Any:
    """What an erase strategy writes in place of ``old`` (computed once, at planning); an
    already erased value stays as it is."""
    if already_erased(erase, old):
        return old
    if erase.strategy is Strategy.NULL:
        return None
    if erase.strategy is Strategy.FIXED:
        return erase.value
    if old is None:
        return None
    if erase.strategy is Strategy.HMAC:
        return hmac_value(secret, old, erase.length)
    if erase.strategy is Strategy.PSEUDONYM:
        fmt = erase.value or "anon-{id}"
        return fmt.replace("{id}", pseudonym_id(secret, subject_ref))
    raise ValueError(f"no value for strategy {erase.strategy}")


# -- discovery ---------------------------------------------------------------------------------


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


def discover(  # noqa: PLR0912 - identities, references both ways, shared rows
    pdb: ProductDB,
    subject: Subject,
    *,
    set_based: frozenset[str] = frozenset(),
    conn: Connection | None = None,
    shared: dict[str, list[Shared]] | None = None,
) -> tuple[dict[str, list[Found]], dict[str, list[tuple[str, list[Any]]]]]:
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
    where: dict[str, list[tuple[str, list[Any]]]] = {}
    with nullcontext(conn) if conn is not None else pdb.connect() as db:
        for tname in definition.dependency_order():
            mt = definition.tables[tname]
            conditions: list[tuple[str, list[Any]]] = []
            for kind, column in mt.identities.items():
                if kind in subject.identities:
                    lookup = lookup_values(mt.match_of(column), subject.identities[kind])
                    if lookup:
                        conditions.append((column, lookup))
            for ref in mt.references:
                if not ref.follow or ref.table == tname:
                    continue
                values = {f.row.get(ref.column) for f in found.get(ref.table, [])}
                values.discard(None)
                if values:
                    conditions.append((ref.field, sorted(values, key=str)))
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
            found[tname] = []
            if not conditions:
                continue
            if tname in set_based:
                where[tname] = conditions
                continue
            rows = pdb.find(db, mt, subject.tenant_value, conditions)
            sets = _wanted(mt, conditions)
            own: list[Found] = []
            for row in rows:
                f = Found(
                    row, [(c, row[c]) for c, vals in sets if normalise(mt.match_of(c), row.get(c)) in vals]
                )
                if outward and all(c in outward for c, _v in f.pairs):
                    users = _users_outside(
                        pdb, db, definition, tname=tname, row=row, found=found,
                        tenant_value=subject.tenant_value,
                    )
                    if users:
                        if shared is not None:
                            shared.setdefault(tname, []).append(Shared(row, users))
                        continue
                own.append(f)
            found[tname] = own
    return found, where


def _held_as(definition: DatabaseDef, key: str) -> str:
    """Under which name a run holds a product connection: the database's, or with the schema and
    database tenancy models the customer's schema or database within it."""
    if definition.tenancy.model in PER_CUSTOMER:
        return f"{definition.qualified}\x00{key}"
    return definition.qualified


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


def _set_based(definition: DatabaseDef) -> frozenset[str]:
    """``set_based_tables`` once per loaded map."""
    got = _set_based_cache.get(id(definition))
    if got is None or got[0] is not definition:
        got = (definition, set_based_tables(definition))
        _set_based_cache[id(definition)] = got
    return got[1]


def set_based_plan(
    secret: bytes, mt: MapTable, conditions: list[tuple[str, list[Any]]], subject: Subject
) -> tuple[str, list[dict[str, Any]]]:
    """The one-statement erasure of a set-based table: (operation, [the statement's plan])."""
    if mt.delete_row:
        return "delete_where", [{"where": [[c, v] for c, v in conditions]}]
    values: dict[str, Any] = {}
    keep_null: list[str] = []
    for col, erase in mt.strategies().items():
        if erase.strategy is Strategy.PSEUDONYM:
            values[col] = new_value(secret, erase, "", subject.subject_ref)
            keep_null.append(col)  # as row by row: an empty field stays empty
        else:
            values[col] = new_value(secret, erase, None, subject.subject_ref)
    return "update_where", [{"where": [[c, v] for c, v in conditions], "set": values, "keep_null": keep_null}]


# -- planning ----------------------------------------------------------------------------------


def plan_rows(
    secret: bytes,
    pdb: ProductDB,
    mt: MapTable,
    kind: str,
    *,
    found: list[Found],
    subject: Subject,
    cut: dict[str, set[Any]] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """(operation, rows) for one table: ``read``, ``delete`` or ``update`` with values to write.
    ``cut``: link columns of this table (outward) and the values whose link an erasure clears."""
    if kind in READ_KINDS:
        return "read", [f.row for f in found]
    keys = pdb.key_columns(mt)
    if kind == Kind.ERASURE.value and mt.delete_row:
        return "delete", [_address(keys, f) for f in found]
    rows: list[dict[str, Any]] = []
    for f in found:
        if kind == Kind.ERASURE.value:
            changes = {
                col: new_value(secret, erase, f.row.get(col), subject.subject_ref)
                for col, erase in mt.strategies().items()
                if col in f.row
            }
            for col, values in (cut or {}).items():
                if f.row.get(col) is not None and f.row.get(col) in values:
                    changes[col] = None  # the person's own link to a row kept or deleted
            changes = {c: v for c, v in changes.items() if v != f.row.get(c)}
        else:
            changes = _corrections(mt, f.row, subject.corrections)
        if not changes:
            continue
        item = _address(keys, f)
        item["set"] = changes
        if not keys:
            item["old"] = {c: f.row.get(c) for c in changes}
        rows.append(item)
    return "update", rows


def _address(keys: list[str], f: Found) -> dict[str, Any]:
    if keys:
        return {"key": {k: f.row[k] for k in keys}}
    return {"key": None, "match": [list(p) for p in f.pairs]}


def _corrections(mt: MapTable, row: dict[str, Any], corrections: dict[str, str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, fdef in mt.fields.items():
        for target in (f"{mt.name}.{name}", fdef.category):
            if target in corrections and name in row and row[name] != corrections[target]:
                changes[name] = corrections[target]
                break
    return changes


# -- the run -----------------------------------------------------------------------------------


@dataclass
class PartState:
    """A part as stored in Vern's database before this run."""

    id: str
    status: str
    has_tasks: bool
    rows_found: int = 0
    rows_done: int = 0
    error: str | None = None


@dataclass
class Job:
    """One request in a run: what was read before claiming it, and what this run did."""

    request_id: str
    org_id: str
    kind: str
    status: str  # as read, before the claim
    attempts: int  # as read; the claim succeeds only if nobody changed it since
    key_id: str
    channel: str
    locale: str
    received_at: Any
    org_name: str
    org_slug: str
    purpose: str | None
    subject: Subject
    parts: dict[str, PartState] = field(default_factory=dict)
    # filled in by the run
    claimed: bool = False
    fresh: dict[str, FreshPart] = field(default_factory=dict)  # planned now, by database
    stored: list[str] = field(default_factory=list)  # databases carried on from stored plans
    outcome: dict[str, tuple[str, int, int, str | None]] = field(default_factory=dict)
    package: bytes | None = None
    # (key id, e-mail, locale) of the staff to tell if this run, the last automatic attempt,
    # ends partial: read before the run, as the finish's transaction may be pipelined
    staff: list[tuple[str, str, str]] = field(default_factory=list)
    moved: int = 0  # planned rows written in this run (progress)
    result: str = ""
    # what was searched (database -> table -> lookup columns) and what was kept because others
    # still use it, for the outcome
    searched: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    kept: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    answer_nobody_found: bool = False  # the customer's setting: no staff review of "nobody found"

    @property
    def writes(self) -> bool:
        return self.kind in WRITE_KINDS


@dataclass
class FreshPart:
    part_id: str
    new: bool  # the part row does not exist yet
    found: dict[str, list[Found]] = field(default_factory=dict)
    where: dict[str, list[tuple[str, list[Any]]]] = field(default_factory=dict)  # set-based tables
    # (table, operation, rows, ""): the task ids are given when the plan is stored (``_task_rows``)
    planned: list[tuple[str, str, list[dict[str, Any]], str]] = field(default_factory=list)
    counted: dict[str, int] = field(default_factory=dict)  # set-based tables: rows counted at planning
    task_id: str | None = None  # the part's one task, when its plan is stored whole
    error: str | None = None
    shared: dict[str, list[Shared]] = field(default_factory=dict)  # kept: others refer to them

    @property
    def rows_found(self) -> int:
        """The person's rows: those read, and those a set-based statement will hit (counted when
        planned, so a statement repeated after a crash does not change the count)."""
        return sum(len(v) for v in self.found.values()) + sum(self.counted.values())

    @property
    def rows_planned(self) -> int:
        return sum(len(rows) for _t, _o, rows, _i in self.planned)

    @property
    def rows_done(self) -> int:
        """Rows written: by key as planned, and the rows each set-based statement covers."""
        return sum(rows_written(op, rows) for _t, op, rows, _i in self.planned)


def rows_written(op: str, rows: list[Any]) -> int:
    """The person's rows a planned write covers: one per row written by key, the counted rows of a
    set-based statement, every table's of a whole part's plan. Fixed at planning, so a checkpoint
    repeated after a crash records the same number."""
    if op == WHOLE_OP:
        return sum(rows_written(table_op, table_rows) for _t, table_op, table_rows in rows)
    if op in SET_OPS:
        return sum(int(row.get("count") or 0) for row in rows)
    return len(rows)


def _now() -> Any:
    return bindparam("now", type_=UTCDateTime())


def _system(stmt: Any) -> Any:
    """The engine's bookkeeping runs on a bare connection, without a tenant scope: its
    statements address rows only by the ids of requests loaded in their organisation."""
    return stmt.execution_options(cross_tenant="rights engine: rows of requests loaded by id")


_T_REQ = _table(RightsRequest)
_T_PART = _table(Part)
_T_TASK = _table(Task)
_T_LEDGER = _table(LedgerEntry)

# Prepared once: SQLAlchemy keeps their compiled form, so each run only binds values.
_INSERT_PART = _system(insert(_T_PART))
_INSERT_TASK = _system(insert(_T_TASK))
_INSERT_LEDGER = _system(insert(_T_LEDGER))
_INSERT_AUDIT = insert(_table(AuditEvent))
_INSERT_MAIL = insert(_table(OutboxMessage))
_CLAIM = _system(
    update(_T_REQ)
    .where(
        _T_REQ.c.id == bindparam("w_id"),
        _T_REQ.c.attempts == bindparam("w_attempts"),
        _T_REQ.c.status == bindparam("w_status"),
    )
    .values(
        status=Status.RUNNING.value,
        heartbeat_at=_now(),
        attempts=_T_REQ.c.attempts + 1,
        started_at=func.coalesce(_T_REQ.c.started_at, _now()),
        progress_total=_T_REQ.c.progress_total + bindparam("total"),
    )
)
_PART_PLANNED = _system(
    update(_T_PART)
    .where(_T_PART.c.id == bindparam("w_id"))
    .values(
        status=bindparam("status"),
        rows_found=bindparam("rows_found"),
        error=bindparam("error"),
        attempts=_T_PART.c.attempts + bindparam("failed"),
        updated_at=_now(),
    )
)
_PART_RESUMED = _system(
    update(_T_PART)
    .where(_T_PART.c.id == bindparam("w_id"))
    .values(status=PartStatus.PLANNED.value, error=None, updated_at=_now())
)
_TASKS_DONE = _system(
    update(_T_TASK)
    .where(_T_TASK.c.part_id == bindparam("w_part"))
    .values(status="done", rows_done=_T_TASK.c.rows_total, plan=None, updated_at=_now())
)
_LEDGER_DONE = _system(
    update(_T_LEDGER)
    .where(
        _T_LEDGER.c.request_id == bindparam("w_request"),
        _T_LEDGER.c.database == bindparam("w_database"),
        _T_LEDGER.c.done_at.is_(None),
    )
    .values(done_at=_now())
)
_PART_DONE = _system(
    update(_T_PART)
    .where(_T_PART.c.id == bindparam("w_id"))
    .values(
        status=bindparam("status"),
        rows_done=bindparam("moved", type_=Integer()),
        error=bindparam("error"),
        attempts=_T_PART.c.attempts + bindparam("failed"),
        updated_at=_now(),
    )
)

# PostgreSQL: the three statements above for one part (its tasks, its ledger entry, the part
# itself) in one statement - data-modifying CTEs, one round trip instead of three.
_CHECKPOINTS_DONE = _PART_DONE.add_cte(_TASKS_DONE.cte("done_tasks"), _LEDGER_DONE.cte("done_ledger"))

_together: dict[tuple[tuple[str, ...], ...], Any] = {}


def _insert_together(conn: Connection, rows: _PlanRows) -> None:
    """PostgreSQL: a new part whose plan is one task goes in with its task and ledger entry as one
    statement (data-modifying CTEs; the foreign keys are checked at its end) - one round trip
    instead of three. The rows are taken out of ``rows``; the rest is inserted as before."""
    if not rows.new_parts:
        return
    tasks: dict[str, list[dict[str, Any]]] = {}
    for task in rows.tasks:
        tasks.setdefault(task["part_id"], []).append(task)
    entries = {(e["request_id"], e["database"]): e for e in rows.ledger}
    together: list[dict[str, Any]] = []
    taken: set[str] = set()
    for part in rows.new_parts:
        own = tasks.get(part["id"], [])
        entry = entries.get((part["request_id"], part["database"]))
        if len(own) != 1 or entry is None:
            continue
        taken.add(part["id"])
        together.append(
            {f"p_{k}": v for k, v in part.items()}
            | {f"t_{k}": v for k, v in own[0].items()}
            | {f"l_{k}": v for k, v in entry.items()}
        )
    if not together:
        return
    shape = tuple(tuple(sorted(k for k in together[0] if k.startswith(p))) for p in ("p_", "t_", "l_"))
    stmt = _together.get(shape)
    if stmt is None:

        def prefixed(table: Table, keys: tuple[str, ...]) -> Any:
            return insert(table).values({k[2:]: bindparam(k, type_=table.c[k[2:]].type) for k in keys})

        stmt = _system(prefixed(_T_LEDGER, shape[2])).add_cte(
            prefixed(_T_PART, shape[0]).cte("new_part"), prefixed(_T_TASK, shape[1]).cte("new_task")
        )
        _together[shape] = stmt
    execute_fast(conn, stmt, together)
    rows.new_parts = [p for p in rows.new_parts if p["id"] not in taken]
    rows.tasks = [t for t in rows.tasks if t["part_id"] not in taken]
    entered = {(row["p_request_id"], row["p_database"]) for row in together}
    rows.ledger = [e for e in rows.ledger if (e["request_id"], e["database"]) not in entered]


class _PlanNotDurable(Exception):
    """The plan transaction failed to commit while the product statements ran."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error



class _ProductCommitFailed(Exception):
    """A deferred product COMMIT failed: the part's writes did not happen."""

    def __init__(self, job: Job, fresh: FreshPart, qualified: str, error: BaseException) -> None:
        super().__init__(str(error))
        self.job, self.fresh, self.qualified, self.error = job, fresh, qualified, error


# Commits of plan (and lone product) transactions, each on its run's own connection (the driver
# releases the GIL while the database writes and syncs). A commit never waits for another run's,
# so a few threads serve every run.
_COMMITTER = ThreadPoolExecutor(max_workers=8, thread_name_prefix="vern-rights-commit")


def _commit_and_close(session: Session) -> None:
    try:
        session.commit()
    finally:
        session.close()


@dataclass
class _PlanRows:
    """What one plan transaction writes, gathered to go as one statement per table."""

    new_parts: list[dict[str, Any]] = field(default_factory=list)
    old_parts: list[dict[str, Any]] = field(default_factory=list)
    resumed: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Engine:
    """Carries out claimed requests in three steps around the product writes:

    1. read (no side effects): discover each person's rows and compute what to do with them;
    2. one durable Vern transaction: claim every request (only if nobody changed it since it was
       read), store the plans sealed under each request's key with the ledger entries - and for
       requests that write nothing to the product (access, portability, restriction, objection,
       withdrawal) finish them in the same transaction;
    3. the product writes (one transaction per database for a batch of people, at most
       ``batch_rows`` rows; bigger plans in chunks, each with its checkpoint), then one Vern
       transaction with every checkpoint and every finish.

    A crash before 2 leaves the requests as they were; between 2 and the end of 3 they are
    ``running`` with their plans stored, and a resumed run repeats the idempotent writes.
    """

    database: Database
    data_map: DataMap
    secret: bytes
    urls: dict[str, str] | None = None
    batch_rows: int = 500
    on_step: Step | None = None
    on_progress: Progress | None = None
    # One connection to Vern's database and one per product database for the whole run: the
    # bookkeeping transactions and the product's reads and writes reuse them.
    _vern: Connection | None = None
    _held: dict[str, Connection] = field(default_factory=dict)
    # The plan transaction's COMMIT while the product statements run (see ``_commit_plans``).
    _plan_commit: tuple[Future[None], list[Job]] | None = None
    # A lone person's product COMMIT while the checkpoint's statements run (see ``_write_fresh``).
    _product_commit: tuple[Future[None], Connection, Job, FreshPart, str] | None = None

    def step(self, name: str) -> None:
        if self.on_step is not None:
            self.on_step(name)

    def product(self, definition: DatabaseDef, key: str | None = None) -> ProductDB:
        return product_db(definition, self.urls, key)

    @contextmanager
    def transaction(self, *, commit: bool = True) -> Iterator[Session]:
        """A Vern transaction (system scope: the engine addresses rows only by the ids of
        requests loaded in their tenant) on the run's connection. With ``commit=False`` the body
        commits (or hands the session on to be committed and closed) itself; an error rolls back."""
        if self._vern is None or self._vern.invalidated or self._vern.closed:
            self._vern = self.database.engine.connect()
        session = Session(bind=self._vern, expire_on_commit=False)
        session.info["scope"] = _SCOPE
        handed_on = False
        try:
            yield session
            if commit:
                session.commit()
            else:
                handed_on = self._plan_commit is not None
        except BaseException:
            session.rollback()
            raise
        finally:
            if not handed_on:
                session.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A Vern read that changes nothing (loading the requests). On PostgreSQL it runs outside
        a transaction - each statement sees its own committed snapshot, and the BEGIN and COMMIT
        round trips are saved; every later change is guarded by what was read (the claim checks
        the attempt counter), so nothing depends on the reads sharing one snapshot."""
        if self._vern is None or self._vern.invalidated or self._vern.closed:
            self._vern = self.database.engine.connect()
        conn = self._vern
        autocommit = conn.dialect.name == "postgresql" and not conn.in_transaction()
        if autocommit:
            conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            with self.transaction() as session:
                yield session
        finally:
            if autocommit and not conn.closed and not conn.invalidated:
                conn.execution_options(isolation_level=conn.default_isolation_level)

    def close(self) -> None:
        """Give the run's connections back (a product transaction still open is rolled back)."""
        for conn in [self._vern, *self._held.values()]:
            if conn is not None:
                with suppress(SQLAlchemyError):
                    conn.close()
        self._vern = None
        self._held.clear()

    def _product_conn(self, definition: DatabaseDef, key: str) -> tuple[ProductDB, Connection]:
        pdb = self.product(definition, key)
        held = _held_as(definition, key)
        conn = self._held.get(held)
        if conn is None or conn.closed or conn.invalidated:
            conn = pdb.connect()
            self._held[held] = conn
        return pdb, conn

    def _drop_conn(self, qualified: str) -> None:
        conn = self._held.pop(qualified, None)
        if conn is not None:
            with suppress(SQLAlchemyError):
                conn.close()

    def process(self, jobs: list[Job]) -> None:
        """Run loaded jobs to their end (``Job.claimed`` says which this run got)."""
        try:
            self.step("started")
            for job in jobs:
                if job.kind not in FLAG_KINDS:
                    self._discover(job)
            self._commit_plans(jobs)
            claimed = [j for j in jobs if j.claimed and j.writes]
            if not claimed:
                return
            self._write_fresh(claimed)
            self._plans_durable()
            for qualified in list(self._held):
                self._drop_conn(qualified)  # ends any read transaction before the chunked runs
            for job in claimed:
                for qualified in job.stored:
                    part = job.parts[qualified]
                    self._execute(job.request_id, part.id, self.data_map.database(qualified), job.subject)
            self._close(claimed)
        except _PlanNotDurable as exc:
            raise exc.error from None  # the product transactions were rolled back
        finally:
            if self._plan_commit is not None:  # never leave the commit running on a closed connection
                with suppress(BaseException):
                    self._plan_commit[0].result()
                self._plan_commit = None
            if self._product_commit is not None:
                with suppress(BaseException):
                    self._product_commit[0].result()
                with suppress(SQLAlchemyError):
                    self._product_commit[1].close()
                self._product_commit = None
            self.close()

    # -- 1. read ---------------------------------------------------------------------------------

    def _discover(self, job: Job) -> None:
        for definition in self.data_map.databases():
            qualified = definition.qualified
            known = job.parts.get(qualified)
            if job.writes and known is not None:
                if known.status == PartStatus.DONE.value:  # finished by an earlier run
                    job.outcome[qualified] = (known.status, known.rows_found, known.rows_done, known.error)
                    continue
                if known.status == PartStatus.PLANNED.value or known.has_tasks:
                    job.stored.append(qualified)  # planned before: carry on from the checkpoint
                    continue
            fresh = FreshPart(part_id=known.id if known else new_id(), new=known is None)
            job.fresh[qualified] = fresh
            try:
                pdb, conn = self._product_conn(definition, job.subject.tenant_value)
                erasure = job.kind == Kind.ERASURE.value
                job.searched[qualified] = {
                    t: sorted(col for kind, col in mt.identities.items() if kind in job.subject.identities)
                    for t, mt in definition.tables.items()
                    if any(kind in job.subject.identities for kind in mt.identities)
                }
                fresh.found, where = discover(
                    pdb,
                    job.subject,
                    set_based=_set_based(definition) if erasure else frozenset(),
                    conn=conn,
                    shared=fresh.shared,
                )
                fresh.where = where
                # rows pointing at a row go first
                order = definition.erasure_order() if erasure else definition.dependency_order()
                cuts = _cuts(pdb, definition, fresh, job, qualified) if erasure else {}
                for tname in order:
                    if tname in where:
                        mt = definition.tables[tname]
                        op, rows = set_based_plan(self.secret, mt, where[tname], job.subject)
                        # counted now, in the transaction that writes them: kept with the plan
                        count = pdb.count_where(conn, mt, job.subject.tenant_value, where[tname])
                        rows[0]["count"] = fresh.counted[tname] = count
                        fresh.planned.append((tname, op, rows, ""))
                        continue
                    op, rows = plan_rows(
                        self.secret,
                        pdb,
                        definition.tables[tname],
                        job.kind,
                        found=fresh.found[tname],
                        subject=job.subject,
                        cut=cuts.get(tname) if erasure else None,
                    )
                    if rows and job.writes:
                        fresh.planned.append((tname, op, rows, ""))
            except (Unreachable, SQLAlchemyError) as exc:
                fresh.error = describe_failure(exc)
                fresh.found, fresh.planned = {}, []
                self._drop_conn(_held_as(definition, job.subject.tenant_value))

    # -- 2. claim and store the plans ------------------------------------------------------------

    def _commit_plans(self, jobs: list[Job]) -> None:
        from vern.rights import service

        for job in jobs:  # answers are built before the transaction, which then only stores them
            if job.kind in READ_KINDS and all(f.error is None for f in job.fresh.values()):
                job.package = service.build_package(self.data_map, job, self._rows_of(job))
        rows = _PlanRows()
        with self.transaction(commit=False) as session:
            if not any(j.writes for j in jobs):
                relaxed_durability(session)  # nothing is written to a product: a lost run is redone
            conn = session.connection()
            now = utcnow()
            for job in jobs:
                if self._claim(session, job, now):
                    self._plan_rows(session, job, rows, now)
            with pipeline(conn):  # PostgreSQL: what the claims decided, in one round trip
                if conn.dialect.name == "postgresql":
                    _insert_together(conn, rows)
                for stmt, params in (
                    (_INSERT_PART, rows.new_parts),
                    (_PART_PLANNED, rows.old_parts),
                    (_PART_RESUMED, rows.resumed),
                    (_INSERT_TASK, rows.tasks),
                    (_INSERT_LEDGER, rows.ledger),
                ):
                    if params:
                        execute_fast(conn, stmt, params)
                for job in jobs:
                    if job.claimed and not job.writes:
                        service.finish_job(session, job)
                write_book(session)
            if conn.dialect.name != "sqlite" and any(j.claimed and j.writes for j in jobs):
                # The plans must be durable before any product change is: the COMMIT goes on while
                # the product statements run in their (uncommitted) transactions, and each product
                # COMMIT waits for it (``_plans_durable``); should it fail, they are rolled back.
                # A server does the commit's work; SQLite would do it in this process, competing
                # with the product statements, so there it commits first.
                self._plan_commit = (_COMMITTER.submit(_commit_and_close, session), jobs)
                return
            session.commit()
        self._planned(jobs)

    def _planned(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.claimed:
                for qualified, fresh in job.fresh.items():
                    if not fresh.error:
                        self.step(f"planned:{qualified}")

    def _plans_durable(self) -> None:
        """Wait until the plan transaction has committed (before any product COMMIT)."""
        if self._plan_commit is None:
            return
        future, jobs = self._plan_commit
        try:
            future.result()
        except BaseException as exc:
            self._plan_commit = None
            raise _PlanNotDurable(exc) from exc
        self._plan_commit = None
        self._planned(jobs)

    def _claim(self, session: Session, job: Job, now: Any) -> bool:
        """Move the job's request to running - only if nobody changed it since it was read."""
        total = sum(f.rows_planned for f in job.fresh.values()) if job.writes else 0
        got = execute_fast(
            session.connection(),
            _CLAIM,
            {
                "w_id": job.request_id,
                "w_attempts": job.attempts,
                "w_status": job.status,
                "now": now,
                "total": total,
            },
        )
        if not got:
            return False  # another runner has it, or it changed since it was read
        job.claimed = True
        book(
            session,
            "rights.request.start",
            org_id=job.org_id,
            resource=f"rights_request:{job.request_id}",
            details={"new": {"status": Status.RUNNING.value, "attempt": job.attempts + 1}},
        )
        return True

    def _plan_rows(self, session: Session, job: Job, rows: _PlanRows, now: Any) -> None:
        """The bookkeeping rows of one claimed job: its parts, their plans and ledger entries."""
        for qualified in job.stored:  # a failed part with stored plans is carried on
            if job.parts[qualified].status == PartStatus.FAILED.value:
                rows.resumed.append({"w_id": job.parts[qualified].id, "now": now})
                job.parts[qualified].status = PartStatus.PLANNED.value
        for qualified, fresh in job.fresh.items():
            if fresh.error:
                status = PartStatus.FAILED.value
            elif job.writes and fresh.planned:
                status = PartStatus.PLANNED.value
            else:
                status = PartStatus.DONE.value
            failed = 1 if fresh.error else 0
            if fresh.new:
                rows.new_parts.append(
                    {
                        "id": fresh.part_id,
                        "request_id": job.request_id,
                        "database": qualified,
                        "org_id": job.org_id,
                        "status": status,
                        "rows_found": fresh.rows_found,
                        "rows_done": 0,
                        "error": fresh.error,
                        "attempts": failed,
                        "updated_at": now,
                    }
                )
            else:
                rows.old_parts.append(
                    {
                        "w_id": fresh.part_id,
                        "status": status,
                        "rows_found": fresh.rows_found,
                        "error": fresh.error,
                        "failed": failed,
                        "now": now,
                    }
                )
            if fresh.error:
                self._audit_failure(session, job, qualified, fresh.error)
            if status != PartStatus.PLANNED.value:
                job.outcome[qualified] = (status, fresh.rows_found, 0, fresh.error)
            if fresh.planned:
                rows.tasks.extend(self._task_rows(job, fresh, now))
                if job.kind == Kind.ERASURE.value:
                    rows.ledger.append(self._ledger(job, self.data_map.database(qualified), fresh, now=now))

    def _rows_of(self, job: Job) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """The person's rows for the answer, with the shared rows reached from them (their own
        address is their data too; nothing is followed from it)."""
        rows: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for qualified, fresh in job.fresh.items():
            tables = {t: [f.row for f in found] for t, found in fresh.found.items() if found}
            for t, kept in fresh.shared.items():
                tables.setdefault(t, []).extend(k.row for k in kept)
            rows[qualified] = tables
        return rows

    def _audit_failure(self, session: Session, job: Job, qualified: str, error: str) -> None:
        book(
            session,
            "rights.part.fail",
            org_id=job.org_id,
            resource=f"rights_request:{job.request_id}",
            outcome="failure",
            details={"new": {"database": qualified, "error": error}},
        )

    # -- 3. product writes, checkpoints, finish --------------------------------------------------

    def _write_fresh(self, jobs: list[Job]) -> None:
        """Plans made in this run: small ones share one product transaction per database (up to
        ``batch_rows`` rows); if it fails, each person is written alone so that one bad row fails
        only its own request's part. Bigger plans go in checkpointed chunks."""
        pending: dict[tuple[str, str], list[tuple[Job, FreshPart]]] = {}
        for job in jobs:
            for qualified, fresh in job.fresh.items():
                if fresh.error or not fresh.planned:
                    continue
                if fresh.rows_planned > self.batch_rows:
                    job.stored.append(qualified)  # stored now: run in chunks from the checkpoints
                    job.parts[qualified] = PartState(fresh.part_id, PartStatus.PLANNED.value, True)
                    continue
                held = _held_as(self.data_map.database(qualified), job.subject.tenant_value)
                pending.setdefault((qualified, held), []).append((job, fresh))
        # One person in one database and nothing in chunks (a single request's run): the product
        # COMMIT goes on while the checkpoint's statements run in Vern's transaction, which commits
        # only after it (``_products_committed``) - or, if it failed, is rolled back and redone
        # with the part failed. Otherwise each product transaction commits here.
        alone = len(pending) == 1 and len(next(iter(pending.values()))) == 1
        alone = alone and not any(job.stored for job in jobs)
        for (qualified, _held), work in pending.items():  # per customer with schema/database tenancy
            definition = self.data_map.database(qualified)
            for group in self._groups(work):
                if self._write_group(definition, group, defer=alone):
                    continue
                self.step(f"product-commit:{qualified}")

    def _products_committed(self) -> None:
        """Wait for a deferred product COMMIT; raises ``_ProductCommitFailed`` if it failed."""
        if self._product_commit is None:
            return
        future, conn, job, fresh, qualified = self._product_commit
        self._product_commit = None
        try:
            future.result()
        except (Unreachable, SQLAlchemyError) as exc:
            raise _ProductCommitFailed(job, fresh, qualified, exc) from exc
        finally:
            with suppress(SQLAlchemyError):
                conn.close()
        self.step(f"product-commit:{qualified}")

    def _groups(self, work: list[tuple[Job, FreshPart]]) -> list[list[tuple[Job, FreshPart]]]:
        groups: list[list[tuple[Job, FreshPart]]] = [[]]
        rows = 0
        for item in work:
            size = item[1].rows_planned
            if groups[-1] and rows + size > self.batch_rows:
                groups.append([])
                rows = 0
            groups[-1].append(item)
            rows += size
        return groups

    def _write_group(
        self, definition: DatabaseDef, group: list[tuple[Job, FreshPart]], *, defer: bool = False
    ) -> bool:
        """Writes one group of people in one database, and notes each part's outcome. With
        ``defer`` the COMMIT is started and left running; returns whether it was."""
        qualified = definition.qualified
        key = group[0][0].subject.tenant_value  # one customer per group with schema/database tenancy
        held = _held_as(definition, key)
        deferred = False
        try:
            # the product transaction that read the rows (if still open) also writes them
            pdb, conn = self._product_conn(definition, key)
            if not conn.in_transaction():
                conn.begin()
            try:
                for job, fresh in group:
                    for tname, op, rows, _task_id in fresh.planned:
                        pdb.apply(conn, definition.tables[tname], job.subject.tenant_value, op, rows)
                self._plans_durable()
                self.step(f"product-write:{qualified}")
                if defer:
                    self._held.pop(held)
                    job, fresh = group[0]
                    self._product_commit = (_COMMITTER.submit(conn.commit), conn, job, fresh, qualified)
                    deferred = True
                else:
                    conn.commit()
            except BaseException:
                self._drop_conn(held)  # rolls the transaction back
                raise
        except (Unreachable, SQLAlchemyError) as exc:
            if len(group) > 1 and not isinstance(exc, Unreachable):
                for item in group:  # one person at a time, to find the one that fails
                    self._write_group(definition, [item])
                return False
            for job, fresh in group:
                job.outcome[qualified] = (PartStatus.FAILED.value, fresh.rows_found, 0, describe_failure(exc))
            return False
        for job, fresh in group:
            job.outcome[qualified] = (PartStatus.DONE.value, fresh.rows_found, fresh.rows_done, None)
        return deferred

    def _close(self, jobs: list[Job]) -> None:
        """One Vern transaction: the checkpoints of the writes just made, and every finish."""
        try:
            self._close_once(jobs)
        except _ProductCommitFailed as failed:  # Vern's transaction was rolled back: redo it
            failed.job.outcome[failed.qualified] = (
                PartStatus.FAILED.value,
                failed.fresh.rows_found,
                0,
                describe_failure(failed.error),
            )
            for job in jobs:
                job.moved = 0
            self._close_once(jobs)

    def _close_once(self, jobs: list[Job]) -> None:  # noqa: PLR0912, PLR0915 - checkpoints of every part
        from vern.rights import service

        now = utcnow()
        tasks: list[dict[str, Any]] = []
        ledger: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        together: list[dict[str, Any]] = []  # PostgreSQL: a part's three checkpoints as one statement
        with self.transaction() as session:
            one_statement = session.get_bind().dialect.name == "postgresql"
            for job in jobs:
                for qualified, fresh in job.fresh.items():
                    if fresh.error or not fresh.planned or qualified in job.stored:
                        continue
                    status, _found, moved, error = job.outcome[qualified]
                    failed = status == PartStatus.FAILED.value
                    part = {
                        "w_id": fresh.part_id,
                        "status": status,
                        "moved": moved,
                        "error": error,
                        "failed": 1 if failed else 0,
                        "now": now,
                    }
                    if failed:
                        assert error is not None
                        self._audit_failure(session, job, qualified, error)
                        parts.append(part)
                        continue
                    job.moved += fresh.rows_planned
                    task = {"w_part": fresh.part_id, "now": now}
                    if job.kind != Kind.ERASURE.value:
                        tasks.append(task)
                        parts.append(part)
                        continue
                    entry = {"w_request": job.request_id, "w_database": qualified}
                    if one_statement:
                        together.append(task | entry | part)
                    else:
                        tasks.append(task)
                        ledger.append(entry | {"now": now})
                        parts.append(part)
            self._read_stored_outcomes(session, jobs)
            conn = session.connection()
            # PostgreSQL: the checkpoints, the finish, the audit records and the mail in one round
            # trip - none of them needs an answer before the next (runs from stored plans read
            # and clear them with SQLAlchemy, so they go one by one).
            # An erasure that finishes also erases the person in Vern's own data, which reads
            # rows as it goes (``vern.retention.erasure``): no pipeline then either.
            erasing = any(job.kind == Kind.ERASURE.value
                          and all(o[0] == PartStatus.DONE.value for o in job.outcome.values())
                          for job in jobs)
            with pipeline(conn) if not any(job.stored for job in jobs) and not erasing else nullcontext():
                relaxed_durability(session)
                if together:
                    execute_fast(conn, _CHECKPOINTS_DONE, together)
                if tasks:
                    execute_fast(conn, _TASKS_DONE, tasks)
                if ledger:
                    execute_fast(conn, _LEDGER_DONE, ledger)
                if parts:
                    execute_fast(conn, _PART_DONE, parts)
                for job in jobs:
                    service.finish_job(session, job)
                write_book(session)
            self._products_committed()  # Vern records only what the product has committed
        for job in jobs:
            for qualified in job.fresh:
                if qualified not in job.stored:
                    self.step(f"checkpoint:{qualified}")
            if self.on_progress is not None:
                total = sum(o[2] for o in job.outcome.values())
                self.on_progress(total, total)

    def _read_stored_outcomes(self, session: Session, jobs: list[Job]) -> None:
        """Parts run from stored plans (in chunks): their state is in the database."""
        stored = {j.request_id: j for j in jobs if j.stored}
        if not stored:
            return
        for part in session.execute(
            select(
                _T_PART.c.request_id,
                _T_PART.c.database,
                _T_PART.c.status,
                _T_PART.c.rows_found,
                _T_PART.c.rows_done,
                _T_PART.c.error,
            ).where(_T_PART.c.request_id.in_(list(stored)))
        ):
            job = stored[part.request_id]
            if part.database in job.stored:
                job.outcome[part.database] = (part.status, part.rows_found, part.rows_done, part.error)

    def _write(
        self,
        definition: DatabaseDef,
        subject: Subject,
        batch: list[tuple[str, str, list[dict[str, Any]], str, int]],
    ) -> None:
        """One product transaction with the batch's writes, in order."""
        pdb = self.product(definition, subject.tenant_value)
        with pdb.connect() as conn, conn.begin():
            for tname, op, rows, _task_id, _end in batch:
                steps: list[Any] = rows if op == WHOLE_OP else [[tname, op, rows]]
                for table_name, table_op, table_rows in steps:
                    mt = definition.tables[table_name]
                    pdb.apply(conn, mt, subject.tenant_value, table_op, table_rows)
            self.step(f"product-write:{definition.qualified}")

    def _fail_part(self, request_id: str, part_id: str, org_id: str, error: str) -> None:
        with self.transaction() as session:
            self._fail_part_in(session, request_id, part_id, org_id, error)

    def _fail_part_in(self, session: Session, request_id: str, part_id: str, org_id: str, error: str) -> None:
        part = session.get(Part, part_id)
        assert part is not None
        part.status = PartStatus.FAILED.value
        part.error = error
        part.attempts += 1
        part.updated_at = utcnow()
        record(
            session,
            "rights.part.fail",
            org_id=org_id,
            resource=f"rights_request:{request_id}",
            outcome="failure",
            details={"new": {"database": part.database, "error": error}},
        )

    def _task_rows(self, job: Job, fresh: FreshPart, now: Any) -> list[dict[str, Any]]:
        """The stored plan of one part: a plan that fits in one product transaction is one task
        (table ``*``, every table's writes in order); a bigger one is a task per table, run in
        chunks of ``batch_rows`` rows with a checkpoint after each."""
        base = {
            "request_id": job.request_id,
            "part_id": fresh.part_id,
            "org_id": job.org_id,
            "rows_done": 0,
            "status": "planned",
            "updated_at": now,
        }
        if fresh.rows_planned <= self.batch_rows:
            tables = [[tname, op, rows] for tname, op, rows, _id in fresh.planned]
            fresh.task_id = new_id()
            return [
                base
                | {
                    "id": fresh.task_id,
                    "table_name": WHOLE,
                    "seq": 0,
                    "plan": PII(job.key_id, dumps({"op": WHOLE_OP, "rows": tables})),
                    "rows_total": fresh.rows_planned,
                }
            ]
        return [
            base
            | {
                "id": new_id(),
                "table_name": tname,
                "seq": seq,
                "plan": PII(job.key_id, dumps({"op": op, "rows": rows})),
                "rows_total": len(rows),
            }
            for seq, (tname, op, rows, _id) in enumerate(fresh.planned)
        ]

    def _ledger(self, job: Job, definition: DatabaseDef, fresh: FreshPart, *, now: Any) -> dict[str, Any]:
        """One ledger entry per erased person and database: for every table, keyed hashes of the
        values that matched the person (``m:``) and of the values written instead (``w:``)."""
        tables: dict[str, list[str]] = {}
        counts: dict[str, int] = {}
        cut: dict[str, list[str]] = {}
        known: dict[tuple[str, str], str] = {}  # the same value in several tables is hashed once

        def hashed(mt: MapTable, col: str, value: Any) -> str:
            got = known.get((col, str(value)))
            if got is None:
                got = known[col, str(value)] = ledger_hash(self.secret, mt, col, value)
            return got

        for tname, op, rows, _id in fresh.planned:
            mt = definition.tables[tname]
            hashes = {"m:" + hashed(mt, col, val) for f in fresh.found[tname] for col, val in f.pairs}
            for row in rows:
                for col, values in row.get("where") or ():  # set-based: what its statement matches
                    hashes.update("m:" + hashed(mt, col, val) for val in values)
                for col, value in (row.get("set") or {}).items():
                    if value is not None:
                        hashes.add("w:" + match_hash(self.secret, col, value))
            tables[tname] = sorted(hashes)
            counts[tname] = rows_written(op, rows)  # a set-based table: the rows counted at planning
            cleared = sorted(
                {c for row in rows for c, v in (row.get("set") or {}).items() if v is None}
                & {link.field for link in definition.tables[tname].refers_to}
            )
            if cleared:
                cut[tname] = cleared  # the person's own links cleared, cleared again on a replay
        return {
            "id": new_id(),
            "request_id": job.request_id,
            "database": definition.qualified,
            "table_name": WHOLE,
            "tenant_value": job.subject.tenant_value,
            "subject_ref": job.subject.subject_ref,
            "match_hashes": {"tables": tables, "rows": counts} | ({"cut": cut} if cut else {}),
            "rows": sum(counts.values()),
            "org_id": job.org_id,
            "planned_at": now,
            "done_at": None,
        }

    def _execute(self, request_id: str, part_id: str, definition: DatabaseDef, subject: Subject) -> None:
        """A stored plan, in chunks of at most ``batch_rows`` rows: each chunk one product
        transaction, then its checkpoint in Vern (a repeat of a chunk writes the same values)."""
        while True:
            with self.transaction() as session:
                status = session.scalar(select(Part.status).where(Part.id == part_id))
                if status != PartStatus.PLANNED.value:
                    return
                tasks = session.scalars(
                    select(Task).where(Task.part_id == part_id, Task.status == "planned").order_by(Task.seq)
                ).all()
                batch, complete = self._batch(tasks)
            if batch:
                try:
                    self._write(definition, subject, batch)
                except (Unreachable, SQLAlchemyError) as exc:
                    self._fail_part(request_id, part_id, subject.org_id, describe_failure(exc))
                    return
                self.step(f"product-commit:{definition.qualified}")
            self._checkpoint(request_id, part_id, definition.qualified, batch, close=complete)
            self.step(f"checkpoint:{definition.qualified}")
            if complete:
                return

    def _batch(self, tasks: Any) -> tuple[list[tuple[str, str, list[dict[str, Any]], str, int]], bool]:
        """The next product transaction of a stored plan, and whether it finishes every task: a
        whole part's plan at once, or else one table - at most ``batch_rows`` of its rows (a big
        table is split in chunks). Each is followed by its checkpoint."""
        pending = list(tasks)
        if not pending:
            return [], True
        task = pending[0]
        plan = loads(task.plan.value) if task.plan is not None and task.plan.value else None
        if plan is None:
            raise RuntimeError(f"task {task.id}: the plan is gone")
        if plan["op"] == WHOLE_OP:  # a whole part in one product transaction
            return [(task.table_name, WHOLE_OP, plan["rows"], task.id, task.rows_total)], len(pending) == 1
        rows = plan["rows"][task.rows_done : task.rows_done + self.batch_rows]
        end = task.rows_done + len(rows)
        return [(task.table_name, plan["op"], rows, task.id, end)], end >= task.rows_total and len(
            pending
        ) == 1

    def _checkpoint(
        self,
        request_id: str,
        part_id: str,
        qualified: str,
        batch: list[tuple[str, str, list[dict[str, Any]], str, int]],
        *,
        close: bool,
    ) -> None:
        """Record what the product committed; a repeat of an earlier checkpoint changes nothing
        (the rows a chunk covers were fixed when it was planned)."""
        with self.transaction() as session:
            relaxed_durability(session)
            self._checkpoint_in(session, request_id, part_id, qualified, batch, close=close)
            if self.on_progress is None:
                return
            requests = _table(RightsRequest)
            done, total = session.execute(
                select(requests.c.progress_done, requests.c.progress_total).where(requests.c.id == request_id)
            ).one()
        self.on_progress(done, total)

    def _checkpoint_in(
        self,
        session: Session,
        request_id: str,
        part_id: str,
        qualified: str,
        batch: list[tuple[str, str, list[dict[str, Any]], str, int]],
        *,
        close: bool,
    ) -> None:
        now = utcnow()
        tasks, ledger, parts, requests = (
            _table(Task),
            _table(LedgerEntry),
            _table(Part),
            _table(RightsRequest),
        )
        ends = {
            task_id: (end, end if op == WHOLE_OP else len(rows), rows_written(op, rows))
            for _tname, op, rows, task_id, end in batch
        }
        state = {
            row.id: (row.rows_done, row.rows_total)
            for row in session.execute(
                select(tasks.c.id, tasks.c.rows_done, tasks.c.rows_total).where(tasks.c.id.in_(list(ends)))
            )
        }
        fresh = [tid for tid, (end, _n, _r) in ends.items() if tid in state and state[tid][0] < end]
        moved = sum(ends[tid][1] for tid in fresh)  # progress: planned entries
        done_rows = sum(ends[tid][2] for tid in fresh)  # the person's rows written
        whole = [tid for tid in fresh if ends[tid][0] >= state[tid][1]]
        if whole:
            session.execute(
                update(tasks)
                .where(tasks.c.id.in_(whole))
                .values(rows_done=tasks.c.rows_total, status="done", updated_at=now)
            )
        for tid in fresh:
            if tid not in whole:
                session.execute(
                    update(tasks).where(tasks.c.id == tid).values(rows_done=ends[tid][0], updated_at=now)
                )
        if close:
            session.execute(
                update(ledger)
                .where(
                    ledger.c.request_id == request_id,
                    ledger.c.database == qualified,
                    ledger.c.done_at.is_(None),
                )
                .values(done_at=now)
            )
        part_values: dict[str, Any] = {"rows_done": parts.c.rows_done + done_rows, "updated_at": now}
        if close:
            part_values["status"] = PartStatus.DONE.value
        session.execute(update(parts).where(parts.c.id == part_id).values(**part_values))
        session.execute(
            update(requests)
            .where(requests.c.id == request_id)
            .values(progress_done=requests.c.progress_done + moved, heartbeat_at=now)
        )


def _cuts(
    pdb: ProductDB, definition: DatabaseDef, fresh: FreshPart, job: Job, qualified: str
) -> dict[str, dict[str, set[Any]]]:
    """The person's own outward links an erasure clears (table -> link column -> values): to a
    shared row that is kept, and to a row of theirs that is deleted - where the column may be
    empty. Notes what is kept, and why, for the outcome."""
    cuts: dict[str, dict[str, set[Any]]] = {}
    kept = job.kept.setdefault(qualified, [])
    for mt in definition.tables.values():
        for link in mt.refers_to:
            target = definition.tables[link.table]
            shared = {k.row.get(link.column) for k in fresh.shared.get(link.table, [])}
            deleted = (
                {f.row.get(link.column) for f in fresh.found.get(link.table, [])}
                if target.delete_row
                else set()
            )
            nullable = bool(pdb.table(mt.name).c[link.field].nullable)
            if nullable and (shared | deleted) - {None}:
                cuts.setdefault(mt.name, {})[link.field] = (shared | deleted) - {None}
            for k in fresh.shared.get(link.table, []):
                if k.row.get(link.column) is None:
                    continue
                kept.append(
                    {
                        "table": link.table,
                        "reason": k.reason,
                        "link": f"{mt.name}.{link.field} "
                        + ("cleared" if nullable else "kept (the column cannot be empty)"),
                    }
                )
    if not kept:
        job.kept.pop(qualified)
    return cuts


def book(session: Session, action: str, **fields: Any) -> None:
    """An audit record for this transaction, written with the others in one INSERT by
    ``write_book`` (the same record ``vern.audit.service.record`` would add)."""
    session.info.setdefault("rights_book", []).append(event_row(session, action, **fields))


def book_mail(
    session: Session, *, key_id: str, to: str, subject: str, body: str, kind: str, org_id: str
) -> None:
    """A message for the outbox (as ``vern.notify.service.queue``), written by ``write_book``."""
    session.info.setdefault("rights_mail", []).append(
        {
            "id": new_id(),
            "org_id": org_id,
            "kind": kind,
            "recipient": PII(key_id, to),
            "subject": PII(key_id, subject),
            "body": PII(key_id, body),
            "created_at": utcnow(),
            "attempts": 0,
        }
    )


def write_book(session: Session) -> None:
    conn = session.connection()
    rows = session.info.pop("rights_book", None)
    if rows:
        execute_fast(conn, _INSERT_AUDIT, rows)
    mail = session.info.pop("rights_mail", None)
    if mail:
        execute_fast(conn, _INSERT_MAIL, mail)


def relaxed_durability(session: Session) -> None:
    """On PostgreSQL, let this transaction commit without waiting for its WAL flush.

    Only for bookkeeping that is safe to lose in a server crash: a lost claim puts the request back
    in the queue, a lost checkpoint repeats idempotent writes, a lost finish is done again on
    resume. The plan (with the ledger) is never relaxed: it must exist before the product changes.
    """
    conn = session.connection()
    if conn.dialect.name == "postgresql":  # on the driver's cursor: one round trip, nothing more
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.execute("SET LOCAL synchronous_commit TO OFF")
        finally:
            cur.close()
