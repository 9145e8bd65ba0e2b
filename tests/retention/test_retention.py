"""Retention rules of Vern's own data: read from the data map, applied in batches, resumed after
a stop, paused by legal holds, kept as evidence; periods under the legal minimum refused."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update
from starlette.testclient import TestClient

from tests.cli_run import Ran, vern
from tests.conftest import Personas, make_settings
from vern.accounts.models import AuthThrottle
from vern.audit.models import AuditEvent
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import Conflict, InvalidInput
from vern.datamap.own import load_own_map
from vern.retention import service
from vern.retention.models import RetentionRun


class Stop(BaseException):
    """A process that dies mid-run (not an error the run could record)."""


def _throttles(db: Database, old: int, fresh: int) -> None:
    now = utcnow()
    rows = [{"key": f"t-{i:04d}", "failures": 1, "locks": 0, "updated_at": now - timedelta(days=10)}
            for i in range(old)]
    rows += [{"key": f"u-{i:04d}", "failures": 1, "locks": 0, "updated_at": now} for i in range(fresh)]
    with db.engine.begin() as conn:
        conn.execute(insert(AuthThrottle), rows)


def _left(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(conn.scalars(select(AuthThrottle.key)))


def test_every_time_limited_table_has_a_rule_that_runs() -> None:
    rules = {r.key: r for r in service.rules()}
    own = load_own_map()
    limited = [t for t in own.values() if t.retention_after]
    assert len(limited) >= 11
    for table in limited:
        assert table.retention_after in table.columns, table.name
        r = rules.get(table.name)
        assert r is not None and r.days and r.action in service.ACTIONS and r.legal_reason
    # the rights tables and consent proof go through their domains' service functions
    for key in ("rights_requests", "rights_requests.details", "consent_records"):
        assert rules[key].kind == "function" and rules[key].days
    assert rules["rights_requests.details"].action == "anonymise"
    assert rules["audit_events"].enforced_by == "audit.retention"


def test_a_run_deletes_in_batches_and_is_kept_as_evidence(db: Database, tmp_path: Path) -> None:
    _throttles(db, old=2000, fresh=3)
    planned = {p["rule"]: p for p in service.plan(db)}
    assert planned["auth_throttles"]["due"] == 2000
    batches: list[int] = []
    run = service.run(db, make_settings(db.url, tmp_path), batch=300,
                      on_batch=lambda rule, n: batches.append(n) if rule == "auth_throttles" else None)
    if db.engine.dialect.name == "sqlite":  # by primary key: exact batches
        assert batches == [300] * 6 + [200]
    else:  # by pages of the table: about the batch, never the whole table at once
        assert len(batches) >= 3 and max(batches) < 2000
    assert sum(batches) == 2000
    assert _left(db) == {f"u-{i:04d}" for i in range(3)}
    assert run.status == "done" and run.counts["auth_throttles"]["done"] == 2000
    assert run.counts["auth_throttles"]["action"] == "delete"
    with db.transaction(Scope.system("test")) as session:
        actions = set(session.scalars(select(AuditEvent.action).where(
            AuditEvent.resource == f"retention_run:{run.id}")))
    assert actions == {"retention.run_started", "retention.run_finished"}
    assert {p["rule"]: p for p in service.plan(db)}["auth_throttles"]["due"] == 0


def test_a_run_stopped_half_way_is_taken_up_where_it_stopped(db: Database, tmp_path: Path) -> None:
    settings = make_settings(db.url, tmp_path)
    _throttles(db, old=2000, fresh=2)
    seen: list[int] = []

    def stop_after_two(rule: str, rows: int) -> None:
        # On PostgreSQL a batch is a range of the table's pages; pages left empty by earlier
        # deletes (not yet vacuumed) give batches of no rows. Stop after two that deleted some.
        if rule == "auth_throttles":
            seen.append(rows)
            if sum(1 for n in seen if n) == 2:
                raise Stop

    with pytest.raises(Stop):
        service.run(db, settings, batch=300, on_batch=stop_after_two)
    assert 0 < sum(seen) < 2000
    assert len(_left(db)) == 2002 - sum(seen)  # whole batches only, nothing half-written
    with db.transaction(Scope.system("test")) as session:
        (stopped,) = session.scalars(select(RetentionRun))
        assert stopped.status == "running" and stopped.counts["auth_throttles"]["done"] == sum(seen)
        stopped_id = stopped.id
    with pytest.raises(Conflict):  # alive (its heartbeat is fresh): not run twice
        service.run(db, settings, batch=300)
    with db.engine.begin() as conn:
        conn.execute(update(RetentionRun).values(heartbeat_at=utcnow() - timedelta(hours=1)))
    resumed = service.run(db, settings, batch=300)
    assert resumed.id == stopped_id and resumed.resumed and resumed.status == "done"
    assert resumed.counts["auth_throttles"]["done"] == 2000
    assert _left(db) == {"u-0000", "u-0001"}


def test_a_legal_hold_pauses_a_rule_for_a_record_until_released(db: Database, tmp_path: Path) -> None:
    settings = make_settings(db.url, tmp_path)
    _throttles(db, old=3, fresh=0)
    with db.transaction(Scope.system("test")) as session:
        hold = service.create_hold(session, rule_key="auth_throttles", record_id="t-0001",
                                   reason="Politiet ba om sporene (sak 2026-17)", actor_user_id=None)
        hold_id = hold.id
    assert {p["rule"]: p for p in service.plan(db)}["auth_throttles"]["held"] == 1
    run = service.run(db, settings)
    assert run.counts["auth_throttles"]["done"] == 2 and _left(db) == {"t-0001"}
    with db.transaction(Scope.system("test")) as session:
        service.release_hold(session, hold_id, actor_user_id=None)
        with pytest.raises(Conflict):
            service.release_hold(session, hold_id, actor_user_id=None)
        actions = set(session.scalars(select(AuditEvent.action).where(
            AuditEvent.resource == f"retention_hold:{hold_id}")))
    assert actions == {"retention.hold_created", "retention.hold_released"}
    service.run(db, settings)
    assert _left(db) == set()


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"rule_key": "nope", "record_id": "x", "reason": "r"}, "rule"),
    ({"rule_key": "*", "record_id": "x", "reason": " "}, "reason"),
    ({"rule_key": "*", "reason": "r"}, "record_id"),
    ({"rule_key": "*", "record_id": "x", "user_id": "y", "reason": "r"}, "record_id"),
    ({"rule_key": "*", "identities": {"email": "ikke-en-adresse"}, "reason": "r"}, "identities.email"),
])
def test_a_bad_hold_is_refused_naming_the_field(db: Database, kwargs: dict[str, object],
                                                field: str) -> None:
    with db.transaction(Scope.system("test")) as session, pytest.raises(InvalidInput) as caught:
        service.create_hold(session, actor_user_id=None, **kwargs)  # type: ignore[arg-type]
    assert caught.value.errors[0].field == field


def test_a_period_under_the_legal_minimum_is_refused_with_the_reason(db: Database) -> None:
    with db.transaction(Scope.system("test")) as session:
        with pytest.raises(InvalidInput) as caught:
            service.set_period(session, rule_key="rights_requests", days=365, reason="kortere",
                               actor_user_id=None)
        assert caught.value.errors[0].field == "days"
        assert "1096" in caught.value.errors[0].message
        assert "foreldelsesloven" in caught.value.errors[0].message
        for bad, name in (({"rule_key": "nope"}, "rule"), ({"rule_key": "users"}, "rule"),
                          ({"days": 0}, "days"), ({"reason": ""}, "reason")):
            args = {"rule_key": "auth_throttles", "days": 3, "reason": "tre dager"} | bad
            with pytest.raises(InvalidInput) as caught:
                service.set_period(session, actor_user_id=None, **args)  # type: ignore[arg-type]
            assert caught.value.errors[0].field == name
        changed = service.set_period(session, rule_key="rights_requests", days=2000,
                                     reason="Avtalt med kundene", actor_user_id=None)
        assert changed.days == 2000 and changed.default_days == 1826


def test_the_api_shows_rules_plan_runs_and_holds(client: TestClient, personas: Personas,
                                                 login, db: Database) -> None:  # type: ignore[no-untyped-def]
    _throttles(db, old=2, fresh=0)
    vendor = login(personas.dave)
    rules = vendor.get("/api/v1/retention/rules").json()["rules"]
    assert any(r["rule"] == "auth_throttles" and r["days"] == 1 for r in rules)
    plan = {p["rule"]: p for p in vendor.get("/api/v1/retention/plan").json()["rules"]}
    assert plan["auth_throttles"]["due"] == 2
    bad = vendor.put("/api/v1/retention/rules/consent_newsletter",
                     json={"days": 30, "reason": "kortere"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "days"
    made = vendor.post("/api/v1/retention/runs")
    assert made.status_code == 201 and made.json()["counts"]["auth_throttles"]["done"] == 2
    runs = vendor.get("/api/v1/retention/runs").json()["runs"]
    assert runs[0]["id"] == made.json()["id"]
    hold = vendor.post("/api/v1/retention/holds", json={"rule": "*", "reason": "Tvist",
                                                        "identities": {"email": "kari@example.com"}})
    assert hold.status_code == 201 and hold.json()["person"] is True
    assert vendor.post(f"/api/v1/retention/holds/{hold.json()['id']}/release").status_code == 200
    page = vendor.get("/console/retention")
    assert page.status_code == 200 and "auth_throttles" in page.text
    tenant = login(personas.alice)
    assert tenant.get("/api/v1/retention/rules").status_code == 403


def _cli(args: list[str], env: dict[str, str]) -> Ran:
    return vern(args, env)


def test_the_cli_plans_and_runs(db: Database, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    env |= {"VERN_ENV": "test", "VERN_DATABASE_URL": db.url, "COLUMNS": "200",
            "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit"), "VERN_DATA_DIR": str(tmp_path / "data")}
    _throttles(db, old=4, fresh=1)
    planned = _cli(["retention", "plan", "--json"], env)
    assert planned.returncode == 0, planned.stderr
    assert {p["rule"]: p for p in json.loads(planned.stdout)}["auth_throttles"]["due"] == 4
    ran = _cli(["retention", "run", "--batch", "3"], env)
    assert ran.returncode == 0, ran.stderr
    assert "auth_throttles: 4 deleted" in ran.stdout
    refused = _cli(["retention", "set-period", "consent_newsletter", "--days", "9",
                    "--reason", "kort"], env)
    assert refused.returncode == 1 and "days" in refused.stderr
    assert "legal minimum" in refused.stderr
    with db.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(AuthThrottle)) == 1
