"""Recognising personal data in sampled values, with Norwegian identifiers done properly.

Each detector answers for one value. National identity numbers and D-numbers are checked with both
mod-11 check digits and a real date of birth; bank account numbers with their mod-11 check digit;
phone numbers as Norwegian 8-digit numbers with or without +47. Postcodes and names are too short or
common to tell from a value alone, so they also look at the column name. The names and column
names they compare with are listed in ``vern.datamap.wordlists``.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from vern.datamap.wordlists import (
    ADDRESS_COLUMNS,
    BIRTH_COLUMNS,
    CITY_COLUMNS,
    COMMON_NAMES,
    CREDENTIAL_COLUMNS,
    INTERNATIONAL_NAMES,
    NAME_COLUMNS,
    PHONE_COLUMNS,
    POSTCODE_COLUMNS,
    STREET_SUFFIXES,
    STREET_WORDS,
    STRONG_NAME_COLUMNS,
    TEXT_COLUMNS,
    USERNAME_COLUMNS,
    WEAK_NAME_COLUMNS,
)

_DIGITS = re.compile(r"\D")
_FNR_W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_FNR_W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_ACCOUNT_W = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
# Letters of any script in the local part and the domain (RFC 6531 addresses: "ingrid.müller@…").
_EMAIL = re.compile(r"^[\w.!#$%&'*+/=?^`{|}~-]+@[^\W_](?:[\w-]*[^\W_])?(\.[^\W_](?:[\w-]*[^\W_])?)+$")
_PHONE = re.compile(
    r"^(?:\+47|0047)?[ ]?(?:[2-9]\d{7}|[2-9]\d{2} ?\d{2} ?\d{3}|[2-9]\d ?\d{2} ?\d{2} ?\d{2})$"
)
_ACCOUNT = re.compile(r"^\d{4}[ .]?\d{2}[ .]?\d{5}$")
_POSTCODE_PLACE = re.compile(r"^\d{4} [A-ZÆØÅ][A-Za-zÆØÅæøå .-]+$")
_NAME_WORD = re.compile(r"^[A-ZÆØÅ][a-zæøåéü]+(?:-[A-ZÆØÅ][a-zæøåéü]+)?$")


def national_id_kind(value: str) -> str | None:
    """'fnr' for a national identity number, 'dnr' for a D-number, None otherwise."""
    digits = value.strip().replace(" ", "")
    if len(digits) != 11 or not digits.isdigit():
        return None
    d = [int(c) for c in digits]
    k1 = 11 - sum(w * x for w, x in zip(_FNR_W1, d[:9], strict=True)) % 11
    k1 = 0 if k1 == 11 else k1
    k2 = 11 - sum(w * x for w, x in zip(_FNR_W2, d[:10], strict=True)) % 11
    k2 = 0 if k2 == 11 else k2
    if k1 == 10 or k2 == 10 or k1 != d[9] or k2 != d[10]:
        return None
    day, month, yy = int(digits[:2]), int(digits[2:4]), int(digits[4:6])
    kind = "fnr"
    if day > 40:
        day -= 40
        kind = "dnr"
    if month > 80:  # synthetic test numbers from the National Population Register
        month -= 80
    elif month > 40:
        month -= 40
    individual = int(digits[6:9])
    century = _century(individual, yy)
    try:
        date(century + yy, month, day)
    except ValueError:
        return None
    return kind


def _century(individual: int, yy: int) -> int:
    if individual <= 499:
        return 1900
    if individual >= 900 and yy >= 40:
        return 1900
    if individual <= 749 and yy >= 54:
        return 1800
    return 2000


def is_national_id(value: str) -> bool:
    return national_id_kind(value) is not None


def is_bank_account(value: str) -> bool:
    text = value.strip()
    if not _ACCOUNT.match(text):
        return False
    d = [int(c) for c in _DIGITS.sub("", text)]
    rest = sum(w * x for w, x in zip(_ACCOUNT_W, d[:10], strict=True)) % 11
    if rest == 1:
        return False
    check = 0 if rest == 0 else 11 - rest
    return check == d[10]


def is_phone(value: str) -> bool:
    return bool(_PHONE.match(value.strip()))


def is_email(value: str) -> bool:
    return bool(_EMAIL.match(value.strip()))


def is_ipv4(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value.strip()), ipaddress.IPv4Address)
    except ValueError:
        return False


def is_ipv6(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value.strip()), ipaddress.IPv6Address)
    except ValueError:
        return False


def is_postcode(value: str, column: str = "") -> bool:
    text = value.strip()
    if _POSTCODE_PLACE.match(text):
        return True
    return len(text) == 4 and text.isdigit() and _column_says(column, POSTCODE_COLUMNS)


def is_name(value: str, column: str = "") -> bool:
    words = value.strip().split()
    if not 1 <= len(words) <= 4 or not all(_NAME_WORD.match(w) for w in words):
        return False
    if _column_says(column, NAME_COLUMNS):
        return True
    return len(words) >= 2 and any(w in COMMON_NAMES for w in words)


def _column_says(column: str, hints: tuple[str, ...]) -> bool:
    col = column.lower()
    return any(col == h or col.endswith("_" + h) or col.startswith(h + "_") for h in hints)


# -- international ---------------------------------------------------------------------------

_HASH_VALUE = re.compile(
    r"^(?:\$(?:2[abxy]?|argon2(?:id|i|d)|scrypt|pbkdf2[-_a-z0-9]*|[156])\$\S+"
    r"|pbkdf2_sha(?:1|256|512)\$\S+|sha(?:1|256|512)\$\S+|bcrypt\$\S+)$"
)
_POSTCODE_VALUE = re.compile(r"^(?=.*\d)[A-Za-z0-9][A-Za-z0-9 -]{1,9}$")
_WORD = re.compile(r"^[^\W\d_]+(?:['’.-][^\W\d_]+)*\.?$")
_HAS_DIGIT = re.compile(r"\d")
_DATE_TEXT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T].*)?$|^(\d{1,2})[./](\d{1,2})[./](\d{4})$")


def column_words(column: str) -> str:
    """The column name in lower case with camelCase and spaces made snake_case."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", column.strip())
    return re.sub(r"[\s-]+", "_", snake).lower()


