"""Birthdays: the next one on or after a date, and the days until it.

29 February: in a year without it the birthday is kept on 28 February (the last day
of the customer's own month, the rule most civil registries and shops use), so a
greeting a few days before still arrives in February.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd


def _is_leap(years: np.ndarray) -> np.ndarray:
    return np.asarray((years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0)))


def birthday_in_year(months: np.ndarray, days: np.ndarray, years: np.ndarray) -> np.ndarray:
    """The birthday in each year as datetime64[D]; 29 February becomes 28 February outside leap years."""
    day = np.where((months == 2) & (days == 29) & ~_is_leap(years), 28, days)
    month_start = ((years - 1970) * 12 + (months - 1)).astype("datetime64[M]").astype("datetime64[D]")
    return np.asarray(month_start + (day - 1).astype("timedelta64[D]"))


def days_until_birthday(birth_dates: pd.Series, as_of: date) -> pd.Series:
    """Return days from ``as_of`` to the next birthday (0 on the day); missing for unknown birth dates."""
    born = pd.to_datetime(birth_dates, errors="coerce")
    known = born.notna().to_numpy()
    out = pd.Series(pd.NA, index=birth_dates.index, dtype="Int64")
    if not known.any():
        return out
    months = born[known].dt.month.to_numpy()
    days = born[known].dt.day.to_numpy()
    today = np.datetime64(as_of, "D")
    this_year = birthday_in_year(months, days, np.full(months.size, as_of.year))
    next_year = birthday_in_year(months, days, np.full(months.size, as_of.year + 1))
    upcoming = np.where(this_year >= today, this_year, next_year)
    out[known] = (upcoming - today).astype(int)
    return out
