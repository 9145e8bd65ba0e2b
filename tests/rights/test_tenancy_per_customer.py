"""A product with a schema per customer, or a database per customer (docs/datamap.md, Tenancy):
the same person (the same e-mail) is a customer of two of the vendor's customers. An access
request and an erasure filed by customer A read and write only A's schema or database, and the
ledger replays into the same one; B's copy is never touched."""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests import services
from tests.cli_run import vern
from tests.conftest import Personas
from tests.rights.conftest import file_request
from vern.core.db import Database, Scope, utcnow
from vern.datamap.connect import engine_for, forget
from vern.datamap.loader import load_map
from vern.rights import ledger, service
from vern.rights.connectors import Unreachable, product_db
from vern.rights.models import Policy
from vern.rights.runtime import secret

KEY_A, KEY_B = "fjordbakst", "nordlys_sko"
EMAIL = "kari.nordmann@example.com"
DB = "butikk.kunder"

MAP = """
version: 1
systems:
  butikk:
    title: Butikken
    databases:
      kunder:
        url_env: BUTIKK_TEST_URL
        tenancy: TENANCY
        tables:
          customers:
            purpose: Customer accounts
            retention: account-lifetime
            identities: {email: email}
            fields:
              id: system.id
              email: {category: user.contact.email, erase: {pseudonym: "slettet-{id}@example.invalid"}}
              name: {category: user.name, erase: {fixed: "Slettet"}}
"""


def _map(tenancy: str) -> Any:
    return load_map(MAP.replace("TENANCY", tenancy))


def _fill(conn: Any, table: str, name: str) -> None:
    conn.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, email VARCHAR(120), name VARCHAR(80))"))
    conn.execute(text(f"INSERT INTO {table} VALUES (1, :e, :n), (2, 'ola@example.com', 'Ola')"),  # noqa: S608
                 {"e": EMAIL, "n": name})


def _rows(url: str, table: str = "customers") -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(f"SELECT id, email, name FROM {table} ORDER BY id"))]  # noqa: S608
    finally:
        engine.dispose()


def _keys(db: Database, world: Personas) -> None:
    for org, key in ((world.tenant_a, KEY_A), (world.tenant_b, KEY_B)):
        with db.transaction(Scope.tenant(org)) as session:
            session.add(Policy(org_id=org, product_tenant_key=key, approve_erasure=False,
                               approve_rectification=True))


def _package(db: Database, org: str, request_id: str) -> dict[str, Any]:
    with db.transaction(Scope.tenant(org)) as session:
        body, _name = service.download_for_staff(session, request_id, actor_user_id=None)
    data = json.loads(zipfile.ZipFile(io.BytesIO(body)).read("data.json"))
    return data["systems"]["butikk"]["databases"]["kunder"]["customers"]["rows"]  # type: ignore[no-any-return]


def _access_erase_replay(
    db: Database,
    world: Personas,
    data_map: Any,
    *,
    urls: dict[str, str],
    read: Any,
    restore_a: Any,
) -> None:
    """Access and erasure for customer A, then a restore of A's rows and a replay; ``read(key)``
    gives a customer's rows."""
    b_before = read(KEY_B)
    request_id = file_request(db, world.tenant_a, "access", {"email": EMAIL})
    assert service.run(db, request_id, data_map=data_map, urls=urls) == "done"
    rows = _package(db, world.tenant_a, request_id)
    assert [(r["id"], r["name"]) for r in rows] == [(1, "Kari A")]  # A's copy only

    backup = read(KEY_A)
    since = utcnow() - timedelta(minutes=1)
    request_id = file_request(db, world.tenant_a, "erasure", {"email": EMAIL})
    assert service.run(db, request_id, data_map=data_map, urls=urls) == "done"
    erased = read(KEY_A)
    assert erased[0][1].startswith("slettet-") and erased[0][2] == "Slettet"
    assert erased[1] == backup[1]  # Ola is not her
    assert read(KEY_B) == b_before  # the same person at customer B: untouched

    restore_a(backup)
    assert read(KEY_A) == backup
    result = ledger.replay(db, data_map, "kunder", since, secret=secret(), urls=urls)
    assert result.rows == 1 and read(KEY_A) == erased
    assert read(KEY_B) == b_before


def _restore(url: str, table: str, rows: list[tuple[Any, ...]]) -> None:
    with engine_for(url).begin() as conn:
        for row in rows:
            conn.execute(text(f"UPDATE {table} SET email = :e, name = :n WHERE id = :i"),  # noqa: S608
                         {"e": row[1], "n": row[2], "i": row[0]})


