"""CSV that a spreadsheet opens without running anything (CSV injection, OWASP).

Every CSV file Vern produces (the audit trail export, statistics reports, the tables of a
person's access package) is written through ``SafeWriter``: a text cell that begins with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``, so that a spreadsheet shows
it as text instead of evaluating it as a formula. Numbers are written as they are (a number cannot
carry a formula). The JSON forms of the same data keep the exact values.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV cell: text that a spreadsheet would read as a formula is prefixed with
    ``'``; anything else (numbers, None) is left to the csv module."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` whose rows go through ``safe_cell`` (the header row too)."""

    def __init__(self, out: Any, **options: Any) -> None:
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
