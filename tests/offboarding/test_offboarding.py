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
from sqlalchemy.orm import Session

from tests.conftest import Personas, add_persona, create_personas, make_settings
from vern.accounts import service as accounts
from vern.accounts.models import Membership, User
from vern.accounts.roles import Role
from vern.core.config import Settings
from vern.core.db import Database, Scope
from vern.core.errors import Conflict, InvalidInput
from vern.datamap import service as datamap
from vern.datamap.connect import engine_for, forget
from vern.notify import service as notify
from vern.notify.sink import MailSink
from vern.notify.transport import SmtpMailer, SmtpTarget
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


def _memberships(session: Session, user_id: str) -> list[tuple[str, str]]:
    m = Membership.__table__
    return [(r.org_id, r.role) for r in session.execute(
        select(m.c.org_id, m.c.role).where(m.c.user_id == user_id)
        .execution_options(cross_tenant="test"))]


def _check_package(db: Database, path: Path, people: Personas) -> None:
    """The export is an access package (data.json, one CSV per table, a readable summary) with a
    manifest; it holds tenant A's rows of Vern and of the product, and nothing of tenant B."""
    with db.transaction(Scope.tenant(people.tenant_b)) as session:
        b_sites = [s.id for s in stats.list_sites(session)]
    assert len(b_sites) == 3
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        data = json.loads(archive.read("data.json"))
        summary = archive.read("summary.html").decode()
        sites_csv = archive.read("csv/vern.vern.stats_sites.csv").decode()
        everything = "\n".join(archive.read(n).decode() for n in names)
    assert {"data.json", "summary.html", "manifest.json"} <= names
    assert data["request"]["kind"] == "export" and data["request"]["controller"] == "Fjellheim barnehage"
    vern_tables = data["systems"]["vern"]["databases"]["vern"]
    sites = vern_tables["stats_sites"]["rows"]
    assert manifest["rows"]["vern.stats_sites"] == 3 and len(sites) == 3
    assert {s["org_id"] for s in sites} == {people.tenant_a}
    assert {s["name"] for s in sites} == {"Nettsted 0", "Nettsted 1", "Nettsted 2"}
    assert sites_csv.count("\n") == 4 and "s1.example.com" in sites_csv
    members = vern_tables["memberships"]["rows"]
    assert {people.alice.user_id, people.bob.user_id} <= {m["user_id"] for m in members}
    assert people.carol.user_id not in {m["user_id"] for m in members}
    product_users = data["systems"]["laerbar"]["databases"]["main"]["users"]["rows"]
    assert manifest["rows"]["product.laerbar.main.users"] == 5 and len(product_users) == 5
    assert {u["school_id"] for u in product_users} == {people.tenant_a}
    assert "csv/laerbar.main.users.csv" in names
    assert "Fjellheim barnehage" in summary and "stats_sites" in summary
    # Nothing of tenant B: not its id, not its sites, not its administrator.
    assert people.tenant_b not in everything
    assert not any(site in everything for site in b_sites)
    assert people.carol.user_id not in everything


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
    with db.transaction(Scope.system("test: Bjørn also works for tenant B")) as session:
        accounts.add_membership(session, user_id=people.bob.user_id, org_id=people.tenant_b,
                                role="member", actor=None)
    yield people, settings, url
    forget(url)


def test_end_of_contract_deletes_one_customer_only(db: Database,
                                                   world: tuple[Personas, Settings, str]) -> None:
    people, settings, url = world
    b_vern, b_product = _vern_counts(db, people.tenant_b), _product_counts(url, people.tenant_b)
    assert _product_counts(url, people.tenant_a)  # the product knows tenant A
    assert b_vern["stats_sites"] == 3
    # Two more people of tenant A alone: with batch=2 the accounts take two resumable steps.
    staff = [add_persona(db, settings, people, f"tilsett{i}", f"Tilsett {i}",
                         f"tilsett{i}@fjellheim.example.com", people.tenant_a, Role.MEMBER)
             for i in (1, 2)]
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
    _check_package(db, path, people)
    assert path.stat().st_mode & 0o777 == 0o600
    # Tenant A's administrator is told once that the export can be downloaded, tenant B's never,
    # even when the vendor makes the export again.
    assert service.export(db, settings, ob_id, actor_user_id=people.dave.user_id) == path
    with MailSink() as sink:
        notify.deliver_pending(db, via=SmtpMailer(SmtpTarget.parse(sink.url), "vern@solstrand.example.com"))
        ready = [m for m in sink.messages() if "/console/end-of-contract" in m.body]
    assert [m.to for m in ready] == [[people.alice.email]], [(m.to, m.subject) for m in ready]
    assert "Fjellheim" in ready[0].subject
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
    # Alice belonged to tenant A alone: erased. Bjørn also works for tenant B: he keeps his
    # account and only loses tenant A's membership.
    assert body["accounts"] == {"erased": 3, "kept_membership_removed": 1}
    with db.transaction(Scope.system("test")) as session:
        for person in staff:
            erased = session.get(User, person.user_id)
            assert erased is not None and erased.email_index == "erased:" + erased.id
        alice = session.get(User, people.alice.user_id)
        bob = session.get(User, people.bob.user_id)
        assert alice is not None and alice.email_index == "erased:" + alice.id
        assert alice.password_hash is None and alice.disabled_at is not None
        assert bob is not None and bob.disabled_at is None and bob.password_hash
        assert not bob.email_index.startswith("erased:")
        assert [org for org, _role in _memberships(session, bob.id)] == [people.tenant_b]
        assert _memberships(session, alice.id) == []
        assert [org for org, _role in _memberships(session, people.carol.user_id)] == [people.tenant_b]
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
