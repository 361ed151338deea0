"""Loyalty points: earned per purchase by a configurable rule, each lot expiring after a while.

Rule: ``per_unit`` points per unit of the order total, rounded down, earned on the day of the order
(the customer's day); cancelled and returned orders earn nothing. A lot expires ``valid_days``
after it was earned (on that day). The balance on a day is the sum of lots earned before it and not
yet expired; spending points is the shop's checkout's business and is not in the data contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from tasks.profile.features import NOT_PURCHASES, customers_local_day

LOT_COLUMNS = ("customer_id", "order_id", "points", "earned_on", "expires_on")


@dataclass(frozen=True)
class PointsRules:
    """How points are earned and how long they last."""

    per_unit: float = 1.0
    valid_days: int = 365


def points_ledger(orders: pd.DataFrame, customers: pd.DataFrame, rules: PointsRules) -> pd.DataFrame:
    """Return one lot per paying order: (customer_id, order_id, points, earned_on, expires_on)."""
    paying = orders.loc[~orders["status"].astype(str).isin(NOT_PURCHASES)]
    # rounded to a millionth before flooring: 90.0 * 0.7 is 62.99999999999999 in binary floating point
    points = np.floor(np.round(paying["total"].astype(float).to_numpy() * rules.per_unit, 6)).astype("int64")
    earned = customers_local_day(pd.to_datetime(paying["created_at"], utc=True), paying["customer_id"], customers)
    lots = pd.DataFrame(
        {
            "customer_id": paying["customer_id"].to_numpy(),
            "order_id": paying["order_id"].astype(str).to_numpy(),
            "points": points,
            "earned_on": earned.to_numpy(),
        }
    )
    lots["expires_on"] = lots["earned_on"] + pd.Timedelta(days=rules.valid_days)
    return lots.loc[lots["points"] > 0, list(LOT_COLUMNS)].reset_index(drop=True)


def balance(lots: pd.DataFrame, day: date) -> pd.Series:
    """Points each customer holds on ``day``: lots earned before it and expiring after it."""
    at = pd.Timestamp(day)
    live = lots.loc[(lots["earned_on"] < at) & (lots["expires_on"] > at)]
    return live.groupby("customer_id", observed=True)["points"].sum()


def points_expiring(lots: pd.DataFrame) -> pd.DataFrame:
    """Return (customer_id, day, points): how many points lapse on each day, per customer."""
    out = lots.groupby(["customer_id", "expires_on"], observed=True)["points"].sum().reset_index()
    return out.rename(columns={"expires_on": "day"})
