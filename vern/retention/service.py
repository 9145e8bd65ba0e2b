"""Retention enforced: one rule per category of Vern's own data, read from the data map
(``retention`` and ``retention_after`` in each ``datamap.yaml``, with the machine-readable
policies of ``vern.datamap.categories.RETENTION_POLICIES``), legal holds that pause a rule, and
runs that apply the rules in bounded batches and are kept as evidence.

A run works rule by rule, batch by batch. Each batch is one transaction that both removes its
rows and writes the run's counts and cursor, so a run stopped half-way (a crash, a killed worker)
holds no half-written state and the next run takes it up where it stopped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, delete, func, select, text, update
from sqlalchemy.orm import Session

from vern.audit.service import record
from vern.consent.models import ConsentRecord, Purpose
from vern.consent.service import expire_records
from vern.control.service import expire_records as expire_control
from vern.core.config import Settings, get_settings
from vern.core.crypto import DataKey
from vern.core.db import Base, Database, Scope, import_models, utcnow
from vern.core.errors import Conflict, InvalidInput, NotFound
from vern.datamap.categories import RETENTION_POLICIES, RETENTION_RULES
from vern.datamap.loader import MapError
from vern.datamap.own import load_own_map
from vern.datamap.service import current_map
from vern.incidents.service import expire_closed
from vern.retention import product
from vern.retention.models import LegalHold, RetentionPeriod, RetentionRun
from vern.rights.connectors import describe_failure
from vern.rights.models import RightsRequest
from vern.rights.service import delete_closed_requests, product_keys, shred_closed_requests

BATCH = 50_000  # rows per transaction: bounded, and few enough commits to keep pace
LEASE = timedelta(minutes=10)
ACTIONS = ("delete", "anonymise")
DETAILS_DAYS = 30  # a closed request's identities and details, after the person was answered


@dataclass(frozen=True)
class Rule:
    """One rule: what (``tables``), after how long (``days`` from ``clock``), what then
    (``action``), why (``reason`` for people, ``legal_reason``), and the least it may be."""

    key: str
    tables: tuple[str, ...]
    policy: str
    clock: str
    days: int | None
    default_days: int | None
    action: str
    reason: str
    legal_reason: str
    legal_minimum_days: int
    enforced_by: str = ""  # a job of another domain applies it (not this one)
    kind: str = "table"  # table | function | product (a table of the product data map)
    database: str = ""  # product: the map's database (system.name)

    def view(self) -> dict[str, Any]:
        return {
            "rule": self.key, "tables": list(self.tables), "policy": self.policy,
            "counted_from": self.clock or None, "days": self.days,
            "default_days": self.default_days, "action": self.action,
            "reason": self.reason, "legal_reason": self.legal_reason,
            "legal_minimum_days": self.legal_minimum_days,
            "enforced_by": self.enforced_by or ("retention.run" if self.days else None),
        } | ({"database": self.database} if self.kind == "product" else {})


_FUNCTION_RULES: tuple[tuple[str, tuple[str, ...], str, str, int | None, str, str, int], ...] = (
    ("rights_requests.details", ("rights_requests", "outbox_messages"), "request-plus-5y",
     "completed_at", DETAILS_DAYS, "anonymise",
     "Art. 5(1)(e): a closed request's identities and details (and mails sealed under its key) "
     "only until the person has been answered", 0),
    ("rights_requests", ("rights_requests", "rights_parts", "rights_tasks", "rights_ledger",
                         "rights_flags", "rights_external_steps"), "request-plus-5y",
     "completed_at", None, "delete", "", -1),
    ("consent_records", ("consent_records",), "consent-history", "retired purpose", None,
     "delete", "", -1),
    ("incidents", ("incidents", "incident_customers", "incident_notices", "incident_events",
                   "incident_warnings"), "incident-plus-5y", "closed_at", None, "delete", "", -1),
    ("control", ("control_tasks", "control_completions", "control_evidence", "control_reminders",
                 "control_changes", "control_change_events", "control_people",
                 "control_trainings", "control_media", "control_risks", "control_measures",
                 "control_dpias", "control_dpia_versions"), "internal-control",
     "the record's end (closed, completed, implemented, ended)", None, "delete", "", -1),
)


@functools.cache
def _own_map() -> dict[str, Any]:
    """The data map of Vern's own tables (files of the installed package: read once)."""
    return load_own_map()


