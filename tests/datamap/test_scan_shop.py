"""Scan → map → check on a second product of another shape (a DVD rental shop without a tenant
column, upper-case names and e-mails, lookup tables, payments partitioned on PostgreSQL), on
SQLite, PostgreSQL (with an inheriting table) and MariaDB (with a binary collation)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Column, Date, Engine, String, Text, text

from tests import services
from vern.datamap import shop
from vern.datamap.check import check_database
from vern.datamap.connect import engine_for, forget
from vern.datamap.loader import MapError, load_map
from vern.datamap.scan import draft_yaml, propose_erase, scan

CUSTOMER_KEY = "0196f0a0-0000-7000-8000-0000000000f1"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def shop_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
        yield _filled(url)
        forget(url)
        return
    manager = services.postgres_database if request.param == "postgresql" else services.mariadb_database
    with manager("vern_scan_shop") as url:
        yield _filled(url)
        forget(url)


def _filled(url: str) -> Engine:
    engine = engine_for(url)
    shop.create_product(engine)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # an inheriting table: its rows are reached through its parent
            conn.execute(text("CREATE TABLE customer_archive (archived_at timestamp) INHERITS (customer)"))
    if engine.dialect.name in ("mysql", "mariadb"):
        with engine.begin() as conn:  # a binary collation: values come back as bytes or exact text
            conn.execute(
                text(
                    "CREATE TABLE newsletter (id INT PRIMARY KEY, customer_id INT NOT NULL, "
                    "email VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, "
                    "phone VARBINARY(20), FOREIGN KEY (customer_id) REFERENCES customer (customer_id))"
                )
            )
    shop.fill(engine)
    if engine.dialect.name in ("mysql", "mariadb"):
        with engine.begin() as conn:
            for i in range(1, 11):
                conn.execute(
                    text("INSERT INTO newsletter VALUES (:i, :i, :e, :p)"),
                    {"i": i, "e": f"KUNDE.{i}@EXAMPLE.COM", "p": f"+47 9{i:07d}".encode()},
                )
    return engine


def _tables(draft: dict[str, Any]) -> dict[str, Any]:
    return draft["systems"]["product"]["databases"]["main"]["tables"]


def _categories(table: dict[str, Any]) -> dict[str, str]:
    return {name: f["category"] for name, f in table["fields"].items()}


def test_it_finds_international_personal_data_and_leaves_lookup_tables_alone(shop_engine: Engine) -> None:
    draft = scan(shop_engine)
    tables = _tables(draft)
    customer = _categories(tables["customer"])
    assert customer["first_name"] == customer["last_name"] == "user.name"  # KARI, NORDMANN
    assert customer["email"] == "user.contact.email"  # KARI.NORDMANN.0@EXAMPLE.COM
    assert customer["birth_date"] == "user.date_of_birth"
    address = _categories(tables["address"])
    assert address["address"] == address["postal_code"] == address["district"] == "user.contact.address"
    assert address["phone"] == "user.contact.phone"  # +44, +49, (617) 555-01xx, …
    staff = _categories(tables["staff"])
    assert staff["password"] == "user.credential"
    assert staff["username"] == "user.identifier"
    assert _categories(tables["api_key"])["token"] == "user.credential"
    assert _categories(tables["review"])["body"] == "user.content"
    for lookup in ("language", "category", "country", "city", "film", "film_category", "inventory"):
        assert not any(c.startswith("user.") for c in _categories(tables[lookup]).values()), lookup
    assert tables["customer"]["identities"]["user_id"] == "customer_id"
    assert tables["customer"]["identities"]["email"] == "email"


def test_partitions_and_inheriting_tables_are_mapped_once_as_their_parent(shop_engine: Engine) -> None:
    tables = _tables(scan(shop_engine))
    assert "payment" in tables
    assert not [t for t in tables if t.startswith("payment_p") or t == "customer_archive"]


def test_no_tenant_column_is_proposed_from_a_key_or_a_link_to_a_person(shop_engine: Engine) -> None:
    draft = scan(shop_engine)
    database = draft["systems"]["product"]["databases"]["main"]
    # customer_id is the customer table's own key and the payments' link to it: never a tenant
    assert database["tenancy"]["model"] == "single"
    assert all("tenant" not in t for t in database["tables"].values())
    payment = database["tables"]["payment"]
    assert {"field": "customer_id", "to": "customer.customer_id"} in payment["references"]
    assert _categories(payment)["customer_id"] == "user.identifier"


def test_links_out_of_a_persons_rows_are_drafted_from_foreign_keys(shop_engine: Engine) -> None:
    """customer.address_id and staff.address_id point at rows holding personal data: drafted as
    ``refers_to`` (the person's address); the store's address is a recorded link, never followed."""
    from vern.rights.connectors import ProductDB
    from vern.rights.engine import Subject, discover

    tables = _tables(scan(shop_engine))
    assert tables["customer"]["refers_to"] == [{"field": "address_id", "to": "address.address_id"}]
    assert tables["staff"]["refers_to"] == [{"field": "address_id", "to": "address.address_id"}]
    assert not any(r["field"] == "address_id" for r in tables["customer"].get("references", []))
    store = tables["store"]["references"]
    assert {"field": "address_id", "to": "address.address_id", "follow": False} in store
    for lookup in ("city", "country", "language", "category", "film"):
        assert "refers_to" not in tables[lookup], lookup

    definition = load_map(_reviewed(scan(shop_engine))).database("main")
    with shop_engine.connect() as conn:
        person = dict(conn.execute(text("SELECT * FROM customer WHERE customer_id = 3")).mappings().one())
        store_address = conn.execute(text("SELECT address_id FROM store WHERE store_id = 1")).scalar_one()
    subject = Subject(
        org_id="org",
        tenant_value=CUSTOMER_KEY,
        identities={"email": person["email"].lower()},
        subject_ref="s1",
    )
    found, _where = discover(ProductDB(definition, shop_engine), subject)
    assert [f.row["customer_id"] for f in found["customer"]] == [3]
    assert [f.row["address_id"] for f in found["address"]] == [person["address_id"]]
    assert store_address != person["address_id"]


def test_it_proposes_only_strategies_the_columns_can_hold(shop_engine: Engine) -> None:
    tables = _tables(scan(shop_engine))
    fields = tables["customer"]["fields"]
    assert fields["email"]["erase"] == {"hmac": 50}  # VARCHAR(50): a keyed hash cut to fit
    assert fields["first_name"]["erase"] == "pseudonym"
    assert fields["birth_date"]["erase"] == "null"
    assert tables["address"]["fields"]["phone"]["erase"] == {"fixed": ""}  # NOT NULL
    assert tables["staff"]["fields"]["password"]["erase"] == "null"
    assert tables["staff"]["fields"]["username"]["erase"] == {"fixed": ""}  # NOT NULL, not unique
    assert tables["api_key"].get("erase") == "delete_row"  # a staff member's key goes with them
    # rows nothing refers to are deleted; rental is referred to by payment (no cascade): not
    assert tables["payment"].get("erase") == "delete_row"
    assert tables["review"].get("erase") == "delete_row"
    assert "erase" not in tables["rental"]
    assert "erase" not in tables["customer"]  # rentals and payments would refuse the delete
    if shop_engine.dialect.name in ("mysql", "mariadb"):
        newsletter = tables["newsletter"]["fields"]
        assert newsletter["email"]["category"] == "user.contact.email"
        assert newsletter["phone"]["category"] == "user.contact.phone"
        assert tables["newsletter"]["identities"] == {"email": "email"}


@pytest.mark.parametrize(
    ("detector", "type_", "nullable", "unique", "expected"),
    [
        ("email", String(254), False, True, "hmac"),
        ("email", String(50), False, True, {"hmac": 50}),  # not the 64 characters HMAC writes
        ("email", String(6), True, False, "null"),  # too short for any keyed hash
        ("email", String(6), False, False, {"fixed": ""}),
        ("name", String(10), False, False, {"fixed": ""}),  # "anon-…" is 17 characters
        ("name", String(10), False, True, {"hmac": 10}),  # unique: a distinct value per person
        ("phone", String(20), True, False, "null"),
        ("credential", String(60), False, False, {"fixed": ""}),  # NOT NULL: emptied, not NULL
        ("credential", Text(), True, False, "null"),
    ],
)
def test_proposed_strategies_fit_the_column(
    detector: str, type_: Any, nullable: bool, unique: bool, expected: Any
) -> None:
    column = Column("c", type_, nullable=nullable)
    assert propose_erase(detector, column, unique) == expected


def test_a_not_null_date_of_birth_gets_no_strategy_that_cannot_be_written() -> None:
    found = propose_erase("birth_date", Column("born", Date, nullable=False))
    assert isinstance(found, dict) and str(found["keep"]).startswith("TODO")
    with pytest.raises(MapError, match="still says TODO"):
        load_map(
            "version: 1\nsystems: {s: {databases: {main: {url_env: X, tables: {t: {purpose: p, "
            "retention: r, tenant: k, identities: {user_id: id}, fields: {id: user.identifier, "
            "k: system.reference, born: {category: user.date_of_birth, erase: "
            + json.dumps(found)
            + "}}}}}}}}"
        )


def _reviewed(draft: dict[str, Any]) -> str:
    """What a person does with the draft: purposes, retention and the customer filled in."""
    database = draft["systems"]["product"]["databases"]["main"]
    database["tenancy"]["customer"] = CUSTOMER_KEY
    for table in database["tables"].values():
        table["purpose"] = "Utleie av film / film rental"
        if str(table["retention"]).startswith("TODO"):
            table["retention"] = "account-lifetime"
    return draft_yaml(draft, "test")


def test_a_reviewed_draft_loads_and_checks_clean_and_check_fails_only_on_what_is_new(
    shop_engine: Engine,
) -> None:
    data_map = load_map(_reviewed(scan(shop_engine)))
    db = data_map.database("main")
    assert db.tenancy.model.value == "single" and db.tenancy.customer == CUSTOMER_KEY
    assert check_database(db, shop_engine) == []

    with shop_engine.begin() as conn:
        conn.execute(text("CREATE TABLE gift_card (id INTEGER PRIMARY KEY, code VARCHAR(20))"))
        conn.execute(text("ALTER TABLE customer ADD COLUMN nickname VARCHAR(30)"))
    found = [str(f) for f in check_database(db, shop_engine)]
    assert found == [
        "product.main: tables.customer.nickname: column not in the map (unmapped)",
        "product.main: tables.gift_card: table not in the map "
        "(unmapped; map it or declare it out_of_scope with a reason)",
    ]

    reviewed = yaml.safe_load(_reviewed(scan(shop_engine)))
    database = reviewed["systems"]["product"]["databases"]["main"]
    del database["tables"]["gift_card"]
    database["tables"]["customer"]["fields"].pop("nickname")
    database["out_of_scope"] = {
        "gift_card": "gavekort uten kobling til person / gift cards, no link to a person",
        "customer.nickname": "not used by the product any more",
    }
    assert check_database(load_map(yaml.safe_dump(reviewed)).database("main"), shop_engine) == []


def test_check_refuses_a_delete_a_foreign_key_would_refuse(shop_engine: Engine) -> None:
    reviewed = yaml.safe_load(_reviewed(scan(shop_engine)))
    tables = reviewed["systems"]["product"]["databases"]["main"]["tables"]
    tables["rental"]["erase"] = "delete_row"
    found = [str(f) for f in check_database(load_map(yaml.safe_dump(reviewed)).database("main"), shop_engine)]
    assert found == [
        "product.main: tables.rental.erase: delete_row would be refused: payment.rental_id refers to it "
        "without ON DELETE CASCADE and its rows are not deleted first"
    ]


def test_the_access_package_never_holds_a_credential(shop_engine: Engine) -> None:
    from vern.rights.packages import build_zip

    data_map = load_map(_reviewed(scan(shop_engine)))
    with shop_engine.connect() as conn:
        row = dict(conn.execute(text("SELECT * FROM staff WHERE staff_id = 1")).mappings().one())
    assert row["password"]
    packed = build_zip(
        data_map,
        {"product.main": {"staff": [row]}},
        request_id="r1",
        kind="access",
        org_name="Filmbua AS",
        received=datetime(2026, 12, 1, tzinfo=UTC),
        locale="en",
    )
    with zipfile.ZipFile(BytesIO(packed)) as zf:
        everything = b"".join(zf.read(n) for n in zf.namelist())
    assert row["first_name"].encode() in everything
    assert row["password"].encode() not in everything


def test_a_credential_is_deleted_never_kept_or_hashed() -> None:
    base = """
version: 1
systems:
  s:
    databases:
      main:
        url_env: X
        tenancy: {model: single, customer: k1}
        tables:
          staff:
            purpose: p
            retention: account-lifetime
            identities: {user_id: id}
            fields:
              id: user.identifier
              password: {category: user.credential, erase: %s}
"""
    assert load_map(base % '"null"').database("main").tables["staff"].tenant == ""
    for bad in ('{keep: "we like it"}', "hmac", "pseudonym"):
        with pytest.raises(MapError, match="a credential is deleted on erasure"):
            load_map(base % bad)


def test_a_database_of_one_customer_is_reached_only_by_that_customers_requests(shop_engine: Engine) -> None:
    from vern.rights.connectors import Unreachable, product_db

    db = load_map(_reviewed(scan(shop_engine))).database("main")
    pdb = product_db(db, {"main": shop_engine.url.render_as_string(hide_password=False)})
    customer = db.tables["customer"]
    # Stored as KARI.NORDMANN.0@EXAMPLE.COM; the engine hands ProductDB the normalised form.
    email = "kari.nordmann.0@example.com"
    with pdb.connect() as conn:
        assert [r["customer_id"] for r in pdb.find(conn, customer, CUSTOMER_KEY, [("email", [email])])] == [1]
        assert pdb.find(conn, customer, "another-customer", [("email", [email])]) == []
        review = db.tables["review"]
        assert pdb.count_where(conn, review, "another-customer", [("customer_id", [1])]) == 0
        assert pdb.count_where(conn, review, CUSTOMER_KEY, [("customer_id", [1])]) == 1
    schema_map = yaml.safe_load(_reviewed(scan(shop_engine)))
    schema_map["systems"]["product"]["databases"]["main"]["tenancy"] = {
        "model": "schema",
        "schema": "t_{key}",
    }
    by_schema = load_map(yaml.safe_dump(schema_map)).database("main")
    urls = {"main": shop_engine.url.render_as_string(hide_password=False)}
    # a schema per customer: a key that is no plain identifier names no schema; SQLite has none
    with pytest.raises(Unreachable, match="letters, digits or underscores"):
        product_db(by_schema, urls, "another-customer")
    if shop_engine.dialect.name == "sqlite":
        with pytest.raises(Unreachable, match="SQLite has no schemas"):
            product_db(by_schema, urls, "another_customer")
    else:  # the customer's schema: a MariaDB database, a PostgreSQL schema, absent here
        with pytest.raises(Unreachable, match="does not exist"):
            product_db(by_schema, urls, "another_customer").table("customer")


def test_a_map_that_still_lists_a_partition_of_its_own_matches(shop_engine: Engine) -> None:
    if shop_engine.dialect.name != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    reviewed = yaml.safe_load(_reviewed(scan(shop_engine)))
    tables = reviewed["systems"]["product"]["databases"]["main"]["tables"]
    tables["payment_p2025_01"] = dict(tables["payment"])
    assert check_database(load_map(yaml.safe_dump(reviewed)).database("main"), shop_engine) == []


def test_a_small_referenced_table_of_peoples_names_is_not_a_lookup_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'books.db'}"
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE authors (id INTEGER PRIMARY KEY, name VARCHAR(80))"))
        conn.execute(text("CREATE TABLE genres (id INTEGER PRIMARY KEY, name VARCHAR(80))"))
        conn.execute(
            text(
                "CREATE TABLE books (id INTEGER PRIMARY KEY, title VARCHAR(80), "
                "author_id INTEGER REFERENCES authors (id), genre_id INTEGER REFERENCES genres (id))"
            )
        )
        for i, (author, genre) in enumerate(
            [("Kari Nordmann", "Krim"), ("MARY SMITH", "Drama"), ("Ola", "Poesi")]
        ):
            conn.execute(text("INSERT INTO authors VALUES (:i, :n)"), {"i": i, "n": author})
            conn.execute(text("INSERT INTO genres VALUES (:i, :n)"), {"i": i, "n": genre})
            conn.execute(text("INSERT INTO books VALUES (:i, 'Boka', :i, :i)"), {"i": i})
    tables = _tables(scan(engine))
    forget(url)
    assert tables["authors"]["fields"]["name"]["category"] == "user.name"
    assert tables["genres"]["fields"]["name"]["category"] == "system.config"
    assert tables["genres"]["retention"] == "permanent-config"


def test_a_database_per_customer_needs_its_url_in_the_variable_named_from_the_key(
    shop_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vern.rights.connectors import Unreachable, product_db

    reviewed = yaml.safe_load(_reviewed(scan(shop_engine)))
    reviewed["systems"]["product"]["databases"]["main"]["tenancy"] = {
        "model": "database",
        "url_env": "SHOP_{key}",
    }
    per_customer = load_map(yaml.safe_dump(reviewed)).database("main")
    urls = {"main": shop_engine.url.render_as_string(hide_password=False)}
    monkeypatch.delenv("SHOP_k1", raising=False)
    with pytest.raises(Unreachable, match=r"no connection URL for the customer \(set \$SHOP_k1\)"):
        product_db(per_customer, urls, "k1")
    monkeypatch.setenv("SHOP_k1", urls["main"])  # the customer's own database
    pdb = product_db(per_customer, urls, "k1")
    assert pdb.engine.url.database == shop_engine.url.database and pdb.owner == "k1"
    with pdb.connect() as conn:  # only the key k1 is compared in it: another customer's matches nothing
        email = "kari.nordmann.0@example.com"
        assert pdb.find(conn, per_customer.tables["customer"], "k2", [("email", [email])]) == []
        assert len(pdb.find(conn, per_customer.tables["customer"], "k1", [("email", [email])])) == 1
