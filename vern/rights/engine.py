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

The run is here; its parts are in modules of their own: ``discovery`` (finding the person's rows),
``planning`` (what to write, the stored plan and ledger entry), ``bookkeeping`` (Vern's rows of a
run: claims, plans, checkpoints, audit records), ``stored_plans`` (a plan run in checkpointed
chunks), ``erase_values`` (the values written and the ledger's hashes) and ``run_state`` (the
run's requests and parts as data).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from vern.audit.models import AuditEvent
from vern.core.db import Database, Scope, execute_fast, new_id, pipeline, utcnow
from vern.datamap.model import DatabaseDef, DataMap
from vern.notify.models import OutboxMessage
from vern.rights.bookkeeping import (
    Checkpoints,
    PlanRows,
    book,
    book_mail,
    claim,
    read_stored_outcomes,
    relaxed_durability,
    table_of,
)
from vern.rights.connectors import PER_CUSTOMER, ProductDB, Unreachable, describe_failure, product_db
from vern.rights.discovery import Found, Shared, Subject, discover, set_based_tables
from vern.rights.erase_values import (
    already_erased,
    hmac_value,
    ledger_hash,
    match_hash,
    new_value,
    pseudonym_id,
)
from vern.rights.finish import build_package, finish_job
from vern.rights.models import Kind, PartStatus
from vern.rights.planning import plan_part, plan_rows, set_based_plan
from vern.rights.run_state import (
    FLAG_KINDS,
    READ_KINDS,
    SET_OPS,
    WHOLE,
    WHOLE_OP,
    WRITE_KINDS,
    FreshPart,
    Job,
    PartState,
    Progress,
    Step,
    rows_written,
)
from vern.rights.stored_plans import execute_stored

# The engine is the rights domain's entry point for running requests: what its parts hold stays
# importable from here.
__all__ = [
    "FLAG_KINDS",
    "READ_KINDS",
    "SET_OPS",
    "WHOLE",
    "WHOLE_OP",
    "WRITE_KINDS",
    "Engine",
    "Found",
    "FreshPart",
    "Job",
    "PartState",
    "Progress",
    "Shared",
    "Step",
    "Subject",
    "already_erased",
    "book",
    "book_mail",
    "discover",
    "hmac_value",
    "ledger_hash",
    "match_hash",
    "new_value",
    "plan_rows",
    "pseudonym_id",
    "relaxed_durability",
    "rows_written",
    "set_based_plan",
    "set_based_tables",
    "write_book",
]

# The engine's own bookkeeping addresses Vern rows only by the ids of one request, which the caller
# has already loaded inside the customer's tenant scope; product rows are always filtered by the
# tenant column in SQL.
_SCOPE = Scope.system("rights engine")


def _held_as(definition: DatabaseDef, key: str) -> str:
    """Under which name a run holds a product connection: the database's, or with the schema and
    database tenancy models the customer's schema or database within it."""
    if definition.tenancy.model in PER_CUSTOMER:
        return f"{definition.qualified}\x00{key}"
    return definition.qualified


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
                    part_id, definition = job.parts[qualified].id, self.data_map.database(qualified)
                    execute_stored(self, job.request_id, part_id, definition, job.subject)
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
            if job.writes and known is not None and _carried_on(job, qualified, known):
                continue
            fresh = FreshPart(part_id=known.id if known else new_id(), new=known is None)
            job.fresh[qualified] = fresh
            try:
                pdb, conn = self._product_conn(definition, job.subject.tenant_value)
                plan_part(self.secret, definition, job, fresh, pdb=pdb, conn=conn)
            except (Unreachable, SQLAlchemyError) as exc:
                fresh.error = describe_failure(exc)
                fresh.found, fresh.planned = {}, []
                self._drop_conn(_held_as(definition, job.subject.tenant_value))

    # -- 2. claim and store the plans ------------------------------------------------------------

    def _commit_plans(self, jobs: list[Job]) -> None:
        for job in jobs:  # answers are built before the transaction, which then only stores them
            if job.kind in READ_KINDS and all(f.error is None for f in job.fresh.values()):
                job.package = build_package(self.data_map, job, self._rows_of(job))
        rows = PlanRows()
        with self.transaction(commit=False) as session:
            if not any(j.writes for j in jobs):
                relaxed_durability(session)  # nothing is written to a product: a lost run is redone
            conn = session.connection()
            now = utcnow()
            for job in jobs:
                if claim(session, job, now):
                    rows.add_job(session, job, now, data_map=self.data_map, secret=self.secret,
                                 batch_rows=self.batch_rows)
            with pipeline(conn):  # PostgreSQL: what the claims decided, in one round trip
                rows.write(conn)
                for job in jobs:
                    if job.claimed and not job.writes:
                        finish_job(session, job)
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

    def _close_once(self, jobs: list[Job]) -> None:
        now = utcnow()
        with self.transaction() as session:
            checkpoints = Checkpoints(one_statement=session.get_bind().dialect.name == "postgresql")
            checkpoints.add_jobs(session, jobs, now)
            read_stored_outcomes(session, jobs)
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
                checkpoints.write(conn)
                for job in jobs:
                    finish_job(session, job)
                write_book(session)
            self._products_committed()  # Vern records only what the product has committed
        for job in jobs:
            for qualified in job.fresh:
                if qualified not in job.stored:
                    self.step(f"checkpoint:{qualified}")
            if self.on_progress is not None:
                total = sum(o[2] for o in job.outcome.values())
                self.on_progress(total, total)


def _carried_on(job: Job, qualified: str, known: PartState) -> bool:
    """Whether a part of a writing request is not planned again: finished by an earlier run (its
    outcome is noted), or planned before (carried on from its checkpoint)."""
    if known.status == PartStatus.DONE.value:  # finished by an earlier run
        job.outcome[qualified] = (known.status, known.rows_found, known.rows_done, known.error)
        return True
    if known.status == PartStatus.PLANNED.value or known.has_tasks:
        job.stored.append(qualified)  # planned before: carry on from the checkpoint
        return True
    return False


_INSERT_AUDIT = insert(table_of(AuditEvent))
_INSERT_MAIL = insert(table_of(OutboxMessage))


def write_book(session: Session) -> None:
    conn = session.connection()
    rows = session.info.pop("rights_book", None)
    if rows:
        execute_fast(conn, _INSERT_AUDIT, rows)
    mail = session.info.pop("rights_mail", None)
    if mail:
        execute_fast(conn, _INSERT_MAIL, mail)

