"""The customer profile: one row per customer as of a date."""

from __future__ import annotations

from datetime import date

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import progress
from tasks.enums import OrderStatus, Table
from tasks.paths import RunPaths
from tasks.snapshot import read_table

# Orders that did not turn into a purchase do not count towards R, F or M.
NOT_PURCHASES = frozenset({OrderStatus.CANCELLED.value})

PROFILE_COLUMNS = (
    "customer_id",
    "orders",
    "first_order_at",
    "last_order_at",
    "days_since_last_order",
    "monetary_total",
    "avg_order_value",
)


def build_profile(customers: pd.DataFrame, orders: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Compute recency, frequency and monetary value for every customer as of a date.

    Customers without a purchase get 0 orders, 0 spend and no last-order date
    (``days_since_last_order`` is missing, never a made-up number).
    """
    bought = orders.loc[~orders["status"].isin(NOT_PURCHASES)]
    per_customer = bought.groupby("customer_id", sort=False).agg(
        orders=("order_id", "size"),
        first_order_at=("created_at", "min"),
        last_order_at=("created_at", "max"),
        monetary_total=("total", "sum"),
    )
    profile = customers[["customer_id"]].merge(per_customer, how="left", left_on="customer_id", right_index=True)
    profile["orders"] = profile["orders"].fillna(0).astype("int64")
    profile["monetary_total"] = profile["monetary_total"].fillna(0.0).round(2)
    profile["avg_order_value"] = (profile["monetary_total"] / profile["orders"].where(profile["orders"] > 0)).round(2)
    as_of_ts = pd.Timestamp(as_of, tz="UTC")
    last_day = profile["last_order_at"].dt.floor("D")
    profile["days_since_last_order"] = (as_of_ts - last_day).dt.days.astype("Int64")
    return profile[list(PROFILE_COLUMNS)].reset_index(drop=True)


def segment_sizes(profile: pd.DataFrame) -> dict[str, int]:
    """Count customers per recency band: the first, coarse segments."""
    days = profile["days_since_last_order"]
    return {
        "never_ordered": int(days.isna().sum()),
        "active_0_89d": int((days < 90).sum()),
        "lapsing_90_180d": int(days.between(90, 180).sum()),
        "lost_over_180d": int((days > 180).sum()),
    }


@task(cache_policy=NO_CACHE)
def profile_customers(paths: RunPaths, as_of: date) -> dict[str, int]:
    """Build the customer profile as of a date; return segment sizes."""
    progress.advance("profile")
    customers = read_table(paths, Table.CUSTOMERS, ["customer_id"])
    orders = read_table(paths, Table.ORDERS, ["order_id", "customer_id", "created_at", "status", "total"])
    profile = build_profile(customers, orders, as_of)
    paths.profile.parent.mkdir(parents=True, exist_ok=True)
    profile.to_parquet(paths.profile, index=False)
    return segment_sizes(profile)
