"""An erasure request erases the person in Vern itself: after it is done (and the request's own
details have passed their keep time) no table, no column and no file Vern wrote holds their
name, e-mail address or IP address in readable form, and the audit trail still verifies."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select, text

from tests.conftest import Personas, create_personas, make_settings
from tests.rights.conftest import file_request, request_row
from vern.audit import ingest as audit_ingest
from vern.audit.chain import open_personal
from vern.audit.models import AuditEvent
from vern.audit.service import seal_now
from vern.audit.verify import verify
from vern.consent import newsletter
from vern.consent import service as consent
from vern.consent.models import ConsentRecord, NewsletterSubscriber
from vern.core.context import RequestContext, reset_request, set_request
from vern.core.crypto import PII, Encrypted
from vern.core.db import Base, Database, Scope, utcnow
from vern.datamap.connect import engine_for, forget
from vern.datamap.loader import load_map
from vern.notify.models import OutboxMessage
from vern.retention import service as retention
from vern.rights import demo
from vern.rights import service as rights


def _newsletter(db: Database, people: Personas, settings: Any, person: dict[str, Any]) -> None:
    """The person signs up for the newsletter and confirms it from their own address."""
    token = set_request(RequestContext("r1", person["ip"], "Mozilla/5.0 (Kari)", "POST", "/c"))
    try:
        with db.transaction(Scope.tenant(people.tenant_a)) as session:
            consent.create_purpose(session, org_id=people.tenant_a, data=consent.PurposeInput(
                key="newsletter", kind="marketing", legal_basis="a", name_nb="Nyhetsbrev",
                name_en="Newsletter"), actor_user_id=None)
        with db.transaction(Scope.tenant(people.tenant_a)) as session:
            newsletter.subscribe(session, org_id=people.tenant_a, org_slug="fjellheim",
                                 org_name="Fjellheim", secret=settings.secret_bytes,
                                 base_url="https://vern.example.com", email=person["email"],
                                 locale="nb")
            sub = session.scalar(select(NewsletterSubscriber))
            assert sub is not None
            sub.confirm_hash = consent.token_hash("kjent-token")
        with db.transaction(Scope.tenant(people.tenant_a)) as session:
            newsletter.confirm(session, token="kjent-token")
        with db.transaction(Scope.tenant(people.tenant_a)) as session:
            assert newsletter.send_issue(
                session, org_id=people.tenant_a, org_slug="fjellheim", org_name="Fjellheim",
                base_url="https://vern.example.com", secret=settings.secret_bytes,
                subject="Høstens nytt", body="Hei!", locale="nb", actor_user_id=None) == 1
    finally:
        reset_request(token)


def _product_events(db: Database, people: Personas, settings: Any, person: dict[str, Any]) -> None:
    """The product reports the person's sign-in to the audit trail, with their address."""
    event = audit_ingest.IngestEvent(id="login-1", time=utcnow(), action="user.signin",
                                     actor=str(person["id"]), actor_name=person["name"],
                                     ip=person["ip"], user_agent="Mozilla/5.0 (Kari)")
    assert audit_ingest.ingest(db, settings, org_id=people.tenant_a, token_id=None,
                               events=[event])["accepted"] == 1


def _needles(person: dict[str, Any]) -> list[bytes]:
    out = []
    for value in (person["name"], person["email"], person["ip"]):
        for variant in {value, value.lower(), value.upper()}:
            out.append(variant.encode())
    return out


def _readable_in_database(db: Database, needles: list[bytes]) -> list[str]:
    """Every column of every table, raw (as stored) and, for sealed columns, opened."""
    found = []
    with db.engine.connect() as conn:
        tables = inspect(conn).get_table_names()
        assert len(tables) >= 30
        for table in tables:
            for row in conn.execute(select(text("*")).select_from(text(f'"{table}"'))).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    raw = bytes(value) if isinstance(value, (bytes, memoryview)) else str(value).encode()
                    found += [f"{table}.{column}" for n in needles if n.lower() in raw.lower()]
    with db.transaction(Scope.system("test: open every sealed column")) as session:
        for mapper in Base.registry.mappers:
            cls = mapper.class_
            sealed = [c for c in mapper.columns if isinstance(c.type, Encrypted)]
            for column in sealed:
                for value in session.scalars(select(column).where(column.is_not(None))):
                    if isinstance(value, PII) and value.value is not None:
                        found += [f"{cls.__tablename__}.{column.key} (opened)" for n in needles
                                  if n.decode().lower() in value.value.lower()]
    return found


