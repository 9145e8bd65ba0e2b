"""Tables without a primary key (Fides #1199) and tables erased with one statement, on SQLite,
PostgreSQL and MariaDB: the person's rows are found and changed, nobody else's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from tests import services
from tests.conftest import Personas
from tests.rights.conftest import file_request, request_row
from vern.core.db import Database, Scope
from vern.datamap.connect import engine_for, forget
from vern.datamap.loader import load_map
from vern.rights import service
from vern.rights.engine import set_based_tables
from vern.rights.models import LedgerEntry

meta = MetaData()
members = Table(
    "members",
    meta,
    Column("id", Integer, primary_key=True),
    Column("club", String(40), nullable=False),
    Column("email", String(120), nullable=False),
    Column("name", String(120)),
)
# No primary key, and an HMAC field: found by the person's e-mail, changed row by row with the old
# values as a guard.
mail_log = Table(
    "mail_log",
    meta,
    Column("club", String(40), nullable=False),
    Column("email", String(120)),
    Column("subject", String(200)),
)
# No primary key, leaf, deleted: one DELETE over the person's rows.
visits = Table(
    "visits",
    meta,
    Column("club", String(40), nullable=False),
    Column("member_id", Integer),
    Column("ip", String(45)),
)
# Leaf with a pseudonym: one UPDATE, and an empty field stays empty.
posts = Table(
    "posts",
    meta,
    Column("id", Integer, primary_key=True),
    Column("club", String(40), nullable=False),
    Column("member_id", Integer, nullable=False),
    Column("signature", String(120)),
    Column("body", String(500)),
)

MAP = """
version: 1
systems:
  club:
    title: Klubbsystem
    databases:
      main:
        url_env: CLUB_URL
        tables:
          members:
            purpose: members
            retention: account-lifetime
            tenant: club
            identities: {email: email, user_id: id}
            fields:
              id: user.identifier
              club: system.reference
              email: {category: user.contact.email, erase: hmac}
              name: {category: user.name, erase: {pseudonym: "Slettet {id}"}}
          mail_log:
            purpose: mail sent
            retention: audit-retention
            tenant: club
            identities: {email: email}
            fields:
              club: system.reference
              email: {category: user.contact.email, erase: hmac}
              subject: {category: system.config}
          visits:
            purpose: visits
            retention: audit-retention
            tenant: club
            erase: delete_row
            references: [{field: member_id, to: members.id}]
            fields: {club: system.reference, member_id: user.identifier, ip: user.network.ip}
          posts:
            purpose: posts
            retention: account-lifetime
            tenant: club
            references: [{field: member_id, to: members.id}]
            fields:
              id: system.id
              club: system.reference
              member_id: user.identifier
              signature: {category: user.name, erase: {pseudonym: "Slettet {id}"}}
              body: {category: user.content, erase: {fixed: "[slettet]"}}
