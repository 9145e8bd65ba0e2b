"""Intake, identity verification, approval, deadlines and failures of a request."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from tests.conftest import Personas
from tests.rights.conftest import Product, file_request, request_row
from vern.core.db import Database, Scope
from vern.core.errors import Conflict, InvalidInput
from vern.notify import service as notify
from vern.rights import service
from vern.rights.models import RightsRequest, Verification


def _portal_request(
    database: Database, org_id: str, kind: str = "erasure", email: str = "kari.nordmann.1@example.com"
) -> str:
    with database.transaction(Scope.tenant(org_id)) as session:
        req = service.create_request(
            session, org_id=org_id, kind=kind, identities={"email": email}, channel="portal", locale="en"
        )
        service.send_code(session, req.id)
        request_id = req.id
    notify.deliver_pending(database)
    return request_id


def _code(mailer: notify.MemoryMailer, email: str) -> str:
    mail = mailer.last_to(email)
    assert mail is not None
    found = re.search(r"\b(\d{6})\b", mail.body)
    assert found is not None
    return found.group(1)


def _try(database: Database, org_id: str, request_id: str, code: str) -> service.CodeResult:
    with database.transaction(Scope.tenant(org_id)) as session:
        return service.check_code(session, request_id, code)


def test_it_verifies_by_a_code_sent_by_email_then_waits_for_approval(
    sqlite_db: Database, world: Personas, mailer: notify.MemoryMailer
) -> None:
    request_id = _portal_request(sqlite_db, world.tenant_a)
    code = _code(mailer, "kari.nordmann.1@example.com")

    assert _try(sqlite_db, world.tenant_a, request_id, code) is service.CodeResult.OK

    req = request_row(sqlite_db, request_id)
    assert (req.status, req.verification_method) == ("awaiting_approval", "email_code")
    with sqlite_db.transaction(Scope.system("test")) as session:
        stored = session.query(Verification).filter_by(request_id=request_id).one()
        assert code not in stored.code_hash and stored.used_at is not None


def test_it_refuses_a_code_used_twice(
    sqlite_db: Database, world: Personas, mailer: notify.MemoryMailer
) -> None:
    request_id = _portal_request(sqlite_db, world.tenant_a, kind="access")
    code = _code(mailer, "kari.nordmann.1@example.com")
    assert _try(sqlite_db, world.tenant_a, request_id, code) is service.CodeResult.OK
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session, pytest.raises(Conflict):
        service.send_code(session, request_id)
    assert request_row(sqlite_db, request_id).status == "queued"


def test_it_allows_three_attempts_then_asks_for_a_new_code(
    sqlite_db: Database, world: Personas, mailer: notify.MemoryMailer
) -> None:
    request_id = _portal_request(sqlite_db, world.tenant_a)
    code = _code(mailer, "kari.nordmann.1@example.com")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    results = [_try(sqlite_db, world.tenant_a, request_id, wrong) for _ in range(3)]
    after = _try(sqlite_db, world.tenant_a, request_id, code)

    assert results == [service.CodeResult.WRONG, service.CodeResult.WRONG, service.CodeResult.EXHAUSTED]
    assert after is service.CodeResult.NONE
    assert request_row(sqlite_db, request_id).status == "unverified"


def test_it_refuses_a_code_after_ten_minutes(
    sqlite_db: Database, world: Personas, mailer: notify.MemoryMailer
) -> None:
    request_id = _portal_request(sqlite_db, world.tenant_a)
    code = _code(mailer, "kari.nordmann.1@example.com")
    with sqlite_db.transaction(Scope.system("test clock")) as session:
        session.execute(update(Verification).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))

    assert _try(sqlite_db, world.tenant_a, request_id, code) is service.CodeResult.EXPIRED


def test_it_never_runs_an_unverified_request(
    sqlite_db: Database, world: Personas, mailer: notify.MemoryMailer, sqlite_product: Product
) -> None:
    request_id = _portal_request(sqlite_db, world.tenant_a, kind="access")
    with pytest.raises(Conflict, match="unverified"):
        service.run(sqlite_db, request_id, data_map=sqlite_product.data_map, urls=sqlite_product.urls)


def test_it_needs_approval_for_erasure_unless_the_vendor_relaxes_it(
    sqlite_db: Database, world: Personas
) -> None:
    strict = file_request(sqlite_db, world.tenant_a, "erasure", {"email": "a@example.com"}, approve=False)
    from vern.accounts.roles import OrgKind, Role, permissions
    from vern.accounts.service import Actor

    dave = Actor(org_id=world.vendor, org_kind=OrgKind.VENDOR, role=Role.SECURITY_OFFICER,
                 perms=permissions(Role.SECURITY_OFFICER, org_kind=OrgKind.VENDOR, home=True),
                 user_id=world.dave.user_id)
    with sqlite_db.transaction(Scope.system("vendor sets a customer's policy")) as session:
        service.set_tenant_policy(session, actor=dave, tenant_id=world.tenant_b, approve_erasure=False)
    relaxed = file_request(sqlite_db, world.tenant_b, "erasure", {"email": "a@example.com"}, approve=False)

    assert request_row(sqlite_db, strict).status == "awaiting_approval"
    assert request_row(sqlite_db, relaxed).status == "queued"


def test_it_gives_one_month_and_an_extension_with_a_reason_told_to_the_person(
    sqlite_db: Database, world: Personas, mailer: notify.MemoryMailer
) -> None:
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"email": "ola@example.com"})
    req = request_row(sqlite_db, request_id)
    assert req.due_at == service.add_months(req.received_at, 1)
    with (
        sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session,
        pytest.raises(InvalidInput, match="reason"),
    ):
        service.extend(session, request_id, months=2, reason=" ", actor_user_id=None)
    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        service.extend(
            session,
            request_id,
            months=2,
            reason="Mange systemer må gjennomgås",
            actor_user_id=world.alice.user_id,
        )
    notify.deliver_pending(sqlite_db)

    req = request_row(sqlite_db, request_id)
    assert req.extended_due_at == service.add_months(req.due_at, 2)
    mail = mailer.last_to("ola@example.com")
    assert mail is not None and "Mange systemer" in mail.body
    with (
        sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session,
        pytest.raises(Conflict, match="already"),
    ):
        service.extend(session, request_id, months=1, reason="igjen", actor_user_id=None)


def test_it_refuses_an_extension_after_the_first_month(sqlite_db: Database, world: Personas) -> None:
    request_id = file_request(sqlite_db, world.tenant_a, "access", {"email": "ola@example.com"})
    with sqlite_db.transaction(Scope.system("test clock")) as session:
        session.execute(update(RightsRequest).values(due_at=datetime.now(UTC) - timedelta(days=1)))
    with (
        sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session,
        pytest.raises(Conflict, match="first month"),
    ):
        service.extend(session, request_id, months=1, reason="for sent", actor_user_id=None)


def test_it_adds_calendar_months_at_month_ends() -> None:
    assert service.add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert service.add_months(datetime(2026, 12, 15, tzinfo=UTC), 2) == datetime(2027, 2, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("identities", "field"),
    [
        ({"email": "not-an-address"}, "identities.email"),
        ({"national_id": "12345678901"}, "identities.national_id"),
        ({"shoe_size": "44"}, "identities.shoe_size"),
        ({}, "identities"),
    ],
)
def test_it_names_the_identity_that_is_wrong(
    sqlite_db: Database, world: Personas, identities: dict[str, str], field: str
) -> None:
    with (
        sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session,
        pytest.raises(InvalidInput) as caught,
    ):
        service.create_request(
            session,
            org_id=world.tenant_a,
            kind="access",
            identities=identities,
            channel="api",
            verified_by="customer_signin",
        )
    assert caught.value.errors[0].field == field


def test_it_fails_only_the_unreachable_database_and_retries_it(
    sqlite_db: Database, world: Personas, sqlite_product: Product, tmp_path: object
) -> None:
    from vern.datamap.loader import load_map
    from vern.rights import demo

    text = demo.map_text().replace(
        "      main:\n",
        "      archive:\n        url_env: LAERBAR_ARCHIVE_URL\n"
        "        tables:\n          users:\n            purpose: old accounts\n"
        "            retention: account-lifetime\n            tenant: school_id\n"
        "            identities: {email: email}\n            erase: delete_row\n"
        "            fields:\n              school_id: system.reference\n"
        "              email: user.contact.email\n      main:\n",
        1,
    )
    data_map = load_map(text)
    person = sqlite_product.person(world.tenant_a, 2)
    request_id = file_request(sqlite_db, world.tenant_a, "erasure", {"email": person["email"]})
    urls = sqlite_product.urls | {"laerbar.archive": "postgresql+psycopg://nobody@127.0.0.1:9/none"}

    status = service.run(sqlite_db, request_id, data_map=data_map, urls=urls)

    req = request_row(sqlite_db, request_id)
    assert status == "partial" and req.error == "not reached: laerbar.archive"
    assert req.summary is not None
    assert req.summary["databases"]["laerbar.main"]["status"] == "done"
    assert req.summary["databases"]["laerbar.archive"]["error"].startswith("OperationalError")

    with sqlite_db.transaction(Scope.tenant(world.tenant_a)) as session:
        service.retry(session, request_id, actor_user_id=world.alice.user_id)
    archive = sqlite_product.url.replace("product.db", "archive.db")
    from sqlalchemy import text as sql

    from vern.datamap.connect import engine_for

    with engine_for(archive).begin() as conn:
        conn.execute(sql("CREATE TABLE users (school_id VARCHAR(36), email VARCHAR(254))"))
        conn.execute(
            sql("INSERT INTO users VALUES (:t, :e), (:t, 'other@example.com')"),
            {"t": world.tenant_a, "e": person["email"]},
        )
    status = service.run(sqlite_db, request_id, data_map=data_map, urls=urls | {"laerbar.archive": archive})

    assert status == "done"
    with engine_for(archive).connect() as conn:
        assert conn.execute(sql("SELECT email FROM users")).scalars().all() == ["other@example.com"]


def test_it_reminds_admins_and_privacy_officers_a_week_before_the_deadline(
    sqlite_db: Database, world: Personas, mailer: notify.MemoryMailer
) -> None:
    soon = file_request(sqlite_db, world.tenant_a, "access", {"email": "ola@example.com"})
    file_request(sqlite_db, world.tenant_a, "access", {"email": "kari@example.com"})
    with sqlite_db.transaction(Scope.system("test clock")) as session:
        session.execute(
            update(RightsRequest)
            .where(RightsRequest.id == soon)
            .values(due_at=datetime.now(UTC) + timedelta(days=3))
        )

    sent = service.send_reminders(sqlite_db)
    again = service.send_reminders(sqlite_db)
    notify.deliver_pending(sqlite_db)

    assert (sent, again) == (2, 0)
    assert {m.to for m in mailer.sent} == {world.alice.email, world.erik.email}
    assert all(m.kind == "rights.reminder" for m in mailer.sent)
