"""Norwegian personal data recognised in sampled values."""

from __future__ import annotations

from datetime import date

from hypothesis import example, given
from hypothesis import strategies as st

from vern.datamap import detectors as d


@given(
    st.dates(min_value=date(1854, 1, 1), max_value=date(2039, 12, 31)),
    st.integers(min_value=0, max_value=999),
    st.booleans(),
)
@example(date(2000, 2, 29), 0, False)  # would be 29 February 1900, which did not exist
@example(date(2000, 2, 29), 500, False)
def test_it_accepts_every_national_id_and_d_number_with_right_check_digits(
    born: date, individual: int, d_number: bool
) -> None:
    number = d.national_id_for(born, individual, d_number=d_number)
    if number is not None:
        assert d.national_id_kind(number) == ("dnr" if d_number else "fnr")
        assert number[4:6] == f"{born.year % 100:02d}" and number[6:9] == f"{individual:03d}"


def test_an_individual_number_of_another_century_gives_no_number() -> None:
    assert d.national_id_for(date(2000, 2, 29), 0) is None  # 000-499: born 1900-1999
    assert d.national_id_for(date(1985, 6, 1), 600) is None  # 500-999: not 1985
    found = [d.national_id_for(date(2000, 2, 29), i) for i in range(500, 520)]
    assert any(found) and all(d.national_id_kind(n) == "fnr" for n in found if n)


@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(1999, 12, 31)),
    st.integers(min_value=0, max_value=499),
    st.integers(min_value=0, max_value=10),
)
def test_it_refuses_a_national_id_with_one_digit_changed(born: date, individual: int, pos: int) -> None:
    number = d.national_id_for(born, individual)
    if number is None:
        return
    changed = number[:pos] + str((int(number[pos]) + 1) % 10) + number[pos + 1 :]
    assert not d.is_national_id(changed)


def test_it_refuses_eleven_digits_that_are_no_date() -> None:
    assert not d.is_national_id("32134512345")
    assert not d.is_national_id("1234567890")


def test_it_checks_bank_accounts_with_mod_11() -> None:
    assert d.is_bank_account("1234.56.78903")
    assert d.is_bank_account("12345678903")
    assert not d.is_bank_account("12345678904")


def test_it_recognises_norwegian_phone_numbers() -> None:
    for value in ("+47 912 34 567", "91234567", "+4722334455", "0047 91234567", "22 33 44 55"):
        assert d.is_phone(value), value
    for value in ("12345678", "+46 912 34 567", "9123456"):
        assert not d.is_phone(value), value


def test_it_recognises_addresses_emails_and_names() -> None:
    assert d.is_email("kari.nordmann@example.com") and not d.is_email("kari@")
    assert d.is_ipv4("192.0.2.7") and d.is_ipv6("2001:db8::1") and not d.is_ipv4("999.1.1.1")
    assert d.is_postcode("0150", "postnr") and d.is_postcode("5003 Bergen")
    assert not d.is_postcode("2024", "year")
    assert d.is_name("Kari Nordmann") and d.is_name("Åse", "fornavn")
    assert not d.is_name("Port sto åpen")


def test_it_classifies_a_column_by_most_of_its_values() -> None:
    found = d.classify(["kari@example.com", "ola@example.com", "", "n/a"], "contact")
    assert found is not None and found.category == "user.contact.email"
    assert d.classify(["a", "b", "kari@example.com"], "x") is None
