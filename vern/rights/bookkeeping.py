"""Vern's own rows of a run of the request engine: the prepared statements on the request, part,
task and ledger tables, the claim, the rows that store the plans (``PlanRows``), the checkpoints
of the parts written (``Checkpoints``, and ``checkpoint_in`` for a chunk of a stored plan), and the
audit records gathered to go with them in one INSERT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Integer, Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from vern.audit.service import event_row, record
from vern.core.crypto import PII
from vern.core.db import UTCDateTime, execute_fast, new_id, utcnow
from vern.datamap.model import DataMap
from vern.rights.models import Kind, LedgerEntry, Part, PartStatus, RightsRequest, Status, Task
from vern.rights.planning import ledger_entry, task_rows
from vern.rights.run_state import WHOLE_OP, FreshPart, Job, rows_written

# A chunk of a stored plan: (table, operation, rows, task id, the task's rows done after it).
Batch = list[tuple[str, str, list[dict[str, Any]], str, int]]


def table_of(model: type[Any]) -> Table:
    """The Core table of a model, for bookkeeping statements that need no ORM unit of work."""
    return cast(Table, model.__table__)


def _now() -> Any:
    return bindparam("now", type_=UTCDateTime())


def _system(stmt: Any) -> Any:
    """The engine's bookkeeping runs on a bare connection, without a tenant scope: its
    statements address rows only by the ids of requests loaded in their organisation."""
    return stmt.execution_options(cross_tenant="rights engine: rows of requests loaded by id")


_T_REQ = table_of(RightsRequest)
_T_PART = table_of(Part)
_T_TASK = table_of(Task)
_T_LEDGER = table_of(LedgerEntry)

# Prepared once: SQLAlchemy keeps their compiled form, so each run only binds values.
_INSERT_PART = _system(insert(_T_PART))
_INSERT_TASK = _system(insert(_T_TASK))
_INSERT_LEDGER = _system(insert(_T_LEDGER))
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


# -- the plan transaction ----------------------------------------------------------------------


def claim(session: Session, job: Job, now: Any) -> bool:
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


@dataclass
class PlanRows:
    """What one plan transaction writes, gathered to go as one statement per table."""

    new_parts: list[dict[str, Any]] = field(default_factory=list)
    old_parts: list[dict[str, Any]] = field(default_factory=list)
    resumed: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)

    def add_job(
        self, session: Session, job: Job, now: Any, *, data_map: DataMap, secret: bytes, batch_rows: int
    ) -> None:
        """The bookkeeping rows of one claimed job: its parts, their plans and ledger entries."""
        for qualified in job.stored:  # a failed part with stored plans is carried on
            if job.parts[qualified].status == PartStatus.FAILED.value:
                self.resumed.append({"w_id": job.parts[qualified].id, "now": now})
                job.parts[qualified].status = PartStatus.PLANNED.value
        for qualified, fresh in job.fresh.items():
            status = _status_planned(job, fresh)
            self._add_part(job, qualified, fresh, status, now)
            if fresh.error:
                audit_failure(session, job, qualified, fresh.error)
            if status != PartStatus.PLANNED.value:
                job.outcome[qualified] = (status, fresh.rows_found, 0, fresh.error)
            if fresh.planned:
                self.tasks.extend(task_rows(job, fresh, now, batch_rows=batch_rows))
                if job.kind == Kind.ERASURE.value:
                    definition = data_map.database(qualified)
                    self.ledger.append(ledger_entry(secret, job, definition, fresh, now=now))

    def _add_part(self, job: Job, qualified: str, fresh: FreshPart, status: str, now: Any) -> None:
        failed = 1 if fresh.error else 0
        if fresh.new:
            self.new_parts.append(
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
            self.old_parts.append(
                {
                    "w_id": fresh.part_id,
                    "status": status,
                    "rows_found": fresh.rows_found,
                    "error": fresh.error,
                    "failed": failed,
                    "now": now,
                }
            )

    def write(self, conn: Connection) -> None:
        """Every row gathered, one statement per table (on PostgreSQL a new part with its one task
        and its ledger entry as one)."""
        if conn.dialect.name == "postgresql":
            _insert_together(conn, self)
        for stmt, params in (
            (_INSERT_PART, self.new_parts),
            (_PART_PLANNED, self.old_parts),
            (_PART_RESUMED, self.resumed),
            (_INSERT_TASK, self.tasks),
            (_INSERT_LEDGER, self.ledger),
        ):
            if params:
                execute_fast(conn, stmt, params)


def _status_planned(job: Job, fresh: FreshPart) -> str:
    """A part's status once its plan is stored: failed, planned (writes to make), or done."""
    if fresh.error:
        return PartStatus.FAILED.value
    if job.writes and fresh.planned:
        return PartStatus.PLANNED.value
    return PartStatus.DONE.value


