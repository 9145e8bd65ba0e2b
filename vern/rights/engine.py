"""The execution engine: a request becomes parts (one per product database) and tasks (one per
table), every step committed to Vern's database before the next starts.

Order of work, resumable at any point:

1. *plan* each database: find the person's rows from their identities through the references,
   always inside the tenant column, and store what to do with every row (sealed under the request's
   data key) together with the ledger entries - one Vern transaction per database. Reading is
   side-effect free, so a crash before that commit simply plans again.
2. *execute* (erasure, rectification): tables in dependency order (rows that point at a row go
   before it), in product transactions of at most ``batch_rows`` rows; after each product commit a
   checkpoint is committed in Vern. Writes are idempotent - a value is computed once, at planning,
   and written by key - so a crash between the product commit and the checkpoint repeats the same
   write, and every row of the person ends up handled exactly once.
3. *finish*: when every part is done the request is done (access: the package is built); if a
   database failed, that part says why and the request is ``partial`` - retryable, never "done".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from vern.audit.service import record
from vern.crypto import PII, blind_index
from vern.datamap.model import DatabaseDef, DataMap, Erase, Strategy
from vern.datamap.model import Table as MapTable
from vern.db import Database, Scope, UTCDateTime, new_id, utcnow
from vern.rights.connectors import (
    ProductDB,
    Unreachable,
    coerce,
    describe_failure,
    dumps,
    loads,
    product_db,
)
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


def identity_variants(kind: str, value: str) -> list[str]:
    """The forms an identity is commonly stored in, so a lookup finds it whichever was used."""
    raw = value.strip()
    forms = {raw}
    if kind == "email":
        forms.add(raw.lower())
    elif kind == "phone":
        digits = "".join(c for c in raw if c.isdigit())
        if len(digits) == 10 and digits.startswith("47"):
            digits = digits[2:]
        elif len(digits) == 12 and digits.startswith("0047"):
            digits = digits[4:]
        if len(digits) == 8:
            forms |= {
                digits,
                f"+47{digits}",
                f"+47 {digits}",
                f"0047{digits}",
                f"{digits[:3]} {digits[3:5]} {digits[5:]}",
                f"+47 {digits[:3]} {digits[3:5]} {digits[5:]}",
            }
    elif kind == "national_id":
        forms.add(raw.replace(" ", ""))
    return sorted(forms)


def new_value(secret: bytes, erase: Erase, old: Any, subject_ref: str) -> Any:
    """What an erase strategy writes in place of ``old`` (computed once, at planning)."""
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


def discover(pdb: ProductDB, subject: Subject) -> dict[str, list[Found]]:
    """The person's rows in every mapped table, following references from identity matches."""
    definition = pdb.definition
    found: dict[str, list[Found]] = {}
    with pdb.connect() as conn:
        for tname in definition.dependency_order():
            mt = definition.tables[tname]
            conditions: list[tuple[str, list[Any]]] = []
            for kind, column in mt.identities.items():
                if kind in subject.identities:
                    conditions.append((column, identity_variants(kind, subject.identities[kind])))
            for ref in mt.references:
                if not ref.follow or ref.table == tname:
                    continue
                values = {f.row.get(ref.column) for f in found.get(ref.table, [])}
                values.discard(None)
                if values:
                    conditions.append((ref.field, sorted(values, key=str)))
            if not conditions:
                found[tname] = []
                continue
            rows = pdb.find(conn, mt, subject.tenant_value, conditions)
            sets = [(col, {str(v) for v in vals}) for col, vals in conditions]
            found[tname] = [
                Found(row, [(col, row[col]) for col, vals in sets if str(row.get(col)) in vals])
                for row in rows
            ]
    return found


# -- planning ----------------------------------------------------------------------------------


def plan_rows(
    secret: bytes, pdb: ProductDB, mt: MapTable, kind: str, *, found: list[Found], subject: Subject
) -> tuple[str, list[dict[str, Any]]]:
    """(operation, rows) for one table: ``read``, ``delete`` or ``update`` with values to write."""
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
    result: str = ""

    @property
    def writes(self) -> bool:
        return self.kind in WRITE_KINDS


@dataclass
class FreshPart:
    part_id: str
    new: bool  # the part row does not exist yet
    found: dict[str, list[Found]] = field(default_factory=dict)
    planned: list[tuple[str, str, list[dict[str, Any]], str]] = field(default_factory=list)
    error: str | None = None

    @property
    def rows_found(self) -> int:
        return sum(len(v) for v in self.found.values())

    @property
    def rows_planned(self) -> int:
        return sum(len(rows) for _t, _o, rows, _i in self.planned)


