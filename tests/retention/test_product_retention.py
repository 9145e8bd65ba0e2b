"""Retention of the product databases: tables of the product data map that declare a
machine-readable rule are counted per customer in the plan and deleted or anonymised in batches by
a run, on SQLite and PostgreSQL; newer rows, held rows and tables with only a free-text rule stay."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
    text,
    update,
)
from starlette.testclient import TestClient

from tests import services
from tests.cli_run import Ran, vern
from tests.conftest import Personas, create_personas, make_settings
from vern.accounts.roles import OrgKind
from vern.accounts.service import create_organisation
from vern.core.db import Database, Scope, utcnow
from vern.core.errors import InvalidInput
from vern.datamap.connect import engine_for, forget
from vern.datamap.loader import MapError, load_map
from vern.datamap.service import publish_map
from vern.retention import service
from vern.retention.models import RetentionRun
from vern.rights.models import Policy

URL_ENV = "SKJEMA_RETENTION_TEST_URL"
SUBMISSIONS = "product:skjema.forms.submissions"
RESPONSES = "product:skjema.forms.responses"

MAP = f"""
version: 1
systems:
  skjema:
    title: Skjemaløsningen
    recipients: ["Driftsleverandør: Fjordsky AS (Norge), databehandler"]
    databases:
      forms:
        url_env: {URL_ENV}
        tables:
          submissions:
            purpose: Innsendte skjema / submitted forms
            retention: {{days: 90, after: submitted_at, action: delete,
                         reason: "skjemadata slettes etter 90 dager / form data deleted after 90 days"}}
            tenant: school_id
            primary_key: id
            identities: {{email: email}}
            erase: delete_row
            fields:
              id: system.id
              school_id: system.reference
              email: user.contact.email
              submitted_at: system.timestamp
          responses:
            purpose: Svar på undersøkelser / survey answers
            retention: {{days: 30, after: created_at, action: anonymise,
                         reason: "svar anonymiseres etter 30 dager / answers anonymised after 30 days",
                         minimum_days: 14, minimum_reason: "klagefrist / time to complain"}}
            tenant: school_id
            primary_key: id
            identities: {{email: email}}
            fields:
              id: system.id
              school_id: system.reference
              name: {{category: user.name, erase: {{pseudonym: "Anonym {{id}}"}}}}
              email: {{category: user.contact.email, erase: null}}
              answer: {{category: user.content, erase: {{keep: "statistikk uten person / statistics"}}}}
              created_at: system.timestamp
          accounts:
            purpose: Kontoer / accounts
            retention: account-lifetime
            tenant: school_id
            primary_key: id
            identities: {{email: email}}
            erase: delete_row
            fields:
              id: system.id
              school_id: system.reference
              email: user.contact.email
              created_at: system.timestamp
