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


def test_it_recognises_names_in_any_letter_case_but_not_lookup_values() -> None:
    for value, column in (
        ("KARI NORDMANN", "x"),
        ("MARY", "first_name"),
        ("o'brien", "last_name"),
        ("José García", "customer"),
        ("SMITH", "name"),
    ):
        assert (
            d.classify([value], column) is not None and d.classify([value], column).category == "user.name"
        ), value
    for value in ("Action", "English", "Documentary", "ACADEMY DINOSAUR"):
        found = d.classify([value], "name" if value != "ACADEMY DINOSAUR" else "title")
        assert found is None or found.category != "user.name", value


def test_it_recognises_international_contact_data() -> None:
    for value in ("+44 20 7946 0958", "+49 30 1234567", "+1 617 555 0123", "0047 912 34 567"):
        assert d.is_phone_number(value), value
    assert d.is_phone_number("(617) 555-0123", "phone") and d.is_phone_number("02079460958", "telephone")
    assert not d.is_phone_number("(617) 555-0123", "amount") and not d.is_phone_number("+0 1", "phone")
    for value in ("47 MySakila Drive", "Storgata 12B", "Hauptstraße 5", "221B Baker Street"):
        assert d.is_street_address(value), value
    assert d.is_street_address("Leilighet H0203", "address2") and not d.is_street_address("Drama")
    for value in ("SW1A 1AA", "94107-1234", "0150", "1011 AB"):
        assert d.is_any_postcode(value, "postal_code"), value
    assert not d.is_any_postcode("SW1A 1AA", "sku") and d.is_any_postcode("5003 Bergen")
    assert d.is_city("Tromsø", "city") and not d.is_city("Tromsø", "film")
    assert d.is_email("KARI.NORDMANN@EXAMPLE.COM") and d.is_email("ingrid.müller@example.com")
    assert d.is_birth_date("1984-02-29", "date_of_birth") and not d.is_birth_date("1984-02-29", "created")


def test_it_recognises_credentials_and_free_text() -> None:
    for value in (
        "$2b$12$abcdefghijklmnopqrstuu5Y7nQ2m8cOZPz0dYyq3jC0xk1e",
        "$argon2id$v=19$m=65536$c2FsdA$aGFzaA",
        "pbkdf2_sha256$600000$salt$hash",
    ):
        assert d.is_credential(value, "x"), value
    assert d.is_credential("8cb2237d0679ca88db6464eac60da96345513964", "password")
    assert d.is_credential("tok_3f9c", "api_key") and not d.is_credential("hello", "greeting")
    assert d.classify(["Flott film, men plata hadde riper."], "body").category == "user.content"
    assert d.classify(["ok"], "title") is None