def _policy(name: str) -> dict[str, Any]:
    return dict(RETENTION_POLICIES[name])


def rules(session: Session | None = None) -> list[Rule]:
    """Every rule, with the vendor's own periods (``retention_periods``) applied."""
    periods: dict[str, int] = {}
    own = _own_map()
    if session is not None:
        periods = {p.rule: p.days for p in session.scalars(select(RetentionPeriod))}
    out: list[Rule] = []
    covered: set[str] = set()
    for key, tables, policy_name, clock, days, action, legal, minimum in _FUNCTION_RULES:
        pol = _policy(policy_name)
        default = days if days is not None else pol["days"]
        out.append(Rule(
            key=key, tables=tables, policy=policy_name, clock=clock,
            days=periods.get(key, default), default_days=default, action=action,
            reason=RETENTION_RULES[policy_name], legal_reason=legal or str(pol["legal_reason"]),
            legal_minimum_days=minimum if minimum >= 0 else int(pol["legal_minimum_days"]),
            kind="function"))
        if key != "rights_requests.details":
            covered.update(tables)
    for table in sorted(own.values(), key=lambda t: t.name):
        if table.name in covered:
            continue
        pol = _policy(table.retention)
        default = pol["days"] if table.retention_after else None
        out.append(Rule(
            key=table.name, tables=(table.name,), policy=table.retention,
            clock=table.retention_after, days=periods.get(table.name, default) if default else None,
            default_days=default, action=str(pol["action"]), reason=RETENTION_RULES[table.retention],
            legal_reason=str(pol["legal_reason"]), legal_minimum_days=int(pol["legal_minimum_days"]),
            enforced_by=str(pol.get("enforced_by", ""))))
    if session is not None:
        out.extend(_product_rules(session))
    return out


def _product_map(session: Session) -> Any:

    try:
        return current_map(session)
    except MapError:  # published before a check it now fails: nothing of it is applied
        return None


def _product_rules(session: Session) -> list[Rule]:
    """The rules the product data map declares (``retention: {days, after, action, reason}``)."""
    out = []
    for db, table in product.tables(_product_map(session)):
        r = table.rule
        assert r is not None
        out.append(Rule(
            key=product.rule_key(db, table.name), tables=(table.name,), policy="product-map",
            clock=r.after, days=r.days, default_days=r.days, action=r.action, reason=r.reason,
            legal_reason=r.minimum_reason or r.reason, legal_minimum_days=r.minimum_days,
            kind="product", database=db.qualified))
    return out


def _keys(session: Session, db: Any) -> list[str]:
    """The customers' product keys, where the product has a schema or database per customer."""
    return sorted(product_keys(session)) if product.per_customer(db) else []


def _product_table(session: Session | Any, r: Rule) -> tuple[Any, Any]:
    data_map = _product_map(session) if isinstance(session, Session) else None
    if data_map is None:
        raise NotFound(detail="the product data map is not published")
    db = data_map.database(r.database)
    return db, db.tables[r.tables[0]]


def rule(session: Session | None, key: str) -> Rule:
    for r in rules(session):
        if r.key == key:
            return r
    raise NotFound(detail="no such retention rule")


# -- periods ---------------------------------------------------------------------------------


