"""A second product of another shape: a web shop whose customers share addresses with each other
and with a store, with e-mails stored in upper and mixed case and with spaces - on SQLite,
PostgreSQL and MariaDB. Access and erasure must find the person as a person means it, follow the
link out of the customer's row to the address, keep (and say so) what others still use, never
touch another person's row, and leave no new trace in columns the database sets by itself."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    select,
    text,
)

from tests import services
from tests.conftest import Personas
from tests.rights.conftest import file_request, request_row
from vern.core.db import Database, Scope, utcnow
from vern.datamap.connect import engine_for, forget
from vern.datamap.loader import load_map
from vern.notify import service as notify
from vern.rights import ledger, service
from vern.rights.runtime import secret

DB = "nettbutikk.shop"

MAP = """
version: 1
systems:
  nettbutikk:
    title: Nettbutikken
    recipients: ["Driftsleverandør: Fjordsky AS (Norge), databehandler"]
    databases:
      shop:
        url_env: NETTBUTIKK_TEST_URL
        tables:
          customers:
            purpose: Customer accounts
            retention: account-lifetime
            tenant: shop_id
            identities: {email: email, phone: phone}
            refers_to: [{field: address_id, to: addresses.id}]
            fields:
              id: system.id
              shop_id: system.reference
              email: {category: user.contact.email, erase: {pseudonym: "slettet-{id}@example.invalid"}}
              name: {category: user.name, erase: {pseudonym: "Slettet kunde {id}"}}
              phone: {category: user.contact.phone, erase: null}
              address_id: system.reference
              updated_at: {category: system.timestamp, auto_update: true}
          addresses:
            purpose: Delivery addresses
            retention: account-lifetime
            tenant: shop_id
            erase: delete_row
            fields:
              id: system.id
              shop_id: system.reference
              street: user.contact.address
              city: user.contact.address
              updated_at: {category: system.timestamp, auto_update: true}
STORES
          orders:
            purpose: Orders and their delivery
            retention: legal-5y
            tenant: shop_id
            references: [{field: customer_id, to: customers.id}]
            fields:
              id: system.id
              shop_id: system.reference
              customer_id: user.identifier
              total: {category: user.financial, erase: {keep: "bokføringsloven § 13: kept five years"}}
              note: {category: user.content, erase: null}
"""

STORES = """          stores:
            purpose: The shop's own stores
            retention: permanent-config
            tenant: shop_id
            references: [{field: address_id, to: addresses.id, follow: false}]
            fields:
              {id: system.id, shop_id: system.reference, name: system.config, address_id: system.reference}