"""


def _create(url: str, *, schema: str | None = None, only: str | None = None) -> None:
    """The product's tables with rows of schools ``a`` and ``b`` (``only``: one school's rows,
    for a customer's own schema or database)."""
    meta = MetaData(schema=schema)

    def common() -> list[Column[object]]:
        return [Column("id", Integer, primary_key=True), Column("school_id", String(20))]

    Table("submissions", meta, *common(), Column("email", String(200)),
          Column("submitted_at", DateTime))
    Table("responses", meta, *common(), Column("name", String(200)),
          Column("email", String(200)), Column("answer", String(200)), Column("created_at", DateTime))
    Table("accounts", meta, *common(), Column("email", String(200)),
          Column("created_at", DateTime))
    engine = engine_for(url)
    meta.create_all(engine)
    now = utcnow().replace(tzinfo=None)
    old, new = now - timedelta(days=120), now - timedelta(days=5)
    prefix = f"{schema}." if schema else ""

    def mine(rows: list[dict[str, object]]) -> list[dict[str, object]]:
        return [r for r in rows if only is None or r["school_id"] == only]

    with engine.begin() as conn:
        subs = [(i, "a" if i <= 5 else "b", old) for i in range(1, 9)]  # 1-5: a, 6-8: b, old
        subs += [(i, "a" if i % 2 else "b", new) for i in range(9, 13)]  # 9-12 newer
        conn.execute(insert(meta.tables[prefix + "submissions"]), mine([
            {"id": i, "school_id": s, "email": f"elev{i}@example.com", "submitted_at": t}
            for i, s, t in subs]))
        responses = mine([
            {"id": i, "school_id": "a", "name": f"Kari Nordmann {i}", "email": f"kari{i}@example.com",
             "answer": f"svar {i}", "created_at": old if i <= 3 else new} for i in range(1, 6)])
        if responses:
            conn.execute(insert(meta.tables[prefix + "responses"]), responses)
        accounts = mine([{"id": i, "school_id": "a", "email": f"ola{i}@example.com", "created_at": old}
                         for i in range(1, 4)])
        if accounts:
            conn.execute(insert(meta.tables[prefix + "accounts"]), accounts)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def product_url(request: pytest.FixtureRequest, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'skjema.db'}"
        monkeypatch.setenv(URL_ENV, url)
        _create(url)
        yield url
        forget(url)
        return
    made = services.postgres_database if request.param == "postgresql" else services.mariadb_database
    with made("vern_prodret") as url:
        monkeypatch.setenv(URL_ENV, url)
        _create(url)
        yield url
        forget(url)


def _publish(db: Database) -> None:
    with db.transaction(Scope.system("test")) as session:
        publish_map(session, MAP, source="skjema.yaml")


def _rows(url: str, table: str) -> dict[int, dict[str, object]]:
    with engine_for(url).connect() as conn:
        t = Table(table, MetaData(), autoload_with=conn)
        return {r.id: dict(r._mapping) for r in conn.execute(select(t))}


def test_plan_and_run_delete_and_anonymise_exactly_the_expired_rows(
        sqlite_db: Database, tmp_path: Path, product_url: str) -> None:
    db = sqlite_db
    _publish(db)
    with db.transaction(Scope.system("test")) as session:
        service.create_hold(session, rule_key=SUBMISSIONS, record_id="2",
                            reason="tvist / a dispute: bevis / evidence")
    planned = {p["rule"]: p for p in service.plan(db)}
    assert planned[SUBMISSIONS]["due"] == 7  # 8 expired, one held
    assert planned[SUBMISSIONS]["due_by_tenant"] == {"a": 4, "b": 3}
    assert planned[SUBMISSIONS]["database"] == "skjema.forms" and planned[SUBMISSIONS]["days"] == 90
    assert planned[RESPONSES]["due"] == 3 and planned[RESPONSES]["due_by_tenant"] == {"a": 3}
    assert planned[RESPONSES]["legal_minimum_days"] == 14
    assert "product:skjema.forms.accounts" not in planned  # free text: no automatic deletion

    batches: list[tuple[str, int]] = []
    run = service.run(db, make_settings(db.url, tmp_path), batch=2,
                      on_batch=lambda rule, n: batches.append((rule, n)))
    assert run.status == "done"
    assert run.counts[SUBMISSIONS]["done"] == 7 and run.counts[SUBMISSIONS]["action"] == "delete"
    assert run.counts[RESPONSES]["done"] == 3 and run.counts[RESPONSES]["action"] == "anonymise"
    assert [n for r, n in batches if r == SUBMISSIONS] == [2, 2, 2, 1]  # held id 2 skipped

    assert set(_rows(product_url, "submissions")) == {2, 9, 10, 11, 12}
    responses = _rows(product_url, "responses")
    for i in (1, 2, 3):
        row = responses[i]
        assert row["email"] is None and str(row["name"]).startswith("Anonym ")
        assert "Nordmann" not in str(row["name"]) and row["answer"] == f"svar {i}"
    for i in (4, 5):  # newer than the cutoff: as they were
        assert responses[i]["name"] == f"Kari Nordmann {i}"
        assert responses[i]["email"] == f"kari{i}@example.com"
    assert len(_rows(product_url, "accounts")) == 3

    again = service.run(db, make_settings(db.url, tmp_path), batch=2)
    assert again.counts[SUBMISSIONS]["done"] == 0 and again.counts[RESPONSES]["done"] == 0
    assert {p["rule"]: p for p in service.plan(db)}[SUBMISSIONS]["due"] == 0


