"""Drivers that are optional extras of the package: a URL that needs one that is not installed
gets an error naming the extra to install, not an import error from deep inside SQLAlchemy.

* ``vern[postgresql]``: psycopg 3, for ``postgresql://`` and ``postgresql+psycopg://`` URLs;
* ``vern[mysql]``: PyMySQL, for ``mysql://``, ``mariadb://`` and their ``+pymysql`` forms
  (databases of the data map);
* ``vern[redis]``: redis-py, for ``redis://``, ``rediss://`` and ``async+redis://`` storage of
  the rate limits.

SQLite and the in-memory limit storage need nothing beyond the core install.
"""

from __future__ import annotations

import importlib.util
import sys

from vern.core.config import ConfigError

# URL scheme (before any "+driver") -> (driver module, extra, what it is)
_SCHEMES: dict[str, tuple[str, str, str]] = {
    "postgresql": ("psycopg", "postgresql", "the PostgreSQL driver (psycopg)"),
    "postgres": ("psycopg", "postgresql", "the PostgreSQL driver (psycopg)"),
    "mysql": ("pymysql", "mysql", "the MySQL/MariaDB driver (PyMySQL)"),
    "mariadb": ("pymysql", "mysql", "the MySQL/MariaDB driver (PyMySQL)"),
    "redis": ("redis", "redis", "the Redis client (redis-py)"),
    "rediss": ("redis", "redis", "the Redis client (redis-py)"),
}
# Drivers named after "+" that are the ones the extras install.
_DRIVERS = {"psycopg": "psycopg", "pymysql": "pymysql", "redis": "redis", "rediss": "redis"}


class MissingExtra(ConfigError):
    """A URL needs a driver that is installed only with one of the package's extras."""

    def __init__(self, extra: str, what: str, setting: str) -> None:
        self.extra = extra
        super().__init__(
            f"{setting} needs {what}, which is not installed: "
            f"install Vern with the {extra!r} extra (pip install 'vern[{extra}]')")


def installed(module: str) -> bool:
    if module in sys.modules:  # imported already, or marked as not importable (None)
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def require_driver(url: str, setting: str) -> None:
    """Raise ``MissingExtra`` (naming ``setting``, never the URL, which may hold a password)
    when ``url`` needs a driver of an extra that is not installed."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    scheme = scheme.removeprefix("async+")
    base, _, driver = scheme.partition("+")
    found = _SCHEMES.get(base)
    if found is None:
        return
    module, extra, what = found
    if driver and _DRIVERS.get(driver) != module:
        return  # another driver, chosen on purpose: SQLAlchemy or limits report it if missing
    if not installed(module):
        raise MissingExtra(extra, what, setting)
