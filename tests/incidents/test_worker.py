"""The clocks' warnings: raised by the worker once each, by mail through the outbox and as the
console's notice; a worker that stops half-way loses none and repeats none."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from tests.conftest import Personas
from tests.incidents.helpers import register
from vern.core.db import Database, Scope, utcnow
from vern.incidents import service
from vern.incidents.jobs import raise_warnings
from vern.incidents.models import ClockWarning
from vern.notify.models import OutboxMessage


def _warning_mails(db: Database) -> Counter[tuple[str, str]]:
    with db.transaction(Scope.system("test read")) as session:
        rows = session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "incidents.warning")).all()
        return Counter((str(r.recipient.value), str(r.subject.value if r.subject else ""))
                       for r in rows)


def _keys(db: Database) -> list[str]:
    with db.transaction(Scope.system("test read")) as session:
        return sorted(session.scalars(select(ClockWarning.key)))


def test_each_clock_warns_once_before_and_once_after_it_passes(db: Database,
                                                               personas: Personas) -> None:
    aware = utcnow() - timedelta(hours=20)  # 4 hours left of the customers' 24
    register(db, personas, aware=aware, vendor_is_controller=True)
    now = utcnow()
    assert raise_warnings(db, now=now) == 2  # the two customers; the authority has 52 hours left
    assert raise_warnings(db, now=now) == 0  # a second run (or a restarted worker): nothing new
    mails = _warning_mails(db)
    staff = {personas.dave.email, personas.erik.email}
    assert {to for to, _ in mails} == staff
    assert all(n == 1 for n in mails.values()) and len(mails) == 4  # 2 warnings x 2 staff
    # Later: the customers' clocks have passed, the authority's is within its last 18 hours.
    later = aware + timedelta(hours=60)
    assert raise_warnings(db, now=later) == 3
    assert raise_warnings(db, now=later + timedelta(hours=20)) == 1  # the authority's passed
    assert raise_warnings(db, now=later + timedelta(hours=21)) == 0
    levels = Counter(k.split(":")[1] + ":" + k.split(":")[3] for k in _keys(db))
    assert levels == {"customer:soon": 2, "customer:passed": 2, "authority:soon": 1,
                      "authority:passed": 1}
    assert all(n == 1 for n in _warning_mails(db).values())


def test_a_notified_customer_gets_no_warning(db: Database, personas: Personas) -> None:
    from tests.incidents.helpers import dave_actor

    inc = register(db, personas, aware=utcnow() - timedelta(hours=23))
    with db.transaction(Scope.system("test notify")) as session:
        service.send_notices(session, dave_actor(personas), inc,
                             customer_ids=[personas.tenant_a])
    assert raise_warnings(db) == 1
    [key] = _keys(db)
    assert key.endswith(f":{personas.tenant_b}:soon")


_FAIL_SECOND = {
    "sqlite": ["""CREATE TRIGGER fail_second BEFORE INSERT ON outbox_messages
                  WHEN (SELECT count(*) FROM incident_warnings) >= 3
                  BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"""],
    "postgresql": [
        """CREATE FUNCTION fail_second() RETURNS trigger AS $$ BEGIN
             IF (SELECT count(*) FROM incident_warnings) >= 3 THEN
               RAISE EXCEPTION 'the disk is full'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER fail_second BEFORE INSERT ON outbox_messages
           FOR EACH ROW EXECUTE FUNCTION fail_second()"""],
}
_DROP = {"sqlite": ["DROP TRIGGER fail_second"],
         "postgresql": ["DROP TRIGGER fail_second ON outbox_messages",
                        "DROP FUNCTION fail_second()"]}


def _run_sql(db: Database, statements: list[str]) -> None:
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def test_a_worker_that_fails_half_way_loses_nothing_and_sends_nothing_twice(
        db: Database, personas: Personas) -> None:
    """The database refuses the outbox write of the third warning (a trigger stands in for a
    full disk): the first two stay committed with their mails, the third leaves nothing
    behind; the next run raises only the third."""
    register(db, personas, aware=utcnow() - timedelta(hours=25))  # both customers overdue
    register(db, personas, aware=utcnow() - timedelta(hours=25), customers=[personas.tenant_a])
    dialect = db.engine.dialect.name
    _run_sql(db, _FAIL_SECOND[dialect])
    try:
        with pytest.raises(Exception, match="the disk is full"):
            raise_warnings(db)
        assert len(_keys(db)) == 2  # the first two warnings committed (each its own transaction)
        first = _warning_mails(db)
        assert sum(first.values()) == 4
    finally:
        _run_sql(db, _DROP[dialect])
    assert raise_warnings(db) == 1  # a restart: only the one that failed
    assert raise_warnings(db) == 0
    assert len(_keys(db)) == 3
    mails = _warning_mails(db)
    assert sum(mails.values()) == 6 and all(n == 1 for n in mails.values())


def test_warnings_show_in_the_console(db: Database, personas: Personas, login: Any) -> None:
    register(db, personas, aware=utcnow() - timedelta(hours=25))
    raise_warnings(db)
    page = login(personas.dave).get("/console/incidents/clocks?lang=en")
    assert page.status_code == 200
    assert "Customer notice deadline passed" in page.text
    assert "overdue by" in page.text