def test_a_product_rule_unreachable_is_recorded_and_the_others_still_run(
        sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _publish(sqlite_db)
    monkeypatch.delenv(URL_ENV, raising=False)
    planned = {p["rule"]: p for p in service.plan(sqlite_db)}
    assert planned[SUBMISSIONS]["due"] is None and URL_ENV in planned[SUBMISSIONS]["error"]
    run = service.run(sqlite_db, make_settings(sqlite_db.url, tmp_path))
    assert run.status == "done" and URL_ENV in run.counts[SUBMISSIONS]["error"]


def test_a_product_period_is_set_in_the_map_not_by_set_period(sqlite_db: Database) -> None:
    _publish(sqlite_db)
    with sqlite_db.transaction(Scope.system("test")) as session, pytest.raises(InvalidInput):
        service.set_period(session, rule_key=SUBMISSIONS, days=200, reason="lenger", actor_user_id=None)


def _retention(body: str) -> str:
    start = MAP.index("{days: 30, after: created_at")
    end = MAP.index("}", MAP.index("minimum_reason", start)) + 1
    return MAP[:start] + body + MAP[end:]


@pytest.mark.parametrize(("body", "place", "words"), [
    ('{days: 7, after: created_at, action: anonymise, reason: "kort", minimum_days: 14, '
     'minimum_reason: "klagefrist / time to complain"}',
     "responses.retention.days", "legal minimum of 14 days (klagefrist / time to complain)"),
    ('{days: 30, after: answer, action: anonymise, reason: "r"}',
     "responses.retention.after", "not a date/time field"),
    ('{days: 30, after: sent_at, action: anonymise, reason: "r"}',
     "responses.retention.after", "not among the fields"),
    ('{days: 0, after: created_at, action: anonymise, reason: "r"}',
     "responses.retention.days", "1-36500"),
    ('{days: 30, after: created_at, action: shred, reason: "r"}',
     "responses.retention.action", "delete, anonymise"),
    ('{days: 30, after: created_at, action: anonymise}',
     "responses.retention.reason", "is required"),
])
def test_a_bad_rule_is_refused_naming_the_place(body: str, place: str, words: str) -> None:
    with pytest.raises(MapError) as caught:
        load_map(_retention(body))
    text = str(caught.value)
    assert place in text and words in text, text


def test_the_free_text_form_stays_valid() -> None:
    loaded = load_map(MAP)
    tables = loaded.database("skjema.forms").tables
    assert tables["accounts"].rule is None and tables["accounts"].retention == "account-lifetime"
    rule = tables["submissions"].rule
    assert rule is not None and (rule.days, rule.after, rule.action) == (90, "submitted_at", "delete")


def test_the_cli_plans_and_runs_the_product_rules(sqlite_db: Database, tmp_path: Path,
                                                  product_url: str) -> None:
    _publish(sqlite_db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    env |= {"VERN_ENV": "test", "VERN_DATABASE_URL": sqlite_db.url, "COLUMNS": "250",
            "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit"), "VERN_DATA_DIR": str(tmp_path / "data"),
            URL_ENV: product_url}
    planned = _cli(["retention", "plan", "--json"], env)
    assert planned.returncode == 0, planned.stderr
    items = {p["rule"]: p for p in json.loads(planned.stdout)}
    assert items[SUBMISSIONS]["due"] == 8 and items[SUBMISSIONS]["due_by_tenant"] == {"a": 5, "b": 3}
    table = _cli(["retention", "plan"], env)
    assert SUBMISSIONS in table.stdout and "a: 5, b: 3" in table.stdout
    ran = _cli(["retention", "run", "--batch", "3"], env)
    assert ran.returncode == 0, ran.stderr
    assert f"{SUBMISSIONS}: 8 deleted" in ran.stdout and f"{RESPONSES}: 3 anonymised" in ran.stdout
    assert set(_rows(product_url, "submissions")) == {9, 10, 11, 12}


def _cli(args: list[str], env: dict[str, str]) -> Ran:
    return vern(args, env)


def test_the_api_and_console_show_product_rules(  # type: ignore[no-untyped-def]
        client: TestClient, personas: Personas, login, db: Database,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _publish(db)
    monkeypatch.delenv(URL_ENV, raising=False)  # not reachable: reported, the page still shows
    vendor = login(personas.dave)
    plan = {p["rule"]: p for p in vendor.get("/api/v1/retention/plan").json()["rules"]}
    assert plan[SUBMISSIONS]["due"] is None and URL_ENV in plan[SUBMISSIONS]["error"]
    page = vendor.get("/console/retention")
    assert page.status_code == 200 and SUBMISSIONS in page.text and URL_ENV in page.text
    made = vendor.post("/api/v1/retention/holds", json={"rule": SUBMISSIONS, "reason": "Tvist",
                                                          "record_id": "7"})
    assert made.status_code == 201


class Stop(BaseException):
    """A process that dies mid-run (not an error the run could record)."""


def test_a_product_run_stopped_half_way_is_taken_up_from_its_cursor(
        sqlite_db: Database, tmp_path: Path, product_url: str) -> None:
    settings = make_settings(sqlite_db.url, tmp_path)
    _publish(sqlite_db)

    def stop_after_first(rule: str, rows: int) -> None:
        if rule == SUBMISSIONS:
            raise Stop

    with pytest.raises(Stop):
        service.run(sqlite_db, settings, batch=3, on_batch=stop_after_first)
    assert set(_rows(product_url, "submissions")) == {4, 5, 6, 7, 8, 9, 10, 11, 12}
    with sqlite_db.transaction(Scope.system("test")) as session:
        (stopped,) = session.scalars(select(RetentionRun))
        assert stopped.counts[SUBMISSIONS]["done"] == 3 and stopped.cursor[SUBMISSIONS] == 3
    with sqlite_db.engine.begin() as conn:
        conn.execute(update(RetentionRun).values(heartbeat_at=utcnow() - timedelta(hours=1)))
    resumed = service.run(sqlite_db, settings, batch=3)
    assert resumed.resumed and resumed.status == "done"
    assert resumed.counts[SUBMISSIONS]["done"] == 8
    assert set(_rows(product_url, "submissions")) == {9, 10, 11, 12}


# -- a schema or a database per customer --------------------------------------------------------

KEY_A, KEY_B, KEY_NONE = "fjordbakst", "nordlys_sko", "uten_produkt"


def _per_customer_map(tenancy: str) -> str:
    lines = [x for x in MAP.splitlines() if x.strip() != "tenant: school_id"]
    text_ = "\n".join(lines) + "\n"
    return text_.replace(f"        url_env: {URL_ENV}\n",
                         f"        url_env: {URL_ENV}\n        tenancy: {tenancy}\n")


@contextmanager
def _server_databases(kind: str, names: list[str]) -> Iterator[None]:
    """Databases with these names on the PostgreSQL or MariaDB server, dropped afterwards."""
    if kind == "postgresql":
        admin = create_engine(services.PG_ADMIN, isolation_level="AUTOCOMMIT")
        create, drop = 'CREATE DATABASE "{}"', 'DROP DATABASE IF EXISTS "{}" WITH (FORCE)'
    else:
        admin = create_engine(services.MARIADB_ADMIN, isolation_level="AUTOCOMMIT")
        create, drop = "CREATE DATABASE `{}` CHARACTER SET utf8mb4", "DROP DATABASE IF EXISTS `{}`"
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(create.format(name)))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        services.unavailable(f"{kind} refused to create a test database: {exc}")
    try:
        yield
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(drop.format(name)))
        admin.dispose()


