"""Vern's own data map: every table and column of Vern's database, with a data category and a
retention rule. Each domain describes its tables in ``vern/<domain>/datamap.yaml``; this module
loads them all and compares them with the ORM metadata (``vern datamap own --check`` and a test).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vern.core.db import Base, import_models
from vern.datamap.categories import CATEGORIES, RETENTION_RULES

PACKAGE = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class OwnColumn:
    table: str
    name: str
    category: str
    note: str = ""


@dataclass(frozen=True)
class OwnTable:
    name: str
    domain: str
    purpose: str
    retention: str
    columns: dict[str, OwnColumn]
    retention_after: str = ""  # the column a time-limited rule counts from (vern.retention)


def map_files() -> list[Path]:
    return [PACKAGE / "datamap.yaml", *sorted(PACKAGE.glob("*/datamap.yaml"))]


def load_own_map() -> dict[str, OwnTable]:
    """Every table of the map (a new dict; the tables themselves are shared and frozen). The files
    are read once per process and again only when one of them changes (its size or time)."""
    files = tuple((str(path), stat.st_mtime_ns, stat.st_size)
                  for path in map_files() for stat in [path.stat()])
    return dict(_parsed(files))


@functools.lru_cache(maxsize=4)
def _parsed(files: tuple[tuple[str, int, int], ...]) -> dict[str, OwnTable]:
    tables: dict[str, OwnTable] = {}
    for name, _mtime, _size in files:
        path = Path(name)
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        domain = "core" if path.parent == PACKAGE else path.parent.name
        for tname, tdef in (raw.get("tables") or {}).items():
            where = f"{path.relative_to(PACKAGE.parent)}: tables.{tname}"
            if tname in tables:
                raise ValueError(f"{where}: described twice")
            cols = {
                cname: OwnColumn(tname, cname, str((cdef or {}).get("category", "")),
                                 str((cdef or {}).get("note", "")))
                for cname, cdef in (tdef.get("columns") or {}).items()
            }
            tables[tname] = OwnTable(
                name=tname,
                domain=domain,
                purpose=str(tdef.get("purpose", "")),
                retention=str(tdef.get("retention", "")),
                columns=cols,
                retention_after=str(tdef.get("retention_after") or ""),
            )
    return tables


def problems(metadata_tables: dict[str, list[str]]) -> list[str]:
    """Every way the map and the schema disagree, as readable lines (empty when they agree)."""
    own = load_own_map()
    found: list[str] = []
    for tname, columns in sorted(metadata_tables.items()):
        table = own.get(tname)
        if table is None:
            found.append(f"table {tname}: not in any datamap.yaml")
            continue
        if not table.purpose:
            found.append(f"table {tname}: no purpose")
        if table.retention not in RETENTION_RULES:
            found.append(f"table {tname}: retention {table.retention!r} is not a known rule")
        for cname in columns:
            col = table.columns.get(cname)
            if col is None:
                found.append(f"column {tname}.{cname}: untagged")
            elif col.category not in CATEGORIES:
                found.append(f"column {tname}.{cname}: unknown category {col.category!r}")
        for cname in table.columns:
            if cname not in columns:
                found.append(f"column {tname}.{cname}: in the map but not in the schema")
    for tname in sorted(set(own) - set(metadata_tables)):
        found.append(f"table {tname}: in the map but not in the schema")
    return found


def schema_tables() -> dict[str, list[str]]:

    import_models()
    return {name: [c.name for c in t.columns] for name, t in Base.metadata.tables.items()}
