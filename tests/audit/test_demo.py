"""The demo trail: the product's records, one alert, loading twice changes nothing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from tests.conftest import Personas, make_settings
from vern.audit import demo
from vern.audit.models import AuditAlert, AuditEvent
from vern.audit.verify import verify
from vern.core.db import Database, Scope


def test_the_demo_feeds_fjellheims_trail_once_with_an_alert(
    db: Database, personas: Personas, tmp_path: Path
) -> None:
    settings = make_settings(db.url, tmp_path)
    orgs = {"solstrand": personas.vendor, "fjellheim": personas.tenant_a,
            "havbris": personas.tenant_b}
    demo.load_demo(db, orgs, settings=settings)
    demo.load_demo(db, orgs, settings=settings)
    with db.transaction(Scope.system("check")) as session:
        ingested = session.scalar(select(func.count()).select_from(AuditEvent)
                                  .where(AuditEvent.source == "ingest"))
        kinds = session.scalars(select(AuditAlert.kind)).all()
    assert ingested == 251
    assert kinds == ["mass_read"]
    assert verify(db, settings).ok
