"""Fixtures for data subject requests: Vern's database (SQLite) with the personas, and the demo
learning platform as the product database on SQLite, PostgreSQL or MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests.conftest import Personas, create_personas, make_settings
from vern.core.db import Database, Scope
from vern.datamap.connect import engine_for, forget
from vern.datamap.loader import load_map
from vern.datamap.model import DataMap
from vern.rights import demo, service
from vern.rights.models import RightsRequest


@dataclass
class Product:
    url: str
    people: list[dict[str, Any]]
    data_map: DataMap

    @property
    def urls(self) -> dict[str, str]:
        return {"laerbar.main": self.url}

    def person(self, tenant: str, index: int = 0) -> dict[str, Any]:
        return [p for p in self.people if p["school_id"] == tenant][index]


@pytest.fixture
def world(sqlite_db: Database, tmp_path: Path) -> Personas:
    return create_personas(sqlite_db, make_settings(sqlite_db.url, tmp_path))


def _product_url(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'product.db'}"
    elif kind == "postgresql":
        with services.postgres_database("vern_product") as url:
            yield url
    else:
        with services.mariadb_database("vern_product") as url:
            yield url


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def product(request: pytest.FixtureRequest, tmp_path: Path, world: Personas) -> Iterator[Product]:
    gen = _product_url(request.param, tmp_path)
    url = next(gen)
    try:
        yield _make_product(url, world)
    finally:
        forget(url)
        for _ in gen:
            pass


@pytest.fixture
def sqlite_product(tmp_path: Path, world: Personas) -> Iterator[Product]:
    url = f"sqlite:///{tmp_path / 'product.db'}"
    yield _make_product(url, world)
    forget(url)


def _make_product(url: str, world: Personas) -> Product:
    engine = engine_for(url)
    demo.create_product(engine)
    people = demo.fill(engine, [world.tenant_a, world.tenant_b], people_per_tenant=6)
    return Product(url=url, people=people, data_map=load_map(demo.map_text()))


def file_request(
    database: Database,
    org_id: str,
    kind: str,
    identities: dict[str, str],
    *,
    details: dict[str, Any] | None = None,
    approve: bool = True,
) -> str:
    """A verified (attested by staff) and, if needed, approved request; returns its id."""
    note = {"note": "ID-kort kontrollert"}
    with database.transaction(Scope.tenant(org_id)) as session:
        req = service.create_request(
            session,
            org_id=org_id,
            kind=kind,
            identities=identities,
            channel="staff",
            verified_by="attested",
            details=(details or {}) | note,
        )
        request_id = req.id
        if approve and req.status == "awaiting_approval":
            # Filed and attested by the system; approved by a named person (four-eyes): the
            # organisation's administrator.
            from vern.accounts import service as accounts

            approver = next(u.id for u, m in accounts.list_members(session)
                            if m.role == "tenant_admin")
            service.approve(session, request_id, actor_user_id=approver)
    return request_id


def request_row(database: Database, request_id: str) -> RightsRequest:
    with database.transaction(Scope.system("test read")) as session:
        req = session.get(RightsRequest, request_id)
        assert req is not None
        session.expunge(req)
        return req