_together: dict[tuple[tuple[str, ...], ...], Any] = {}


def _insert_together(conn: Connection, rows: PlanRows) -> None:
    """PostgreSQL: a new part whose plan is one task goes in with its task and ledger entry as one
    statement (data-modifying CTEs; the foreign keys are checked at its end) - one round trip
    instead of three. The rows are taken out of ``rows``; the rest is inserted as before."""
    if not rows.new_parts:
        return
    together, taken = _rows_together(rows)
    if not together:
        return
    execute_fast(conn, _together_statement(together[0]), together)
    rows.new_parts = [p for p in rows.new_parts if p["id"] not in taken]
    rows.tasks = [t for t in rows.tasks if t["part_id"] not in taken]
    entered = {(row["p_request_id"], row["p_database"]) for row in together}
    rows.ledger = [e for e in rows.ledger if (e["request_id"], e["database"]) not in entered]


def _rows_together(rows: PlanRows) -> tuple[list[dict[str, Any]], set[str]]:
    """The parameters of each new part with one task and a ledger entry (prefixed ``p_``, ``t_``,
    ``l_``), and the ids of those parts."""
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
    return together, taken


def _together_statement(first: dict[str, Any]) -> Any:
    """The statement for rows of ``first``'s shape, prepared once per shape."""
    shape = tuple(tuple(sorted(k for k in first if k.startswith(p))) for p in ("p_", "t_", "l_"))
    stmt = _together.get(shape)
    if stmt is None:
        stmt = _system(_prefixed(_T_LEDGER, shape[2])).add_cte(
            _prefixed(_T_PART, shape[0]).cte("new_part"), _prefixed(_T_TASK, shape[1]).cte("new_task")
        )
        _together[shape] = stmt
    return stmt


def _prefixed(table: Table, keys: tuple[str, ...]) -> Any:
    return insert(table).values({k[2:]: bindparam(k, type_=table.c[k[2:]].type) for k in keys})


# -- checkpoints and failures ------------------------------------------------------------------


@dataclass
class Checkpoints:
    """The checkpoints of the parts a run wrote from plans made in it, gathered to go as one
    statement per table (on PostgreSQL, with ``one_statement``, a part's three as one)."""

    one_statement: bool
    tasks: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    parts: list[dict[str, Any]] = field(default_factory=list)
    together: list[dict[str, Any]] = field(default_factory=list)

    def add_jobs(self, session: Session, jobs: list[Job], now: Any) -> None:
        for job in jobs:
            for qualified, fresh in job.fresh.items():
                if fresh.error or not fresh.planned or qualified in job.stored:
                    continue
                self._add(session, job, qualified, fresh, now)

    def _add(self, session: Session, job: Job, qualified: str, fresh: FreshPart, now: Any) -> None:
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
            audit_failure(session, job, qualified, error)
            self.parts.append(part)
            return
        job.moved += fresh.rows_planned
        task = {"w_part": fresh.part_id, "now": now}
        if job.kind != Kind.ERASURE.value:
            self.tasks.append(task)
            self.parts.append(part)
            return
        entry = {"w_request": job.request_id, "w_database": qualified}
        if self.one_statement:
            self.together.append(task | entry | part)
        else:
            self.tasks.append(task)
            self.ledger.append(entry | {"now": now})
            self.parts.append(part)

    def write(self, conn: Connection) -> None:
        for stmt, params in (
            (_CHECKPOINTS_DONE, self.together),
            (_TASKS_DONE, self.tasks),
            (_LEDGER_DONE, self.ledger),
            (_PART_DONE, self.parts),
        ):
            if params:
                execute_fast(conn, stmt, params)


