"""The values an erasure writes in place of a person's data (``new_value``: null, a fixed value, a
keyed hash, the person's pseudonym) and the keyed hashes the erasure ledger records of the values
that matched the person, so that a replay after a restore recognises their rows.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from vern.core.crypto import blind_index
from vern.datamap.model import Erase, Strategy
from vern.datamap.model import Table as MapTable
from vern.rights.matching import normalise


def _derive(secret: bytes, purpose: str) -> bytes:
    return hashlib.sha256(secret + b"\x00" + purpose.encode()).digest()


def hmac_value(secret: bytes, value: Any, length: int | None) -> str:
    digest = hmac.new(_derive(secret, "rights.erase.hmac"), str(value).encode(), hashlib.sha256)
    return digest.hexdigest()[: length or 64]


def pseudonym_id(secret: bytes, subject_ref: str) -> str:
    digest = hmac.new(_derive(secret, "rights.erase.pseudonym"), subject_ref.encode(), hashlib.sha256)
    return digest.hexdigest()[:12]


def match_hash(secret: bytes, column: str, value: Any) -> str:
    return blind_index(secret, f"{column}={value}", "rights.ledger")


def ledger_hash(secret: bytes, mt: MapTable, column: str, value: Any) -> str:
    """The ledger's hash of a value that matched the person: of its normalised form under the
    column's comparison, so a replay recognises the row whichever case or spacing it is stored in
    and whatever the collation that matched it."""
    return match_hash(secret, column, normalise(mt.match_of(column), value))


_HEX = frozenset("0123456789abcdef")
_PSEUDONYM_FORMS: dict[str, re.Pattern[str]] = {}


def already_erased(erase: Erase, old: Any) -> bool:
    """Whether ``old`` is already what this strategy writes for someone: a pseudonym in the
    field's format, or a keyed hash of the field's length (16 hex characters or more - shorter
    ones could be real values). Such a value is left as it is, so erasing an erased person again
    - under another of their identities, whose pseudonym would differ - changes nothing."""
    if not isinstance(old, str):
        return False
    if erase.strategy is Strategy.HMAC:
        n = erase.length or 64
        return n >= 16 and len(old) == n and set(old) <= _HEX
    if erase.strategy is Strategy.PSEUDONYM:
        fmt = erase.value or "anon-{id}"
        pattern = _PSEUDONYM_FORMS.get(fmt)
        if pattern is None:
            pattern = _PSEUDONYM_FORMS[fmt] = re.compile(
                re.escape(fmt).replace(re.escape("{id}"), "[0-9a-f]{12}")
            )
        return pattern.fullmatch(old) is not None
    return False


def new_value(secret: bytes, erase: Erase, old: Any, subject_ref: str) -> Any:
    """What an erase strategy writes in place of ``old`` (computed once, at planning); an
    already erased value stays as it is."""
    if already_erased(erase, old):
        return old
    if erase.strategy is Strategy.NULL:
        return None
    if erase.strategy is Strategy.FIXED:
        return erase.value
    if old is None:
        return None
    if erase.strategy is Strategy.HMAC:
        return hmac_value(secret, old, erase.length)
    if erase.strategy is Strategy.PSEUDONYM:
        fmt = erase.value or "anon-{id}"
        return fmt.replace("{id}", pseudonym_id(secret, subject_ref))
    raise ValueError(f"no value for strategy {erase.strategy}")
