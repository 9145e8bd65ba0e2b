"""Demo data for the audit trail: the vendor's product (a school system) feeding Fjellheim's trail,
including a substitute teacher who opens unusually many pupils' records - an alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vern.audit import alerts
from vern.audit.ingest import IngestEvent, ingest
from vern.audit.service import seal_now
from vern.core.config import Settings, get_settings
from vern.core.db import Database


def load_demo(database: Database, orgs: dict[str, str], *,
              settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    org = orgs["fjellheim"]
    start = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
    if start < datetime.now(UTC) - timedelta(days=settings.audit_retention_days - 1):
        start = datetime.now(UTC) - timedelta(days=1)
    events = [
        IngestEvent(id=f"demo-lesson-{i}", time=start + timedelta(minutes=i), action="lesson.viewed",
                    actor=f"elev-{100 + i % 12}", resource=f"lesson:{i % 5}",
                    ip=f"192.0.2.{10 + i % 12}", user_agent="Mozilla/5.0 (iPad) Safari/605.1")
        for i in range(40)
    ]
    events.append(IngestEvent(id="demo-grade-1", time=start + timedelta(hours=2),
                              action="grade.changed", actor="laerer-7",
                              actor_name="Kari Nordmann", resource="person:elev-104",
                              ip="198.51.100.14", details={"old": "4", "new": "5"}))
    events += [
        IngestEvent(id=f"demo-mass-{i}", time=start + timedelta(hours=3, seconds=i * 5),
                    action="pupil.record.read", actor="vikar-3", resource=f"person:elev-{i}",
                    ip="203.0.113.200")
        for i in range(210)
    ]
    ingest(database, settings, org_id=org, token_id=None, events=events)
    seal_now(database, settings)
    alerts.scan(database, settings)
