"""A part's stored plan carried out in checkpointed chunks: a plan too big for one product
transaction, or one a crashed or failed run left behind. Each chunk is one product transaction,
then its checkpoint in Vern; a chunk repeated after a crash writes the same values again.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from vern.datamap.model import DatabaseDef
from vern.rights.bookkeeping import Batch, checkpoint_in, fail_part_in, progress_of, relaxed_durability
from vern.rights.connectors import ProductDB, Unreachable, describe_failure, loads
from vern.rights.discovery import Subject
from vern.rights.models import Part, PartStatus, Task
from vern.rights.run_state import WHOLE_OP, Progress


class Run(Protocol):
    """What the chunks of a stored plan use of the engine's run."""

    batch_rows: int
    on_progress: Progress | None

    def step(self, name: str) -> None: ...

    def product(self, definition: DatabaseDef, key: str | None = None) -> ProductDB: ...

    def transaction(self, *, commit: bool = True) -> AbstractContextManager[Session]: ...


def execute_stored(
    run: Run, request_id: str, part_id: str, definition: DatabaseDef, subject: Subject
) -> None:
    """A stored plan, in chunks of at most ``batch_rows`` rows: each chunk one product
    transaction, then its checkpoint in Vern (a repeat of a chunk writes the same values)."""
    while True:
        with run.transaction() as session:
            status = session.scalar(select(Part.status).where(Part.id == part_id))
            if status != PartStatus.PLANNED.value:
                return
            tasks = session.scalars(
                select(Task).where(Task.part_id == part_id, Task.status == "planned").order_by(Task.seq)
            ).all()
            batch, complete = _next_batch(tasks, run.batch_rows)
        if batch:
            try:
                _write(run, definition, subject, batch)
            except (Unreachable, SQLAlchemyError) as exc:
                _fail_part(run, request_id, part_id, subject.org_id, describe_failure(exc))
                return
            run.step(f"product-commit:{definition.qualified}")
        _checkpoint(run, request_id, part_id, definition.qualified, batch, close=complete)
        run.step(f"checkpoint:{definition.qualified}")
        if complete:
            return


def _next_batch(tasks: Any, batch_rows: int) -> tuple[Batch, bool]:
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
    rows = plan["rows"][task.rows_done : task.rows_done + batch_rows]
    end = task.rows_done + len(rows)
    return [(task.table_name, plan["op"], rows, task.id, end)], end >= task.rows_total and len(
        pending
    ) == 1


def _write(run: Run, definition: DatabaseDef, subject: Subject, batch: Batch) -> None:
    """One product transaction with the batch's writes, in order."""
    pdb = run.product(definition, subject.tenant_value)
    with pdb.connect() as conn, conn.begin():
        for tname, op, rows, _task_id, _end in batch:
            steps: list[Any] = rows if op == WHOLE_OP else [[tname, op, rows]]
            for table_name, table_op, table_rows in steps:
                mt = definition.tables[table_name]
                pdb.apply(conn, mt, subject.tenant_value, table_op, table_rows)
        run.step(f"product-write:{definition.qualified}")


def _fail_part(run: Run, request_id: str, part_id: str, org_id: str, error: str) -> None:
    with run.transaction() as session:
        fail_part_in(session, request_id, part_id, org_id, error)


def _checkpoint(
    run: Run, request_id: str, part_id: str, qualified: str, batch: Batch, *, close: bool
) -> None:
    """Record what the product committed; a repeat of an earlier checkpoint changes nothing
    (the rows a chunk covers were fixed when it was planned)."""
    with run.transaction() as session:
        relaxed_durability(session)
        checkpoint_in(session, request_id, part_id, qualified, batch, close=close)
        if run.on_progress is None:
            return
        done, total = progress_of(session, request_id)
    run.on_progress(done, total)
