"""Replenishment ("automatic purchases"): products a customer re-buys at a regular interval.

For every (customer, product) bought on at least ``min_purchases`` distinct days, the usual
interval is the median gap between those days, and the next purchase is due one interval
after the last. Days are the customer's local purchase days, so two orders either side of
midnight UTC on the same local evening count once.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

REPLENISHMENT_COLUMNS = (
    "customer_id",
    "product_id",
    "purchase_days",
    "interval_days",
    "last_bought_on",
    "due_on",
    "days_until_due",
)


def replenishment(purchases: pd.DataFrame, as_of: date, min_purchases: int = 3) -> pd.DataFrame:
    """Return the usual interval and due date per (customer, product) from rows (customer_id, product_id, day).

    ``day`` is the local purchase date (datetime64, midnight). Pairs with fewer than ``min_purchases``
    distinct days are left out: two purchases are a coincidence, three a habit.
    """
    days = purchases[["customer_id", "product_id", "day"]].drop_duplicates()
    days = days.sort_values(["customer_id", "product_id", "day"])
    pair = [days["customer_id"], days["product_id"]]
    gaps = days["day"].diff().dt.days.where(days.duplicated(["customer_id", "product_id"]))
    grouped = days.assign(gap=gaps).groupby(pair, sort=False, observed=True)
    out = grouped.agg(purchase_days=("day", "size"), interval_days=("gap", "median"), last_bought_on=("day", "max"))
    out = out.loc[out["purchase_days"] >= min_purchases].reset_index()
    out["interval_days"] = out["interval_days"].round().astype("int64")
    out["due_on"] = out["last_bought_on"] + pd.to_timedelta(out["interval_days"], unit="D")
    out["days_until_due"] = (out["due_on"] - pd.Timestamp(as_of)).dt.days.astype("int64")
    return out[list(REPLENISHMENT_COLUMNS)]
