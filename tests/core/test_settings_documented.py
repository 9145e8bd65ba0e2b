"""Every setting is read in ``vern.core.config`` and listed in README's settings table, and the
table names no setting that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings

import vern
from vern.core.config import Settings

README = Path(vern.__file__).resolve().parent.parent / "README.md"


def _variables(model: type[BaseSettings]) -> set[str]:
    prefix = str(model.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in model.model_fields.items():
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseSettings):
            names |= _variables(nested)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def _documented() -> set[str]:
    text = README.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `VERN_")]
    return {name for row in rows for name in re.findall(r"`(VERN_[A-Z0-9_]+)`", row.split(" | ")[0])}


def test_the_settings_are_read_from_every_domain() -> None:
    names = _variables(Settings)
    assert {"VERN_DATABASE_URL", "VERN_AUDIT_CHECKPOINT_EVERY", "VERN_RIGHTS_DUE_DAYS",
            "VERN_STATS_RAW_DAYS", "VERN_DB_POOL_SIZE"} <= names


def test_every_setting_is_in_the_readme_and_nothing_else() -> None:
    names, documented = _variables(Settings), _documented()
    assert sorted(names - documented) == [], "settings missing from README's table"
    assert sorted(documented - names) == [], "README lists settings that Vern does not read"


def test_no_environment_variable_is_read_outside_the_settings() -> None:
    """``os.environ``/``getenv`` appear in vern/ only where the settings are read, where the
    CLI sets up its own environment, and where a data map names the variable that holds a
    product database's address or a connector's secret (the map's own, not Vern's settings)."""
    allowed = {"core/config.py", "app/cli.py", "app/demo.py", "app/migrate_check.py",
               "datamap/connect.py", "rights/connectors.py"}
    package = Path(vern.__file__).resolve().parent
    found = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                   if re.search(r"os\.environ|getenv", p.read_text(encoding="utf-8")))
    assert [f for f in found if f not in allowed] == []
