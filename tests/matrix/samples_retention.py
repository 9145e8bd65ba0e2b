"""Sample objects for the retention routes' path parameters: the vendor's own, no tenant's."""

from __future__ import annotations

from tests.conftest import Personas
from tests.matrix.samples import Sample
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.retention import service
from vern.retention.models import RetentionRun


def a_rule(db: Database, personas: Personas, settings: Settings) -> Sample:
    return Sample("auth_throttles", None)


def a_run(db: Database, personas: Personas, settings: Settings) -> Sample:
    with db.transaction(Scope.system("matrix sample retention run")) as session:
        run = RetentionRun(trigger="cli", status="done", as_of=service.utcnow(), counts={},
                           finished_rules=[], cursor={})
        session.add(run)
        session.flush()
        return Sample(run.id, None)


def a_hold(db: Database, personas: Personas, settings: Settings) -> Sample:
    with db.transaction(Scope.system("matrix sample retention hold")) as session:
        hold = service.create_hold(session, rule_key="*", record_id="matrix-1",
                                   reason="Tvist om faktura", actor_user_id=None)
        return Sample(hold.id, None)


SAMPLES = {"retention_rule": a_rule, "retention_run": a_run, "retention_hold": a_hold}
