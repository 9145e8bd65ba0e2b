"""Requests carried out across a real product database (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import io
import json
import zipfile

from sqlalchemy import func, select

from tests.conftest import Personas
from tests.rights.conftest import Product, file_request, request_row
from vern.core.db import Database, Scope
from vern.datamap.connect import engine_for
from vern.notify import service as notify
from vern.rights import demo, service
from vern.rights.models import LedgerEntry, Package, Task


def _rows(product: Product, table, **where):  # type: ignore[no-untyped-def]
    stmt = select(table)
    for col, value in where.items():
        stmt = stmt.where(table.c[col] == value)
    with engine_for(product.url).connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def _snapshot(product: Product) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    return {t.name: _rows(product, t) for t in demo.metadata.sorted_tables}


def test_it_answers_an_access_request_with_json_csv_and_a_summary(
    sqlite_db: Database, world: Personas, product: Product
) -> None:
    person = product.person(world.tenant_a, 2)
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"email": person["email"]})

    status = service.run(sqlite_db, request_id, data_map=product.data_map, urls=product.urls)

    assert status == "done"
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        body, _name = service.download_for_staff(session, request_id, actor_user_id=None)
    archive = zipfile.ZipFile(io.BytesIO(body))
    names = set(archive.namelist())
    assert {
        "data.json",
        "summary.html",
        "csv/laerbar.main.users.csv",
        "csv/laerbar.main.invoices.csv",
        "csv/laerbar.main.login_events.csv",
    } <= names
    data = json.loads(archive.read("data.json"))
    tables = data["systems"]["laerbar"]["databases"]["main"]
    assert [r["email"] for r in tables["users"]["rows"]] == [person["email"]]
    assert len(tables["enrolments"]["rows"]) == 2
    assert {r["sender_id"] for r in tables["messages"]["rows"]} == {person["id"]}
    assert tables["invoices"]["retention"].startswith("Kept five years")
    html = archive.read("summary.html").decode()
    assert "Formål" in html and "Nordlys Drift AS" in html and person["name"] in html


def test_it_never_includes_another_tenants_rows(
    sqlite_db: Database, world: Personas, sqlite_product: Product
) -> None:
    person = sqlite_product.person(world.tenant_b, 0)
    # Asked in tenant A for a person who exists only in tenant B: nothing is found.
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"email": person["email"]})

    service.run(sqlite_db, request_id, data_map=sqlite_product.data_map, urls=sqlite_product.urls)

    req = request_row(sqlite_db, request_id)
    assert req.status == "nobody_found"  # not "done": staff confirm before the person is told
    assert req.summary is not None and req.summary["rows_found"] == 0
    assert "match no one" in req.summary["note"]


def test_it_erases_one_person_and_keeps_invoices_anonymised(
    sqlite_db: Database, world: Personas, product: Product
) -> None:
    person = product.person(world.tenant_a, 3)
    before = _snapshot(product)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": person["email"]})

    status = service.run(sqlite_db, request_id, data_map=product.data_map, urls=product.urls)

    assert status == "done"
    after = _snapshot(product)
    user = next(u for u in after["users"] if u["id"] == person["id"])
    assert user["email"].startswith("slettet-") and user["email"].endswith("@example.invalid")
    assert user["name"].startswith("Slettet bruker ")
    assert user["phone"] is None and user["national_id"] is None and user["last_login_ip"] is None
    assert not [e for e in after["enrolments"] if e["user_id"] == person["id"]]
    assert not [e for e in after["login_events"] if e["user_id"] == person["id"]]
    assert {m["body"] for m in after["messages"] if m["sender_id"] == person["id"]} == {"[slettet]"}
    invoice = next(
        i
        for i in after["invoices"]
        if i["id"] == next(b["id"] for b in before["invoices"] if b["user_id"] == person["id"])
    )
    assert invoice["amount"] == 1490 and invoice["user_id"] is None
    assert invoice["payer_name"].startswith("Anonymisert ") and len(invoice["payer_email"]) == 64
    assert invoice["bank_account"] is None
    # nobody else changed
    for table, rows in before.items():
        others_before = [r for r in rows if person["id"] not in _people_in(table, r)]
        others_after = [
            r
            for r in after[table]
            if person["id"] not in _people_in(table, r) and not _was_persons(table, r, before, person["id"])
        ]
        assert sorted(map(repr, others_before)) == sorted(map(repr, others_after)), table


def _people_in(table: str, row: dict) -> set:  # type: ignore[type-arg]
    cols = {
        "users": "id",
        "enrolments": "user_id",
        "messages": "sender_id",
        "invoices": "user_id",
        "login_events": "user_id",
        "deviation_reports": "reported_by",
        "courses": "teacher_id",
    }
    return {row.get(cols[table])}


def _was_persons(table: str, row: dict, before: dict, person_id: int) -> bool:  # type: ignore[type-arg]
    if "id" not in row:
        return False
    return any(b.get("id") == row["id"] and person_id in _people_in(table, b) for b in before[table])


def test_it_writes_a_ledger_of_keyed_hashes_only(
    sqlite_db: Database, world: Personas, sqlite_product: Product
) -> None:
    person = sqlite_product.person(world.tenant_a, 1)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": person["email"]})
    service.run(sqlite_db, request_id, data_map=sqlite_product.data_map, urls=sqlite_product.urls)

    with sqlite_db.transaction(Scope.system("test")) as session:
        entries = list(session.scalars(select(LedgerEntry).where(LedgerEntry.request_id == request_id)))
        plans = session.scalar(select(func.count()).select_from(Package))
        tasks = list(session.scalars(select(Task).where(Task.request_id == request_id)))
    assert [(e.database, e.table_name) for e in entries] == [("laerbar.main", "*")]  # one per database
    (entry,) = entries
    assert set(entry.match_hashes["tables"]) >= {"users", "invoices", "messages", "login_events"}
    assert entry.done_at is not None and entry.rows >= 5
    text = json.dumps(entry.match_hashes) + entry.subject_ref + entry.tenant_value
    assert person["email"] not in text and person["name"] not in text
    assert all(
        h[:2] in ("m:", "w:") and len(h) == 66 for t in entry.match_hashes["tables"].values() for h in t
    )
    assert plans == 0  # no package for an erasure
    assert tasks and all(t.plan is None and t.status == "done" for t in tasks)  # the plan is forgotten


def test_it_rectifies_the_mapped_fields(sqlite_db: Database, world: Personas, product: Product) -> None:
    person = product.person(world.tenant_a, 4)
    request_id = file_request(
        sqlite_db,
        world.tenant_a,
        "rectification",
        {"email": person["email"]},
        details={"corrections": {"user.name": "Kari Korrigert Nordmann", "users.postcode": "0150"}},
    )

    assert service.run(sqlite_db, request_id, data_map=product.data_map, urls=product.urls) == "done"

    user = _rows(product, demo.users, id=person["id"])[0]
    assert user["name"] == "Kari Korrigert Nordmann" and user["postcode"] == "0150"
    invoices = _rows(product, demo.invoices, user_id=person["id"])
    assert {i["payer_name"] for i in invoices} == {"Kari Korrigert Nordmann"}
    other = product.person(world.tenant_a, 5)
    assert _rows(product, demo.users, id=other["id"])[0]["name"] == other["name"]


def test_it_marks_a_restriction_the_product_can_check_until_lifted(
    sqlite_db: Database, world: Personas
) -> None:
    identities = {"email": "ingrid.hansen@example.com"}
    request_id = file_request(sqlite_db, world.tenant_a, "restriction", identities)

    assert service.run(sqlite_db, request_id) == "done"

    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        flags = service.active_flags(session, {"email": "Ingrid.Hansen@example.com"})
        assert [f.kind for f in flags] == ["restriction"]
        service.lift_flag(session, flags[0].id, actor_user_id=world.alice.user_id)
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        assert service.active_flags(session, identities) == []
    with sqlite_db.transaction(Scope.tenant(world.tenant_b)) as session:
        assert service.active_flags(session, identities) == []


def test_the_download_link_expires_and_every_download_is_audited(
    sqlite_db: Database, world: Personas, sqlite_product: Product
) -> None:
    from datetime import UTC, datetime, timedelta

    import pytest
    from sqlalchemy import update

    from vern.audit.models import AuditEvent
    from vern.core.errors import NotFound

    person = sqlite_product.person(world.tenant_a, 1)
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"email": person["email"]})
    service.run(sqlite_db, request_id, data_map=sqlite_product.data_map, urls=sqlite_product.urls)
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        link = service.renew_link(session, request_id, actor_user_id=world.alice.user_id)
    token = link.rsplit("/", 1)[1]
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        body, _ = service.download(session, token)
    assert body.startswith(b"PK")
    with sqlite_db.transaction(Scope.system("test clock")) as session:
        session.execute(update(Package).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))

    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session, pytest.raises(NotFound):
        service.download(session, token)

    with sqlite_db.transaction(Scope.system("test")) as session:
        outcomes = list(
            session.scalars(select(AuditEvent.outcome).where(AuditEvent.action == "rights.package.download"))
        )
    assert outcomes == ["success", "failure"]


def test_it_finds_the_person_by_national_id_or_phone_however_it_is_written(
    sqlite_db: Database, world: Personas, product: Product
) -> None:
    person = product.person(world.tenant_a, 2)
    digits = person["phone"].replace("+47", "").replace(" ", "")  # stored as "+47 9xxxxxxx"
    spaced_nid = f"{person['national_id'][:6]} {person['national_id'][6:]}"
    for identities in ({"national_id": spaced_nid}, {"phone": f"{digits[:3]} {digits[3:5]} {digits[5:]}"}):
        request_id = file_request(sqlite_db, world.tenant_a, "access", identities)
        assert service.run(sqlite_db, request_id, data_map=product.data_map, urls=product.urls) == "done"
        with sqlite_db.transaction(Scope.system("test")) as session:
            pkg = session.scalars(select(Package).where(Package.request_id == request_id)).one()
            assert pkg.body is not None and pkg.body.value is not None
            body = __import__("base64").b64decode(pkg.body.value)
        doc = json.loads(zipfile.ZipFile(io.BytesIO(body)).read("data.json"))
        users = doc["systems"]["laerbar"]["databases"]["main"]["users"]["rows"]
        assert [u["email"] for u in users] == [person["email"]], identities
        assert request_row(sqlite_db, request_id).summary["rows_found"] > 1  # type: ignore[index]


def test_the_summary_is_in_english_when_the_person_asked_in_english(
    sqlite_db: Database, world: Personas, sqlite_product: Product
) -> None:
    person = sqlite_product.person(world.tenant_a, 1)
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        req = service.create_request(
            session,
            org_id=world.tenant_a,
            kind="portability",
            identities={"email": person["email"]},
            channel="staff",
            locale="en",
            verified_by="attested",
            details={"note": "Passport checked"},
        )
        request_id = req.id

    assert (
        service.run(sqlite_db, request_id, data_map=sqlite_product.data_map, urls=sqlite_product.urls)
        == "done"
    )

    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        body, _name = service.download_for_staff(session, request_id, actor_user_id=None)
    html = zipfile.ZipFile(io.BytesIO(body)).read("summary.html").decode()
    assert '<html lang="en">' in html and "Your personal data" in html
    assert "Purpose" in html and "Recipients" in html and "Kept" in html and "Datatilsynet" in html
    assert "Kept five years" in html and person["name"] in html and "Formål" not in html


def test_the_access_package_csv_writes_formula_like_values_as_text_and_json_keeps_them(
    sqlite_db: Database, world: Personas, sqlite_product: Product
) -> None:
    import csv

    from sqlalchemy import update

    person = sqlite_product.person(world.tenant_a, 1)
    name, phone = '=HYPERLINK("http://x.invalid","Ola")', "+47 912 34 567"
    users = demo.metadata.tables["users"]
    with engine_for(sqlite_product.url).begin() as conn:
        conn.execute(update(users).where(users.c.id == person["id"]).values(name=name, phone=phone))
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"email": person["email"]})

    assert service.run(sqlite_db, request_id, data_map=sqlite_product.data_map,
                       urls=sqlite_product.urls) == "done"

    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        body, _name = service.download_for_staff(session, request_id, actor_user_id=None)
    archive = zipfile.ZipFile(io.BytesIO(body))
    [row] = list(csv.DictReader(io.StringIO(archive.read("csv/laerbar.main.users.csv").decode())))
    assert row["name"] == "'" + name and row["phone"] == "'" + phone
    assert row["email"] == person["email"]
    for path in archive.namelist():  # no cell of any table starts like a formula
        if path.endswith(".csv"):
            cells = [c for r in csv.reader(io.StringIO(archive.read(path).decode())) for c in r]
            assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], path
    data = json.loads(archive.read("data.json"))
    [user] = data["systems"]["laerbar"]["databases"]["main"]["users"]["rows"]
    assert user["name"] == name and user["phone"] == phone  # the exact values


def test_the_result_mail_names_the_kind_and_the_link_time_in_the_persons_language(
    sqlite_db: Database, world: Personas, sqlite_product: Product, mailer: notify.MemoryMailer
) -> None:
    for locale, person_no, kind, days in (("nb", 1, "(innsyn)", "dager"), ("en", 2, "(access)", "days")):
        person = sqlite_product.person(world.tenant_a, person_no)
        with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
            req = service.create_request(
                session, org_id=world.tenant_a, kind="access", identities={"email": person["email"]},
                channel="staff", locale=locale, verified_by="attested", details={"note": "ID-kort"},
            )
            request_id = req.id
        assert service.run(sqlite_db, request_id, data_map=sqlite_product.data_map,
                           urls=sqlite_product.urls) == "done"
        notify.deliver_pending(sqlite_db)
        mail = mailer.last_to(person["email"])
        assert mail is not None
        assert kind in mail.body and f" {days})" in mail.body, mail.body
        assert ("behandlet" in mail.body) == (locale == "nb")
