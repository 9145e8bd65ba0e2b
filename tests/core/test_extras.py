"""Drivers are extras: a URL that needs one that is missing gets an error naming the extra (and
the setting), never the URL's password; installed drivers and SQLite need nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vern.core.config import ConfigError
from vern.core.extras import MissingExtra, require_driver


@pytest.mark.parametrize(("url", "module", "extra"), [
    ("postgresql+psycopg://vern:hemmelig@127.0.0.1/vern", "psycopg", "postgresql"),
    ("postgresql://vern:hemmelig@127.0.0.1/vern", "psycopg", "postgresql"),
    ("mysql+pymysql://root:hemmelig@127.0.0.1/produkt", "pymysql", "mysql"),
    ("mariadb://root:hemmelig@127.0.0.1/produkt", "pymysql", "mysql"),
    ("redis://:hemmelig@127.0.0.1:6379/0", "redis", "redis"),
    ("async+rediss://127.0.0.1:6379/0", "redis", "redis"),
])
def test_a_missing_driver_is_named_by_its_extra(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, extra: str,
) -> None:
    require_driver(url, "VERN_DATABASE_URL")  # installed here (the dev extra): no error
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    with pytest.raises(MissingExtra) as caught:
        require_driver(url, "VERN_DATABASE_URL")
    message = str(caught.value)
    assert f"pip install 'vern[{extra}]'" in message and "VERN_DATABASE_URL" in message
    assert "hemmelig" not in message and "127.0.0.1" not in message
    assert isinstance(caught.value, ConfigError) and caught.value.extra == extra


@pytest.mark.parametrize("url", ["sqlite:///var/vern.db", "memory://", "async+memory://",
                                 "postgresql+psycopg2://x@127.0.0.1/y"])
def test_urls_without_an_extra_driver_pass(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    for module in ("psycopg", "pymysql", "redis"):
        monkeypatch.setitem(sys.modules, module, None)
    require_driver(url, "VERN_DATABASE_URL")


def test_the_database_the_limits_and_the_data_map_say_which_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from vern.core.db import Database
    from vern.core.ratelimit import Limiter
    from vern.datamap.connect import NoConnection, engine_for

    for module in ("psycopg", "pymysql", "redis"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtra, match=r"VERN_DATABASE_URL .*vern\[postgresql\]"):
        Database("postgresql+psycopg://postgres@127.0.0.1:5432/vern")
    with pytest.raises(MissingExtra, match=r"VERN_RATE_LIMIT_STORAGE_URL .*vern\[redis\]"):
        Limiter("redis://127.0.0.1:6379/0")
    with pytest.raises(NoConnection, match=r"vern\[mysql\]"):
        engine_for("mysql://root@127.0.0.1:3306/produkt")
    Database(f"sqlite:///{tmp_path / 'ok.db'}").dispose()  # SQLite needs no extra