def test_a_schema_per_customer_on_postgresql(sqlite_db: Database, world: Personas) -> None:
    _keys(sqlite_db, world)
    with services.postgres_database("vern_tenancy") as url:
        try:
            with engine_for(url).begin() as conn:
                for key, name in ((KEY_A, "Kari A"), (KEY_B, "Kari B")):
                    conn.execute(text(f"CREATE SCHEMA t_{key}"))
                    _fill(conn, f"t_{key}.customers", name)
            data_map = _map('{model: schema, schema: "t_{key}"}')
            _access_erase_replay(
                sqlite_db, world, data_map, urls={DB: url},
                read=lambda key: _rows(url, f"t_{key}.customers"),
                restore_a=lambda rows: _restore(url, f"t_{KEY_A}.customers", rows),
            )
            # a key that is no plain identifier never names a schema
            with pytest.raises(Unreachable, match="letters, digits or underscores"):
                product_db(data_map.database("kunder"), {DB: url}, 'a"; DROP SCHEMA x; --')
        finally:
            forget(url)


def test_a_schema_per_customer_is_refused_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kunder.db'}"
    data_map = _map('{model: schema, schema: "t_{key}"}')
    with pytest.raises(Unreachable, match="SQLite has no schemas"):
        product_db(data_map.database("kunder"), {DB: url}, KEY_A)
    forget(url)


@contextmanager
def _databases(kind: str, tmp_path: Path) -> Iterator[str]:
    """Both customers' databases, named from their keys; yields the URL template."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/kunder_{{key}}.db"
        return
    prefix = f"vern_t{uuid.uuid4().hex[:8]}_"
    with _server_databases(kind, prefix) as template:
        yield template


@contextmanager
def _server_databases(kind: str, prefix: str) -> Iterator[str]:
    """``<prefix><key>`` for both customers on PostgreSQL or MariaDB; yields the URL template."""
    if kind == "postgresql":
        admin = create_engine(services.PG_ADMIN, isolation_level="AUTOCOMMIT")
        template = f"postgresql+psycopg://postgres@127.0.0.1:5432/{prefix}{{key}}"
        create, drop = 'CREATE DATABASE "{}"', 'DROP DATABASE IF EXISTS "{}" WITH (FORCE)'
    else:
        admin = create_engine(services.MARIADB_ADMIN, isolation_level="AUTOCOMMIT")
        template = f"mysql+pymysql://root@127.0.0.1:3306/{prefix}{{key}}?charset=utf8mb4"
        create, drop = "CREATE DATABASE `{}` CHARACTER SET utf8mb4", "DROP DATABASE IF EXISTS `{}`"
    try:
        with admin.connect() as conn:
            for key in (KEY_A, KEY_B):
                conn.execute(text(create.format(prefix + key)))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        services.unavailable(f"{kind} refused to create a test database: {exc}")
    try:
        yield template
    finally:
        for key in (KEY_A, KEY_B):
            forget(template.replace("{key}", key))
        with admin.connect() as conn:
            for key in (KEY_A, KEY_B):
                conn.execute(text(drop.format(prefix + key)))
        admin.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_a_database_per_customer(kind: str, sqlite_db: Database, world: Personas, tmp_path: Path) -> None:
    _keys(sqlite_db, world)
    with _databases(kind, tmp_path) as template:
        def url(key: str) -> str:
            return template.replace("{key}", key)

        for key, name in ((KEY_A, "Kari A"), (KEY_B, "Kari B")):
            with engine_for(url(key)).begin() as conn:
                _fill(conn, "customers", name)
        data_map = _map("{model: database}")
        _access_erase_replay(
            sqlite_db, world, data_map, urls={DB: template},
            read=lambda key: _rows(url(key)),
            restore_a=lambda rows: _restore(url(KEY_A), "customers", rows),
        )
        for key in (KEY_A, KEY_B):
            forget(url(key))


def test_a_database_url_template_with_the_key_outside_the_name_is_refused(tmp_path: Path) -> None:
    data_map = _map("{model: database}")
    for template in ("postgresql+psycopg://postgres@{key}.invalid:5432/kunder",
                     f"sqlite:///{tmp_path}/kunder.db"):
        with pytest.raises(Unreachable, match="nowhere else"):
            product_db(data_map.database("kunder"), {DB: template}, KEY_A)
    with pytest.raises(Unreachable, match="letters, digits or underscores"):
        product_db(data_map.database("kunder"), {DB: f"sqlite:///{tmp_path}/k_{{key}}.db"}, "../other")


def test_a_schema_per_customer_on_mariadb_is_a_database_per_customer_on_one_server(
    sqlite_db: Database, world: Personas
) -> None:
    _keys(sqlite_db, world)
    prefix = f"vern_s{uuid.uuid4().hex[:8]}_"
    with _server_databases("mariadb", prefix) as template, services.mariadb_database("vern_tenancy") as url:
        try:
            for key, name in ((KEY_A, "Kari A"), (KEY_B, "Kari B")):
                with engine_for(template.replace("{key}", key)).begin() as conn:
                    _fill(conn, "customers", name)
            data_map = _map(f'{{model: schema, schema: "{prefix}{{key}}"}}')
            _access_erase_replay(
                sqlite_db, world, data_map, urls={DB: url},
                read=lambda key: _rows(url, f"{prefix}{key}.customers"),
                restore_a=lambda rows: _restore(url, f"{prefix}{KEY_A}.customers", rows),
            )
        finally:
            forget(url)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_erasures_of_two_customers_in_one_batch_each_reach_their_own_database(
    kind: str, sqlite_db: Database, world: Personas, tmp_path: Path
) -> None:
    """The worker runs several requests together: each customer's writes go to its own database."""
    _keys(sqlite_db, world)
    with _databases(kind, tmp_path) as template:
        def url(key: str) -> str:
            return template.replace("{key}", key)

        for key, name in ((KEY_A, "Kari A"), (KEY_B, "Kari B")):
            with engine_for(url(key)).begin() as conn:
                _fill(conn, "customers", name)
        orgs = (world.tenant_a, world.tenant_b)
        ids = [file_request(sqlite_db, org, "erasure", {"email": EMAIL}) for org in orgs]
        results = service.run_batch(sqlite_db, ids, data_map=_map("{model: database}"), urls={DB: template})
        assert [results[i] for i in ids] == ["done", "done"]
        for key in (KEY_A, KEY_B):
            rows = _rows(url(key))
            assert rows[0][1].startswith("slettet-") and rows[0][2] == "Slettet", key
            assert rows[1] == (2, "ola@example.com", "Ola")


