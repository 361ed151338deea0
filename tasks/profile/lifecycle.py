"""Lifecycle stages relative to each customer's own rhythm and to the shop's return goal.

The shop says how often it wants buyers back: weekly (7 days), monthly (30) or
quarterly (91). A customer's rhythm is their median gap between purchase days
once they have one (two purchase days or more); until then it is the shop's goal.
The rhythm used is the longer of the two, so a customer who buys every two months
is not "at risk" in a shop that hopes for monthly returns after five weeks, and a
weekly buyer in a quarterly shop is judged on the shop's quarter.

With ``rhythm`` = max(own median gap, goal) and ``d`` = days since the last purchase:

* ``prospect`` - never bought;
* ``new`` - one purchase day, made within one goal period;
* ``active`` - d <= 1.5 x rhythm;
* ``at_risk`` - d <= 3 x rhythm;
* ``lapsed`` - d <= 6 x rhythm;
* ``lost`` - longer.

The factors are settings (``LOYALTY_LIFECYCLE_FACTORS``).
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd

RETURN_GOALS = {"weekly": 7, "monthly": 30, "quarterly": 91}


class Stage(StrEnum):
    PROSPECT = "prospect"
    NEW = "new"
    ACTIVE = "active"
    AT_RISK = "at_risk"
    LAPSED = "lapsed"
    LOST = "lost"


def lifecycle_stage(
    purchase_days: pd.Series,
    days_since_last: pd.Series,
    own_gap_days: pd.Series,
    goal_days: int,
    factors: tuple[float, float, float] = (1.5, 3.0, 6.0),
) -> pd.Series:
    """Return each customer's stage from their purchase days, days since the last one and median gap."""
    days = days_since_last.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    count = purchase_days.to_numpy(dtype=float)
    gap = own_gap_days.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    rhythm = np.fmax(np.nan_to_num(gap, nan=0.0), goal_days)
    active, at_risk, lapsed = (f * rhythm for f in factors)
    stage = np.select(
        [
            np.isnan(days) | (count == 0),
            (count == 1) & (days <= goal_days),
            days <= active,
            days <= at_risk,
            days <= lapsed,
        ],
        [Stage.PROSPECT.value, Stage.NEW.value, Stage.ACTIVE.value, Stage.AT_RISK.value, Stage.LAPSED.value],
        default=Stage.LOST.value,
    )
    return pd.Series(stage, index=purchase_days.index, dtype="string")
