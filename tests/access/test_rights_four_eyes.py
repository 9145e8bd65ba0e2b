"""Four-eyes on data subject requests: whoever filed a request or attested the person's identity
cannot approve it - in the API, the console and for API tokens (a token acts as the person who
created it). The CLI's ``--by`` is tested in tests/rights/test_cli.py."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.conftest import Persona, Personas, add_persona, make_api_token
from vern.accounts.roles import Role
from vern.core.config import Settings
from vern.core.db import Database


def _anne(db: Database, settings: Settings, personas: Personas) -> Persona:
    return add_persona(db, settings, personas, "anne", "Anne Aas",
                       "anne.aas@fjellheim.example.com", personas.tenant_a, Role.TENANT_ADMIN)


def _file_attested(client: TestClient) -> str:
    res = client.post("/api/v1/rights/requests", json={
        "kind": "erasure", "identities": {"email": "kari.lie@example.com"},
        "verification": "attested", "details": {"note": "Førerkort vist i resepsjonen"}})
    assert res.status_code == 201, res.text
    assert res.json()["status"] == "awaiting_approval"
    return str(res.json()["id"])


def test_the_person_who_filed_and_attested_cannot_approve_in_the_api(
    login: Any, db: Database, settings: Settings, personas: Personas
) -> None:
    alice = login(personas.alice)
    request_id = _file_attested(alice)
    own = alice.post(f"/api/v1/rights/requests/{request_id}/approve")
    assert own.status_code == 403
    assert own.json()["code"] == "self-approval"
    assert own.json()["errors"][0]["field"] == "approver"
    assert "second person" in own.json()["detail"]
    anne = login(_anne(db, settings, personas))
    approved = anne.post(f"/api/v1/rights/requests/{request_id}/approve")
    assert approved.status_code == 200, approved.text


def test_the_console_refuses_the_filers_approval_with_the_reason(
    login: Any, db: Database, settings: Settings, personas: Personas
) -> None:
    alice = login(personas.alice)
    request_id = _file_attested(alice)
    own = alice.post(f"/console/rights/requests/{request_id}/approve", data={},
                     follow_redirects=False)
    # The page speaks the reader's language (bokmål by default) and says why.
    assert own.status_code == 403 and "en person til må gjøre det" in own.text
    anne = login(_anne(db, settings, personas))
    done = anne.post(f"/console/rights/requests/{request_id}/approve", data={},
                     follow_redirects=False)
    assert done.status_code == 303


def test_a_token_cannot_approve_what_its_creator_filed_nor_the_creator_what_it_filed(
    login: Any, client: TestClient, db: Database, settings: Settings, personas: Personas
) -> None:
    alice = login(personas.alice)
    client.headers["Authorization"] = "Bearer " + make_api_token(
        db, personas.tenant_a, Role.TENANT_ADMIN, created_by=personas.alice.user_id)
    by_alice = _file_attested(alice)
    refused = client.post(f"/api/v1/rights/requests/{by_alice}/approve")
    assert refused.status_code == 403 and refused.json()["code"] == "self-approval"
    by_token = _file_attested(client)
    assert alice.post(f"/api/v1/rights/requests/{by_token}/approve").status_code == 403
    anne = login(_anne(db, settings, personas))
    assert anne.post(f"/api/v1/rights/requests/{by_token}/approve").status_code == 200


def test_the_console_offers_the_approve_button_only_to_a_second_person(
    login: Any, db: Database, settings: Settings, personas: Personas
) -> None:
    alice = login(personas.alice)
    request_id = _file_attested(alice)
    approve_form = f'action="/console/rights/requests/{request_id}/approve"'
    own_page = alice.get(f"/console/rights/requests/{request_id}")
    assert own_page.status_code == 200
    assert approve_form not in own_page.text
    assert f'action="/console/rights/requests/{request_id}/reject"' in own_page.text
    anne = login(_anne(db, settings, personas))
    second = anne.get(f"/console/rights/requests/{request_id}")
    assert second.status_code == 200 and approve_form in second.text
