"""Reports from the roll-ups: totals, a series per day/week/month, and the top values of each
dimension. Never touches raw events, so its cost depends on the number of days and distinct
values, not on the traffic."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vern.core.csvsafe import SafeWriter
from vern.stats.models import StatsDaily, StatsDailyDim
from vern.stats.rollup import DIMENSIONS

Interval = Literal["day", "week", "month"]
MAX_DAYS = 3 * 366


@dataclass
class Bucket:
    start: str
    pageviews: int = 0
    visitors: int = 0
    visits: int = 0
    bounces: int = 0
    duration_s: int = 0

    @property
    def bounce_rate(self) -> float:
        return round(self.bounces / self.visits, 4) if self.visits else 0.0

    @property
    def avg_duration_s(self) -> float:
        return round(self.duration_s / self.visits, 1) if self.visits else 0.0

    def as_dict(self) -> dict[str, object]:
        return {"start": self.start, "pageviews": self.pageviews, "visitors": self.visitors,
                "visits": self.visits, "bounce_rate": self.bounce_rate,
                "avg_visit_duration_s": self.avg_duration_s}


@dataclass
class Report:
    site_id: str
    start: date
    end: date
    interval: Interval
    totals: Bucket
    series: list[Bucket]
    top: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "site_id": self.site_id, "from": self.start.isoformat(), "to": self.end.isoformat(),
            "interval": self.interval, "totals": self.totals.as_dict(),
            "series": [b.as_dict() for b in self.series],
            "top": {dim: [{"value": v, "count": n} for v, n in rows] for dim, rows in self.top.items()},
        }


def bucket_start(day: date, interval: Interval) -> date:
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def build(session: Session, site_id: str, start: date, end: date, interval: Interval,
          *, top_n: int = 10) -> Report:
    """Totals and series from ``stats_daily``; top lists from ``stats_daily_dims``. Visitors over a
    week or month are the sum of daily visitors: with daily salts nobody can tell that two days'
    visitors were the same person - by design."""
    buckets: dict[str, Bucket] = {}
    cursor = bucket_start(start, interval)
    while cursor <= end:
        buckets[cursor.isoformat()] = Bucket(cursor.isoformat())
        cursor = _next(cursor, interval)
    totals = Bucket(start.isoformat())
    rows = session.execute(
        select(StatsDaily.day, StatsDaily.pageviews, StatsDaily.visitors, StatsDaily.visits,
               StatsDaily.bounces, StatsDaily.duration_s)
        .where(StatsDaily.site_id == site_id, StatsDaily.day >= start.isoformat(),
               StatsDaily.day <= end.isoformat())
    ).all()
    for row in rows:
        key = bucket_start(date.fromisoformat(row.day), interval).isoformat()
        for target in (buckets[key], totals):
            target.pageviews += row.pageviews
            target.visitors += row.visitors
            target.visits += row.visits
            target.bounces += row.bounces
            target.duration_s += row.duration_s
    top = {dim: top_values(session, site_id, start, end, dim, limit=top_n) for dim in DIMENSIONS}
    return Report(site_id, start, end, interval, totals, list(buckets.values()), top)


def top_values(session: Session, site_id: str, start: date, end: date, dim: str, *,
               limit: int) -> list[tuple[str, int]]:
    measure = StatsDailyDim.pageviews if dim == "page" else StatsDailyDim.visits
    total = func.sum(measure).label("n")
    rows = session.execute(
        select(StatsDailyDim.value, total)
        .where(StatsDailyDim.site_id == site_id, StatsDailyDim.day >= start.isoformat(),
               StatsDailyDim.day <= end.isoformat(), StatsDailyDim.dim == dim)
        .group_by(StatsDailyDim.value)
        .order_by(total.desc(), StatsDailyDim.value)
        .limit(limit)
    ).all()
    return [(r.value, int(r.n)) for r in rows]


def _next(day: date, interval: Interval) -> date:
    if interval == "week":
        return day + timedelta(days=7)
    if interval == "month":
        return (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return day + timedelta(days=1)


def to_csv(report: Report) -> str:
    """The series, then each top list, as one CSV document (values are quoted, formulas defused)."""
    out = io.StringIO()
    writer = SafeWriter(out)  # a referrer or path may start with = + - @
    writer.writerow(["period_start", "pageviews", "visitors", "visits", "bounce_rate",
                     "avg_visit_duration_s"])
    for b in report.series:
        writer.writerow([b.start, b.pageviews, b.visitors, b.visits, b.bounce_rate, b.avg_duration_s])
    for dim, rows in report.top.items():
        writer.writerow([])
        writer.writerow([dim, "pageviews" if dim == "page" else "visits"])
        for value, n in rows:
            writer.writerow([value, n])
    return out.getvalue()
