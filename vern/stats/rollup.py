"""From page views to visits and daily roll-ups, in one pass per batch.

``plan`` is pure: given a batch of page views and the visits they may continue, it works out the new
and changed visits and the deltas to add to the daily totals and dimension counts. ``write`` applies
a plan in one transaction with additive upserts, so two processes flushing at once add up instead
of overwriting each other. Reports then read only the roll-ups: a 30-day report sums at most
30 rows of totals and a few thousand dimension rows, whatever the traffic was.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from vern.core.db import new_id
from vern.stats.models import PublicReject, StatsDaily, StatsDailyDim, StatsEvent, StatsVisit

DIMENSIONS = ("page", "referrer", "browser", "os", "device")
DIRECT = "(direct)"


@dataclass(slots=True)
class PageView:
    org_id: str
    site_id: str
    at: datetime
    visitor: str
    path: str
    referrer: str
    browser: str
    os: str
    device: str

    @property
    def day(self) -> str:
        return self.at.date().isoformat()


@dataclass(slots=True)
class VisitState:
    id: str
    org_id: str
    site_id: str
    day: str
    visitor: str
    started_at: datetime
    last_at: datetime
    pageviews: int
    new: bool = False
    changed: bool = False


VisitKey = tuple[str, str, str]  # site, day, visitor


@dataclass
class Plan:
    visits: dict[VisitKey, VisitState] = field(default_factory=dict)
    # Visits that a later visit of the same visitor in the same batch replaced in ``visits``.
    ended: list[VisitState] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    daily: dict[tuple[str, str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0, 0]))
    dims: dict[tuple[str, str, str, str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0]))


def plan(views: Iterable[PageView], existing: dict[VisitKey, VisitState], gap: timedelta) -> Plan:
    """Sort the batch by time and walk it: a view more than ``gap`` after the visitor's last one
    starts a new visit; a visit's first second view un-bounces it; time between views is duration."""
    result = Plan(visits=dict(existing))
    for view in sorted(views, key=lambda v: v.at):
        day = view.day
        key = (view.site_id, day, view.visitor)
        day_key = (view.org_id, view.site_id, day)
        totals = result.daily[day_key]  # pageviews, visitors, visits, bounces, duration_s
        state = result.visits.get(key)
        if state is None or view.at - state.last_at > gap:
            if state is None:
                totals[1] += 1
            elif state.new or state.changed:
                result.ended.append(state)  # still to be written
            state = VisitState(new_id(), view.org_id, view.site_id, day, view.visitor,
                               view.at, view.at, 1, new=True)
            result.visits[key] = state
            totals[2] += 1
            totals[3] += 1
            for dim, value in (("referrer", view.referrer), ("browser", view.browser),
                               ("os", view.os), ("device", view.device)):
                result.dims[(view.org_id, view.site_id, day, dim, value)][1] += 1
        else:
            if state.pageviews == 1:
                totals[3] -= 1
            state.pageviews += 1
            if view.at > state.last_at:
                totals[4] += int((view.at - state.last_at).total_seconds())
                state.last_at = view.at
            state.changed = True
        totals[0] += 1
        result.dims[(view.org_id, view.site_id, day, "page", view.path)][0] += 1
        result.events.append({
            "org_id": view.org_id, "site_id": view.site_id, "at": view.at, "visit_id": state.id,
            "path": view.path, "referrer": view.referrer, "browser": view.browser,
            "os": view.os, "device": view.device,
        })
    return result


_VISITS: Table = StatsVisit.__table__  # type: ignore[assignment]
_EVENTS: Table = StatsEvent.__table__  # type: ignore[assignment]


