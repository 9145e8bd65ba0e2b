"""Identities compared as a person means them, and the map keys that declare how."""

from __future__ import annotations

import pytest

from tests.rights.test_webshop import MAP, STORES
from vern.datamap.loader import MapError, load_map
from vern.datamap.model import Match
from vern.rights.matching import lookup_values, normalise


def test_email_is_trimmed_and_case_insensitive() -> None:
    assert lookup_values(Match.EMAIL, "  Kari.Nordmann@Example.COM ") == ["kari.nordmann@example.com"]
    assert normalise(Match.EMAIL, " KARI.nordmann@example.com") == "kari.nordmann@example.com"


def test_phone_numbers_are_compared_in_e164_and_found_in_their_written_forms() -> None:
    forms = lookup_values(Match.PHONE, "+47 912 34 567")
    assert {"+4791234567", "91234567", "912 34 567", "004791234567"} <= set(forms)
    assert normalise(Match.PHONE, "912 34 567") == normalise(Match.PHONE, "0047 91234567") == "+4791234567"


def test_national_ids_compare_by_digits() -> None:
    assert normalise(Match.NATIONAL_ID, "010190 12345") == "01019012345"
    assert set(lookup_values(Match.NATIONAL_ID, "01019012345")) == {"01019012345", "010190 12345"}


def test_exact_stays_exact() -> None:
    assert lookup_values(Match.EXACT, "Abc") == ["Abc"]


def _shop(stores: bool = True) -> str:
    return MAP.replace("STORES\n", STORES if stores else "")


def test_the_map_declares_matching_outward_links_and_database_set_columns() -> None:
    shop = load_map(_shop()).database("nettbutikk.shop")
    customers = shop.tables["customers"]
    assert customers.match_of("email") is Match.EMAIL and customers.match_of("phone") is Match.PHONE
    assert [(r.field, r.table, r.column) for r in customers.refers_to] == [("address_id", "addresses", "id")]
    assert customers.auto_update_columns == ("updated_at",)
    order = shop.erasure_order()
    assert order.index("customers") < order.index("addresses") and order.index("orders") < order.index(
        "customers"
    )
    deps = shop.dependency_order()
    assert deps.index("customers") < deps.index("addresses")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "email: {category: user.contact.email, erase:",
            "email: {category: user.contact.email, match: loose, erase:",
        ),
        ("updated_at: {category: system.timestamp, auto_update: true}\n          addresses",
         "updated_at: {category: system.timestamp, auto_update: true, erase: null}\n          addresses"),
    ],
)
def test_bad_declarations_are_refused_with_their_place(change: str, message: str) -> None:
    with pytest.raises(MapError) as err:
        load_map(_shop().replace(change, message, 1))
    text = str(err.value)
    assert "unknown comparison 'loose'" in text or "cannot also be erased" in text


def test_an_outward_link_that_closes_a_cycle_is_refused() -> None:
    # the customer's row both points out to the address and is discovered from it
    link = "            refers_to: [{field: address_id, to: addresses.id}]\n"
    back = "            references: [{field: address_id, to: addresses.id}]\n"
    looped = _shop().replace(link, link + back, 1)
    with pytest.raises(MapError, match="cycle"):
        load_map(looped)
