"""Asking "may I use purpose P for this person?" in the same process as Vern's database.

* ``LocalConsent(database, org_id)`` - for a worker or a monolith next to Vern: one indexed query
  per question and no cache of decisions, so a withdrawal counts from the next call (the
  purposes' legal bases are kept for 5 seconds).
* Over HTTP, from the vendor's product: ``vern.sdk.ConsentClient`` (standard library only).

Both answer ``False`` for an unknown purpose (strictest default), and for a consent-based purpose
without a granted record.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from vern.consent.models import ConsentRecord, Purpose
from vern.consent.service import allowed
from vern.core.db import Database, Scope

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
