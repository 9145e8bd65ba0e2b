"""Applying a retention rule in bounded batches: each batch is one transaction that both removes
its rows and writes the run's counts and cursor (``retention_runs``), so a run stopped half-way
holds no half-written state and the next run takes it up where it stopped.

Vern's own tables go by a generic statement; other domains' records through their service
functions; a product table through ``vern.retention.product``. Legal holds keep their rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, delete, select, text, update
from sqlalchemy.orm import Session

from vern.consent.service import expire_records
from vern.control.service import expire_records as expire_control
from vern.core.config import Settings, get_settings
from vern.core.db import Base, Database, Scope, import_models, utcnow
from vern.incidents.service import expire_closed
from vern.retention import product
from vern.retention.models import LegalHold, RetentionRun
from vern.retention.rules import Rule, customer_keys, product_table
from vern.rights.connectors import describe_failure
from vern.rights.service import delete_closed_requests, shred_closed_requests


@dataclass
class Held:
    """What the legal holds in force keep from a rule: records, Vern accounts and persons (the
    keyed hashes of their identities)."""

    records: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    subjects: set[str] = field(default_factory=set)

    @property
    def every(self) -> set[str]:
        return self.records | self.users | self.subjects


def held_for(session: Session | Any, rule_key: str) -> Held:
    """The legal holds in force on the rule ``rule_key``."""
    out = Held()
    # a product table's rows are held only by holds that name its rule (the table) and the key
    names = (rule_key,) if rule_key.startswith(product.PREFIX) else (rule_key, "*")
    rows = session.execute(select(LegalHold.record_id, LegalHold.user_id, LegalHold.subject_ref)
                           .where(LegalHold.released_at.is_(None),
                                  LegalHold.rule.in_(names)))
    for rec, user, ref in rows:
        if rec:
            out.records.add(rec)
        if user:
            out.users.add(user)
        if ref:
            out.subjects.add(ref)
    return out


# -- applying a table rule -------------------------------------------------------------------


def table_of(name: str) -> Table:
    import_models()
    return Base.metadata.tables[name]


def conditions(table: Table, clock: str, cutoff: datetime, held: Held) -> list[Any]:
    """The rows of a table rule that are due: counted from before the cutoff, and not held."""
    (pk,) = table.primary_key.columns
    cond = [table.c[clock].is_not(None), table.c[clock] < cutoff]
    if held.records:
        cond.append(pk.not_in(sorted(held.records)))
    if held.users and "user_id" in table.c:
        cond.append(table.c.user_id.not_in(sorted(held.users)))
    if held.subjects and "subject_ref" in table.c:
        cond.append(table.c.subject_ref.not_in(sorted(held.subjects)))
    return cond


def delete_batch(conn: Any, table: Table, clock: str, cutoff: datetime, *, held: Held,
                 after: Any, batch: int) -> tuple[int, Any]:
    """Delete the next batch of about ``batch`` expired rows after the cursor ``after``.
    Returns (rows deleted, the new cursor; None once the table has no more expired rows).

    PostgreSQL: the cursor is a page of the table's heap; a batch is the rows of a range of
    pages (a TID range scan: the pages are read in order, as a bare ``DELETE`` reads them).
    Elsewhere: the cursor is the primary key; the batch's last key is found first, then one range
    ``DELETE`` removes the batch (both walk the primary key's index)."""
    cond = conditions(table, clock, cutoff, held)
    if conn.dialect.name == "postgresql":
        return _delete_pages(conn, table, cond, after, batch)
    (pk,) = table.primary_key.columns
    if after is not None:
        cond.append(pk > after)
    upper = conn.scalar(select(pk).where(*cond).order_by(pk).offset(batch - 1).limit(1))
    if upper is not None:
        cond.append(pk <= upper)
    gone = conn.execute(delete(table).where(and_(*cond))).rowcount or 0
    return gone, upper


def _delete_pages(conn: Any, table: Table, cond: list[Any], after: Any,
                  batch: int) -> tuple[int, Any]:
    stats = conn.execute(
        text("SELECT c.reltuples, c.relpages, pg_relation_size(c.oid) / "
             "current_setting('block_size')::int AS pages FROM pg_class c "
             "WHERE c.oid = CAST(:name AS regclass)"), {"name": table.name}).one()
    pages = int(stats.pages)
    per_page = (stats.reltuples / stats.relpages) if stats.relpages > 0 and stats.reltuples > 0 else 100
    span = max(1, int(batch / max(per_page, 1.0)))
    low = int(after or 0)
    if low >= pages:
        return 0, None
    high = low + span
    tids = text("ctid >= CAST(:lo AS tid) AND ctid < CAST(:hi AS tid)").bindparams(
        lo=f"({low},0)", hi=f"({high},0)")
    gone = conn.execute(delete(table).where(tids, *cond)).rowcount or 0
    return gone, (high if high < pages else None)


# -- applying a rule of another domain, through its service function ------------------------


def _function_batch(session: Session, r: Rule, cutoff: datetime, held: Held, batch: int) -> int:

    if r.key == "rights_requests.details":
        return len(shred_closed_requests(session, closed_before=cutoff, limit=batch, held=held.every))
    if r.key == "rights_requests":
        return len(delete_closed_requests(session, closed_before=cutoff, limit=batch, held=held.every))
    if r.key == "consent_records":
        return expire_records(session, retired_before=cutoff, limit=batch)
    if r.key == "incidents":
        return len(expire_closed(session, closed_before=cutoff, limit=batch, held=held.every))
    if r.key == "control":
        return len(expire_control(session, before=cutoff, limit=batch, held=held.every))
    raise AssertionError(r.key)


# -- the run's evidence, and a rule applied -------------------------------------------------


def _progress(session: Session | Any, run_id: str, rule_key: str, *, done: int,
              cursor: Any = None, finished: bool = False, customer: str | None = None,
              error: str | None = None) -> None:
    """A batch added to the run's evidence: the rule's count (and a customer's count or error),
    its cursor, and whether the rule is finished."""
    row = session.execute(select(RetentionRun.counts, RetentionRun.cursor,
                                 RetentionRun.finished_rules)
                          .where(RetentionRun.id == run_id)).one()
    counts = dict(row.counts or {})
    entry = dict(counts.get(rule_key) or {"done": 0})
    entry["done"] = int(entry.get("done", 0)) + done
    if customer is not None:  # a schema or database per customer: each one's count (and error)
        if not error:
            by = dict(entry.get("done_by_tenant") or {})
            by[customer] = int(by.get(customer, 0)) + done
            entry["done_by_tenant"] = by
        else:
            entry["errors_by_tenant"] = dict(entry.get("errors_by_tenant") or {}) | {customer: error}
    counts[rule_key] = entry
    cursors = dict(row.cursor or {})
    if cursor is not None:
        cursors[rule_key] = cursor
    finished_rules = list(row.finished_rules or [])
    if finished and rule_key not in finished_rules:
        finished_rules.append(rule_key)
    session.execute(update(RetentionRun).where(RetentionRun.id == run_id).values(
        counts=counts, cursor=cursors, finished_rules=finished_rules, heartbeat_at=utcnow()))


def apply_rule(database: Database, run_id: str, r: Rule, as_of: datetime, *, held: Held,
               after: Any, batch: int, on_batch: Callable[[str, int], None] | None,
               settings: Settings | None = None) -> None:
    """Apply one rule from the cursor ``after`` (a stopped run's) until nothing is due."""
    assert r.days is not None
    cutoff = as_of - timedelta(days=r.days)
    if r.kind == "product":
        with database.transaction(Scope.system("retention run")) as session:
            db, mt = product_table(session, r)
            keys = customer_keys(session, db)
        work = _ProductWork(database, run_id, r, db, mt, cutoff, batch=batch, on_batch=on_batch,
                            secret=(settings or get_settings()).secret_bytes)
        if not product.per_customer(db):
            work.apply(held.records, after)
            return
        # a schema or database per customer: customer by customer, in the order of their keys;
        # the cursor names the customer and the key within its table
        at = after if isinstance(after, dict) else {}
        for customer in product.customers(db, keys):
            assert customer is not None
            if at.get("customer") is not None and customer < at["customer"]:
                continue
            if customer == at.get("customer") and at.get("finished"):
                continue
            start = at.get("after") if customer == at.get("customer") else None
            work.apply(product.held_in(held.records, customer), start, customer=customer)
        with database.engine.begin() as conn:
            _progress(conn, run_id, r.key, done=0, finished=True)
        return
    if r.kind == "table":
        table = table_of(r.tables[0])
        while True:
            with database.engine.begin() as conn:  # the rows and the run's counts together
                gone, upper = delete_batch(conn, table, r.clock, cutoff, held=held, after=after,
                                           batch=batch)
                _progress(conn, run_id, r.key, done=gone, cursor=upper, finished=upper is None)
            if on_batch is not None:
                on_batch(r.key, gone)
            if upper is None:
                return
            after = upper
    while True:
        with database.transaction(Scope.system("retention run")) as session:
            gone = _function_batch(session, r, cutoff, held, batch)
            _progress(session, run_id, r.key, done=gone, finished=gone < batch)
        if on_batch is not None:
            on_batch(r.key, gone)
        if gone < batch:
            return


@dataclass
class _ProductWork:
    """One product rule being applied (the rule, its database and table, its cutoff)."""

    database: Database
    run_id: str
    r: Rule
    db: Any
    mt: Any
    cutoff: datetime
    batch: int
    on_batch: Callable[[str, int], None] | None
    secret: bytes

    def apply(self, held: set[str], after: Any, *, customer: str | None = None) -> None:
        """The table (one customer's copy of it): a batch commits in the product database, then
        its count and cursor in Vern's. A customer's schema or database that cannot be reached
        is recorded (``errors_by_tenant``) and the run goes on with the next customer."""
        rule_key = self.r.key
        while True:
            try:
                gone, upper = product.apply_batch(self.db, self.mt, self.cutoff, held=held,
                                                  after=after, batch=self.batch,
                                                  secret=self.secret, key=customer)
            except product.failures() as exc:
                if customer is None:
                    raise
                with self.database.engine.begin() as conn:
                    _progress(conn, self.run_id, rule_key, done=0, customer=customer,
                              error=describe_failure(exc),
                              cursor={"customer": customer, "after": None, "finished": True})
                return
            cursor: Any = upper
            if customer is not None:
                cursor = {"customer": customer, "after": upper, "finished": upper is None}
            with self.database.engine.begin() as conn:
                _progress(conn, self.run_id, rule_key, done=gone, cursor=cursor,
                          customer=customer, finished=customer is None and upper is None)
            if self.on_batch is not None:
                self.on_batch(rule_key, gone)
            if upper is None:
                return
            after = upper