def set_period(session: Session, *, rule_key: str, days: int, reason: str,
               actor_user_id: str | None) -> Rule:
    """The vendor's own period for a rule; never shorter than the legal minimum it declares."""
    found = next((r for r in rules(session) if r.key == rule_key), None)
    if found is None:
        raise InvalidInput.on("rule", "no such retention rule")
    if found.default_days is None:
        raise InvalidInput.on("rule", "this rule has no time limit to change")
    if found.kind == "product":
        raise InvalidInput.on("rule", "a product table's period is set in the product data map")
    if not isinstance(days, int) or days < 1 or days > 36_500:
        raise InvalidInput.on("days", "must be a whole number of days, 1-36500")
    if days < found.legal_minimum_days:
        raise InvalidInput.on("days", "shorter than the legal minimum of %(n)s days (%(why)s)",
                              n=found.legal_minimum_days, why=found.legal_reason)
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise InvalidInput.on("reason", "say why, in up to 500 characters")
    row = session.get(RetentionPeriod, rule_key)
    old = row.days if row is not None else found.default_days
    if row is None:
        row = RetentionPeriod(rule=rule_key, days=days, reason=reason)
        session.add(row)
    row.days, row.reason, row.updated_by, row.updated_at = days, reason, actor_user_id, utcnow()
    session.flush()
    record(session, "retention.period_set", org_id=None, actor_user_id=actor_user_id,
           resource=f"retention_rule:{rule_key}",
           details={"old": {"days": old}, "new": {"days": days, "reason": reason}})
    return rule(session, rule_key)


# -- legal holds -----------------------------------------------------------------------------


def create_hold(session: Session, *, rule_key: str, reason: str, record_id: str | None = None,
                user_id: str | None = None, identities: dict[str, Any] | None = None,
                org_id: str | None = None, actor_user_id: str | None = None) -> LegalHold:
    """Pause a rule (``*``: every rule) for one record, one Vern account or one person (named by
    the identities of a data subject request; only a keyed hash of them is kept)."""
    if rule_key != "*" and rule_key not in {r.key for r in rules(session)}:
        raise InvalidInput.on("rule", "no such retention rule (or * for every rule)")
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise InvalidInput.on("reason", "give the legal reason, in up to 500 characters")
    given = [n for n, v in (("record_id", record_id), ("user_id", user_id),
                            ("identities", identities)) if v]
    if len(given) != 1:
        raise InvalidInput.on("record_id", "name exactly one record, account or person")
    if record_id is not None and len(record_id) > 64:
        raise InvalidInput.on("record_id", "is too long")
    if user_id is not None and len(user_id) > 36:
        raise InvalidInput.on("user_id", "is too long")
    ref = None
    if identities:
        from vern.rights.service import clean_identities, subject_ref

        ref = subject_ref(clean_identities(identities))
    hold = LegalHold(rule=rule_key, reason=reason, record_id=record_id, user_id=user_id,
                     subject_ref=ref, org_id=org_id, created_by=actor_user_id)
    session.add(hold)
    session.flush()
    record(session, "retention.hold_created", org_id=org_id, actor_user_id=actor_user_id,
           resource=f"retention_hold:{hold.id}",
           details={"new": {"rule": rule_key, "names": given[0], "reason": reason}})
    return hold


def release_hold(session: Session, hold_id: str, *, actor_user_id: str | None) -> LegalHold:
    hold = session.get(LegalHold, hold_id)
    if hold is None:
        raise NotFound(detail="no such legal hold")
    if hold.released_at is not None:
        raise Conflict(detail="this hold was released already")
    hold.released_at, hold.released_by = utcnow(), actor_user_id
    session.flush()
    record(session, "retention.hold_released", org_id=hold.org_id, actor_user_id=actor_user_id,
           resource=f"retention_hold:{hold.id}", details={"old": {"released": False},
                                                          "new": {"released": True}})
    return hold


def list_holds(session: Session, *, active_only: bool = False) -> list[LegalHold]:
    stmt = select(LegalHold).order_by(LegalHold.created_at.desc())
    if active_only:
        stmt = stmt.where(LegalHold.released_at.is_(None))
    return list(session.scalars(stmt))


@dataclass
class Held:
    records: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    subjects: set[str] = field(default_factory=set)

    @property
    def every(self) -> set[str]:
        return self.records | self.users | self.subjects


def _held(session: Session | Any, rule_key: str) -> Held:
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


def _table(name: str) -> Table:
    import_models()
    return Base.metadata.tables[name]


