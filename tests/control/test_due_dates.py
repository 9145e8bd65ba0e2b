"""Due dates follow the recurrence; a late completion does not leave the task overdue at once."""

from __future__ import annotations

from datetime import date

import pytest

from vern.control.service import add_months, next_due


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2028, 1, 31), 1, date(2028, 2, 29)),
    (date(2026, 11, 15), 3, date(2027, 2, 15)),
    (date(2026, 12, 6), 12, date(2027, 12, 6)),
])
def test_months_are_added_on_the_same_day_or_the_last_of_the_month(
        day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_on_time_completion_moves_the_due_date_one_period() -> None:
    assert next_due("yearly", date(2026, 12, 1), date(2026, 11, 20)) == date(2027, 12, 1)
    assert next_due("quarterly", date(2026, 12, 1), date(2026, 12, 1)) == date(2027, 3, 1)
    assert next_due("monthly", date(2026, 12, 1), date(2026, 11, 30)) == date(2027, 1, 1)


def test_late_completion_skips_periods_already_passed() -> None:
    # Quarterly, due 1 March, done 20 August: 1 June has passed too, so next is 1 September.
    assert next_due("quarterly", date(2026, 3, 1), date(2026, 8, 20)) == date(2026, 9, 1)
    assert next_due("monthly", date(2026, 1, 10), date(2026, 3, 10)) == date(2026, 4, 10)


def test_a_task_done_once_has_no_next_due_date() -> None:
    assert next_due("once", date(2026, 12, 1), date(2026, 12, 6)) is None
