from __future__ import annotations

from starlette.testclient import TestClient

from tests.conftest import Personas, sign_in


def test_health_answers_and_sets_security_headers(client: TestClient) -> None:
    res = client.get("/healthz")
    assert res.status_code == 200
    assert res.json() == {"status": "ok"}
    csp = res.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert res.headers["x-content-type-options"] == "nosniff"
    assert res.headers["referrer-policy"] == "no-referrer"
    assert client.get("/readyz").json() == {"status": "ready"}


def test_a_persona_signs_in_with_mfa_and_sees_itself(client: TestClient, personas: Personas) -> None:
    sign_in(client, personas.alice)
    me = client.get("/api/v1/me")
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["user"]["email"] == personas.alice.email
    assert body["organisation"]["name"] == "Fjellheim barnehage"
    assert body["role"] == "tenant_admin"
