"""A data map that is wrong is refused with the place (and line) of each problem."""

from __future__ import annotations

import re

import pytest

from vern.datamap.loader import MapError, load_map
from vern.datamap.model import Strategy
from vern.rights import demo


def _problems(text: str) -> list[str]:
    with pytest.raises(MapError) as caught:
        load_map(text, source="product.yaml")
    return [str(p) for p in caught.value.problems]


def test_it_loads_the_demo_map() -> None:
    data_map = load_map(demo.map_text())
    main = data_map.database("laerbar.main")
    assert main.tables["enrolments"].delete_row
    assert main.tables["invoices"].fields["amount"].erase is not None
    assert main.tables["invoices"].fields["amount"].erase.strategy is Strategy.KEEP
    assert main.dependency_order()[0] == "users"


def test_it_refuses_invalid_yaml_with_the_line() -> None:
    found = _problems("systems:\n  a: [unclosed\n")
    assert found[0].startswith("line ") and "not valid YAML" in found[0]


def test_it_names_an_unknown_category_and_strategy() -> None:
    text = demo.map_text().replace(
        'category: user.name, erase: {pseudonym: "Slettet bruker {id}"}',
        "category: user.nam, erase: shred",
        1,
    )
    found = _problems(text)
    assert any("tables.users.fields.name.category: unknown category 'user.nam'" in p for p in found)
    assert any("tables.users.fields.name.erase: unknown strategy 'shred'" in p for p in found)
    assert all(p.startswith("line ") for p in found)


def test_it_names_a_reference_to_a_missing_column() -> None:
    text = demo.map_text().replace("{field: sender_id, to: users.id}", "{field: sender_id, to: users.uid}")
    found = _problems(text)
    assert any("messages.references[0].to: column users.uid is not in the map" in p for p in found)


def test_it_refuses_a_personal_field_without_an_erase_strategy() -> None:
    text = demo.map_text().replace(
        'phone: {category: user.contact.phone, erase: "null"}', "phone: {category: user.contact.phone}"
    )
    found = _problems(text)
    assert any("users.fields.phone: personal field needs an erase strategy" in p for p in found)


def test_it_refuses_keep_without_a_legal_reason_and_urls_in_the_map() -> None:
    text = demo.map_text().replace(
        'erase: {keep: "bokføringsloven § 13: regnskapsmateriale lagres i fem år"}', "erase: keep", 1
    )
    text = text.replace("url_env: LAERBAR_DATABASE_URL", "url: sqlite:///x.db")
    found = _problems(text)
    assert any("invoices.fields.amount.erase: keep needs a stated legal reason" in p for p in found)
    assert any("databases.main.url: connection URLs never go in the map" in p for p in found)


def test_it_refuses_references_in_a_cycle() -> None:
    text = demo.map_text().replace(
        "              - {field: sender_id, to: users.id}",
        "              - {field: sender_id, to: users.id}\n"
        "              - {field: id, to: messages.course_id}",
    )
    found = _problems(text)
    assert any("references form a cycle" in p for p in found)


_TENANCY = """
version: 1
systems:
  s:
    databases:
      main:
        url_env: X
        tenancy: %s
        out_of_scope: %s
        tables:
          users:
            purpose: p
            retention: account-lifetime
            %s
            identities: {user_id: id}
            fields: {id: user.identifier, org: system.reference}
"""


def test_tenancy_models_are_declared_per_database() -> None:
    from vern.datamap.model import TenancyModel

    column = load_map(_TENANCY % ('{model: column, holds: "schools.id"}', "{}", "tenant: org")).database(
        "main"
    )
    assert column.tenancy.model is TenancyModel.COLUMN and column.tables["users"].tenant == "org"
    assert column.tenancy.holds == "schools.id"
    schema = load_map(_TENANCY % ('{model: schema, schema: "t_{key}"}', "{}", "")).database("main")
    assert schema.tenancy.schema_for("42") == "t_42" and schema.tables["users"].tenant == ""
    single = load_map(_TENANCY % ("{model: single, customer: k1}", "{}", "")).database("main")
    assert single.tenancy.owns("k1") and not single.tenancy.owns("k2")
    per_db = load_map(_TENANCY % ('{model: database, url_env: "SHOP_{key}"}', "{}", "")).database("main")
    assert per_db.tenancy.url_env_for("k1") == "SHOP_k1"
    legacy = load_map(_TENANCY.replace("        tenancy: %s\n", "") % ("{}", "tenant: org"))
    assert legacy.database("main").tenancy.model is TenancyModel.COLUMN


def test_tenancy_and_out_of_scope_are_checked() -> None:
    cases = {
        ("{model: single}", "{}", ""): "tenancy.customer: the single model needs",
        ("{model: schema, schema: tenant}", "{}", ""): "must contain {key}",
        ("{model: sharded}", "{}", "tenant: org"): "unknown tenancy model",
        ("{model: single, customer: k1}", "{}", "tenant: org"): "rows are not told apart by a column",
        ("{model: column}", "{}", ""): "users.tenant: is required",
        ('{model: column, holds: "TODO: which"}', "{}", "tenant: org"): "tenancy.holds: still says TODO",
        ("{model: single, customer: k1}", '{logs: ""}', ""): "out_of_scope.logs: needs the reason",
        ("{model: single, customer: k1}", "{users: x}", ""): "either mapped or out of scope",
        ("{model: single, customer: k1}", '{"users.id": x}', ""): "either mapped or out of scope",
    }
    for args, message in cases.items():
        with pytest.raises(MapError, match=re.escape(message)):
            load_map(_TENANCY % args)
    ok = load_map(
        _TENANCY % ("{model: single, customer: k1}", '{logs: "no personal data", "users.x": y}', "")
    )
    assert ok.database("main").is_out_of_scope("logs") and ok.database("main").is_out_of_scope("users", "x")