def _readable_in_files(directory: Path, needles: list[bytes], skip: set[Path]) -> list[str]:
    found = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path in skip:
            continue
        data = path.read_bytes().lower()
        found += [f"{path.name}: {n.decode()}" for n in needles if n.lower() in data]
    return found


def test_an_erased_person_is_found_nowhere_in_vern(db: Database, tmp_path: Path) -> None:
    settings = make_settings(db.url, tmp_path)
    people = create_personas(db, settings)
    product_dir = tmp_path / "product"
    product_dir.mkdir()
    url = f"sqlite:///{product_dir / 'product.db'}"
    engine = engine_for(url)
    demo.create_product(engine)
    persons = demo.fill(engine, [people.tenant_a, people.tenant_b], people_per_tenant=4)
    person = persons[1]
    assert person["school_id"] == people.tenant_a
    _newsletter(db, people, settings, person)
    _product_events(db, people, settings, person)
    # an earlier access request of the same person, answered
    access = file_request(db, people.tenant_a, "access", {"email": person["email"]})
    data_map = load_map(demo.map_text())
    assert rights.run(db, access, data_map=data_map, urls={"laerbar.main": url}) == "done"

    request_id = file_request(db, people.tenant_a, "erasure",
                              {"email": person["email"], "user_id": str(person["id"])})
    assert rights.run(db, request_id, data_map=data_map, urls={"laerbar.main": url}) == "done"
    forget(url)
    req = request_row(db, request_id)
    assert req.summary is not None
    assert req.summary["vern"] == {"subscriptions_ended": 1, "records_anonymised": 1,
                                   "audit_keys_destroyed": 1, "earlier_requests_shredded": 1}
    # no more mail: the subscription ended and the next issue goes to nobody
    with db.transaction(Scope.tenant(people.tenant_a)) as session:
        sub = session.scalar(select(NewsletterSubscriber))
        assert sub is not None and sub.status == "unsubscribed" and sub.email.value is None
        assert newsletter.send_issue(
            session, org_id=people.tenant_a, org_slug="fjellheim", org_name="Fjellheim",
            base_url="https://vern.example.com", secret=settings.secret_bytes,
            subject="Vinterens nytt", body="Hei!", locale="nb", actor_user_id=None) == 0
        # the proof of consent is kept, without who
        (proof,) = session.scalars(select(ConsentRecord))
        assert proof.choice == "granted" and proof.method == "double-opt-in"
        assert proof.subject.startswith("erased:") and proof.ip_truncated is None
        assert proof.user_agent is None
    # the product's sign-in record: still there, its personal fields unreadable
    seal_now(db, settings)
    with db.transaction(Scope.system("test")) as session:
        blob = session.scalar(select(AuditEvent.personal).where(AuditEvent.action == "user.signin"))
        assert open_personal(blob) == {"erased": "1"}
        handled = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "retention.person_erased"))
        assert handled == 1
    # the erasure request keeps its details until the person has been told and the keep time
    # passed; the retention run then destroys them, keeping the fact that it was handled
    with db.transaction(Scope.system("test")) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "rights.done")) == 2
    run = retention.run(db, settings, now=utcnow() + timedelta(days=31))
    assert run.counts["rights_requests.details"]["done"] == 1
    assert request_row(db, request_id).status == "done"
    seal_now(db, settings)

    needles = _needles(person)
    assert _readable_in_database(db, needles) == []
    files = [p for p in tmp_path.rglob("*") if p.is_file() and product_dir not in p.parents]
    assert files, "Vern wrote no file"
    assert _readable_in_files(tmp_path, needles, skip=set(product_dir.rglob("*"))) == []
    assert verify(db, settings).ok


def test_the_search_finds_what_is_there(db: Database, tmp_path: Path) -> None:
    """The search itself works: before the erasure the person is found (sealed columns opened)."""
    settings = make_settings(db.url, tmp_path)
    people = create_personas(db, settings)
    person = demo.person(3, random.Random(7)) | {"id": 3}
    _newsletter(db, people, settings, person)
    found = _readable_in_database(db, _needles(person))
    assert any("consent_newsletter.email (opened)" in f for f in found), found
