"""Vern's own data map must describe every table and column of Vern's own database."""

from __future__ import annotations

from vern.datamap.categories import CATEGORIES, RETENTION_RULES
from vern.datamap.own import load_own_map, problems, schema_tables


def test_every_table_and_column_is_in_the_data_map() -> None:
    found = problems(schema_tables())
    assert found == [], "\n".join(found)


def test_an_untagged_column_is_reported() -> None:
    tables = schema_tables()
    tables["users"] = [*tables["users"], "shoe_size"]
    assert "column users.shoe_size: untagged" in problems(tables)


def test_an_unknown_table_is_reported() -> None:
    tables = {**schema_tables(), "mystery": ["id"]}
    assert "table mystery: not in any datamap.yaml" in problems(tables)


def test_every_personal_column_names_a_known_category_and_every_table_a_retention_rule() -> None:
    own = load_own_map()
    assert own, "the map is empty"
    for table in own.values():
        assert table.retention in RETENTION_RULES
        for column in table.columns.values():
            assert column.category in CATEGORIES