def column_is(column: str, hints: tuple[str, ...]) -> bool:
    """``column`` is one of ``hints``, or ends or starts with one of them as a whole word."""
    col = column_words(column)
    return any(col == h or col.endswith("_" + h) or col.startswith(h + "_") for h in hints)


def _words(value: str) -> list[str]:
    return value.strip().replace(",", " ").split()


def looks_like_name(value: str) -> bool:
    """One to five alphabetic words in any letter case ("KARI NORDMANN", "mary o'brien", "José")."""
    words = _words(value)
    return 1 <= len(words) <= 5 and all(_WORD.match(w) for w in words) and len(value.strip()) <= 120


def _plain_letters(word: str) -> str:
    """Lower case without accents: "García" and "GARCIA" are the same name."""
    decomposed = unicodedata.normalize("NFKD", word.lower().strip("."))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_PLAIN_NAMES = frozenset(_plain_letters(n) for n in INTERNATIONAL_NAMES)


def known_name_in(value: str) -> bool:
    return any(_plain_letters(w) in _PLAIN_NAMES for w in _words(value))


def is_person_name(value: str, column: str = "") -> bool:
    """A person's name: a telling column name (``first_name``, ``payer_name``) and a name-shaped
    value, or two or more words one of which is a frequent first name or surname."""
    if not looks_like_name(value):
        return False
    if column_is(column, STRONG_NAME_COLUMNS):
        return True
    if column_is(column, WEAK_NAME_COLUMNS) and known_name_in(value):
        return True
    return len(_words(value)) >= 2 and known_name_in(value)


def is_username(value: str, column: str = "") -> bool:
    text = value.strip()
    return column_is(column, USERNAME_COLUMNS) and 0 < len(text) <= 100 and " " not in text


def is_street_address(value: str, column: str = "") -> bool:
    """A street address: a house number and a word, in a column named like an address, or a value
    with a street word ("47 MySakila Drive", "Storgata 1", "Hauptstraße 5")."""
    text = value.strip()
    if not 3 <= len(text) <= 200 or not _HAS_DIGIT.search(text) or not re.search(r"[^\W\d_]{2,}", text):
        return False
    if column_is(column, ADDRESS_COLUMNS):
        return True
    words = [w.lower().strip(",") for w in text.split()]
    if any(w in STREET_WORDS for w in words):
        return True
    # compound street names: Storgata, Kirkeveien, Hauptstraße
    return any(
        w.endswith(suffix) and len(w) > len(suffix) + 2
        for w in words
        for suffix in STREET_SUFFIXES
    )


def is_any_postcode(value: str, column: str = "") -> bool:
    """A postcode of any country (``0150``, ``SW1A 1AA``, ``94107-1234``) in a column named like one,
    or a Norwegian "0150 Oslo" anywhere."""
    text = value.strip()
    if _POSTCODE_PLACE.match(text):
        return True
    return bool(_POSTCODE_VALUE.match(text)) and _column_says_postcode(column)


def _column_says_postcode(column: str) -> bool:
    return column_is(column, (*POSTCODE_COLUMNS, "zip_code", "post_code", "plz", "postal", "postcode"))


def is_city(value: str, column: str = "") -> bool:
    return column_is(column, CITY_COLUMNS) and looks_like_name(value) and len(value.strip()) <= 60