@contextmanager
def _per_customer(model: str, kind: str, tmp_path: Path) -> Iterator[tuple[str, str, Any]]:
    """Customers A (school a's rows) and B (school b's) each in their own schema or database;
    yields (the map's tenancy, the URL (template) for the map's url_env, url_of(key) -> (URL,
    schema)) where a customer's tables are."""
    prefix = f"vern_r{uuid.uuid4().hex[:8]}_"
    if model == "database" and kind == "sqlite":
        template = f"sqlite:///{tmp_path}/skjema_{{key}}.db"
        yield "{model: database}", template, lambda key: (template.replace("{key}", key), None)
        return
    if model == "database":
        base = ("postgresql+psycopg://postgres@127.0.0.1:5432/" if kind == "postgresql"
                else "mysql+pymysql://root@127.0.0.1:3306/")
        tail = "" if kind == "postgresql" else "?charset=utf8mb4"
        template = f"{base}{prefix}{{key}}{tail}"
        with _server_databases(kind, [prefix + KEY_A, prefix + KEY_B]):
            yield "{model: database}", template, lambda key: (template.replace("{key}", key), None)
        return
    if kind == "postgresql":
        with services.postgres_database("vern_prodret") as url:
            with engine_for(url).begin() as conn:
                for key in (KEY_A, KEY_B):
                    conn.execute(text(f"CREATE SCHEMA {prefix}{key}"))
            yield f'{{model: schema, schema: "{prefix}{{key}}"}}', url, lambda key: (url, prefix + key)
            forget(url)
        return
    # MariaDB: a schema is a database on the same server
    with _server_databases(kind, [prefix + KEY_A, prefix + KEY_B]), \
            services.mariadb_database("vern_prodret") as url:
        yield f'{{model: schema, schema: "{prefix}{{key}}"}}', url, lambda key: (url, prefix + key)
        forget(url)