def _now() -> Any:
    return bindparam("now", type_=UTCDateTime())


_T_REQ = _table(RightsRequest)
_T_PART = _table(Part)
_T_TASK = _table(Task)
_T_LEDGER = _table(LedgerEntry)

# Prepared once: SQLAlchemy keeps their compiled form, so each run only binds values.
_CLAIM = (
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
_PART_PLANNED = (
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
_PART_RESUMED = (
    update(_T_PART)
    .where(_T_PART.c.id == bindparam("w_id"))
    .values(status=PartStatus.PLANNED.value, error=None, updated_at=_now())
)
_TASKS_DONE = (
    update(_T_TASK)
    .where(_T_TASK.c.part_id == bindparam("w_part"))
    .values(status="done", rows_done=_T_TASK.c.rows_total, plan=None, updated_at=_now())
)
_LEDGER_DONE = (
    update(_T_LEDGER)
    .where(
        _T_LEDGER.c.request_id == bindparam("w_request"),
        _T_LEDGER.c.database == bindparam("w_database"),
        _T_LEDGER.c.done_at.is_(None),
    )
    .values(done_at=_now())
)
_PART_DONE = (
    update(_T_PART)
    .where(_T_PART.c.id == bindparam("w_id"))
    .values(
        status=bindparam("status"),
        rows_done=_T_PART.c.rows_done + bindparam("moved"),
        error=bindparam("error"),
        attempts=_T_PART.c.attempts + bindparam("failed"),
        updated_at=_now(),
    )
)
_PROGRESS = (
    update(_T_REQ)
    .where(_T_REQ.c.id == bindparam("w_id"))
    .values(progress_done=_T_REQ.c.progress_done + bindparam("moved"), heartbeat_at=_now())
)


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

    def step(self, name: str) -> None:
        if self.on_step is not None:
            self.on_step(name)

    def product(self, definition: DatabaseDef) -> ProductDB:
        return product_db(definition, self.urls)

    def process(self, jobs: list[Job]) -> None:
        """Run loaded jobs to their end (``Job.claimed`` says which this run got)."""
        self.step("started")
        for job in jobs:
            if job.kind not in FLAG_KINDS:
                self._discover(job)
        self._commit_plans(jobs)
        claimed = [j for j in jobs if j.claimed and j.writes]
        if not claimed:
            return
        self._write_fresh(claimed)
        for job in claimed:
            for qualified in job.stored:
                part = job.parts[qualified]
                self._execute(job.request_id, part.id, self.data_map.database(qualified), job.subject)
        self._close(claimed)

    # -- 1. read ---------------------------------------------------------------------------------

    def _discover(self, job: Job) -> None:
        for definition in self.data_map.databases():
            qualified = definition.qualified
            known = job.parts.get(qualified)
            if job.writes and known is not None:
                if known.status == PartStatus.DONE.value:
                    continue
                if known.status == PartStatus.PLANNED.value or known.has_tasks:
                    job.stored.append(qualified)  # planned before: carry on from the checkpoint
                    continue
            fresh = FreshPart(part_id=known.id if known else new_id(), new=known is None)
            job.fresh[qualified] = fresh
            try:
                pdb = self.product(definition)
                fresh.found = discover(pdb, job.subject)
                order = definition.dependency_order()
                if job.kind == Kind.ERASURE.value:
                    order.reverse()  # rows pointing at a row go first
                for tname in order:
                    op, rows = plan_rows(
                        self.secret,
                        pdb,
                        definition.tables[tname],
                        job.kind,
                        found=fresh.found[tname],
                        subject=job.subject,
                    )
                    if rows and job.writes:
                        fresh.planned.append((tname, op, rows, new_id()))
            except (Unreachable, SQLAlchemyError) as exc:
                fresh.error = describe_failure(exc)
                fresh.found, fresh.planned = {}, []

    # -- 2. claim and store the plans ------------------------------------------------------------

    def _commit_plans(self, jobs: list[Job]) -> None:
        from vern.rights import service

        for job in jobs:  # answers are built before the transaction, which then only stores them
            if job.kind in READ_KINDS and all(f.error is None for f in job.fresh.values()):
                job.package = service.build_package(self.data_map, job, self._rows_of(job))
        durable = any(j.writes for j in jobs)
        with self.database.transaction(_SCOPE) as session:
            if not durable:
                relaxed_durability(session)
            conn = session.connection()
            now = utcnow()
            tasks: list[dict[str, Any]] = []
            ledger: list[dict[str, Any]] = []
            new_parts: list[dict[str, Any]] = []
            old_parts: list[dict[str, Any]] = []
            resumed: list[dict[str, Any]] = []
            for job in jobs:
                total = sum(f.rows_planned for f in job.fresh.values()) if job.writes else 0
                got = conn.execute(
                    _CLAIM,
                    {
                        "w_id": job.request_id,
                        "w_attempts": job.attempts,
                        "w_status": job.status,
                        "now": now,
                        "total": total,
                    },
                )
                if not got.rowcount:
                    continue  # another runner has it, or it changed since it was read
                job.claimed = True
                record(
                    session,
                    "rights.request.start",
                    org_id=job.org_id,
                    resource=f"rights_request:{job.request_id}",
                    details={"new": {"status": Status.RUNNING.value, "attempt": job.attempts + 1}},
                )
                for qualified in job.stored:  # a failed part with stored plans is carried on
                    if job.parts[qualified].status == PartStatus.FAILED.value:
                        resumed.append({"w_id": job.parts[qualified].id, "now": now})
                        job.parts[qualified].status = PartStatus.PLANNED.value
                for qualified, fresh in job.fresh.items():
                    definition = self.data_map.database(qualified)
                    status = (
                        PartStatus.FAILED
                        if fresh.error
                        else PartStatus.PLANNED
                        if job.writes and fresh.planned
                        else PartStatus.DONE
                    ).value
                    values = {
                        "status": status,
                        "rows_found": fresh.rows_found,
                        "error": fresh.error,
                        "failed": 1 if fresh.error else 0,
                        "now": now,
                    }
                    if fresh.new:
                        new_parts.append(
                            {
                                "id": fresh.part_id,
                                "request_id": job.request_id,
                                "database": qualified,
                                "org_id": job.org_id,
                                "status": status,
                                "rows_found": fresh.rows_found,
                                "rows_done": 0,
                                "error": fresh.error,
                                "attempts": values["failed"],
                                "updated_at": now,
                            }
                        )
                    else:
                        old_parts.append({"w_id": fresh.part_id} | values)
                    if fresh.error:
                        self._audit_failure(session, job, qualified, fresh.error)
                        job.outcome[qualified] = (status, fresh.rows_found, 0, fresh.error)
                    elif status == PartStatus.DONE.value:
                        job.outcome[qualified] = (status, fresh.rows_found, 0, None)
                    for seq, (tname, op, rows, task_id) in enumerate(fresh.planned):
                        tasks.append(
                            {
                                "id": task_id,
                                "request_id": job.request_id,
                                "part_id": fresh.part_id,
                                "table_name": tname,
                                "seq": seq,
                                "org_id": job.org_id,
                                "plan": PII(job.key_id, dumps({"op": op, "rows": rows})),
                                "rows_total": len(rows),
                                "rows_done": 0,
                                "status": "planned",
                                "updated_at": now,
                            }
                        )
                        if job.kind == Kind.ERASURE.value:
                            ledger.append(
                                self._ledger(
                                    job.request_id,
                                    definition,
                                    tname,
                                    subject=job.subject,
                                    found=fresh.found[tname],
                                    rows=rows,
                                    now=now,
                                )
                            )
            if new_parts:
                conn.execute(insert(_T_PART), new_parts)
            if old_parts:
                conn.execute(_PART_PLANNED, old_parts)
            if resumed:
                conn.execute(_PART_RESUMED, resumed)
            if tasks:
                conn.execute(insert(_T_TASK), tasks)
            if ledger:
                conn.execute(insert(_T_LEDGER), ledger)
            from vern.rights import service

            for job in jobs:
                if job.claimed and not job.writes:
                    service.finish_job(session, job)
        for job in jobs:
            if job.claimed:
                for qualified, fresh in job.fresh.items():
                    if not fresh.error:
                        self.step(f"planned:{qualified}")

    def _rows_of(self, job: Job) -> dict[str, dict[str, list[dict[str, Any]]]]:
        return {
            qualified: {t: [f.row for f in rows] for t, rows in fresh.found.items() if rows}
            for qualified, fresh in job.fresh.items()
        }

    def _audit_failure(self, session: Session, job: Job, qualified: str, error: str) -> None:
        record(
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
        pending: dict[str, list[tuple[Job, FreshPart]]] = {}
        for job in jobs:
            for qualified, fresh in job.fresh.items():
                if fresh.error or not fresh.planned:
                    continue
                if fresh.rows_planned > self.batch_rows:
                    job.stored.append(qualified)  # stored now: run in chunks from the checkpoints
                    job.parts[qualified] = PartState(fresh.part_id, PartStatus.PLANNED.value, True)
                    continue
                pending.setdefault(qualified, []).append((job, fresh))
        for qualified, work in pending.items():
            definition = self.data_map.database(qualified)
            for group in self._groups(work):
                self._write_group(definition, group)
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

    def _write_group(self, definition: DatabaseDef, group: list[tuple[Job, FreshPart]]) -> None:
        """Writes one group of people in one database, and notes each part's outcome."""
        qualified = definition.qualified
        try:
            pdb = self.product(definition)
            with pdb.connect() as conn, conn.begin():
                for job, fresh in group:
                    for tname, op, rows, _task_id in fresh.planned:
                        pdb.apply(conn, definition.tables[tname], job.subject.tenant_value, op, rows)
                self.step(f"product-write:{qualified}")
        except (Unreachable, SQLAlchemyError) as exc:
            if len(group) > 1 and not isinstance(exc, Unreachable):
                for item in group:  # one person at a time, to find the one that fails
                    self._write_group(definition, [item])
                return
            for job, fresh in group:
                job.outcome[qualified] = (PartStatus.FAILED.value, fresh.rows_found, 0, describe_failure(exc))
            return
        for job, fresh in group:
            job.outcome[qualified] = (PartStatus.DONE.value, fresh.rows_found, fresh.rows_planned, None)

    def _close(self, jobs: list[Job]) -> None:
        """One Vern transaction: the checkpoints of the writes just made, and every finish."""
        from vern.rights import service

        with self.database.transaction(_SCOPE) as session:
            relaxed_durability(session)
            conn = session.connection()
            now = utcnow()
            tasks, ledger, parts, progress = [], [], [], []
            for job in jobs:
                for qualified, fresh in job.fresh.items():
                    if fresh.error or not fresh.planned or qualified in job.stored:
                        continue
                    status, _found, moved, error = job.outcome[qualified]
                    failed = status == PartStatus.FAILED.value
                    if failed:
                        assert error is not None
                        self._audit_failure(session, job, qualified, error)
                    else:
                        tasks.append({"w_part": fresh.part_id, "now": now})
                        ledger.append({"w_request": job.request_id, "w_database": qualified, "now": now})
                        progress.append({"w_id": job.request_id, "moved": moved, "now": now})
                    parts.append(
                        {
                            "w_id": fresh.part_id,
                            "status": status,
                            "moved": moved,
                            "error": error,
                            "failed": 1 if failed else 0,
                            "now": now,
                        }
                    )
            if tasks:
                conn.execute(_TASKS_DONE, tasks)
            if ledger:
                conn.execute(_LEDGER_DONE, ledger)
            if parts:
                conn.execute(_PART_DONE, parts)
            if progress:
                conn.execute(_PROGRESS, progress)
            stored = [j.request_id for j in jobs if j.stored]
            if stored:  # parts run from stored plans: their state is in the database
                for part in session.execute(
                    select(
                        _T_PART.c.request_id,
                        _T_PART.c.database,
                        _T_PART.c.status,
                        _T_PART.c.rows_found,
                        _T_PART.c.rows_done,
                        _T_PART.c.error,
                    ).where(_T_PART.c.request_id.in_(stored))
                ):
                    job = next(j for j in jobs if j.request_id == part.request_id)
                    if part.database in job.stored:
                        job.outcome[part.database] = (part.status, part.rows_found, part.rows_done, part.error)
            for job in jobs:
                service.finish_job(session, job)
        for job in jobs:
            for qualified in job.fresh:
                if qualified not in job.stored:
                    self.step(f"checkpoint:{qualified}")
            if self.on_progress is not None:
                total = sum(o[2] for o in job.outcome.values())
                self.on_progress(total, total)

    def _write(
        self,
        definition: DatabaseDef,
        subject: Subject,
        batch: list[tuple[str, str, list[dict[str, Any]], str, int]],
    ) -> None:
        """One product transaction with the batch's writes, in order."""
        pdb = self.product(definition)
        with pdb.connect() as conn, conn.begin():
            for tname, op, rows, _task_id, _end in batch:
                pdb.apply(conn, definition.tables[tname], subject.tenant_value, op, rows)
            self.step(f"product-write:{definition.qualified}")

    def _fail_part(self, request_id: str, part_id: str, org_id: str, error: str) -> None:
        with self.database.transaction(_SCOPE) as session:
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

    def _ledger(
        self,
        request_id: str,
        definition: DatabaseDef,
        tname: str,
        *,
        subject: Subject,
        found: list[Found],
        rows: list[dict[str, Any]],
        now: Any,
    ) -> dict[str, Any]:
        hashes = {"m:" + match_hash(self.secret, col, val) for f in found for col, val in f.pairs}
        for row in rows:
            for col, value in (row.get("set") or {}).items():
                if value is not None:
                    hashes.add("w:" + match_hash(self.secret, col, value))
        return {
            "id": new_id(),
            "request_id": request_id,
            "database": definition.qualified,
            "table_name": tname,
            "tenant_value": subject.tenant_value,
            "subject_ref": subject.subject_ref,
            "match_hashes": sorted(hashes),
            "rows": len(rows),
            "org_id": subject.org_id,
            "planned_at": now,
            "done_at": None,
        }

    def _execute(self, request_id: str, part_id: str, definition: DatabaseDef, subject: Subject) -> None:
        """A stored plan, in chunks of at most ``batch_rows`` rows: each chunk one product
        transaction, then its checkpoint in Vern (a repeat of a chunk writes the same values)."""
        while True:
            with self.database.transaction(_SCOPE) as session:
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
        """Slices of tasks in order, up to ``batch_rows`` rows (a big table is split in chunks),
        and whether they finish every task."""
        batch: list[tuple[str, str, list[dict[str, Any]], str, int]] = []
        budget = self.batch_rows
        complete = True
        for task in tasks:
            if budget <= 0:
                complete = False
                break
            plan = loads(task.plan.value) if task.plan is not None and task.plan.value else None
            if plan is None:
                raise RuntimeError(f"task {task.id}: the plan is gone")
            rows = plan["rows"][task.rows_done : task.rows_done + budget]
            end = task.rows_done + len(rows)
            batch.append((task.table_name, plan["op"], rows, task.id, end))
            budget -= max(len(rows), 1)
            if end < task.rows_total:
                complete = False
        return batch, complete

    def _checkpoint(
        self,
        request_id: str,
        part_id: str,
        qualified: str,
        batch: list[tuple[str, str, list[dict[str, Any]], str, int]],
        *,
        close: bool,
        totals: dict[str, int] | None = None,
    ) -> None:
        """Record what the product committed; a repeat of an earlier checkpoint changes nothing.
        ``totals`` (task id → rows) is given for a batch just planned in this process, whose
        tasks cannot have been checkpointed before."""
        with self.database.transaction(_SCOPE) as session:
            relaxed_durability(session)
            self._checkpoint_in(session, request_id, part_id, qualified, batch, close=close, totals=totals)
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
        totals: dict[str, int] | None = None,
    ) -> None:
        now = utcnow()
        tasks, ledger, parts, requests = (
            _table(Task),
            _table(LedgerEntry),
            _table(Part),
            _table(RightsRequest),
        )
        ends = {task_id: (end, len(rows), tname) for tname, _op, rows, task_id, end in batch}
        if totals is not None:
            state = {tid: (0, total) for tid, total in totals.items()}
        else:
            state = {
                row.id: (row.rows_done, row.rows_total)
                for row in session.execute(
                    select(tasks.c.id, tasks.c.rows_done, tasks.c.rows_total).where(
                        tasks.c.id.in_(list(ends))
                    )
                )
            }
        fresh = [tid for tid, (end, _n, _t) in ends.items() if tid in state and state[tid][0] < end]
        moved = sum(ends[tid][1] for tid in fresh)
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
        finished = [ends[tid][2] for tid in whole]
        if finished:
            session.execute(
                update(ledger)
                .where(
                    ledger.c.request_id == request_id,
                    ledger.c.database == qualified,
                    ledger.c.table_name.in_(finished),
                    ledger.c.done_at.is_(None),
                )
                .values(done_at=now)
            )
        part_values: dict[str, Any] = {"rows_done": parts.c.rows_done + moved, "updated_at": now}
        if close:
            part_values["status"] = PartStatus.DONE.value
        session.execute(update(parts).where(parts.c.id == part_id).values(**part_values))
        session.execute(
            update(requests)
            .where(requests.c.id == request_id)
            .values(progress_done=requests.c.progress_done + moved, heartbeat_at=now)
        )


def relaxed_durability(session: Session) -> None:
    """On PostgreSQL, let this transaction commit without waiting for its WAL flush.

    Only for bookkeeping that is safe to lose in a server crash: a lost claim puts the request back
    in the queue, a lost checkpoint repeats idempotent writes, a lost finish is done again on
    resume. The plan (with the ledger) is never relaxed: it must exist before the product changes.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def coerce_for(pdb: ProductDB, table: str, column: str, value: Any) -> Any:
    return coerce(pdb.table(table).c[column], value)
