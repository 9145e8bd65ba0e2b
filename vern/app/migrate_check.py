"""CI check: ``alembic upgrade head`` then ``alembic check`` on a fresh SQLite file and on a fresh
PostgreSQL database (when VERN_REQUIRE_SERVICES=1 a missing PostgreSQL fails the check)."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import uuid
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

from vern.app.migrate import alembic_config

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def check(url: str) -> None:
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    command.check(cfg)
    print(f"migrations ok on {url.split('://', 1)[0]}")


def _pg_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        check(f"sqlite:///{Path(tmp) / 'check.db'}")
    if not _pg_up():
        if os.environ.get("VERN_REQUIRE_SERVICES") == "1":
            print("PostgreSQL is not running on 127.0.0.1:5432", file=sys.stderr)
            return 1
        print("skipped PostgreSQL: not running on 127.0.0.1:5432")
        return 0
    name = f"vern_migrations_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        check(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
