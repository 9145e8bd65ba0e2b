"""Tests never write under the repository's var/ (the demo's database, files and keys live there):
the session runs with its own VERN_DATA_DIR, and a guard fails any test that writes there."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import conftest
from vern.core.config import ROOT, Settings


def test_the_session_has_its_own_data_directory() -> None:
    settings = Settings(env="test")
    assert conftest.REPO_VAR not in settings.data_dir.resolve().parents
    assert settings.data_dir.resolve() != conftest.REPO_VAR
    assert str(ROOT / "var") not in settings.database_url
    assert conftest.REPO_VAR not in settings.audit_log_dir.resolve().parents


def _write_file(target: Path) -> None:
    target.with_suffix(".txt").write_text("nei", encoding="utf-8")


def _make_folder(target: Path) -> None:
    target.mkdir(parents=True)


def _open_sqlite(target: Path) -> None:
    sqlite3.connect(target.with_suffix(".db")).close()


@pytest.mark.parametrize("write", [_write_file, _make_folder, _open_sqlite])
def test_a_write_under_var_is_stopped_and_fails_the_test(write: Callable[[Path], None]) -> None:
    target = conftest.REPO_VAR / "should-not-exist-by-test"
    with pytest.raises(conftest.WroteUnderVar):
        write(target)
    assert conftest._var_writes, "the guard records the write, so the test fails at teardown"
    conftest._var_writes.clear()  # this test wanted exactly that
    assert not target.exists() and not target.with_suffix(".txt").exists()
    assert not target.with_suffix(".db").exists()
