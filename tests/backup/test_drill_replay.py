"""The restore drill's product-database step: a product database restored from a backup of its own
gets every erasure since that backup's time again (`vern rights replay`), and the replay's result
is kept in the drill's evidence; a replay that cannot be done fails the drill and says why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, text

from tests.backup.conftest import sqlite_backup_settings
from tests.conftest import Personas, create_personas, make_settings
from tests.rights.conftest import file_request
from vern.audit.models import AuditEvent
from vern.backup import service
from vern.backup.models import RestoreDrill
from vern.core.db import Database, Scope, utcnow
from vern.datamap.connect import engine_for, forget
from vern.datamap.service import publish_map
from vern.rights import service as rights

EMAIL = "kari.nordmann@example.com"
DB = "butikk.kunder"
MAP = """
version: 1
systems:
  butikk:
    title: Butikken
    databases:
      kunder:
        url_env: BUTIKK_DRILL_TEST_URL
        tables:
          customers:
            purpose: Customer accounts
            retention: account-lifetime
            tenant: shop_id
            identities: {email: email}
            fields:
              id: system.id
              shop_id: system.reference
              email: {category: user.contact.email, erase: {pseudonym: "slettet-{id}@example.invalid"}}
              name: {category: user.name, erase: {fixed: "Slettet"}}
"""


def _rows(url: str) -> list[tuple[object, ...]]:
    with engine_for(url).connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT id, email, name FROM customers ORDER BY id"))]


def test_the_drill_replays_erasures_into_a_restored_product_database(
        sqlite_db: Database, tmp_path: Path) -> None:
    settings = make_settings(sqlite_db.url, tmp_path)
    bs = sqlite_backup_settings(tmp_path)
    people = create_personas(sqlite_db, settings)
    product = tmp_path / "butikk.db"
    url = f"sqlite:///{product}"
    with engine_for(url).begin() as conn:
        conn.execute(text("CREATE TABLE customers (id INTEGER PRIMARY KEY, shop_id VARCHAR(40), "
                          "email VARCHAR(120), name VARCHAR(80))"))
        conn.execute(text("INSERT INTO customers VALUES (1, :s, :e, 'Kari Nordmann'), "
                          "(2, :s, 'ola@example.com', 'Ola Nordmann')"),
                     {"s": people.tenant_a, "e": EMAIL})
    with sqlite_db.transaction(Scope.system("test")) as session:
        publish_map(session, MAP, source="butikk.yaml")
    # the product's own backup, taken before the erasure
    product_backup_at = utcnow() - timedelta(seconds=1)
    forget(url)
    shutil.copy(product, tmp_path / "butikk-backup.db")
    before = _rows(url)
    service.run_backup(sqlite_db, settings, bs)

    request_id = file_request(sqlite_db, people.tenant_a, "erasure", {"email": EMAIL})
    assert rights.run(sqlite_db, request_id, urls={DB: url}) == "done"
    erased = _rows(url)
    assert erased[0][1] != EMAIL and erased[0][2] == "Slettet" and erased[1] == before[1]

    # the product database is restored from its backup: Kari is back
    forget(url)
    shutil.copy(tmp_path / "butikk-backup.db", product)
    assert _rows(url) == before

    # the product system named (each of its databases is replayed)
    result = service.verify(sqlite_db, settings, bs, replay=["butikk"],
                            replay_since=product_backup_at, replay_urls={DB: url})
    assert result.ok, result.problem
    (replayed,) = result.replays
    assert replayed["ok"] and replayed["database"] == "butikk.kunder" and replayed["rows"] == 1
    assert replayed["entries"] == 1 and replayed["since"] == product_backup_at.isoformat()
    assert _rows(url) == erased  # erased again; Ola untouched
    with sqlite_db.transaction(Scope.system("test")) as session:
        drill = session.scalars(select(RestoreDrill).order_by(RestoreDrill.at.desc())).first()
        assert drill is not None and drill.ok
        assert drill.replays is not None and drill.replays[0]["rows"] == 1
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "backup.verified")
                                .order_by(AuditEvent.seq.desc())).first()
        assert event is not None
        details = json.loads(event.details) if isinstance(event.details, str) else event.details
        assert details["new"]["replays"][0]["rows"] == 1

    # a second replay (the database named) finds the rows erased already; nothing is written twice
    again = service.verify(sqlite_db, settings, bs, replay=["kunder"],
                           replay_since=product_backup_at, replay_urls={DB: url})
    assert again.ok and again.replays[0]["ok"] and _rows(url) == erased

    # a database the map does not know: the drill fails, says why, and is recorded so
    failed = service.verify(sqlite_db, settings, bs, replay=["lager"])
    assert not failed.ok and "replay of lager" in (failed.problem or "")
    assert failed.replays[0]["ok"] is False
    with sqlite_db.transaction(Scope.system("test")) as session:
        last = session.scalars(select(RestoreDrill).order_by(RestoreDrill.at.desc())).first()
        assert last is not None and not last.ok and last.replays[0]["database"] == "lager"
    forget(url)


def test_the_cli_names_a_bad_replay_option(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERN_")}
    env |= {"VERN_ENV": "test", "VERN_DATABASE_URL": f"sqlite:///{tmp_path / 'v.db'}",
            "VERN_AUDIT_LOG_DIR": str(tmp_path / "audit"), "VERN_DATA_DIR": str(tmp_path / "d")}

    def vern(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vern.app.cli", "backup", "verify", *args],  # noqa: S603
                              env=env, capture_output=True, text=True, timeout=120, check=False)

    bad = vern("--replay", "kunder", "--replay-since", "i går")
    assert bad.returncode == 2 and "--replay-since" in bad.stderr
    alone = vern("--replay-since", "2026-12-01T00:00:00")
    assert alone.returncode == 2 and "--replay" in alone.stderr
    url = vern("--replay", "kunder", "--url", "kunder")
    assert url.returncode == 2 and "--url" in url.stderr


def test_the_replay_is_shown_by_the_status_api_and_the_console(  # type: ignore[no-untyped-def]
        db: Database, personas: Personas, login) -> None:
    replays = [{"database": "butikk.kunder", "since": "2026-12-05T01:00:00+00:00", "entries": 3,
                "rows": 2, "tables": {"customers": 2}, "ok": True}]
    with db.transaction(Scope.system("test")) as session:
        session.add(RestoreDrill(engine="sqlite", label="20261205-0100", ok=True, audit_ok=True,
                                 seconds=4, counts={}, replays=replays))
    dave = login(personas.dave)
    body = dave.get("/api/v1/backup/status").json()
    assert body["drills"][0]["replays"] == replays
    page = dave.get("/console/backup")
    assert page.status_code == 200 and "butikk.kunder" in page.text
    assert ("rows erased again" in page.text) or ("rader slettet på nytt" in page.text)
