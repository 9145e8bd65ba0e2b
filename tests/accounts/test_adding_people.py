"""Adding a person does not tell whether the address has an account in another organisation:
it used to answer 409 for any address known anywhere and 201 otherwise. Now an existing account
is linked (and told by e-mail) with the same answer and the same record in the organisation's
trail as a new one; only an address that is already a member here is refused."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.conftest import Personas, user_row
from vern.audit.models import AuditEvent
from vern.core.db import Database, Scope
from vern.notify.models import OutboxMessage


def _trail(db: Database, org_id: str, user_id: str) -> list[tuple[str, str | None]]:
    with db.transaction(Scope.system("test read")) as session:
        return [(r.action, r.details) for r in session.execute(
            select(AuditEvent.action, AuditEvent.details)
            .where(AuditEvent.org_id == org_id, AuditEvent.resource == f"user:{user_id}"))]


def test_an_address_with_an_account_elsewhere_gets_the_same_answer_as_a_new_one(
    login: Any, personas: Personas, db: Database
) -> None:
    alice = login(personas.alice)
    carol_before = user_row(db, personas.carol.user_id)
    fresh = alice.post("/api/v1/users", json={
        "email": "kari.nordmann@fjellheim.example.com", "name": "Kari Nordmann", "role": "member"})
    known = alice.post("/api/v1/users", json={
        "email": personas.carol.email, "name": "Cecilie", "role": "member",
        "password": "Fjordbris over Lofotveggen"})

    assert (fresh.status_code, known.status_code) == (201, 201), known.text
    assert set(fresh.json()) == set(known.json())
    assert known.json() == {"id": personas.carol.user_id, "email": personas.carol.email,
                            "name": "Cecilie", "role": "member"}
    assert personas.tenant_b not in known.text
    assert [a for a, _d in _trail(db, personas.tenant_a, fresh.json()["id"])] == \
        [a for a, _d in _trail(db, personas.tenant_a, known.json()["id"])] == ["membership.created"]

    # Linked, not copied: carol keeps her account, her password and her own school.
    carol = user_row(db, personas.carol.user_id)
    assert carol.password_hash == carol_before.password_hash
    members = {u["id"] for u in alice.get("/api/v1/users").json()["items"]}
    assert personas.carol.user_id in members
    me = login(personas.carol).get("/api/v1/me").json()
    assert {o["id"] for o in me["organisations"]} == {personas.tenant_a, personas.tenant_b}
    with db.transaction(Scope.system("test read")) as session:
        told = [str(m.recipient) for m in session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "accounts.membership_added"))]
    assert told == [personas.carol.email]


def test_only_an_address_already_in_this_organisation_is_refused(
    login: Any, personas: Personas
) -> None:
    alice = login(personas.alice)
    res = alice.post("/api/v1/users", json={
        "email": personas.bob.email, "name": "Bjørn", "role": "member"})
    assert res.status_code == 409
    assert res.json()["errors"][0]["field"] == "email"
