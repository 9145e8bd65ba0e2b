"""Retention enforced: one rule per category of Vern's own data, read from the data map
(``retention`` and ``retention_after`` in each ``datamap.yaml``, with the machine-readable
policies of ``vern.datamap.categories.RETENTION_POLICIES``), legal holds that pause a rule, and
runs that apply the rules in bounded batches and are kept as evidence.

A run works rule by rule, batch by batch. Each batch is one transaction that both removes its
rows and writes the run's counts and cursor, so a run stopped half-way (a crash, a killed worker)
holds no half-written state and the next run takes it up where it stopped.

The rules are read in ``vern.retention.rules`` and applied batch by batch in
``vern.retention.batches``; this module is the domain's entry point to both.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from vern.audit.service import record
from vern.consent.models import ConsentRecord, Purpose
from vern.control.service import expire_records as expire_control
from vern.core.config import Settings
from vern.core.crypto import DataKey
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import Conflict, InvalidInput, NotFound
from vern.incidents.service import expire_closed
from vern.retention import product
from vern.retention.batches import Held, apply_rule, conditions, delete_batch, held_for, table_of
from vern.retention.models import LegalHold, RetentionPeriod, RetentionRun
from vern.retention.rules import DETAILS_DAYS, Rule, customer_keys, product_table, rule, rules
from vern.rights.connectors import describe_failure
from vern.rights.identities import clean_identities, subject_ref
from vern.rights.models import RightsRequest

# The domain's entry point: the rules (vern.retention.rules) and their batches
# (vern.retention.batches) are used through this module.
__all__ = [
    "ACTIONS", "BATCH", "DETAILS_DAYS", "LEASE", "Held", "Rule", "create_hold", "delete_batch",
    "get_run", "hold_view", "list_holds", "list_runs", "plan", "release_hold", "rule", "rules",
    "run", "run_view", "set_period",
]

BATCH = 50_000  # rows per transaction: bounded, and few enough commits to keep pace
LEASE = timedelta(minutes=10)
ACTIONS = ("delete", "anonymise")


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


# -- what a rule has due ---------------------------------------------------------------------


def _count_due(session: Session, r: Rule, cutoff: datetime, held: Held) -> int:
    if r.kind == "table":
        table = table_of(r.tables[0])
        return int(session.connection().scalar(
            select(func.count()).select_from(table).where(*conditions(table, r.clock, cutoff, held))) or 0)
    return len(_function_ids(session, r, cutoff, held, limit=1_000_000))


def _any_due(session: Session, r: Rule, cutoff: datetime, held: Held) -> bool:
    if r.kind == "product":
        db, mt = product_table(session, r)
        return bool(product.count_due(db, mt, cutoff, held.records, customer_keys(session, db))["due"])
    if r.kind == "table":
        table = table_of(r.tables[0])
        first = select(1).select_from(table).where(*conditions(table, r.clock, cutoff, held))
        return session.connection().scalar(first.limit(1)) is not None
    return bool(_function_ids(session, r, cutoff, held, limit=1))


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
                held = held_for(session, r.key)
                item["cutoff"] = cutoff.isoformat(timespec="seconds")
                item["held"] = len(held.every)
                if r.kind == "product":
                    item |= _plan_product(session, r, cutoff, held)
                else:
                    item["due"] = _count_due(session, r, cutoff, held)
            out.append(item)
    return out


def _plan_product(session: Session, r: Rule, cutoff: datetime, held: Held) -> dict[str, Any]:

    db, mt = product_table(session, r)
    try:
        return product.count_due(db, mt, cutoff, held.records, customer_keys(session, db))
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
    as_of, work, cursors = _due_work(database, run_id)
    try:
        for r, held in work:
            apply_rule(database, run_id, r, as_of, held=held, after=cursors.get(r.key), batch=batch,
                       on_batch=on_batch, settings=settings)
    except Exception as exc:
        _run_failed(database, run_id, exc)
        raise
    return _run_finished(database, run_id, actor_user_id)


def _due_work(database: Database,
              run_id: str) -> tuple[datetime, list[tuple[Rule, Held]], dict[str, Any]]:
    """What is due, for every rule, in one transaction: the run's time, the rules with work left
    (with their holds) and the cursors a stopped run left. A rule with nothing due at all is
    finished here, without a transaction of its own."""
    with database.transaction(Scope.system("retention run")) as session:
        row = session.get(RetentionRun, run_id)
        assert row is not None
        as_of, finished, cursors = row.as_of, set(row.finished_rules or []), dict(row.cursor or {})
        counts = dict(row.counts or {})
        work: list[tuple[Rule, Held]] = []
        for r in rules(session):
            if not r.days or r.enforced_by or r.key in finished:
                continue
            held, due, entry = _due_entry(session, r, as_of - timedelta(days=r.days), counts)
            if "error" not in entry and (r.key in cursors or due):
                work.append((r, held))
            else:
                finished.add(r.key)
        row.counts, row.finished_rules, row.heartbeat_at = counts, sorted(finished), utcnow()
    return as_of, work, cursors


def _due_entry(session: Session, r: Rule, cutoff: datetime,
               counts: dict[str, Any]) -> tuple[Held, bool, dict[str, Any]]:
    """A rule's holds, whether it has rows due, and its entry in the run's counts (written into
    ``counts``: its action, period, cutoff and how many records are held)."""
    held = held_for(session, r.key)
    entry = dict(counts.get(r.key) or {"done": 0})
    entry |= {"action": r.action, "days": r.days, "held": len(held.every),
              "cutoff": cutoff.isoformat(timespec="seconds")}
    counts[r.key] = entry
    # how many go is counted as they go (the plan counts first)
    if r.kind == "product":
        due = _product_entry(session, r, cutoff, held, entry)
    else:
        due = _any_due(session, r, cutoff, held)
    return held, due, entry


def _run_failed(database: Database, run_id: str, exc: Exception) -> None:
    with database.transaction(Scope.system("retention run")) as session:
        session.execute(update(RetentionRun).where(RetentionRun.id == run_id).values(
            status="failed", finished_at=utcnow(), error=type(exc).__name__))
        record(session, "retention.run_failed", org_id=None, outcome="failure",
               resource=f"retention_run:{run_id}", details={"new": {"error": type(exc).__name__}})


def _run_finished(database: Database, run_id: str, actor_user_id: str | None) -> RetentionRun:
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

    db, mt = product_table(session, r)
    try:
        return product.count_due(db, mt, cutoff, held.records, customer_keys(session, db)), ""
    except product.failures() as exc:  # the database cannot be reached: the others still run
        return {}, describe_failure(exc)


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
