"""How a person's identity is compared with a lookup column (the field's ``match`` in the map).

A person types ``Kari.Nordmann@Example.com `` and the product stored ``kari.nordmann@example.com``;
a phone number is written ``+47 912 34 567`` in one table and ``91234567`` in another. Each lookup
column says how it compares (``vern.datamap.model.Match``), and the same comparison is used to find
the rows, to record them in the erasure ledger and to recognise them again on a replay:

* ``email`` / ``casefold``: ``lower(trim(column))`` in SQL against the trimmed, lower-cased value -
  the same on SQLite, PostgreSQL and MariaDB whatever the column's collation (a product index on
  ``lower(trim(email))`` serves it);
* ``phone``: the number parsed with ``phonenumbers`` (Norwegian numbers without a country code),
  looked up in its E.164 form and its usual written forms, and normalised to E.164;
* ``national_id``: digits only (spaces, dots and dashes dropped), with the ``DDMMYY NNNNN`` form;
* ``exact``: as stored.
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from sqlalchemy import func

from vern.datamap.model import Match

DEFAULT_REGION = "NO"
_CASEFOLD = (Match.EMAIL, Match.CASEFOLD)


def _phone(value: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(value, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def normalise(match: Match, value: Any) -> str | None:
    """The form two values are compared in: equal forms mean the same identity."""
    if value is None:
        return None
    text = str(value)
    if match in _CASEFOLD:
        return text.strip().lower()
    if match is Match.PHONE:
        number = _phone(text)
        if number is None:
            return text.strip()
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if match is Match.NATIONAL_ID:
        return "".join(c for c in text if c.isalnum()).upper()
    return text


def lookup_values(match: Match, value: str) -> list[str]:
    """The values a column is compared with (against ``column_expression``) to find ``value``."""
    raw = value.strip()
    if not raw:
        return []
    if match in _CASEFOLD:
        return [raw.lower()]
    forms = {raw}
    if match is Match.PHONE:
        number = _phone(raw)
        if number is not None:
            fmt = phonenumbers.PhoneNumberFormat
            national = str(number.national_number)
            code = str(number.country_code)
            forms |= {
                phonenumbers.format_number(number, fmt.E164),
                phonenumbers.format_number(number, fmt.INTERNATIONAL),
                phonenumbers.format_number(number, fmt.NATIONAL),
                national,
                f"+{code} {national}",
                f"00{code}{national}",
                f"{code}{national}",
            }
            if len(national) == 8:  # Norwegian mobiles are also written 912 34 567
                spaced = f"{national[:3]} {national[3:5]} {national[5:]}"
                forms |= {spaced, f"+{code} {spaced}"}
    elif match is Match.NATIONAL_ID:
        digits = normalise(match, raw) or raw
        forms.add(digits)
        if len(digits) == 11:
            forms.add(f"{digits[:6]} {digits[6:]}")
    return sorted(forms)


def column_expression(match: Match, column: Any) -> Any:
    """The SQL side of the comparison: ``lower(trim(column))`` for e-mail and casefold."""
    if match in _CASEFOLD:
        return func.lower(func.trim(column))
    return column


def same(match: Match, stored: Any, wanted: set[str]) -> bool:
    """Whether a stored value is one of the normalised ``wanted`` values."""
    return normalise(match, stored) in wanted