def read_stored_outcomes(session: Session, jobs: list[Job]) -> None:
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


def checkpoint_in(
    session: Session, request_id: str, part_id: str, qualified: str, batch: Batch, *, close: bool
) -> None:
    """Record what the product committed of a chunk of a stored plan; a repeat of an earlier
    checkpoint changes nothing (the rows a chunk covers were fixed when it was planned)."""
    now = utcnow()
    ends = {
        task_id: (end, end if op == WHOLE_OP else len(rows), rows_written(op, rows))
        for _tname, op, rows, task_id, end in batch
    }
    state = {
        row.id: (row.rows_done, row.rows_total)
        for row in session.execute(
            select(_T_TASK.c.id, _T_TASK.c.rows_done, _T_TASK.c.rows_total).where(
                _T_TASK.c.id.in_(list(ends))
            )
        )
    }
    fresh = [tid for tid, (end, _n, _r) in ends.items() if tid in state and state[tid][0] < end]
    moved = sum(ends[tid][1] for tid in fresh)  # progress: planned entries
    done_rows = sum(ends[tid][2] for tid in fresh)  # the person's rows written
    _advance_tasks(session, {tid: ends[tid][0] for tid in fresh}, state, now)
    if close:
        session.execute(
            update(_T_LEDGER)
            .where(
                _T_LEDGER.c.request_id == request_id,
                _T_LEDGER.c.database == qualified,
                _T_LEDGER.c.done_at.is_(None),
            )
            .values(done_at=now)
        )
    part_values: dict[str, Any] = {"rows_done": _T_PART.c.rows_done + done_rows, "updated_at": now}
    if close:
        part_values["status"] = PartStatus.DONE.value
    session.execute(update(_T_PART).where(_T_PART.c.id == part_id).values(**part_values))
    session.execute(
        update(_T_REQ)
        .where(_T_REQ.c.id == request_id)
        .values(progress_done=_T_REQ.c.progress_done + moved, heartbeat_at=now)
    )


def _advance_tasks(
    session: Session, ends: dict[str, int], state: dict[str, tuple[int, int]], now: Any
) -> None:
    """Tasks whose chunk reaches their end (``ends``: task id -> rows done after the chunk) are
    done; the others note how far they got."""
    whole = [tid for tid, end in ends.items() if end >= state[tid][1]]
    if whole:
        session.execute(
            update(_T_TASK)
            .where(_T_TASK.c.id.in_(whole))
            .values(rows_done=_T_TASK.c.rows_total, status="done", updated_at=now)
        )
    for tid, end in ends.items():
        if tid not in whole:
            session.execute(
                update(_T_TASK).where(_T_TASK.c.id == tid).values(rows_done=end, updated_at=now)
            )


def progress_of(session: Session, request_id: str) -> tuple[int, int]:
    """A request's progress: (planned entries written, planned entries)."""
    done, total = session.execute(
        select(_T_REQ.c.progress_done, _T_REQ.c.progress_total).where(_T_REQ.c.id == request_id)
    ).one()
    return done, total


def fail_part_in(session: Session, request_id: str, part_id: str, org_id: str, error: str) -> None:
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


def audit_failure(session: Session, job: Job, qualified: str, error: str) -> None:
    book(
        session,
        "rights.part.fail",
        org_id=job.org_id,
        resource=f"rights_request:{job.request_id}",
        outcome="failure",
        details={"new": {"database": qualified, "error": error}},
    )


# -- audit records, mail, durability -----------------------------------------------------------


def book(session: Session, action: str, **fields: Any) -> None:
    """An audit record for this transaction, written with the others in one INSERT by
    ``vern.rights.engine.write_book`` (the same record ``vern.audit.service.record`` would add)."""
    session.info.setdefault("rights_book", []).append(event_row(session, action, **fields))


def book_mail(
    session: Session, *, key_id: str, to: str, subject: str, body: str, kind: str, org_id: str
) -> None:
    """A message for the outbox (as ``vern.notify.service.queue``), written by the engine's ``write_book``."""
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
