"""The data keys of an ingest batch: resolved subjects are reused, and never past a shredding,
the keyring's cache time or the month."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import make_settings
from vern.audit import chain, personal
from vern.audit.chain import log_for, resolve_keys
from vern.audit.ingest import IngestEvent, ingest
from vern.audit.models import AuditEvent
from vern.core.crypto import KeyRing, install_keyring, keyring
from vern.core.db import Database, Scope

ORG = "0190a1b2-0000-7000-8000-0000000000a1"


def _events(start: int, actor: str = "elev-1") -> list[IngestEvent]:
    return [IngestEvent(id=f"e{i}", time=datetime.now(UTC), action="lesson.viewed", actor=actor,
                        ip="192.0.2.8", user_agent="Firefox/130.0") for i in range(start, start + 3)]


def _key_ids(db: Database, ids: list[str]) -> set[str | None]:
    with db.engine.connect() as conn:
        return set(conn.scalars(select(AuditEvent.key_id)
                                .where(AuditEvent.client_event_id.in_(ids))))


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    slow = personal._resolve_keys

    def counted(*args: Any) -> Any:
        calls.append(1)
        return slow(*args)

    monkeypatch.setattr(personal, "_resolve_keys", counted)
    return calls


def test_a_batch_of_known_subjects_takes_them_as_resolved(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(db.url, tmp_path)
    calls = _counting(monkeypatch)
    ingest(db, settings, org_id=ORG, token_id=None, events=_events(0))
    ingest(db, settings, org_id=ORG, token_id=None, events=_events(10))
    assert len(calls) == 1
    assert _key_ids(db, ["e0"]) == _key_ids(db, ["e10"]) != {None}
    ingest(db, settings, org_id=ORG, token_id=None, events=_events(20, actor="elev-2"))
    assert len(calls) == 2  # a new subject: looked up


def test_records_after_a_shredding_are_sealed_under_the_months_key(
    db: Database, tmp_path: Path,
) -> None:
    settings = make_settings(db.url, tmp_path)
    ingest(db, settings, org_id=ORG, token_id=None, events=_events(0))
    (before,) = _key_ids(db, ["e0", "e1", "e2"])
    assert before is not None
    with db.transaction(Scope.system("erase the actor")) as session:
        keyring().shred(session, before)
    ingest(db, settings, org_id=ORG, token_id=None, events=_events(10))
    (after,) = _key_ids(db, ["e10", "e11", "e12"])
    assert after not in (None, before)
    log = log_for(db, settings)
    keys = resolve_keys(log.sealer, db, [(("a", ORG, "elev-1"), chain.now_us())])
    assert keys.by_subject[("a", ORG, "elev-1")][0] == after


def test_resolved_subjects_are_looked_up_again_when_their_keys_expire(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(db.url, tmp_path)
    now = [1000.0]
    install_keyring(KeyRing(db.engine, settings.master_key_bytes, cache_seconds=60,
                            clock=lambda: now[0]))
    calls = _counting(monkeypatch)
    ingest(db, settings, org_id=ORG, token_id=None, events=_events(0))
    now[0] += 30
    ingest(db, settings, org_id=ORG, token_id=None, events=_events(10))
    assert len(calls) == 1
    now[0] += 31  # the key's cache time is over: the key is unwrapped again
    ingest(db, settings, org_id=ORG, token_id=None, events=_events(20))
    assert len(calls) == 2
    assert _key_ids(db, ["e0"]) == _key_ids(db, ["e20"])