def test_vern_rights_replay_writes_into_the_customers_own_database(
    sqlite_db: Database, world: Personas, tmp_path: Path
) -> None:
    """The CLI as an operator runs it after restoring customer A's database from a backup."""
    from vern.datamap.service import publish_map

    _keys(sqlite_db, world)
    template = f"sqlite:///{tmp_path}/kunder_{{key}}.db"

    def url(key: str) -> str:
        return template.replace("{key}", key)

    for key, name in ((KEY_A, "Kari A"), (KEY_B, "Kari B")):
        with engine_for(url(key)).begin() as conn:
            _fill(conn, "customers", name)
    with sqlite_db.transaction(Scope.system("test")) as session:
        publish_map(session, MAP.replace("TENANCY", "{model: database}"), source="butikk.yaml")
    backup, b_before = _rows(url(KEY_A)), _rows(url(KEY_B))
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": EMAIL})
    assert service.run(sqlite_db, request_id, urls={DB: template}) == "done"
    erased = _rows(url(KEY_A))
    _restore(url(KEY_A), "customers", backup)
    for key in (KEY_A, KEY_B):
        forget(url(key))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")} | {
        "VERN_ENV": "test",  # the fixed test keys, as this process uses
        "VERN_DATABASE_URL": sqlite_db.url,
        "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit"),
        "BUTIKK_TEST_URL": template,
        "COLUMNS": "200",
    }
    replayed = vern(["rights", "replay", "--database", "kunder", "--since", "2020-01-01T00:00:00"], env)
    assert replayed.returncode == 0, replayed.stderr
    assert "1 rows erased again" in replayed.stdout, replayed.stdout
    assert _rows(url(KEY_A)) == erased and erased != backup
    assert _rows(url(KEY_B)) == b_before


def test_the_map_check_never_connects_to_the_url_template(tmp_path: Path) -> None:
    from vern.datamap.check import check_map

    template = f"sqlite:///{tmp_path}/kunder_{{key}}.db"
    findings = check_map(_map("{model: database}"), {DB: template})
    assert [f.message for f in findings] == [
        "the URL is the template of the customers' databases; check one customer's database "
        "with --url kunder=<its URL>"
    ]
    assert list(tmp_path.iterdir()) == []  # no database file named with {key} was created
