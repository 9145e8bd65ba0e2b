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

from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from vern.audit.service import record
from vern.crypto import PII, blind_index
from vern.datamap.model import DatabaseDef, DataMap, Erase, Strategy
from vern.datamap.model import Table as MapTable
from vern.db import Database, Scope, new_id, utcnow
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
class Engine:
    database: Database
    data_map: DataMap
    secret: bytes
    urls: dict[str, str] | None = None
    batch_rows: int = 500
    on_step: Step | None = None
    on_progress: Progress | None = None
    _fresh: dict[str, list[tuple[str, str, list[dict[str, Any]], str, int]]] = field(default_factory=dict)

    def step(self, name: str) -> None:
        if self.on_step is not None:
            self.on_step(name)

    def product(self, definition: DatabaseDef) -> ProductDB:
        return product_db(definition, self.urls)

    # The request must already be claimed (status running) by the caller.
    def run(
        self, request_id: str, subject: Subject, kind: str, parts: list[tuple[str, str, str]] | None = None
    ) -> None:
        """Carry out a claimed request; ``parts`` as made by ``ensure_parts`` in the claim."""
        if parts is None:
            with self.database.transaction(_SCOPE) as session:
                parts = ensure_parts(session, self.data_map, request_id, subject.org_id)
        for part_id, qualified, status in parts:
            if status == PartStatus.PENDING.value:
                self._plan(request_id, part_id, self.data_map.database(qualified), subject, kind)
                self.step(f"planned:{qualified}")
        if kind in WRITE_KINDS:
            for part_id, qualified, _status in parts:
                self._execute(request_id, part_id, self.data_map.database(qualified), subject)

    def run_many(self, items: list[tuple[str, Subject, str, list[tuple[str, str, str]]]]) -> None:
        """Carry out several claimed requests with shared bookkeeping: every plan (and ledger
        entry) in one durable Vern transaction before any product write, then each person's writes
        in their own product transaction, then every checkpoint in one Vern transaction. A crash
        anywhere leaves each request resumable exactly as ``run`` would."""
        computed: list[tuple[str, str, DatabaseDef, Subject, str, Any, Any]] = []
        failed: list[tuple[str, str, str, str]] = []
        for request_id, subject, kind, parts in items:
            for part_id, qualified, status in parts:
                if status != PartStatus.PENDING.value:
                    continue
                definition = self.data_map.database(qualified)
                try:
                    found, planned = self._compute(definition, subject, kind)
                except (Unreachable, SQLAlchemyError) as exc:
                    failed.append((request_id, part_id, subject.org_id, describe_failure(exc)))
                    continue
                computed.append((request_id, part_id, definition, subject, kind, found, planned))
        with self.database.transaction(_SCOPE) as session:
            for request_id, part_id, org_id, error in failed:
                self._fail_part_in(session, request_id, part_id, org_id, error)
            for request_id, part_id, definition, subject, kind, found, planned in computed:
                self._store_plan(session, request_id, part_id, definition, subject, kind, found, planned)
        self._write_many(items)

    def _write_many(self, items: list[tuple[str, Subject, str, list[tuple[str, str, str]]]]) -> None:
        """The batch's product writes share one transaction per database (up to ``batch_rows``
        rows); if that transaction fails, each person's writes are tried alone, so one bad row
        fails only its own request's part. Then one checkpoint transaction for all."""
        pending: dict[str, list[tuple[str, str, Subject, Any]]] = {}
        for request_id, subject, kind, parts in items:
            if kind not in WRITE_KINDS:
                continue
            for part_id, qualified, _status in parts:
                fresh = self._fresh.pop(part_id, None)
                if fresh is None or sum(len(r) for _t, _o, r, _i, _e in fresh) > self.batch_rows:
                    if fresh is not None:
                        self._fresh[part_id] = fresh
                    self._execute(request_id, part_id, self.data_map.database(qualified), subject)
                    continue
                pending.setdefault(qualified, []).append((request_id, part_id, subject, fresh))
        written: list[tuple[str, str, str, Any, dict[str, int]]] = []
        failed: list[tuple[str, str, str, str]] = []
        for qualified, work in pending.items():
            definition = self.data_map.database(qualified)
            for group in self._groups(work):
                ok, bad = self._write_group(definition, group)
                failed.extend(bad)
                written.extend(
                    (rid, pid, qualified, fresh, {task_id: end for _t, _o, _r, task_id, end in fresh})
                    for rid, pid, _subject, fresh in ok
                )
        with self.database.transaction(_SCOPE) as session:
            relaxed_durability(session)
            for request_id, part_id, org_id, error in failed:
                self._fail_part_in(session, request_id, part_id, org_id, error)
            for request_id, part_id, qualified, batch, totals in written:
                self._checkpoint_in(session, request_id, part_id, qualified, batch, close=True, totals=totals)

    def _groups(self, work: list[tuple[str, str, Subject, Any]]) -> list[list[tuple[str, str, Subject, Any]]]:
        groups: list[list[tuple[str, str, Subject, Any]]] = [[]]
        rows = 0
        for item in work:
            size = sum(len(r) for _t, _o, r, _i, _e in item[3])
            if groups[-1] and rows + size > self.batch_rows:
                groups.append([])
                rows = 0
            groups[-1].append(item)
            rows += size
        return groups

    def _write_group(
        self, definition: DatabaseDef, group: list[tuple[str, str, Subject, Any]]
    ) -> tuple[list[tuple[str, str, Subject, Any]], list[tuple[str, str, str, str]]]:
        """(written, failed) for one group of people in one database."""
        pdb = self.product(definition)
        try:
            with pdb.connect() as conn, conn.begin():
                for _rid, _pid, subject, fresh in group:
                    for tname, op, rows, _task_id, _end in fresh:
                        pdb.apply(conn, definition.tables[tname], subject.tenant_value, op, rows)
                self.step(f"product-write:{definition.qualified}")
            return group, []
        except Unreachable as exc:
            return [], [(rid, pid, subject.org_id, describe_failure(exc)) for rid, pid, subject, _f in group]
        except SQLAlchemyError as exc:
            if len(group) == 1:
                rid, pid, subject, _f = group[0]
                return [], [(rid, pid, subject.org_id, describe_failure(exc))]
        ok: list[tuple[str, str, Subject, Any]] = []
        bad: list[tuple[str, str, str, str]] = []
        for item in group:  # one person at a time, to find the one that fails
            try:
                self._write(definition, item[2], item[3])
                ok.append(item)
            except (Unreachable, SQLAlchemyError) as exc:
                bad.append((item[0], item[1], item[2].org_id, describe_failure(exc)))
        return ok, bad

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

    def _plan(
        self, request_id: str, part_id: str, definition: DatabaseDef, subject: Subject, kind: str
    ) -> None:
        try:
            found, planned = self._compute(definition, subject, kind)
        except (Unreachable, SQLAlchemyError) as exc:
            self._fail_part(request_id, part_id, subject.org_id, describe_failure(exc))
            return
        with self.database.transaction(_SCOPE) as session:
            self._store_plan(session, request_id, part_id, definition, subject, kind, found, planned)

    def _compute(
        self, definition: DatabaseDef, subject: Subject, kind: str
    ) -> tuple[dict[str, list[Found]], list[tuple[str, str, list[dict[str, Any]]]]]:
        """Find the person's rows and decide what to do with each (reads only)."""
        pdb = self.product(definition)
        found = discover(pdb, subject)
        planned = [
            (
                tname,
                *plan_rows(
                    self.secret, pdb, definition.tables[tname], kind, found=found[tname], subject=subject
                ),
            )
            for tname in definition.dependency_order()
        ]
        if kind == Kind.ERASURE.value:
            planned.reverse()  # rows pointing at a row go first
        return found, planned

    def _store_plan(  # noqa: PLR0917 - the pieces of one part's plan
        self,
        session: Session,
        request_id: str,
        part_id: str,
        definition: DatabaseDef,
        subject: Subject,
        kind: str,
        found: dict[str, list[Found]],
        planned: list[tuple[str, str, list[dict[str, Any]]]],
    ) -> None:
        now = utcnow()
        key_id = session.scalar(select(RightsRequest.key_id).where(RightsRequest.id == request_id))
        assert key_id is not None
        tasks: list[dict[str, Any]] = []
        ledger: list[dict[str, Any]] = []
        total = 0
        for seq, (tname, op, rows) in enumerate(planned):
            if not rows:
                continue
            read = op == "read"
            tasks.append(
                {
                    "id": new_id(),
                    "request_id": request_id,
                    "part_id": part_id,
                    "table_name": tname,
                    "seq": seq,
                    "org_id": subject.org_id,
                    "plan": PII(key_id, dumps({"op": op, "rows": rows})),
                    "rows_total": len(rows),
                    "rows_done": len(rows) if read else 0,
                    "status": "done" if read else "planned",
                    "updated_at": now,
                }
            )
            total += len(rows)
            if kind == Kind.ERASURE.value:
                ledger.append(
                    self._ledger(
                        request_id,
                        definition,
                        tname,
                        subject=subject,
                        found=found[tname],
                        rows=rows,
                        now=now,
                    )
                )
        if tasks:
            session.execute(insert(_table(Task)), tasks)
            self._fresh[part_id] = [
                (t["table_name"], op, rows, t["id"], len(rows))
                for t, (_n, op, rows) in zip(tasks, [p for p in planned if p[2]], strict=True)
                if t["status"] == "planned"
            ]
        if ledger:
            session.execute(insert(_table(LedgerEntry)), ledger)
        session.execute(
            update(_table(Part))
            .where(_table(Part).c.id == part_id)
            .values(
                rows_found=sum(len(v) for v in found.values()),
                error=None,
                updated_at=now,
                status=(PartStatus.DONE if kind in READ_KINDS else PartStatus.PLANNED).value,
            )
        )
        if kind in WRITE_KINDS:
            session.execute(
                update(_table(RightsRequest))
                .where(_table(RightsRequest).c.id == request_id)
                .values(progress_total=_table(RightsRequest).c.progress_total + total, heartbeat_at=now)
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
        while True:
            fresh = self._fresh.pop(part_id, None)
            totals: dict[str, int] | None = None
            if fresh is not None and sum(len(rows) for _t, _o, rows, _i, _e in fresh) <= self.batch_rows:
                batch, complete = fresh, True  # just planned: what is stored, without reading it back
                totals = {task_id: end for _t, _o, _r, task_id, end in fresh}
            else:
                with self.database.transaction(_SCOPE) as session:
                    status = session.scalar(select(Part.status).where(Part.id == part_id))
                    if status != PartStatus.PLANNED.value:
                        return
                    tasks = session.scalars(
                        select(Task)
                        .where(Task.part_id == part_id, Task.status == "planned")
                        .order_by(Task.seq)
                    ).all()
                    batch, complete = self._batch(tasks)
            if batch:
                try:
                    self._write(definition, subject, batch)
                except (Unreachable, SQLAlchemyError) as exc:
                    self._fail_part(request_id, part_id, subject.org_id, describe_failure(exc))
                    return
                self.step(f"product-commit:{definition.qualified}")
            self._checkpoint(request_id, part_id, definition.qualified, batch, close=complete, totals=totals)
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


def ensure_parts(
    session: Session, data_map: DataMap, request_id: str, org_id: str
) -> list[tuple[str, str, str]]:
    """One part per database of the map (new, or failed and now retried): (id, database, status)."""
    existing = {p.database: p for p in session.scalars(select(Part).where(Part.request_id == request_id))}
    for db in data_map.databases():
        if db.qualified not in existing:
            part = Part(id=new_id(), request_id=request_id, database=db.qualified, org_id=org_id)
            session.add(part)
            existing[db.qualified] = part
        elif existing[db.qualified].status == PartStatus.FAILED.value:
            part = existing[db.qualified]
            has_tasks = session.scalar(select(Task.id).where(Task.part_id == part.id).limit(1))
            part.status = (PartStatus.PLANNED if has_tasks else PartStatus.PENDING).value
            part.error = None
    session.flush()
    return sorted((p.id, p.database, p.status) for p in existing.values())


def collected_rows(session: Session, request_id: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """database → table → rows, from the sealed plans of a read request."""
    result: dict[str, dict[str, list[dict[str, Any]]]] = {}
    parts = {p.id: p.database for p in session.scalars(select(Part).where(Part.request_id == request_id))}
    for task in session.scalars(select(Task).where(Task.request_id == request_id).order_by(Task.seq)):
        if task.plan is None or task.plan.value is None:
            continue
        plan = loads(task.plan.value)
        if plan["rows"]:
            result.setdefault(parts[task.part_id], {})[task.table_name] = plan["rows"]
    return result


def coerce_for(pdb: ProductDB, table: str, column: str, value: Any) -> Any:
    return coerce(pdb.table(table).c[column], value)