def is_phone_number(value: str, column: str = "") -> bool:  # noqa: PLR0911 - per form of number
    """A phone number of any country: with a ``+``/``00`` country code, a Norwegian number, or in a
    column named like a phone, digits a phone number of some country can have (``phonenumbers``)."""
    text = value.strip()
    if is_phone(text):
        return True
    digits = _DIGITS.sub("", text)
    if not 6 <= len(digits) <= 15 or re.search(r"[^\d\s()+./-]", text.split("x")[0].split("ext")[0]):
        return False
    import phonenumbers

    if text.startswith(("+", "00")):
        candidate = "+" + text[2:] if text.startswith("00") else text
        try:
            return phonenumbers.is_valid_number(phonenumbers.parse(candidate, None))
        except phonenumbers.NumberParseException:
            return False
    if not column_is(column, PHONE_COLUMNS):
        return False
    for region in ("US", "GB", "DE", "FR", "SE", "DK", "NO", "IN", "CN", "BR", "JP", "NL", "ES", "IT", "PL"):
        try:
            if phonenumbers.is_possible_number(phonenumbers.parse(text, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def is_credential(value: str, column: str = "") -> bool:
    """A password hash in any common format, or any value of a column named like a secret."""
    text = value.strip()
    if _HASH_VALUE.match(text):
        return True
    return column_is(column, CREDENTIAL_COLUMNS) and bool(text)


def is_birth_date(value: str, column: str = "") -> bool:
    if not column_is(column, BIRTH_COLUMNS):
        return False
    m = _DATE_TEXT.match(value.strip())
    if m is None:
        return False
    year = int(m.group(1) or m.group(6))
    return 1880 <= year <= date.today().year


def is_free_text(value: str, column: str = "") -> bool:
    """Text a person wrote: a column named like ``comment``/``body``/``notes``, or several
    sentences of words."""
    text = value.strip()
    if column_is(column, TEXT_COLUMNS) and len(text) >= 2:
        return True
    return len(text) >= 60 and len(text.split()) >= 8


@dataclass(frozen=True)
class Detector:
    name: str
    category: str
    test: Callable[[str, str], bool]


DETECTORS: tuple[Detector, ...] = (
    Detector("credential", "user.credential", is_credential),
    Detector("national_id", "user.government_id.national_id", lambda v, c: is_national_id(v)),
    Detector("bank_account", "user.financial.bank_account", lambda v, c: is_bank_account(v)),
    Detector("email", "user.contact.email", lambda v, c: is_email(v)),
    Detector("ipv4", "user.network.ip", lambda v, c: is_ipv4(v)),
    Detector("ipv6", "user.network.ip", lambda v, c: is_ipv6(v)),
    Detector("birth_date", "user.date_of_birth", is_birth_date),
    Detector("phone", "user.contact.phone", is_phone_number),
    Detector("postcode", "user.contact.address", is_any_postcode),
    Detector("address", "user.contact.address", is_street_address),
    Detector("city", "user.contact.address", is_city),
    Detector("username", "user.identifier", is_username),
    Detector("name", "user.name", lambda v, c: is_name(v, c) or is_person_name(v, c)),
    Detector("text", "user.content", is_free_text),
)

# Detectors whose answer depends on what the table is: a city or a "name" in a lookup table, free
# text in a table with no link to a person, are not personal data.
CONTEXT_DETECTORS = frozenset({"city", "text"})


def detect(value: str, column: str = "") -> Detector | None:
    """The first detector that recognises ``value`` (most specific first)."""
    for detector in DETECTORS:
        if detector.test(value, column):
            return detector
    return None


def classify(values: list[str], column: str = "", *, threshold: float = 0.6) -> Detector | None:
    """The detector that recognises most of the sampled values, if at least ``threshold`` of them."""
    samples = [v for v in values if v and v.strip()]
    if not samples:
        return None
    counts: dict[str, int] = {}
    by_name = {d.name: d for d in DETECTORS}
    for value in samples:
        found = detect(value, column)
        if found is not None:
            counts[found.name] = counts.get(found.name, 0) + 1
    if not counts:
        return None
    best = max(counts, key=lambda name: counts[name])
    return by_name[best] if counts[best] / len(samples) >= threshold else None


def national_id_for(born: date, individual: int, *, d_number: bool = False) -> str | None:
    """A valid national identity number (or D-number) for a birth date, or None when the
    individual number gives no valid check digits (about 1 in 11 do not) or belongs to another
    century than the birth year's (000-499 are 1900-1999, 500-999 mostly 2000-2039)."""
    if _century(individual, born.year % 100) + born.year % 100 != born.year:
        return None
    day = born.day + (40 if d_number else 0)
    base = f"{day:02d}{born.month:02d}{born.year % 100:02d}{individual:03d}"
    d = [int(c) for c in base]
    k1 = 11 - sum(w * x for w, x in zip(_FNR_W1, d, strict=True)) % 11
    k1 = 0 if k1 == 11 else k1
    if k1 == 10:
        return None
    d.append(k1)
    k2 = 11 - sum(w * x for w, x in zip(_FNR_W2, d, strict=True)) % 11
    k2 = 0 if k2 == 11 else k2
    if k2 == 10:
        return None
    return base + f"{k1}{k2}"


def bank_account_for(first_ten: str) -> str | None:
    """A valid account number from ten digits, or None when that prefix has no check digit."""
    d = [int(c) for c in first_ten]
    rest = sum(w * x for w, x in zip(_ACCOUNT_W, d, strict=True)) % 11
    if rest == 1:
        return None
    return first_ten + str(0 if rest == 0 else 11 - rest)
