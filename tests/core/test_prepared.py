"""``vern.core.db.Prepared``/``execute_fast``: kept statements run through SQLAlchemy's public
``Connection.execute`` (its compiled cache, its events, its errors), on SQLite, PostgreSQL and
MariaDB; rows matched are counted over several rows; the PostgreSQL pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from tests import services
from vern.core.db import Prepared, UTCDateTime, execute_fast, new_id, pipeline
from vern.rights.connectors import _bind_in, _width

meta = MetaData()
things = Table(
    "prepared_things",
    meta,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("seen_at", UTCDateTime()),
    Column("extra", JSON),
    Column("blob", LargeBinary),
    Column("n", Integer, nullable=False, default=0),
    Column("made", String(40), default=new_id),  # a Python-side default
)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path / 'p.db'}")
        meta.create_all(eng)
        yield eng
        eng.dispose()
        return
    make = services.postgres_database if request.param == "postgresql" else services.mariadb_database
    with make("vern_prepared") as url:
        eng = create_engine(url)
        meta.create_all(eng)
        try:
            yield eng
        finally:
            eng.dispose()


WHEN = datetime(2026, 11, 30, 8, 15, 7, tzinfo=UTC)  # whole seconds: MariaDB's DATETIME keeps no more
ROWS = [
    {"id": f"t{i}", "name": f"Ingrid {i}", "seen_at": WHEN, "extra": {"klasse": "5B", "i": i},
     "blob": bytes([i, 0, 255]), "n": i, "made": "given"}
    for i in range(3)
]
BUMP = (
    update(things)
    .where(things.c.id == bindparam("w_id"))
    .values(n=things.c.n + 10, seen_at=bindparam("now", type_=UTCDateTime()),
            name=func.coalesce(bindparam("new_name", type_=String()), things.c.name))
)


def _stored(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(things).order_by(things.c.id))]


def test_prepared_writes_what_sqlalchemy_writes(engine: Engine) -> None:
    fast = Prepared(insert(things))
    with engine.begin() as conn:
        assert fast.run(conn, ROWS[:2]) == 2  # executemany
        assert fast.run(conn, ROWS[2]) == 1  # one row
    stored = _stored(engine)
    assert stored == ROWS  # datetimes with their zone, JSON, bytes: converted as SQLAlchemy does

    other = insert(things)
    with engine.begin() as conn:  # the same rows through SQLAlchemy, into a fresh table state
        conn.execute(delete(things))
        conn.execute(other, ROWS)
    assert _stored(engine) == stored


def test_fixed_values_repeated_names_and_rows_matched(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(things), ROWS)
    later = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with engine.begin() as conn:
        hit = execute_fast(conn, BUMP, [{"w_id": "t0", "now": later, "new_name": None},
                                        {"w_id": "t2", "now": later, "new_name": "Kari"},
                                        {"w_id": "nobody", "now": later, "new_name": None}])
        assert hit == 2  # summed over the executemany; the unknown id matched nothing
        assert execute_fast(conn, BUMP, {"w_id": "nobody", "now": later, "new_name": None}) == 0
    by_id = {r["id"]: r for r in _stored(engine)}
    assert (by_id["t0"]["n"], by_id["t0"]["name"], by_id["t0"]["seen_at"]) == (10, "Ingrid 0", later)
    assert (by_id["t1"]["n"], by_id["t1"]["seen_at"]) == (1, WHEN)
    assert (by_id["t2"]["n"], by_id["t2"]["name"]) == (12, "Kari")


def test_statements_it_cannot_prepare_still_run(engine: Engine) -> None:
    """A Python-side default to fill in, an ``IN`` list expanded per call: SQLAlchemy runs them."""
    defaults = Prepared(insert(things))
    with engine.begin() as conn:
        defaults.run(conn, {"id": "d1", "name": "Ola"})  # "made" and "n" come from defaults
    stored = _stored(engine)
    assert stored[0]["n"] == 0 and len(str(stored[0]["made"])) == 36

    gone = Prepared(delete(things).where(things.c.id.in_(bindparam("ids", expanding=True))))
    with engine.begin() as conn:
        conn.execute(insert(things), ROWS)
        assert gone.run(conn, {"ids": ["t0", "t1", "d1"]}) == 3
    assert [r["id"] for r in _stored(engine)] == ["t2"]


def test_errors_are_sqlalchemy_errors_and_roll_back(engine: Engine) -> None:
    fast = Prepared(insert(things))
    with engine.begin() as conn:
        fast.run(conn, ROWS[0])
    with engine.connect() as conn:
        conn.begin()
        fast.run(conn, ROWS[1])
        with pytest.raises(IntegrityError):
            fast.run(conn, ROWS[0])  # the same id again
        conn.rollback()
    assert [r["id"] for r in _stored(engine)] == ["t0"]  # the first insert went with the rollback


def test_the_statements_go_through_sqlalchemy_and_its_events(engine: Engine) -> None:
    """Nothing runs beside SQLAlchemy: its cursor events see every statement, with the SQL its
    compiled cache gives for the dialect."""
    from sqlalchemy import event

    seen: list[tuple[str, bool]] = []

    def record(_conn: object, _cur: object, statement: str, _params: object,
               _context: object, executemany: bool) -> None:
        seen.append((statement, executemany))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.begin() as conn:
            execute_fast(conn, insert(things), ROWS[:2])
            execute_fast(conn, BUMP, {"w_id": "t0", "now": WHEN, "new_name": None})
    finally:
        event.remove(engine, "before_cursor_execute", record)
    writes = [(sql.split()[0], many) for sql, many in seen if sql.split()[0] in ("INSERT", "UPDATE")]
    assert writes[-1] == ("UPDATE", False)
    assert writes[0][0] == "INSERT" and len(writes) >= 2


def test_execute_fast_prepares_a_statement_once() -> None:
    from vern.core import db as vdb

    vdb._prepared.pop(id(BUMP), None)
    eng = create_engine("sqlite://")
    meta.create_all(eng)
    with eng.begin() as conn:
        execute_fast(conn, BUMP, {"w_id": "x", "now": WHEN, "new_name": None})
        first = vdb._prepared[id(BUMP)][1]
        execute_fast(conn, BUMP, {"w_id": "y", "now": WHEN, "new_name": None})
        assert vdb._prepared[id(BUMP)][1] is first
    eng.dispose()


@pytest.mark.parametrize(("n", "width"), [(1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (500, 512)])
def test_in_lists_are_padded_to_a_power_of_two(n: int, width: int) -> None:
    values = [f"v{i}" for i in range(n)]
    assert _width(n) == width
    bound = _bind_in("w_0", values, width)
    assert len(bound) == width
    assert set(bound.values()) == set(values)  # the last value repeated: the same IN set


def test_a_lost_connection_is_invalidated_as_sqlalchemy_does() -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    with services.postgres_database("vern_prepared") as url:
        eng = create_engine(url)
        meta.create_all(eng)
        try:
            conn = eng.connect()
            conn.begin()
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with eng.connect() as other:  # the server ends the first session
                other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                other.commit()
            with pytest.raises(OperationalError) as caught:
                Prepared(insert(things)).run(conn, ROWS[0])
            assert caught.value.connection_invalidated and conn.invalidated
            conn.close()
            with eng.begin() as fresh:  # the pool hands out a working connection again
                assert fresh.execute(select(func.count()).select_from(things)).scalar_one() == 0
        finally:
            eng.dispose()


def test_a_pipeline_sends_the_statements_together_and_raises_sqlalchemy_errors(
    engine: Engine,
) -> None:
    """PostgreSQL sends the statements in one round trip (psycopg's pipeline); elsewhere the
    block does nothing special - the rows are the same either way, and so are the errors."""
    later = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(insert(things), ROWS)
    with engine.begin() as conn, pipeline(conn):
        execute_fast(conn, BUMP, {"w_id": "t0", "now": later, "new_name": "Solveig"})
        execute_fast(conn, BUMP, [{"w_id": "t1", "now": later, "new_name": None},
                                  {"w_id": "t2", "now": later, "new_name": None}])
    assert [(r["n"], r["name"]) for r in _stored(engine)] == [
        (10, "Solveig"), (11, "Ingrid 1"), (12, "Ingrid 2")]

    conn = engine.connect()
    conn.begin()

    def both() -> None:  # on PostgreSQL the error comes out where the block ends
        with pipeline(conn):
            execute_fast(conn, BUMP, {"w_id": "t0", "now": later, "new_name": "Kari"})
            Prepared(insert(things)).run(conn, ROWS[1])  # t1 exists: refused

    with pytest.raises(IntegrityError):
        both()
    conn.rollback()
    conn.close()
    assert _stored(engine)[0]["name"] == "Solveig"  # the update before it went with the rollback
