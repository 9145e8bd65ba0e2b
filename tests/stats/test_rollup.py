"""Visits, bounces, durations and roll-ups from page views; reports read only the roll-ups."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import Personas
from tests.stats.helpers import FIREFOX, IPHONE, make_site
from vern.core.config import StatsSettings
from vern.core.db import Database, Scope
from vern.stats import report
from vern.stats.ingest import Ingestor, Rejected, parse_beacon, purge
from vern.stats.models import PublicReject, StatsEvent, StatsSalt, StatsVisit
from vern.stats.rollup import PageView, plan

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GAP = timedelta(minutes=30)


def view(visitor: str, minutes: float, path: str = "/") -> PageView:
    return PageView("org", "site", T0 + timedelta(minutes=minutes), visitor, path, "(direct)",
                    "Firefox", "Linux", "desktop")


def test_a_single_view_is_one_bounced_visit() -> None:
    result = plan([view("v1", 0)], {}, GAP)
    assert result.daily[("org", "site", "2026-03-02")] == [1, 1, 1, 1, 0]


def test_a_second_view_unbounces_the_visit_and_adds_its_duration() -> None:
    result = plan([view("v1", 5), view("v1", 0)], {}, GAP)
    assert result.daily[("org", "site", "2026-03-02")] == [2, 1, 1, 0, 300]


def test_a_view_after_the_gap_starts_a_new_visit_of_the_same_visitor() -> None:
    result = plan([view("v1", 0), view("v1", 45)], {}, GAP)
    pageviews, visitors, visits, bounces, _ = result.daily[("org", "site", "2026-03-02")]
    assert (pageviews, visitors, visits, bounces) == (2, 1, 2, 2)


def _ingestor(db: Database) -> Ingestor:
    return Ingestor(db, StatsSettings(flush_interval_ms=0))


def _beacon(site: str, url: str = "https://www.fjellheim.example.com/om-oss?e=ola@example.com",
            ref: str = "") -> bytes:
    return json.dumps({"s": site, "u": url, "r": ref}).encode()


def test_a_report_counts_visitors_pages_referrers_and_devices(
        db: Database, personas: Personas) -> None:
    site = make_site(db, personas.tenant_a)
    ing = _ingestor(db)
    ing.accept(_beacon(site, ref="https://www.google.com/search?q=x"), "195.159.103.0", FIREFOX,
               now=T0)
    ing.accept(_beacon(site, "https://www.fjellheim.example.com/kontakt"), "195.159.103.0",
               FIREFOX, now=T0 + timedelta(minutes=2))
    ing.accept(_beacon(site), "84.208.1.0", IPHONE, now=T0 + timedelta(minutes=3))
    ing.accept(_beacon(site), "84.208.1.0", IPHONE, now=T0 + timedelta(days=1))
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        rep = report.build(session, site, date(2026, 3, 1), date(2026, 3, 31), "day")
        monthly = report.build(session, site, date(2026, 3, 1), date(2026, 3, 31), "month")
    assert rep.totals.pageviews == 4
    assert rep.totals.visitors == 3  # the iPhone on two days counts once per day
    assert rep.totals.visits == 3
    assert rep.totals.bounces == 2
    assert rep.totals.duration_s == 120
    assert dict(rep.top["page"]) == {"/om-oss": 3, "/kontakt": 1}
    assert dict(rep.top["referrer"]) == {"www.google.com": 1, "(direct)": 2}
    assert dict(rep.top["device"]) == {"desktop": 1, "mobile": 2}
    assert dict(rep.top["browser"]) == {"Firefox": 1, "Safari": 2}
    assert [b.start for b in monthly.series] == ["2026-03-01"]
    assert monthly.series[0].pageviews == 4
    csv_text = report.to_csv(rep)
    assert csv_text.startswith("period_start,pageviews,visitors")
    assert "ola@example.com" not in csv_text


def test_another_tenant_sees_nothing_of_the_site(db: Database, personas: Personas) -> None:
    site = make_site(db, personas.tenant_a)
    _ingestor(db).accept(_beacon(site), "195.159.103.0", FIREFOX, now=T0)
    with db.transaction(Scope.tenant(personas.tenant_b)) as session:
        rep = report.build(session, site, date(2026, 3, 1), date(2026, 3, 31), "week")
    assert rep.totals.pageviews == 0
    assert all(rows == [] for rows in rep.top.values())


@pytest.mark.parametrize(("body", "reason"), [
    (b"{not json", "not-json"),
    (b'["s"]', "bad-shape"),
    (b'{"s": "x", "u": "/"}', "bad-site"),
    (b'{"s": "00000000-0000-0000-0000-000000000000", "u": 5}', "bad-url"),
    (b'{"s": "00000000-0000-0000-0000-000000000000", "u": "/", "extra": 1}', "bad-shape"),
    (b"x" * 5000, "too-large"),
])
def test_it_refuses_a_malformed_beacon_whole(body: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse_beacon(body, 2048)
    assert caught.value.reason == reason


def test_refusals_are_counted_and_nothing_is_stored_half(db: Database, personas: Personas) -> None:
    site = make_site(db, personas.tenant_a)
    ing = _ingestor(db)
    for body in (b"{", _beacon("00000000-0000-0000-0000-000000000000")):
        with pytest.raises(Rejected) as caught:
            ing.accept(body, "195.159.103.0", FIREFOX)
        ing.reject("beacon", caught.value.reason)
    ing.accept(_beacon(site, "javascript:alert(1)") if False else _beacon(site), "1.2.3.0", FIREFOX)
    with db.transaction(Scope.system("test read")) as session:
        counts = {r.reason: r.count for r in session.scalars(select(PublicReject))}
        events = session.scalar(select(func.count()).select_from(StatsEvent))
    assert counts == {"not-json": 1, "unknown-site": 1}
    assert events == 1


def test_bots_are_not_counted(db: Database, personas: Personas) -> None:
    site = make_site(db, personas.tenant_a)
    assert _ingestor(db).accept(_beacon(site), "1.2.3.0", "Googlebot/2.1") is False


def test_raw_events_and_old_salts_are_deleted_but_roll_ups_stay(
        db: Database, personas: Personas) -> None:
    site = make_site(db, personas.tenant_a)
    ing = _ingestor(db)
    ing.accept(_beacon(site), "1.2.3.0", FIREFOX, now=T0)
    with db.transaction(Scope.system("test: age the salt")) as session:
        salt = session.scalars(select(StatsSalt)).one()
        salt.created_at = T0
    result = purge(db, ing.salts, StatsSettings(raw_days=7), now=T0 + timedelta(days=8))
    assert result == {"events": 1, "visits": 1, "salts": 1}
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        assert session.scalar(select(func.count()).select_from(StatsVisit)) == 0
        rep = report.build(session, site, date(2026, 3, 1), date(2026, 3, 31), "day")
    assert rep.totals.pageviews == 1


def test_the_salt_is_kept_for_48_hours_only(db: Database) -> None:
    ing = _ingestor(db)
    first = ing.salts.for_day("2026-03-02")
    assert ing.salts.for_day("2026-03-02") == first
    assert ing.salts.for_day("2026-03-03") != first
    with db.transaction(Scope.system("test")) as session:
        for row in session.scalars(select(StatsSalt)):
            row.created_at = T0
    assert ing.salts.purge(T0 + timedelta(hours=47)) == 0
    assert ing.salts.purge(T0 + timedelta(hours=49)) == 2


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_two_visits_of_one_visitor_in_one_batch_are_both_stored(
        db: Database, personas: Personas) -> None:
    """A batch can hold more than one visit of a visitor (a batch kept through an outage, a bulk
    load): each is stored, and every event points at a stored visit."""
    from vern.stats import rollup

    org = personas.tenant_a
    site = make_site(db, org)
    views = [PageView(org, site, T0 + timedelta(minutes=m), "v1", "/", "(direct)", "Firefox",
                      "Linux", "desktop") for m in (0, 5, 50, 120, 121)]
    with db.transaction(Scope.system("test write")) as session:
        rollup.apply(session, views, GAP)
    with db.transaction(Scope.system("test read")) as session:
        visits = session.scalars(select(StatsVisit).order_by(StatsVisit.started_at)).all()
        assert [v.pageviews for v in visits] == [2, 1, 2]
        visit_ids = {v.id for v in visits}
        assert {e.visit_id for e in session.scalars(select(StatsEvent))} == visit_ids
    with db.transaction(Scope.tenant(org)) as session:
        rep = report.build(session, site, date(2026, 3, 1), date(2026, 3, 31), "day")
    assert (rep.totals.visits, rep.totals.bounces, rep.totals.visitors) == (3, 1, 1)


def test_the_csv_report_writes_formula_like_values_as_text() -> None:
    import csv
    import io

    from vern.stats.report import Bucket, Report

    rep = Report(site_id="s", start=date(2026, 3, 1), end=date(2026, 3, 31), interval="month",
                 totals=Bucket("2026-03-01", pageviews=3), series=[Bucket("2026-03-01", pageviews=3)],
                 top={"page": [("=cmd|'/c calc'!A1", 2), ("/om-oss", 1)],
                      "referrer": [("@evil.example.com", 1), ("-1+1", 1)]})
    rows = list(csv.reader(io.StringIO(report.to_csv(rep), newline="")))
    cells = [cell for row in rows for cell in row]
    assert "'=cmd|'/c calc'!A1" in cells and "'@evil.example.com" in cells and "'-1+1" in cells
    assert "/om-oss" in cells and "3" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
