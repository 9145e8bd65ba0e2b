"""Recognising personal data in sampled values, with Norwegian identifiers done properly.

Each detector answers for one value. National identity numbers and D-numbers are checked with both
mod-11 check digits and a real date of birth; bank account numbers with their mod-11 check digit;
phone numbers as Norwegian 8-digit numbers with or without +47. Postcodes and names are too short or
common to tell from a value alone, so they also look at the column name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

_DIGITS = re.compile(r"\D")
_FNR_W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_FNR_W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_ACCOUNT_W = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_PHONE = re.compile(
    r"^(?:\+47|0047)?[ ]?(?:[2-9]\d{7}|[2-9]\d{2} ?\d{2} ?\d{3}|[2-9]\d ?\d{2} ?\d{2} ?\d{2})$"
)
_ACCOUNT = re.compile(r"^\d{4}[ .]?\d{2}[ .]?\d{5}$")
_POSTCODE_PLACE = re.compile(r"^\d{4} [A-ZÆØÅ][A-Za-zÆØÅæøå .-]+$")
_NAME_WORD = re.compile(r"^[A-ZÆØÅ][a-zæøåéü]+(?:-[A-ZÆØÅ][a-zæøåéü]+)?$")

_POSTCODE_COLUMNS = ("postnr", "postnummer", "postcode", "postal_code", "zip", "zipcode")
_NAME_COLUMNS = (
    "name",
    "navn",
    "fornavn",
    "etternavn",
    "first_name",
    "last_name",
    "firstname",
    "lastname",
    "surname",
    "given_name",
    "family_name",
    "full_name",
    "display_name",
)
# Common Norwegian first names and surnames (SSB's most frequent), for columns without a telling name.
COMMON_NAMES = frozenset(
    [
        "Jan",
        "Per",
        "Bjørn",
        "Ole",
        "Lars",
        "Kjell",
        "Knut",
        "Arne",
        "Svein",
        "Thomas",
        "Hans",
        "Geir",
        "Tor",
        "Morten",
        "Terje",
        "Odd",
        "Erik",
        "Martin",
        "Andreas",
        "John",
        "Anders",
        "Rune",
        "Trond",
        "Tore",
        "Jon",
        "Nils",
        "Ola",
        "Espen",
        "Magnus",
        "Henrik",
        "Sindre",
        "Jonas",
        "Emil",
        "Kristian",
        "Anne",
        "Inger",
        "Kari",
        "Marit",
        "Ingrid",
        "Liv",
        "Eva",
        "Berit",
        "Astrid",
        "Bjørg",
        "Hilde",
        "Anna",
        "Solveig",
        "Marianne",
        "Randi",
        "Ida",
        "Nina",
        "Maria",
        "Elisabeth",
        "Kristin",
        "Bente",
        "Heidi",
        "Silje",
        "Hanne",
        "Ingeborg",
        "Nora",
        "Emma",
        "Sara",
        "Sofie",
        "Thea",
        "Maja",
        "Hansen",
        "Johansen",
        "Olsen",
        "Larsen",
        "Andersen",
        "Pedersen",
        "Nilsen",
        "Kristiansen",
        "Jensen",
        "Karlsen",
        "Johnsen",
        "Pettersen",
        "Eriksen",
        "Berg",
        "Haugen",
        "Hagen",
        "Johannessen",
        "Andreassen",
        "Jacobsen",
        "Dahl",
        "Jørgensen",
        "Halvorsen",
        "Henriksen",
        "Lund",
        "Sørensen",
        "Jakobsen",
        "Moen",
        "Gundersen",
        "Iversen",
        "Strand",
        "Solberg",
        "Svendsen",
        "Eide",
        "Knutsen",
        "Martinsen",
        "Paulsen",
        "Bakken",
        "Kristoffersen",
        "Mathisen",
        "Lie",
        "Amundsen",
        "Nguyen",
        "Rasmussen",
        "Ali",
        "Lunde",
        "Nordmann",
        "Solheim",
        "Berge",
        "Moe",
        "Nygård",
        "Bakke",
        "Kristensen",
        "Fredriksen",
        "Holm",
        "Lien",
        "Hauge",
        "Christensen",
    ]
)


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
    return len(text) == 4 and text.isdigit() and _column_says(column, _POSTCODE_COLUMNS)


def is_name(value: str, column: str = "") -> bool:
    words = value.strip().split()
    if not 1 <= len(words) <= 4 or not all(_NAME_WORD.match(w) for w in words):
        return False
    if _column_says(column, _NAME_COLUMNS):
        return True
    return len(words) >= 2 and any(w in COMMON_NAMES for w in words)


def _column_says(column: str, hints: tuple[str, ...]) -> bool:
    col = column.lower()
    return any(col == h or col.endswith("_" + h) or col.startswith(h + "_") for h in hints)


@dataclass(frozen=True)
class Detector:
    name: str
    category: str
    test: Callable[[str, str], bool]


DETECTORS: tuple[Detector, ...] = (
    Detector("national_id", "user.government_id.national_id", lambda v, c: is_national_id(v)),
    Detector("bank_account", "user.financial.bank_account", lambda v, c: is_bank_account(v)),
    Detector("email", "user.contact.email", lambda v, c: is_email(v)),
    Detector("phone", "user.contact.phone", lambda v, c: is_phone(v)),
    Detector("ipv4", "user.network.ip", lambda v, c: is_ipv4(v)),
    Detector("ipv6", "user.network.ip", lambda v, c: is_ipv6(v)),
    Detector("postcode", "user.contact.address", is_postcode),
    Detector("name", "user.name", is_name),
)


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
