"""Norwegian organisation numbers: nine digits, the last a mod-11 check digit (weights
3, 2, 7, 6, 5, 4, 3, 2; remainder 0 gives 0, remainder 1 is never issued)."""

from __future__ import annotations

from typing import Any

import pytest

from vern.accounts.service import check_org_number
from vern.app import demo
from vern.core.errors import InvalidInput


@pytest.mark.parametrize("number", ["945678127", "923456783", "910000004", "910000020",
                                    "945 678 127"])
def test_valid_numbers_are_accepted(number: str) -> None:
    assert check_org_number(number) == number.replace(" ", "")


@pytest.mark.parametrize("number", [
    "945678123",  # wrong check digit
    "910000021",  # remainder 0 must give check digit 0
    *[f"91234567{d}" for d in range(10)],  # remainder 1: no check digit is valid
])
def test_a_wrong_check_digit_is_refused_naming_the_field(number: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_org_number(number)
    assert caught.value.errors[0].field == "org_number"
    assert caught.value.errors[0].code == "check-digit"


@pytest.mark.parametrize("number", ["12345678", "1234567890", "94567812X", ""])
def test_anything_but_nine_digits_is_refused(number: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_org_number(number)
    assert caught.value.errors[0].field == "org_number"


def test_the_demo_organisations_have_valid_numbers() -> None:
    for _slug, _name, _kind, number in demo.ORGS:
        assert check_org_number(number) == number


def test_the_api_refuses_a_wrong_check_digit_with_a_problem_naming_the_field(
    personas: Any, login: Any
) -> None:
    dave = login(personas.dave)
    res = dave.post("/api/v1/tenants", json={"name": "Fjordly skole", "slug": "fjordly",
                                             "org_number": "945678123"})
    assert res.status_code == 422
    assert res.headers["content-type"].startswith("application/problem+json")
    assert res.json()["errors"][0]["field"] == "org_number"
    ok = dave.post("/api/v1/tenants", json={"name": "Fjordly skole", "slug": "fjordly",
                                            "org_number": "945678127"})
    assert ok.status_code == 201 and ok.json()["org_number"] == "945678127"
