"""Connecting to a vendor's product database named in the map (SQLite, PostgreSQL, MariaDB/MySQL).

The URL is read from the environment variable or secret file the map names, never from the map
itself. Engines are cached per URL so that reflection and connection pools are reused.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from vern.core.extras import MissingExtra, require_driver
from vern.datamap.model import DatabaseDef, HttpConnector

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


class NoConnection(RuntimeError):
    """The map names a database whose URL is not available; the message says where to put it."""


def resolve_url(db: DatabaseDef, overrides: dict[str, str] | None = None) -> str:
    if overrides:
        for key in (db.qualified, db.name):
            if key in overrides:
                return overrides[key]
    if db.url_env and os.environ.get(db.url_env):
        return os.environ[db.url_env]
    if db.url_file:
        try:
            text = Path(db.url_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise NoConnection(
                f"database {db.qualified}: cannot read url_file {db.url_file}: {exc.strerror}"
            ) from exc
        if text:
            return text
    where = " or ".join(x for x in (f"${db.url_env}" if db.url_env else "", db.url_file or "") if x)
    raise NoConnection(f"database {db.qualified}: no connection URL (set {where})")


@functools.lru_cache(maxsize=256)
def normalise_url(url: str) -> str:
    """Pick the drivers Vern ships with (psycopg 3, PyMySQL) when a URL names none."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise NoConnection(f"not a database URL: {exc}") from exc
    name = parsed.drivername
    if name in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif name in ("mysql", "mariadb"):
        parsed = parsed.set(drivername=f"{name}+pymysql")
    return parsed.render_as_string(hide_password=False)


def engine_for(url: str) -> Engine:
    url = normalise_url(url)
    try:
        require_driver(url, "the database's URL")
    except MissingExtra as exc:
        raise NoConnection(str(exc)) from None
    with _lock:
        found = _engines.get(url)
        if found is not None:
            return found
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_setup)
        else:
            connect_args = {"connect_timeout": 5}
            engine = create_engine(url, pool_pre_ping=True, pool_size=5, connect_args=connect_args)
        _engines[url] = engine
        return engine


def forget(url: str) -> None:
    """Drop a cached engine (tests drop their databases afterwards)."""
    with _lock:
        engine = _engines.pop(normalise_url(url), None)
    if engine is not None:
        engine.dispose()


def _sqlite_setup(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# -- HTTP connectors: where their address and secret are read from ---------------------------------


class ConnectorError(Exception):
    """A call that did not succeed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def _setting(env: str | None, file: str | None, what: str) -> str:
    if env:
        value = os.environ.get(env)
        if value:
            return value.strip()
        raise ConnectorError(f"{what}: the environment variable {env} is not set", retryable=False)
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConnectorError(f"{what}: cannot read {file}: {exc.strerror}", retryable=False) from exc
    raise ConnectorError(f"{what}: not configured", retryable=False)


def connector_settings(connector: HttpConnector) -> tuple[str, bytes]:
    """(base URL, secret), read from where the map says; ConnectorError names what is missing."""
    base = _setting(connector.url_env, connector.url_file, "url").rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise ConnectorError("url: must start with https:// or http://", retryable=False)
    secret = _setting(connector.secret_env, connector.secret_file, "secret").encode()
    return base, secret