"""


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def club(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'club.db'}"
        yield url
        forget(url)
        return
    manager = services.postgres_database if request.param == "postgresql" else services.mariadb_database
    with manager("vern_club") as url:
        yield url
        forget(url)


def _fill(url: str, tenant: str, other: str) -> None:
    engine = engine_for(url)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(members),
            [
                {"id": 1, "club": tenant, "email": "kari@example.com", "name": "Kari Nordmann"},
                {"id": 2, "club": tenant, "email": "ola@example.com", "name": "Ola Nordmann"},
                {"id": 3, "club": other, "email": "kari@example.com", "name": "Kari i en annen klubb"},
            ],
        )
        conn.execute(
            insert(mail_log),
            [
                {"club": tenant, "email": "kari@example.com", "subject": "Velkommen"},
                {"club": tenant, "email": "kari@example.com", "subject": "Påminnelse"},
                {"club": tenant, "email": "ola@example.com", "subject": "Velkommen"},
                {"club": other, "email": "kari@example.com", "subject": "Velkommen"},
            ],
        )
        conn.execute(
            insert(visits),
            [
                {"club": tenant, "member_id": 1, "ip": "192.0.2.1"},
                {"club": tenant, "member_id": 1, "ip": "192.0.2.2"},
                {"club": tenant, "member_id": 2, "ip": "192.0.2.3"},
                {"club": other, "member_id": 1, "ip": "192.0.2.4"},
            ],
        )
        conn.execute(
            insert(posts),
            [
                {"id": 1, "club": tenant, "member_id": 1, "signature": "Kari", "body": "Hei"},
                {"id": 2, "club": tenant, "member_id": 1, "signature": None, "body": "Hallo"},
                {"id": 3, "club": tenant, "member_id": 2, "signature": "Ola", "body": "Heisann"},
                {"id": 4, "club": other, "member_id": 1, "signature": "K", "body": "Annen klubb"},
            ],
        )


def _all(url: str, table: Table) -> list[dict[str, Any]]:
    with engine_for(url).connect() as conn:
        return sorted((dict(r) for r in conn.execute(select(table)).mappings()), key=repr)


def test_rows_without_a_key_and_set_based_tables_are_erased_for_the_person_only(
    sqlite_db: Database, world: Personas, club: str
) -> None:
    tenant, other = world.tenant_a, world.tenant_b
    _fill(club, tenant, other)
    data_map = load_map(MAP)
    assert set_based_tables(data_map.database("club.main")) == {"visits", "posts"}
    before = {t.name: _all(club, t) for t in meta.sorted_tables}
    request_id = file_request(sqlite_db, tenant, "erasure", {"email": "kari@example.com"})

    status = service.run(sqlite_db, request_id, data_map=data_map, urls={"club.main": club})

    assert status == "done"
    log = _all(club, mail_log)
    mine = [r for r in log if r["club"] == tenant and r["subject"] in ("Velkommen", "Påminnelse")]
    assert sorted(len(r["email"]) for r in mine) == [15, 64, 64]  # Ola's stays, Kari's are HMACs
    assert {"club": other, "email": "kari@example.com", "subject": "Velkommen"} in log
    assert _all(club, visits) == sorted(
        [
            {"club": tenant, "member_id": 2, "ip": "192.0.2.3"},
            {"club": other, "member_id": 1, "ip": "192.0.2.4"},
        ],
        key=repr,
    )
    by_id = {p["id"]: p for p in _all(club, posts)}
    assert by_id[1]["signature"].startswith("Slettet ") and by_id[1]["body"] == "[slettet]"
    assert by_id[2]["signature"] is None and by_id[2]["body"] == "[slettet]"  # empty stays empty
    assert by_id[3] == before["posts"][2] and by_id[4] == before["posts"][3]
    assert [m for m in _all(club, members) if m["id"] != 1] == [m for m in before["members"] if m["id"] != 1]
    summary = request_row(sqlite_db, request_id).summary
    assert summary is not None
    # members 1, mail_log 2, visits 2, posts 2
    assert summary["databases"]["club.main"]["rows_done"] == 7
    with sqlite_db.transaction(Scope.system("test")) as session:
        (entry,) = session.scalars(select(LedgerEntry).where(LedgerEntry.request_id == request_id))
        assert entry.rows == 7 and set(entry.match_hashes["tables"]) == {
            "members",
            "mail_log",
            "visits",
            "posts",
        }

    # the same request again changes nothing more (the rows are recognised as erased)
    again = file_request(sqlite_db, tenant, "erasure", {"email": "kari@example.com"})
    after = {t.name: _all(club, t) for t in meta.sorted_tables}
    # her e-mail is erased everywhere: nobody is found, which waits for staff rather than "done"
    assert service.run(sqlite_db, again, data_map=data_map, urls={"club.main": club}) == "nobody_found"
    assert {t.name: _all(club, t) for t in meta.sorted_tables} == after