def _conditions(table: Table, clock: str, cutoff: datetime, held: Held) -> list[Any]:
    (pk,) = table.primary_key.columns
    cond = [table.c[clock].is_not(None), table.c[clock] < cutoff]
    if held.records:
        cond.append(pk.not_in(sorted(held.records)))
    if held.users and "user_id" in table.c:
        cond.append(table.c.user_id.not_in(sorted(held.users)))
    if held.subjects and "subject_ref" in table.c:
        cond.append(table.c.subject_ref.not_in(sorted(held.subjects)))
    return cond


def _count_due(session: Session, r: Rule, cutoff: datetime, held: Held) -> int:
    if r.kind == "table":
        table = _table(r.tables[0])
        return int(session.connection().scalar(
            select(func.count()).select_from(table).where(*_conditions(table, r.clock, cutoff, held))) or 0)
    return len(_function_ids(session, r, cutoff, held, limit=1_000_000))


def _any_due(session: Session, r: Rule, cutoff: datetime, held: Held) -> bool:
    if r.kind == "product":
        db, mt = _product_table(session, r)
        return bool(product.count_due(db, mt, cutoff, held.records, _keys(session, db))["due"])
    if r.kind == "table":
        table = _table(r.tables[0])
        first = select(1).select_from(table).where(*_conditions(table, r.clock, cutoff, held))
        return session.connection().scalar(first.limit(1)) is not None
    return bool(_function_ids(session, r, cutoff, held, limit=1))


def delete_batch(conn: Any, table: Table, clock: str, cutoff: datetime, *, held: Held,
                 after: Any, batch: int) -> tuple[int, Any]:
    """Delete the next batch of about ``batch`` expired rows after the cursor ``after``.
    Returns (rows deleted, the new cursor; None once the table has no more expired rows).

    PostgreSQL: the cursor is a page of the table's heap; a batch is the rows of a range of
    pages (a TID range scan: the pages are read in order, as a bare ``DELETE`` reads them).
    Elsewhere: the cursor is the primary key; the batch's last key is found first, then one range
    ``DELETE`` removes the batch (both walk the primary key's index)."""
    cond = _conditions(table, clock, cutoff, held)
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


def _function_ids(session: Session, r: Rule, cutoff: datetime, held: Held, limit: int) -> list[str]:
    """The rows a function rule would take now (for the plan), without taking them."""

    closed = ("done", "rejected", "cancelled")
    if r.key == "incidents":
        return expire_closed(session, closed_before=cutoff, limit=limit, held=held.every,
                             dry_run=True)
    if r.key == "control":
        return expire_control(session, before=cutoff, limit=limit, held=held.every, dry_run=True)
    if r.key == "consent_records":
        why = "retention plan: every organisation"
        rows = session.execute(
            select(ConsentRecord.__table__.c.id)
            .join(Purpose.__table__, and_(Purpose.__table__.c.org_id == ConsentRecord.__table__.c.org_id,
                                          Purpose.__table__.c.key == ConsentRecord.__table__.c.purpose_key))
            .where(Purpose.__table__.c.retired_at < cutoff).limit(limit)
            .execution_options(cross_tenant=why))
        return [x for (x,) in rows]
    t = RightsRequest.__table__
    stmt = select(t.c.id, t.c.subject_ref).where(
        t.c.status.in_(closed), t.c.completed_at.is_not(None), t.c.completed_at < cutoff)
    if r.key == "rights_requests.details":
        stmt = stmt.join(DataKey.__table__, DataKey.__table__.c.id == t.c.key_id).where(
            DataKey.__table__.c.destroyed_at.is_(None))
    rows = session.execute(stmt.limit(limit).execution_options(cross_tenant="retention plan"))
    return [i for i, ref in rows if i not in held.every and ref not in held.every]


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


# -- plan and run ----------------------------------------------------------------------------


