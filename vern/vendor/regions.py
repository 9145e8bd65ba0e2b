"""Countries, the EU/EEA (from ``regions.yaml``) and the transfer mechanisms of GDPR Chapter V."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from babel import Locale

from vern.core.errors import InvalidInput
from vern.core.i18n import norm

_DATA = Path(__file__).with_name("regions.yaml")
# Babel territories that are not countries (regions, the EU itself, pseudo-locales).
_NOT_COUNTRIES = frozenset({"EU", "EZ", "QO", "UN", "ZZ", "XA", "XB"})


@cache
def _data() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(_DATA.read_text(encoding="utf-8"))
    return loaded


def eea() -> frozenset[str]:
    """The EU member states and the EEA EFTA states (Norway among them)."""
    codes = [*_data()["eu"], *_data()["eea_efta"]]
    if not all(isinstance(c, str) and len(c) == 2 for c in codes):
        raise ValueError(f"{_DATA.name}: every code must be a quoted two-letter string")
    return frozenset(codes)


def transfer_mechanisms() -> dict[str, str]:
    """Mechanism key -> the GDPR article it rests on."""
    return dict(_data()["transfer_mechanisms"])


@cache
def _countries() -> frozenset[str]:
    codes = [str(c) for c in Locale("en").territories]
    return frozenset(c for c in codes if len(c) == 2 and c.isalpha() and c not in _NOT_COUNTRIES)


def country_name(code: str, locale: str | None) -> str:
    return str(Locale(norm(locale)).territories.get(code, code))


def check_countries(field_name: str, codes: list[str] | tuple[str, ...]) -> list[str]:
    """ISO 3166-1 alpha-2 codes, upper-cased, each once, in the order given."""
    out: list[str] = []
    for i, raw in enumerate(codes):
        code = str(raw).strip().upper()
        if code not in _countries():
            raise InvalidInput.on(f"{field_name}.{i}", "is not a country code (ISO 3166-1 alpha-2, "
                                  "such as NO, SE or DE)", "country")
        if code not in out:
            out.append(code)
    return out


def outside_eea(codes: list[str]) -> list[str]:
    """The codes outside the EU/EEA, which need a transfer mechanism."""
    return [c for c in codes if c not in eea()]


def check_transfer(locations: list[str], mechanism: str | None, field_name: str = "transfer_mechanism"
                   ) -> str | None:
    """The transfer mechanism to keep: required (and refused with the reason when missing) when
    any location is outside the EU/EEA; None when every location is inside."""
    mechanism = (mechanism or "").strip() or None
    if mechanism is not None and mechanism not in transfer_mechanisms():
        raise InvalidInput.on(field_name, "one of %(values)s", "choice",
                              values=", ".join(transfer_mechanisms()))
    outside = outside_eea(locations)
    if outside and mechanism is None:
        raise InvalidInput.on(field_name, "data in %(countries)s is outside the EU/EEA: a transfer "
                              "mechanism (adequacy decision, standard contractual clauses, binding "
                              "corporate rules, ...) is required (GDPR Chapter V)",
                              "transfer-mechanism-required", countries=", ".join(outside))
    return mechanism if outside else None
