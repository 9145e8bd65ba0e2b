"""Real PostgreSQL, MariaDB and Redis for tests: each test database is created and dropped here.

Without the service the test is skipped with the reason; with ``VERN_REQUIRE_SERVICES=1`` (CI) it
fails instead, so a missing service can never pass silently.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/"
REDIS_URL = "redis://127.0.0.1:6379"


def services_required() -> bool:
    return os.environ.get("VERN_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> NoReturn:
    if services_required():
        pytest.fail(f"{reason} (VERN_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def postgres_database(prefix: str = "vern_test") -> Iterator[str]:
    """A fresh PostgreSQL database; yields its SQLAlchemy URL and drops it afterwards."""
    if not _port_open(5432):
        unavailable("PostgreSQL is not running on 127.0.0.1:5432")
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        unavailable(f"PostgreSQL refused to create a test database: {exc}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def mariadb_database(prefix: str = "vern_test") -> Iterator[str]:
    """A fresh MariaDB database; yields its SQLAlchemy URL and drops it afterwards."""
    if not _port_open(3306):
        unavailable("MariaDB is not running on 127.0.0.1:3306")
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(MARIADB_ADMIN)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        unavailable(f"MariaDB refused to create a test database: {exc}")
    try:
        yield f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def redis_url(db: int = 15) -> str:
    """The local Redis (test database number 15); the caller flushes what it wrote."""
    if not _port_open(6379):
        unavailable("Redis is not running on 127.0.0.1:6379")
    return f"{REDIS_URL}/{db}"


def postgres_url() -> str:
    """Checks that PostgreSQL is reachable (skip/fail otherwise) and returns the admin URL."""
    if not _port_open(5432):
        unavailable("PostgreSQL is not running on 127.0.0.1:5432")
    return PG_ADMIN


def mariadb_url() -> str:
    if not _port_open(3306):
        unavailable("MariaDB is not running on 127.0.0.1:3306")
    return MARIADB_ADMIN


def chromium_path() -> str:
    path = "/usr/bin/chromium"
    if not os.path.exists(path):
        unavailable("Chromium is not installed at /usr/bin/chromium")
    try:
        import playwright  # noqa: F401
    except ImportError:
        unavailable("the playwright package is not installed")
    return path


CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]
