"""Birthdays: the next one on or after a date, with 29 February kept on 28 February in common years."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from tasks.profile.birthdays import birthday_in_year, days_until_birthday


def test_a_29_february_birthday_is_celebrated_on_28_february_in_common_years_and_century_years() -> None:
    years = np.array([2023, 2024, 2100, 2000])

    days = birthday_in_year(np.full(4, 2), np.full(4, 29), years)

    # 2100 is not a leap year (divisible by 100, not by 400); 2000 is
    assert [str(d) for d in days] == ["2023-02-28", "2024-02-29", "2100-02-28", "2000-02-29"]


def test_other_birthdays_fall_on_their_own_day_every_year() -> None:
    days = birthday_in_year(np.array([2, 3, 12]), np.array([28, 1, 31]), np.array([2023, 2024, 2025]))

    assert [str(d) for d in days] == ["2023-02-28", "2024-03-01", "2025-12-31"]


def test_after_28_february_in_a_common_year_a_leap_day_birthday_is_next_on_29_february_of_the_leap_year() -> None:
    born = pd.Series(["1988-02-29"])

    # 2027 is common: the birthday was kept on 28 February; the next one is 29 February 2028
    assert days_until_birthday(born, date(2027, 3, 1)).tolist() == [365]


def test_a_birthday_already_passed_this_year_counts_to_next_year_across_new_year() -> None:
    born = pd.Series(["1990-01-01", "1990-12-31"])

    assert days_until_birthday(born, date(2026, 12, 31)).tolist() == [1, 0]


def test_unknown_and_unparseable_birth_dates_are_missing_not_zero_and_keep_their_rows() -> None:
    born = pd.Series(["1990-05-10", "", "not a date", None], index=["C1", "C2", "C3", "C4"])

    days = days_until_birthday(born, date(2026, 5, 1))

    assert str(days.dtype) == "Int64"
    assert days.index.tolist() == ["C1", "C2", "C3", "C4"]
    assert days["C1"] == 9
    assert days[["C2", "C3", "C4"]].isna().all()


def test_a_shop_without_any_birth_date_gets_all_missing_and_an_empty_shop_gets_nothing() -> None:
    unknown = days_until_birthday(pd.Series([None, None], dtype="object"), date(2026, 5, 1))
    empty = days_until_birthday(pd.Series([], dtype="object"), date(2026, 5, 1))

    assert unknown.isna().all() and len(unknown) == 2 and str(unknown.dtype) == "Int64"
    assert empty.empty and str(empty.dtype) == "Int64"
