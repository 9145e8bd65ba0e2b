"""Helpers for driving the console through its forms, as a browser without JavaScript would."""

from __future__ import annotations

import re
import time

from starlette.testclient import TestClient

from tests.conftest import Persona
from vern.accounts import security

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def totp(secret: str) -> list[str]:
    """The current code and the next one (a code is never accepted twice)."""
    return [security.totp_now(secret, time.time() + offset) for offset in (0, 30)]


def sign_in_with_forms(client: TestClient, persona: Persona) -> TestClient:
    """E-mail and password, then the code, through the HTML forms."""
    page = client.get("/login")
    assert page.status_code == 200
    res = client.post("/login", data={"email": persona.email, "password": persona.password,
                                       "csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert res.status_code == 303, res.text
    if res.headers["location"].startswith("/login/mfa"):
        assert persona.totp_secret is not None
        form = client.get(res.headers["location"])
        for code in totp(persona.totp_secret):
            res = client.post("/login/mfa", data={"code": code, "csrf_token": csrf_of(form.text)},
                              follow_redirects=False)
            if res.status_code == 303:
                break
        assert res.status_code == 303, res.text
    return client
