"""The data map an offboarding export is built with: Vern's own tenant-scoped tables described
from Vern's own map, and the product map widened to every column the customer's rows hold."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import Table

from vern.datamap.model import DatabaseDef, DataMap, System
from vern.datamap.model import Field as MapField
from vern.datamap.model import Table as MapTable
from vern.datamap.own import load_own_map

VERN_SYSTEM = "vern"  # the export's name for Vern's own database (system and database)


def vern_map(tables: list[Table]) -> DataMap:
    """Vern's own tenant-scoped tables as a data map (purpose, retention and category of every
    column from Vern's own map), so that the export is built like an access package."""
    own = load_own_map()
    described: dict[str, MapTable] = {}
    for table in tables:
        entry = own.get(table.name)
        fields = {c.name: MapField(c.name, entry.columns[c.name].category
                                   if entry and c.name in entry.columns else "system.config")
                  for c in table.columns}
        described[table.name] = MapTable(
            name=table.name, purpose=entry.purpose if entry else "", tenant="org_id",
            retention=entry.retention if entry else "", fields=fields,
            primary_key=tuple(c.name for c in table.primary_key.columns))
    database = DatabaseDef(system=VERN_SYSTEM, name=VERN_SYSTEM, url_env=None, url_file=None,
                           tables=described)
    return DataMap(systems={VERN_SYSTEM: System(name=VERN_SYSTEM, title="Vern", recipients=(),
                                                 databases={VERN_SYSTEM: database})})


def with_every_column(data_map: DataMap, rows: dict[str, dict[str, list[dict[str, Any]]]]) -> DataMap:
    """The product map with each exported table's columns the map does not describe added (as
    they are stored), so that the package holds the customer's whole rows."""
    systems: dict[str, System] = {}
    for system in data_map.systems.values():
        databases = {}
        for name, db in system.databases.items():
            tables = {}
            for tname, table in db.tables.items():
                seen = {c for r in rows.get(db.qualified, {}).get(tname, []) for c in r}
                extra = {c: MapField(c, "system.config") for c in sorted(seen - set(table.fields))}
                tables[tname] = replace(table, fields={**table.fields, **extra}) if extra else table
            databases[name] = replace(db, tables=tables)
        systems[system.name] = replace(system, databases=databases)
    return replace(data_map, systems=systems)
