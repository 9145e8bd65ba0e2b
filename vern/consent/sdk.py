"""Asking "may I use purpose P for this person?" from the vendor's product.

Two ways, same answer:

* ``LocalConsent(database, org_id)`` - in the same process as Vern's database (a worker, a
  monolith): one indexed query per question, no cache, so a withdrawal counts from the next call.
* ``HttpConsent(base_url, token)`` - over HTTP to ``GET /api/v1/consent/{subject}?purpose=P``
  with an API token of the organisation (permission ``consent.read``).

Both answer ``False`` for an unknown purpose (strictest default), and for a consent-based purpose
without a granted record. ``changes(since)`` on the HTTP client reads the change feed so that a
product can react to withdrawals and objections without asking per person.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from vern.consent.models import ConsentRecord, Purpose
from vern.consent.service import allowed
from vern.db import Database, Scope

PURPOSE_TTL_S = 5.0


class LocalConsent:
    """In-process checks for one organisation, through a tenant-scoped session."""

    def __init__(self, database: Database, org_id: str) -> None:
        self.database = database
        self.org_id = org_id
        self._bases: dict[str, str] = {}
        self._bases_until = 0.0
        self._latest = (
            select(ConsentRecord.choice)
            .where(ConsentRecord.subject == bindparam("subject"),
                   ConsentRecord.purpose_key == bindparam("purpose"))
            .order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id.desc())
            .limit(1)
        )

    @contextmanager
    def _session(self) -> Iterator[Session]:
        session = self.database.session(Scope.tenant(self.org_id))
        try:
            yield session
        finally:
            session.close()

    def _basis(self, session: Session, purpose: str) -> str | None:
        now = time.monotonic()
        if now > self._bases_until:
            rows = session.execute(
                select(Purpose.key, Purpose.legal_basis).where(Purpose.retired_at.is_(None))).all()
            self._bases = {r.key: r.legal_basis for r in rows}
            self._bases_until = now + PURPOSE_TTL_S
        return self._bases.get(purpose)

    def may_use(self, subject: str, purpose: str) -> bool:
        with self._session() as session:
            basis = self._basis(session, purpose)
            if basis is None:
                return False
            choice = session.execute(
                self._latest, {"subject": subject, "purpose": purpose}).scalar()
            return allowed(basis, choice)


class HttpConsent:
    """Checks over HTTP with a bearer token; keeps one connection open."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 2.0,
                 client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client or httpx.Client(
            base_url=self.base_url, timeout=timeout,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def decisions(self, subject: str) -> dict[str, Any]:
        res = self.client.get(f"/api/v1/consent/{urllib.parse.quote(subject, safe='')}")
        res.raise_for_status()
        purposes: dict[str, Any] = res.json()["purposes"]
        return purposes

    def may_use(self, subject: str, purpose: str) -> bool:
        res = self.client.get(f"/api/v1/consent/{urllib.parse.quote(subject, safe='')}",
                              params={"purpose": purpose})
        if res.status_code == 404:
            return False
        res.raise_for_status()
        return bool(res.json()["allowed"])

    def changes(self, since: datetime) -> list[dict[str, Any]]:
        res = self.client.get("/api/v1/consent/changes", params={"since": since.isoformat()})
        res.raise_for_status()
        records: list[dict[str, Any]] = json.loads(res.text)["records"]
        return records

    def close(self) -> None:
        self.client.close()