def plan(database: Database, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """The dry run: per rule, what would go now (counts), and what is held."""
    now = now or utcnow()
    out = []
    with database.transaction(Scope.system("retention plan")) as session:
        for r in rules(session):
            item = r.view()
            if r.days and not r.enforced_by:
                cutoff = now - timedelta(days=r.days)
                held = _held(session, r.key)
                item["cutoff"] = cutoff.isoformat(timespec="seconds")
                item["held"] = len(held.every)
                if r.kind == "product":
                    item |= _plan_product(session, r, cutoff, held)
                else:
                    item["due"] = _count_due(session, r, cutoff, held)
            out.append(item)
    return out


def _plan_product(session: Session, r: Rule, cutoff: datetime, held: Held) -> dict[str, Any]:

    db, mt = _product_table(session, r)
    try:
        return product.count_due(db, mt, cutoff, held.records, _keys(session, db))
    except product.failures() as exc:  # an unreachable product database is reported, not fatal
        return {"due": None, "error": describe_failure(exc)}


def _claim(database: Database, now: datetime, trigger: str, actor_user_id: str | None) -> str:
    """A new run, or the one a stopped run left (taken over when its heartbeat is older than
    the lease); a run that is alive refuses a second one."""
    with database.transaction(Scope.system("retention run")) as session:
        running = session.scalar(select(RetentionRun).where(RetentionRun.status == "running")
                                 .order_by(RetentionRun.started_at).limit(1))
        if running is not None:
            if running.heartbeat_at > utcnow() - LEASE:
                raise Conflict(detail="a retention run is under way")
            taken = getattr(session.execute(
                update(RetentionRun).where(RetentionRun.id == running.id,
                                           RetentionRun.heartbeat_at == running.heartbeat_at)
                .values(heartbeat_at=utcnow(), resumed=True)), "rowcount", 0)
            if not taken:
                raise Conflict(detail="a retention run is under way")
            record(session, "retention.run_resumed", org_id=None, actor_user_id=actor_user_id,
                   resource=f"retention_run:{running.id}")
            return running.id
        run_row = RetentionRun(trigger=trigger, status="running", as_of=now,
                               started_by=actor_user_id, counts={}, finished_rules=[], cursor={})
        session.add(run_row)
        session.flush()
        record(session, "retention.run_started", org_id=None, actor_user_id=actor_user_id,
               resource=f"retention_run:{run_row.id}", details={"new": {"trigger": trigger}})
        return run_row.id


def _progress(session: Session | Any, run_id: str, rule_key: str, *, done: int,
              cursor: Any = None, finished: bool = False, customer: str | None = None,
              error: str | None = None) -> None:
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


def run(database: Database, settings: Settings | None = None, *, now: datetime | None = None,
        trigger: str = "cli", actor_user_id: str | None = None, batch: int = BATCH,
        on_batch: Callable[[str, int], None] | None = None) -> RetentionRun:
    """Apply every rule this domain enforces, in batches; returns the finished run (evidence).

    ``on_batch(rule, rows)`` is called after each committed batch (tests stop a run there)."""
    if trigger not in ("schedule", "cli", "api"):
        raise InvalidInput.on("trigger", "schedule, cli or api")
    if batch < 1 or batch > 100_000:
        raise InvalidInput.on("batch", "must be 1-100000")
    run_id = _claim(database, now or utcnow(), trigger, actor_user_id)
    with database.transaction(Scope.system("retention run")) as session:
        row = session.get(RetentionRun, run_id)
        assert row is not None
        as_of, finished, cursors = row.as_of, set(row.finished_rules or []), dict(row.cursor or {})
        counts = dict(row.counts or {})
        work: list[tuple[Rule, Held]] = []
        for r in rules(session):  # what is due, for every rule, in one transaction
            if not r.days or r.enforced_by or r.key in finished:
                continue
            cutoff = as_of - timedelta(days=r.days)
            held = _held(session, r.key)
            entry = dict(counts.get(r.key) or {"done": 0})
            entry |= {"action": r.action, "days": r.days, "held": len(held.every),
                      "cutoff": cutoff.isoformat(timespec="seconds")}
            counts[r.key] = entry
            # how many go is counted as they go (the plan counts first); a rule with nothing
            # due at all is done here, without a transaction of its own
            if r.kind == "product":
                due = _product_entry(session, r, cutoff, held, entry)
            else:
                due = _any_due(session, r, cutoff, held)
            if "error" not in entry and (r.key in cursors or due):
                work.append((r, held))
            else:
                finished.add(r.key)
        row.counts, row.finished_rules, row.heartbeat_at = counts, sorted(finished), utcnow()
    try:
        for r, held in work:
            _apply(database, run_id, r, as_of, held=held, after=cursors.get(r.key), batch=batch,
                   on_batch=on_batch, settings=settings)
    except Exception as exc:
        with database.transaction(Scope.system("retention run")) as session:
            session.execute(update(RetentionRun).where(RetentionRun.id == run_id).values(
                status="failed", finished_at=utcnow(), error=type(exc).__name__))
            record(session, "retention.run_failed", org_id=None, outcome="failure",
                   resource=f"retention_run:{run_id}", details={"new": {"error": type(exc).__name__}})
        raise
    with database.transaction(Scope.system("retention run")) as session:
        row = session.get(RetentionRun, run_id)
        assert row is not None
        row.status, row.finished_at = "done", utcnow()
        record(session, "retention.run_finished", org_id=None, actor_user_id=actor_user_id,
               resource=f"retention_run:{run_id}",
               details={"new": {r: c.get("done", 0) for r, c in (row.counts or {}).items()}})
        session.flush()
        session.expunge(row)
    return row


def _product_entry(session: Session, r: Rule, cutoff: datetime, held: Held,
                   entry: dict[str, Any]) -> bool:
    """Whether a product rule has rows due; the run's evidence gets the database and what was
    due per customer when the run began (or why the rule cannot run now: ``error``)."""
    entry["database"] = r.database
    found, problem = _product_due(session, r, cutoff, held)
    if problem:
        entry["error"] = problem
        return False
    entry |= {k: v for k, v in found.items() if k != "due"}
    return bool(found["due"])


def _product_due(session: Session, r: Rule, cutoff: datetime,
                 held: Held) -> tuple[dict[str, Any], str]:
    """What a product rule finds due now (in all and per customer), or why it cannot run now:
    the run records it and goes on with the other rules."""

    db, mt = _product_table(session, r)
    try:
        return product.count_due(db, mt, cutoff, held.records, _keys(session, db)), ""
    except product.failures() as exc:  # the database cannot be reached: the others still run
        return {}, describe_failure(exc)


def _apply(database: Database, run_id: str, r: Rule, as_of: datetime, *, held: Held, after: Any,
           batch: int, on_batch: Callable[[str, int], None] | None,
           settings: Settings | None = None) -> None:
    assert r.days is not None
    cutoff = as_of - timedelta(days=r.days)
    if r.kind == "product":
        with database.transaction(Scope.system("retention run")) as session:
            db, mt = _product_table(session, r)
            keys = _keys(session, db)
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
        table = _table(r.tables[0])
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


def list_runs(session: Session, *, limit: int = 50) -> list[RetentionRun]:
    return list(session.scalars(select(RetentionRun).order_by(RetentionRun.started_at.desc())
                                .limit(limit)))


def get_run(session: Session, run_id: str) -> RetentionRun:
    found = session.get(RetentionRun, run_id)
    if found is None:
        raise NotFound(detail="no such retention run")
    return found


def run_view(r: RetentionRun) -> dict[str, Any]:
    return {
        "id": r.id, "trigger": r.trigger, "status": r.status, "resumed": r.resumed,
        "started_at": r.started_at.isoformat(), "as_of": r.as_of.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "counts": r.counts or {}, "error": r.error,
    }


def hold_view(h: LegalHold) -> dict[str, Any]:
    return {
        "id": h.id, "rule": h.rule, "org_id": h.org_id, "record_id": h.record_id,
        "user_id": h.user_id, "person": bool(h.subject_ref), "reason": h.reason,
        "created_at": h.created_at.isoformat(),
        "released_at": h.released_at.isoformat() if h.released_at else None,
    }
