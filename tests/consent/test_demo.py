"""The demo data of consent and statistics loads, and loads only once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from tests.conftest import Personas
from vern.consent import demo as consent_demo
from vern.consent.models import ConsentRecord, Purpose
from vern.core.db import Database, Scope, utcnow
from vern.stats import demo as stats_demo
from vern.stats import report
from vern.stats.models import StatsSite


def test_demo_data_loads_once_and_fills_a_report(db: Database, personas: Personas) -> None:
    orgs = {"solstrand": personas.vendor, "fjellheim": personas.tenant_a,
            "havbris": personas.tenant_b}
    for _ in range(2):
        consent_demo.load_demo(db, orgs)
        stats_demo.load_demo(db, orgs)
    with db.transaction(Scope.tenant(personas.tenant_a)) as session:
        assert session.scalar(select(func.count()).select_from(Purpose)) == 4
        assert session.scalar(select(func.count()).select_from(ConsentRecord)) == 8
    with db.transaction(Scope.tenant(personas.vendor)) as session:
        site = session.scalars(select(StatsSite)).one()
        end = utcnow().date()
        rep = report.build(session, site.id, end - timedelta(days=29), end, "week")
    assert rep.totals.pageviews > 300
    assert rep.totals.visitors > 0 and rep.top["browser"]