"""

OLD = datetime(2026, 1, 2, 3, 4, 5)


def shop_map(*, stores: bool = True, by_id: bool = False) -> Any:
    text = MAP.replace("STORES\n", STORES if stores else "")
    if by_id:
        text = text.replace(
            "identities: {email: email, phone: phone}", "identities: {email: email, user_id: id}"
        )
    return load_map(text)


def _schema(dialect: str, collation: str | None) -> MetaData:
    meta = MetaData()
    email_type = String(254, collation=collation) if collation else String(254)
    stamp: list[Any] = []
    if dialect == "mysql":  # the column the database sets by itself on every UPDATE
        stamp = [
            Column(
                "updated_at",
                DateTime,
                nullable=False,
                server_default=text("CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"),
            )
        ]
    else:
        stamp = [Column("updated_at", DateTime, nullable=False)]
    Table(
        "addresses",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("shop_id", String(36), nullable=False),
        Column("street", String(200)),
        Column("city", String(100)),
        *stamp,
    )
    Table(
        "stores",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("shop_id", String(36), nullable=False),
        Column("name", String(100)),
        Column("address_id", Integer, ForeignKey("addresses.id"), nullable=False),
    )
    Table(
        "customers",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("shop_id", String(36), nullable=False),
        Column("email", email_type),
        Column("name", String(200)),
        Column("phone", String(40)),
        Column("address_id", Integer, ForeignKey("addresses.id"), nullable=True),
        *[Column(c.name, c.type, nullable=False, server_default=c.server_default) for c in stamp],
    )
    Table(
        "orders",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("shop_id", String(36), nullable=False),
        Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
        Column("total", Numeric(10, 2)),
        Column("note", String(200)),
    )
    return meta


def fill(engine: Engine, shop: str, other: str, *, collation: str | None = None) -> MetaData:
    meta = _schema(engine.dialect.name, collation)
    meta.create_all(engine)
    t = meta.tables
    with engine.begin() as conn:
        conn.execute(
            t["addresses"].insert(),
            [
                {"id": 1, "shop_id": shop, "street": "Storgata 1", "city": "Oslo", "updated_at": OLD},
                {"id": 2, "shop_id": shop, "street": "Fjellveien 7", "city": "Bergen", "updated_at": OLD},
                {"id": 3, "shop_id": shop, "street": "Torget 5", "city": "Tromsø", "updated_at": OLD},
                {"id": 4, "shop_id": other, "street": "Fjellveien 7", "city": "Bergen", "updated_at": OLD},
            ],
        )
        conn.execute(t["stores"].insert(), [{"id": 1, "shop_id": shop, "name": "Butikken", "address_id": 3}])
        conn.execute(
            t["customers"].insert(),
            [
                # Kari: her own address; e-mail stored in upper and mixed case
                {"id": 1, "shop_id": shop, "email": "KARI.Nordmann@Example.COM", "name": "Kari Nordmann",
                 "phone": "91234567", "address_id": 2, "updated_at": OLD},
                # Ola and Per share an address; Ola's e-mail with spaces around it
                {"id": 2, "shop_id": shop, "email": " Ola.Hansen@EXAMPLE.com ", "name": "Ola Hansen",
                 "phone": "+47 922 33 444", "address_id": 1, "updated_at": OLD},
                {"id": 3, "shop_id": shop, "email": "per.berg@example.com", "name": "Per Berg",
                 "phone": None, "address_id": 1, "updated_at": OLD},
                # Ingrid lives where the store is
                {"id": 4, "shop_id": shop, "email": "Ingrid.Lie@example.com", "name": "Ingrid Lie",
                 "phone": None, "address_id": 3, "updated_at": OLD},
                # the same e-mail in another customer's shop: never reached
                {"id": 5, "shop_id": other, "email": "kari.nordmann@example.com", "name": "Kari Nordmann",
                 "phone": "91234567", "address_id": 4, "updated_at": OLD},
            ],
        )
        conn.execute(
            t["orders"].insert(),
            [
                {"id": 1, "shop_id": shop, "customer_id": 1, "total": 249, "note": "Ring på døra"},
                {"id": 2, "shop_id": shop, "customer_id": 1, "total": 99, "note": None},
                {"id": 3, "shop_id": shop, "customer_id": 2, "total": 500, "note": "Levér i postkassen"},
                {"id": 4, "shop_id": shop, "customer_id": 3, "total": 75, "note": "Per sin ordre"},
                {"id": 5, "shop_id": other, "customer_id": 5, "total": 10, "note": "Annen butikk"},
            ],
        )
    return meta


def state(url: str, meta: MetaData) -> dict[str, dict[int, dict[str, Any]]]:
    with engine_for(url).connect() as conn:
        return {
            name: {r["id"]: dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()}
            for name, table in meta.tables.items()
        }


def _url(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'shop.db'}"
    elif kind == "postgresql":
        with services.postgres_database("vern_shop") as url:
            yield url
    else:
        with services.mariadb_database("vern_shop") as url:
            yield url


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def shop(request: pytest.FixtureRequest, tmp_path: Path, world: Personas) -> Iterator[tuple[str, MetaData]]:
    gen = _url(request.param, tmp_path)
    url = next(gen)
    try:
        yield url, fill(engine_for(url), world.tenant_a, world.tenant_b)
    finally:
        forget(url)
        for _ in gen:
            pass


def _run(db: Database, request_id: str, url: str, *, stores: bool = True, by_id: bool = False) -> str:
    return service.run(db, request_id, data_map=shop_map(stores=stores, by_id=by_id), urls={DB: url})


def _package(db: Database, org: str, request_id: str) -> dict[str, Any]:
    with db.transaction(Scope.tenant(org)) as session:
        body, _name = service.download_for_staff(session, request_id, actor_user_id=None)
    data = json.loads(zipfile.ZipFile(io.BytesIO(body)).read("data.json"))
    tables = data["systems"]["nettbutikk"]["databases"]["shop"]
    return {name: t["rows"] for name, t in tables.items()}


def test_access_finds_mixed_case_email_and_the_address_through_the_customers_link(
    sqlite_db: Database, world: Personas, shop: tuple[str, MetaData]
) -> None:
    url, _meta = shop
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"email": " Kari.Nordmann@example.com"})

    assert _run(sqlite_db, request_id, url) == "done"

    rows = _package(sqlite_db, world.tenant_a, request_id)
    assert [r["id"] for r in rows["customers"]] == [1]
    assert rows["customers"][0]["email"] == "KARI.Nordmann@Example.COM"
    assert sorted(r["id"] for r in rows["orders"]) == [1, 2]
    assert [r["street"] for r in rows["addresses"]] == ["Fjellveien 7"]  # out of her row, not another's
    assert "stores" not in rows


def test_access_by_phone_in_another_written_form(
    sqlite_db: Database, world: Personas, shop: tuple[str, MetaData]
) -> None:
    url, _meta = shop
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"phone": "+47 922 33 444"})
    assert _run(sqlite_db, request_id, url) == "done"
    rows = _package(sqlite_db, world.tenant_a, request_id)
    assert [r["id"] for r in rows["customers"]] == [2]
    # Ola's address is shared with Per: it is his data too and is shown, nothing is followed from it
    assert [r["id"] for r in rows["addresses"]] == [1]


def test_erasure_keeps_a_shared_address_cuts_the_own_link_and_leaves_no_new_trace(
    sqlite_db: Database, world: Personas, shop: tuple[str, MetaData]
) -> None:
    url, meta = shop
    before = state(url, meta)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": "ola.hansen@example.com"})

    assert _run(sqlite_db, request_id, url) == "done"

    after = state(url, meta)
    ola = after["customers"][2]
    assert ola["email"].startswith("slettet-") and ola["name"].startswith("Slettet kunde")
    assert ola["phone"] is None
    assert ola["address_id"] is None  # his own link to the shared address is cut
    assert ola["updated_at"] == OLD  # the database's own timestamp keeps its old value
    assert after["orders"][3]["note"] is None and after["orders"][3]["total"] == before["orders"][3]["total"]
    # the shared address and everyone else's rows are exactly as they were
    assert after["addresses"] == before["addresses"]
    for table, his in (("customers", 2), ("orders", 3)):
        assert {k: v for k, v in after[table].items() if k != his} == {
            k: v for k, v in before[table].items() if k != his
        }
    assert after["stores"] == before["stores"]
    req = request_row(sqlite_db, request_id)
    assert req.summary is not None
    kept = req.summary["kept"][DB]
    assert kept == [
        {
            "table": "addresses",
            "reason": "also used by 1 other row(s) of customers",
            "link": "customers.address_id cleared",
        }
    ]


def test_erasure_deletes_an_own_address_and_a_second_erasure_changes_nothing(
    sqlite_db: Database, world: Personas, shop: tuple[str, MetaData]
) -> None:
    url, meta = shop
    before = state(url, meta)
    first = file_request(sqlite_db, world.tenant_a, "erasure", {"email": "kari.nordmann@EXAMPLE.com"})
    assert _run(sqlite_db, first, url) == "done"
    after = state(url, meta)
    assert set(after["addresses"]) == {1, 3, 4}  # hers (2) is gone, nobody else used it
    assert after["customers"][1]["address_id"] is None and after["customers"][1]["updated_at"] == OLD
    assert after["customers"][5] == before["customers"][5]  # the same e-mail in another shop
    assert after["addresses"][4] == before["addresses"][4]

    again = file_request(sqlite_db, world.tenant_a, "erasure", {"email": "kari.nordmann@example.com"})
    status = _run(sqlite_db, again, url)

    assert state(url, meta) == after
    assert status == "nobody_found"  # her e-mail is gone: said so, not a silent "done"


def test_store_address_is_kept_when_its_customer_is_erased(
    sqlite_db: Database, world: Personas, shop: tuple[str, MetaData]
) -> None:
    url, meta = shop
    before = state(url, meta)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": "INGRID.LIE@example.com"})
    assert _run(sqlite_db, request_id, url) == "done"
    after = state(url, meta)
    assert after["addresses"] == before["addresses"] and after["stores"] == before["stores"]
    assert after["customers"][4]["address_id"] is None
    kept = request_row(sqlite_db, request_id).summary["kept"][DB]  # type: ignore[index]
    assert kept[0]["reason"] == "also used by 1 other row(s) of stores"


def test_a_database_refusing_the_write_is_named_as_refusing(
    sqlite_db: Database, world: Personas, shop: tuple[str, MetaData]
) -> None:
    url, meta = shop
    before = state(url, meta)
    # A map that does not know the stores: the store's address looks like Ingrid's alone, and the
    # database refuses to delete it (the store's foreign key).
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": "ingrid.lie@example.com"})

    assert _run(sqlite_db, request_id, url, stores=False) == "partial"

    req = request_row(sqlite_db, request_id)
    assert req.error is not None and req.error.startswith(f"refused by {DB}: ")
    assert "not reached" not in req.error
    assert state(url, meta) == before  # one product transaction: nothing half-written


def test_nobody_found_waits_for_staff_with_what_was_searched(
    sqlite_db: Database, world: Personas, shop: tuple[str, MetaData], mailer: notify.MemoryMailer
) -> None:
    url, _meta = shop
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"email": "ingen@example.com"})

    assert _run(sqlite_db, request_id, url) == "nobody_found"

    req = request_row(sqlite_db, request_id)
    assert req.completed_at is None
    assert req.summary is not None and req.summary["searched"] == {DB: {"customers": ["email"]}}
    notify.deliver_pending(sqlite_db)
    assert mailer.last_to("ingen@example.com") is None  # not told before staff confirm
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        assert service.confirm_nobody_found(session, request_id, actor_user_id=None).status == "done"
    assert request_row(sqlite_db, request_id).completed_at is not None
    notify.deliver_pending(sqlite_db)
    told = mailer.last_to("ingen@example.com")
    assert told is not None and "fant ingen opplysninger om deg" in told.body


def test_a_customer_may_answer_nobody_found_without_review(
    sqlite_db: Database, world: Personas, shop: tuple[str, MetaData], mailer: notify.MemoryMailer
) -> None:
    url, _meta = shop
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        service.set_policy(session, org_id=world.tenant_a, actor_user_id=None, answer_nobody_found=True)
        assert service.policy_for(session, world.tenant_a).answer_nobody_found
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"email": "ingen@example.com"})

    assert _run(sqlite_db, request_id, url) == "done"

    req = request_row(sqlite_db, request_id)
    assert req.summary is not None and req.summary["searched"] == {DB: {"customers": ["email"]}}
    notify.deliver_pending(sqlite_db)
    told = mailer.last_to("ingen@example.com")
    assert told is not None and "fant ingen opplysninger om deg" in told.body


# A case-insensitive and a binary collation of each database.
COLLATIONS = [
    ("sqlite", "NOCASE"),
    ("sqlite", "BINARY"),
    ("postgresql", "vern_ci"),  # ICU, nondeterministic: 'A' = 'a'
    ("postgresql", "C"),
    ("mariadb", "utf8mb4_general_ci"),
    ("mariadb", "utf8mb4_bin"),
]


@pytest.mark.parametrize(("kind", "collation"), COLLATIONS)
def test_replay_after_a_restore_matches_as_the_erasure_did(
    sqlite_db: Database, world: Personas, tmp_path: Path, kind: str, collation: str
) -> None:
    gen = _url(kind, tmp_path)
    url = next(gen)
    try:
        if collation == "vern_ci":
            with engine_for(url).begin() as conn:
                conn.execute(
                    text(
                        "CREATE COLLATION vern_ci "
                        "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
                    )
                )
        meta = fill(engine_for(url), world.tenant_a, world.tenant_b, collation=collation)
        backup = state(url, meta)
        since = utcnow() - timedelta(minutes=1)
        for email in ("Kari.Nordmann@example.com", "OLA.hansen@example.com"):
            request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": email})
            assert _run(sqlite_db, request_id, url) == "done"
        erased = state(url, meta)
        assert erased != backup
        _restore(url, meta, backup)
        assert state(url, meta) == backup

        result = ledger.replay(sqlite_db, shop_map(), "shop", since, secret=secret(), urls={DB: url})

        assert state(url, meta) == erased  # every row again, none of anyone else's
        assert result.tables["customers"] == 2
        again = ledger.replay(sqlite_db, shop_map(), "shop", since, secret=secret(), urls={DB: url})
        assert again.rows == 0 and state(url, meta) == erased

        # a backup in which Kari's row no longer carries what matched her: said loudly
        changed = {**backup, "customers": {**backup["customers"], 1: {**backup["customers"][1],
                                                                       "email": "annen@example.com"}}}
        _restore(url, meta, changed)
        with pytest.raises(ledger.ReplayError, match="customers: 1 of 2 recorded row"):
            ledger.replay(sqlite_db, shop_map(), "shop", since, secret=secret(), urls={DB: url})
        assert state(url, meta) == changed  # nothing written
    finally:
        forget(url)
        for _ in gen:
            pass


def _restore(url: str, meta: MetaData, rows: dict[str, dict[int, dict[str, Any]]]) -> None:
    """Put the product back as ``rows`` (as a restore from a backup does)."""
    with engine_for(url).begin() as conn:
        for table in reversed(meta.sorted_tables):
            conn.execute(table.delete())
        for table in meta.sorted_tables:
            if rows[table.name]:
                conn.execute(table.insert(), list(rows[table.name].values()))


def test_a_rectification_that_changes_nothing_says_so(
    sqlite_db: Database, world: Personas, shop: tuple[str, MetaData]
) -> None:
    url, meta = shop
    before = state(url, meta)
    request_id = file_request(
        sqlite_db, world.tenant_a, "rectification", {"email": "PER.BERG@example.com"},
        details={"corrections": {"user.name": "Per Berg"}},
    )

    assert _run(sqlite_db, request_id, url) == "done"

    assert state(url, meta) == before
    summary = request_row(sqlite_db, request_id).summary
    assert summary is not None and summary["rows_found"] > 0
    assert summary["note"].startswith("nothing was changed")


def test_erasing_an_erased_person_under_another_identity_changes_nothing(
    sqlite_db: Database, world: Personas, shop: tuple[str, MetaData]
) -> None:
    url, meta = shop
    first = file_request(sqlite_db, world.tenant_a, "erasure", {"email": "kari.nordmann@example.com"})
    assert _run(sqlite_db, first, url, by_id=True) == "done"
    after = state(url, meta)

    # her customer number still finds her row; its pseudonyms would differ under this identity
    again = file_request(sqlite_db, world.tenant_a, "erasure", {"user_id": "1"})
    assert _run(sqlite_db, again, url, by_id=True) == "done"

    assert state(url, meta) == after  # the same pseudonyms, no new timestamps, nothing else