def load_visits(session: Session, views: Sequence[PageView]) -> dict[VisitKey, VisitState]:
    """The latest stored visit of each (site, day, visitor) in the batch (Core statements: this
    runs once per batch on the ingest's hot path)."""
    wanted = {(v.site_id, v.day, v.visitor) for v in views}
    found: dict[VisitKey, VisitState] = {}
    by_site_day: dict[tuple[str, str], list[str]] = defaultdict(list)
    for site, day, visitor in wanted:
        by_site_day[(site, day)].append(visitor)
    conn = session.connection()
    cols = _VISITS.c
    for (site, day), visitors in by_site_day.items():
        visitors.sort()
        for start in range(0, len(visitors), 500):
            rows = conn.execute(
                select(cols.id, cols.org_id, cols.started_at, cols.last_at, cols.visitor,
                       cols.pageviews)
                .where(cols.site_id == site, cols.day == day,
                       cols.visitor.in_(visitors[start:start + 500]))
            )
            for row in rows:
                key = (site, day, row.visitor)
                known = found.get(key)
                if known is None or row.last_at > known.last_at:
                    found[key] = VisitState(row.id, row.org_id, site, day, row.visitor,
                                            row.started_at, row.last_at, row.pageviews)
    return found


def write(session: Session, result: Plan) -> None:
    every = [*result.ended, *result.visits.values()]
    new = [v for v in every if v.new]
    changed = [v for v in every if v.changed and not v.new]
    conn = session.connection()
    if new:
        conn.execute(insert(_VISITS), [
            {"id": v.id, "org_id": v.org_id, "site_id": v.site_id, "day": v.day,
             "visitor": v.visitor, "started_at": v.started_at, "last_at": v.last_at,
             "pageviews": v.pageviews} for v in new
        ])
    if changed:
        conn.execute(
            update(_VISITS).where(_VISITS.c.id == bindparam("b_id"))
            .values(last_at=bindparam("b_last"), pageviews=bindparam("b_n")),
            [{"b_id": v.id, "b_last": v.last_at, "b_n": v.pageviews} for v in changed])
    if result.events:
        conn.execute(insert(_EVENTS), result.events)
    if result.daily:
        upsert_add(session, StatsDaily, ["site_id", "day"], [
            {"org_id": org, "site_id": site, "day": day, "pageviews": t[0], "visitors": t[1],
             "visits": t[2], "bounces": t[3], "duration_s": t[4]}
            for (org, site, day), t in result.daily.items()
        ], ["pageviews", "visitors", "visits", "bounces", "duration_s"])
    if result.dims:
        upsert_add(session, StatsDailyDim, ["site_id", "dim", "day", "value"], [
            {"org_id": org, "site_id": site, "day": day, "dim": dim, "value": value,
             "pageviews": c[0], "visits": c[1]}
            for (org, site, day, dim, value), c in result.dims.items()
        ], ["pageviews", "visits"])


def apply(session: Session, views: Sequence[PageView], gap: timedelta) -> Plan:
    result = plan(views, load_visits(session, views), gap)
    write(session, result)
    return result


def count_rejects(session: Session, counts: dict[tuple[str, str, str], int]) -> None:
    if counts:
        upsert_add(session, PublicReject, ["day", "endpoint", "reason"], [
            {"day": day, "endpoint": endpoint, "reason": reason, "count": n}
            for (day, endpoint, reason), n in counts.items()
        ], ["count"])


def upsert_add(session: Session, model: Any, keys: list[str], rows: list[dict[str, Any]],
               add: list[str]) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET col = col + new, for each dialect Vern runs on."""
    table = model.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "mysql":
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt_m = mysql_insert(table)
        stmt_m = stmt_m.on_duplicate_key_update({c: table.c[c] + stmt_m.inserted[c] for c in add})
        session.execute(stmt_m, rows)
        return
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt_p = pg_insert(table)
        stmt_p = stmt_p.on_conflict_do_update(
            index_elements=keys, set_={c: table.c[c] + stmt_p.excluded[c] for c in add})
        session.execute(stmt_p, rows)
        return
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    stmt_s = sqlite_insert(table)
    stmt_s = stmt_s.on_conflict_do_update(
        index_elements=keys, set_={c: table.c[c] + stmt_s.excluded[c] for c in add})
    session.execute(stmt_s, rows)