def _customers(db: Database, tmp_path: Path) -> None:
    personas = create_personas(db, make_settings(db.url, tmp_path))
    with db.transaction(Scope.system("test")) as session:
        third = create_organisation(session, name="Lundheim skole", slug="lundheim",
                                    kind=OrgKind.TENANT, actor=None)
        for org, key in ((personas.tenant_a, KEY_A), (personas.tenant_b, KEY_B),
                         (third.id, KEY_NONE)):
            session.add(Policy(org_id=org, product_tenant_key=key, approve_erasure=False,
                               approve_rectification=True))


def _ids_in(url: str, schema: str | None, table: str) -> dict[int, dict[str, object]]:
    with engine_for(url).connect() as conn:
        t = Table(table, MetaData(), schema=schema, autoload_with=conn)
        return {r.id: dict(r._mapping) for r in conn.execute(select(t))}


@pytest.mark.parametrize(("model", "kind"), [
    ("database", "sqlite"), ("database", "postgresql"), ("database", "mariadb"),
    ("schema", "postgresql"), ("schema", "mariadb"),
])
def test_a_schema_or_database_per_customer_is_planned_and_run_per_customer(
        model: str, kind: str, sqlite_db: Database, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = sqlite_db
    _customers(db, tmp_path)
    with _per_customer(model, kind, tmp_path) as (tenancy, map_url, url_of):
        for key, school in ((KEY_A, "a"), (KEY_B, "b")):
            url, schema = url_of(key)
            _create(url, schema=schema, only=school)
        monkeypatch.setenv(URL_ENV, map_url)
        with db.transaction(Scope.system("test")) as session:
            publish_map(session, _per_customer_map(tenancy), source="skjema.yaml")
            # customer A's row 2 is held; row 2 of another customer would not be
            service.create_hold(session, rule_key=SUBMISSIONS, record_id=f"{KEY_A}:2",
                                reason="tvist / a dispute: bevis / evidence")
        try:
            planned = {p["rule"]: p for p in service.plan(db)}
            sub = planned[SUBMISSIONS]
            assert sub["due"] == 7 and sub["due_by_tenant"] == {KEY_A: 4, KEY_B: 3}, sub
            # a customer without a schema or database of its own is reported, the others counted
            assert list(sub["errors_by_tenant"]) == [KEY_NONE]
            assert planned[RESPONSES]["due_by_tenant"] == {KEY_A: 3, KEY_B: 0}

            run = service.run(db, make_settings(db.url, tmp_path), batch=2)
            assert run.status == "done"
            counts = run.counts[SUBMISSIONS]
            assert counts["done"] == 7 and counts["done_by_tenant"] == {KEY_A: 4, KEY_B: 3}
            assert counts["due_by_tenant"] == {KEY_A: 4, KEY_B: 3}
            assert list(counts["errors_by_tenant"]) == [KEY_NONE]
            assert run.counts[RESPONSES]["done_by_tenant"] == {KEY_A: 3, KEY_B: 0}

            a_url, a_schema = url_of(KEY_A)
            b_url, b_schema = url_of(KEY_B)
            assert set(_ids_in(a_url, a_schema, "submissions")) == {2, 9, 11}
            assert set(_ids_in(b_url, b_schema, "submissions")) == {10, 12}
            responses = _ids_in(a_url, a_schema, "responses")
            assert all(responses[i]["email"] is None for i in (1, 2, 3))
            assert responses[4]["name"] == "Kari Nordmann 4"
            assert len(_ids_in(a_url, a_schema, "accounts")) == 3
            if kind == "sqlite":  # looking for the third customer's database made no file
                assert not (tmp_path / f"skjema_{KEY_NONE}.db").exists()

            again = service.run(db, make_settings(db.url, tmp_path), batch=2)
            assert again.counts[SUBMISSIONS]["done"] == 0
        finally:
            for key in (KEY_A, KEY_B, KEY_NONE):
                forget(url_of(key)[0])


def test_a_per_customer_run_stopped_half_way_goes_on_in_the_same_customer(
        sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = sqlite_db
    _customers(db, tmp_path)
    settings = make_settings(db.url, tmp_path)
    with _per_customer("database", "sqlite", tmp_path) as (tenancy, map_url, url_of):
        for key, school in ((KEY_A, "a"), (KEY_B, "b")):
            _create(url_of(key)[0], only=school)
        monkeypatch.setenv(URL_ENV, map_url)
        with db.transaction(Scope.system("test")) as session:
            publish_map(session, _per_customer_map(tenancy), source="skjema.yaml")

        def stop_after_first(rule: str, rows: int) -> None:
            if rule == SUBMISSIONS:
                raise Stop

        with pytest.raises(Stop):
            service.run(db, settings, batch=3, on_batch=stop_after_first)
        with db.transaction(Scope.system("test")) as session:
            (stopped,) = session.scalars(select(RetentionRun))
            assert stopped.cursor[SUBMISSIONS] == {"customer": KEY_A, "after": 3, "finished": False}
        assert set(_ids_in(url_of(KEY_A)[0], None, "submissions")) == {4, 5, 9, 11}
        with db.engine.begin() as conn:
            conn.execute(update(RetentionRun).values(heartbeat_at=utcnow() - timedelta(hours=1)))
        resumed = service.run(db, settings, batch=3)
        assert resumed.resumed and resumed.counts[SUBMISSIONS]["done"] == 8
        assert resumed.counts[SUBMISSIONS]["done_by_tenant"] == {KEY_A: 5, KEY_B: 3}
        assert set(_ids_in(url_of(KEY_A)[0], None, "submissions")) == {9, 11}
        assert set(_ids_in(url_of(KEY_B)[0], None, "submissions")) == {10, 12}
        for key in (KEY_A, KEY_B, KEY_NONE):
            forget(url_of(key)[0])
