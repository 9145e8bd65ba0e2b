"""Scanning a live database for a draft map, and checking a map against the live schema, on
SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, text

from tests import services
from vern.datamap.check import check_database, check_map
from vern.datamap.connect import engine_for, forget
from vern.datamap.loader import load_map
from vern.datamap.scan import draft_yaml, scan
from vern.rights import demo

TENANTS = ["0196f0a0-0000-7000-8000-00000000000a", "0196f0a0-0000-7000-8000-00000000000b"]


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def product_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'product.db'}"
        yield _filled(url)
        forget(url)
        return
    manager = services.postgres_database if request.param == "postgresql" else services.mariadb_database
    with manager("vern_scan") as url:
        yield _filled(url)
        forget(url)


def _filled(url: str) -> Engine:
    engine = engine_for(url)
    demo.create_product(engine)
    demo.fill(engine, TENANTS, people_per_tenant=8)
    return engine


def test_it_drafts_a_map_with_norwegian_categories(product_engine: Engine) -> None:
    draft = scan(product_engine, system="laerbar")
    tables = draft["systems"]["laerbar"]["databases"]["main"]["tables"]
    users = tables["users"]
    assert users["tenant"] == "school_id"
    assert users["identities"] == {
        "user_id": "id",
        "email": "email",
        "phone": "phone",
        "national_id": "national_id",
    }
    cats = {name: f["category"] for name, f in users["fields"].items()}
    assert cats["national_id"] == "user.government_id.national_id"
    assert cats["phone"] == "user.contact.phone"
    assert cats["name"] == "user.name"
    assert cats["postcode"] == "user.contact.address"
    assert cats["last_login_ip"] == "user.network.ip"
    assert tables["invoices"]["fields"]["bank_account"]["category"] == "user.financial.bank_account"
    assert {"field": "user_id", "to": "users.id"} in tables["enrolments"]["references"]
    assert tables["login_events"]["primary_key"] == []
    reloaded = yaml.safe_load(draft_yaml(draft, "test"))
    assert reloaded == draft


def test_the_demo_map_matches_the_demo_database(product_engine: Engine) -> None:
    data_map = load_map(demo.map_text())
    assert check_database(data_map.database("main"), product_engine) == []


def test_it_fails_on_unmapped_columns_missing_tables_and_unwritable_strategies(
    product_engine: Engine,
) -> None:
    with product_engine.begin() as conn:
        conn.execute(text("ALTER TABLE users ADD COLUMN shoe_size INTEGER"))
        conn.execute(text("DROP TABLE login_events"))
    mapped = (
        demo.map_text()
        .replace(
            'name: {category: user.name, erase: {pseudonym: "Slettet bruker {id}"}}',
            'name: {category: user.name, erase: "null"}',
        )
        .replace(
            'postcode: {category: user.contact.address, erase: "null"}',
            "postcode: {category: user.contact.address, erase: hmac}",
        )
        .replace(
            'bank_account: {category: user.financial.bank_account, erase: "null"}',
            'bank_account: {category: user.financial.bank_account, erase: {pseudonym: "konto-{id}"}}',
        )
    )
    found = [str(f) for f in check_database(load_map(mapped).database("main"), product_engine)]

    assert "laerbar.main: tables.users.shoe_size: column not in the map (unmapped)" in found
    assert "laerbar.main: tables.login_events: in the map but not in the database" in found
    assert (
        "laerbar.main: tables.users.fields.name.erase: null cannot be written: the column is NOT NULL"
    ) in found
    assert (
        "laerbar.main: tables.users.fields.postcode.erase: hmac writes 64 characters but the column holds 4"
    ) in found
    assert any(
        "bank_account.erase: pseudonym writes 18 characters but the column holds 11" in f for f in found
    )


def test_it_reports_a_database_without_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAERBAR_DATABASE_URL", raising=False)
    found = [str(f) for f in check_map(load_map(demo.map_text()))]
    assert found == [
        "laerbar.main: connection: database laerbar.main: no connection URL (set $LAERBAR_DATABASE_URL)"
    ]


def test_a_draft_does_not_load_until_it_is_reviewed(tmp_path: Path) -> None:
    from vern.datamap.loader import MapError

    url = f"sqlite:///{tmp_path / 'p.db'}"
    draft = draft_yaml(scan(_filled(url)), "test")
    with pytest.raises(MapError, match="still says TODO"):
        load_map(draft)
    forget(url)


def test_a_reviewed_draft_of_the_demo_loads_and_checks_clean(product_engine: Engine) -> None:
    draft = scan(product_engine, system="laerbar")
    database = draft["systems"]["laerbar"]["databases"]["main"]
    assert database["tenancy"]["model"] == "column"
    database["tenancy"]["holds"] = "the school's id in Lærbar"
    for table in database["tables"].values():
        assert table["tenant"] == "school_id"  # never a table's own key, on every backend
        table["purpose"] = "Lærbar"
        table["retention"] = "account-lifetime"
    db = load_map(draft_yaml(draft, "test")).database("main")
    assert db.tenancy.holds == "the school's id in Lærbar"
    assert check_database(db, product_engine) == []
    assert db.tables["users"].fields["email"].erase is not None
    assert db.tables["users"].fields["email"].erase.strategy.value == "hmac"  # 254 characters hold 64


def test_check_refuses_a_tenant_column_that_is_the_tables_own_key(product_engine: Engine) -> None:
    mapped = demo.map_text().replace("tenant: school_id", "tenant: id", 1)  # the users table
    assert load_map(mapped).database("main").tables["users"].tenant == "id"
    found = [str(f) for f in check_database(load_map(mapped).database("main"), product_engine)]
    assert found == [
        "laerbar.main: tables.users.tenant: is the table's own primary key, not the customer's key"
    ]
