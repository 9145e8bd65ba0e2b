"""Ending a customer's contract: two people, the export, the notice period (or the customer's
confirmation), deletion in Vern and in the product database in bounded resumable steps, a signed
certificate - and nothing of the other customer touched (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from tests.conftest import Personas, create_personas, make_settings
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.core.errors import Conflict, InvalidInput
from vern.datamap import service as datamap
from vern.datamap.connect import engine_for, forget
from vern.offboarding import service
from vern.offboarding.models import Offboarding
from vern.rights import demo
from vern.stats import service as stats


def _vern_counts(database: Database, org_id: str) -> dict[str, int]:
    out = {}
    with database.engine.connect() as conn:
        for table in service.tenant_tables():
            out[table.name] = conn.execute(select(func.count()).select_from(table).where(
                table.c.org_id == org_id)).scalar() or 0
    return out


def _product_counts(url: str, school: str) -> dict[str, object]:
    engine = engine_for(url)
    out = {}
    with engine.connect() as conn:
        for name in ("users", "courses", "enrolments", "messages", "login_events", "invoices"):
            cols = [r[1] for r in conn.execute(text(f"PRAGMA table_info({name})"))]
            if "school_id" in cols:
                out[name] = conn.execute(text(f"SELECT count(*) FROM {name} WHERE school_id = :s"),  # noqa: S608
                                         {"s": school}).scalar()
    return out


@pytest.fixture
def world(db: Database, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Personas, Settings, str]]:
    settings = make_settings(db.url, tmp_path, data_dir=tmp_path)
    people = create_personas(db, settings)
    url = f"sqlite:///{tmp_path / 'product.db'}"
    engine = engine_for(url)
    demo.create_product(engine)
    demo.fill(engine, [people.tenant_a, people.tenant_b], people_per_tenant=5)
    monkeypatch.setenv("LAERBAR_DATABASE_URL", url)
    with db.transaction(Scope.system("test map")) as session:
        datamap.publish_map(session, demo.map_text(), source="test")
    for org in (people.tenant_a, people.tenant_b):
        with db.transaction(Scope.tenant(org)) as session:
            for i in range(3):
                stats.create_site(session, org_id=org, name=f"Nettsted {i}", domain=f"s{i}.example.com",
                                  actor_user_id=None)
    yield people, settings, url
    forget(url)


def test_end_of_contract_deletes_one_customer_only(db: Database,
                                                   world: tuple[Personas, Settings, str]) -> None:
    people, settings, url = world
    b_vern, b_product = _vern_counts(db, people.tenant_b), _product_counts(url, people.tenant_b)
    assert _product_counts(url, people.tenant_a)  # the product knows tenant A
    assert b_vern["stats_sites"] == 3
    with db.transaction(Scope.system("test")) as session:
        ob = service.request(session, org_id=people.tenant_a, notice_days=30, reason="Avtalen er sagt opp",
                             actor_user_id=people.dave.user_id)
        ob_id = ob.id
    with db.transaction(Scope.system("test")) as session, pytest.raises(Conflict, match="cannot approve"):
        service.approve(session, ob_id, actor_user_id=people.dave.user_id)
    with db.transaction(Scope.system("test")) as session:
        service.approve(session, ob_id, actor_user_id=people.erik.user_id)
    with pytest.raises(Conflict, match="export"):
        service.start_deletion(db, ob_id, actor_user_id=people.dave.user_id)
    path = service.export(db, settings, ob_id, actor_user_id=people.dave.user_id)
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        sites = json.loads(archive.read("vern/stats_sites.json"))
    assert manifest["rows"]["vern.stats_sites"] == 3 and {s["org_id"] for s in sites} == {people.tenant_a}
    assert manifest["rows"]["product.laerbar.main.users"] == 5
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(Conflict, match="notice period"):
        service.start_deletion(db, ob_id, actor_user_id=people.dave.user_id)
    with db.transaction(Scope.tenant(people.tenant_a)) as session:
        service.confirm_early(session, org_id=people.tenant_a, actor_user_id=people.alice.user_id)
    service.start_deletion(db, ob_id, actor_user_id=people.dave.user_id)
    # Bounded steps, interrupted and resumed.
    assert not service.run_deletion(db, settings, ob_id, batch=2, max_steps=3)
    assert service.run_deletion(db, settings, ob_id, batch=2)
    assert all(n == 0 for n in _vern_counts(db, people.tenant_a).values())
    assert all(n == 0 for n in _product_counts(url, people.tenant_a).values())
    assert _vern_counts(db, people.tenant_b) == b_vern
    assert _product_counts(url, people.tenant_b) == b_product
    assert not path.exists()
    with db.transaction(Scope.system("test")) as session:
        done = session.get(Offboarding, ob_id)
        assert done is not None and done.status == "deleted" and done.certificate
        certificate = done.certificate
    body = service.verify_certificate(certificate, settings)
    assert body["customer_org_id"] == people.tenant_a
    assert body["deleted_rows"]["vern.stats_sites"] == 3
    assert body["deleted_rows"]["product.laerbar.main.users"] == 5
    assert body["confirmed_early_by"] == people.alice.user_id
    forged = certificate.replace('"vern.stats_sites":3', '"vern.stats_sites":4')
    with pytest.raises(ValueError, match=r"signature|not signed"):
        service.verify_certificate(forged, settings)


def test_bad_input_and_notice_period(db: Database, world: tuple[Personas, Settings, str]) -> None:
    people, _settings, _url = world
    with db.transaction(Scope.system("test")) as session, pytest.raises(InvalidInput) as bad:
        service.request(session, org_id=people.tenant_a, notice_days=-1, reason="", actor_user_id=None)
    assert bad.value.errors[0].field == "notice_days"
    with db.transaction(Scope.system("test")) as session, pytest.raises(InvalidInput) as bad:
        service.request(session, org_id=people.vendor, notice_days=1, reason="", actor_user_id=None)
    assert bad.value.errors[0].field == "org_id"
    with db.transaction(Scope.system("test")) as session:
        ob = service.request(session, org_id=people.tenant_b, notice_days=0, reason="",
                             actor_user_id=people.dave.user_id)
        service.approve(session, ob.id, actor_user_id=people.erik.user_id)
        ob_id = ob.id
    assert service.due(db) == []  # not exported yet
    with db.transaction(Scope.system("test")) as session, pytest.raises(Conflict, match="already"):
        service.request(session, org_id=people.tenant_b, notice_days=0, reason="", actor_user_id=None)
    with db.transaction(Scope.system("test")) as session:
        service.cancel(session, ob_id, actor_user_id=people.dave.user_id)
