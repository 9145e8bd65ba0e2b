"""The one CSV writer every export uses: no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io

import pytest

from vern.core.csvsafe import SafeWriter, safe_cell

DANGEROUS = ["=HYPERLINK(\"http://x.invalid\",\"klikk\")", "+47 22 00 00 00", "-2+3", "@SUM(A1:A2)",
             "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("value", DANGEROUS)
def test_text_that_starts_like_a_formula_is_written_as_text(value: str) -> None:
    out = io.StringIO()
    SafeWriter(out).writerow(["ok", value])
    [row] = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert row == ["ok", "'" + value]


def test_other_values_are_written_as_they_are() -> None:
    assert safe_cell("Ola Nordmann") == "Ola Nordmann"
    assert safe_cell("a=b") == "a=b"  # only the first character matters
    assert safe_cell(-5) == -5 and safe_cell(2.5) == 2.5 and safe_cell(None) is None
    out = io.StringIO()
    SafeWriter(out).writerows([["navn", "beløp"], ["Kari", -120]])
    assert out.getvalue() == "navn,beløp\r\nKari,-120\r\n"
