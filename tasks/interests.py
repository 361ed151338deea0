"""Interests: how much each customer cares about each category, from what they did, decayed over time.

Six signals, each counted per (customer, category) with an exponential decay of
half-life ``half_life_days`` (a purchase a year ago weighs little next to a view
this week): spend, orders, cart adds, wishlist adds, views, and well-rated reviews.
Each signal is turned into the customer's shares over categories, and the shares are
mixed with the weights below, renormalised over the signals the customer has. The
affinities of a customer sum to 1; a category they never touched has none, so a
cat owner's dog-food affinity is 0, not a small number borrowed from the shop average.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from tasks.enums import EventType

WEIGHTS = {
    "spend": 0.30,
    "orders": 0.25,
    "cart": 0.15,
    "wishlist": 0.10,
    "views": 0.10,
    "reviews": 0.10,
}
INTEREST_COLUMNS = ("customer_id", "category", "affinity")


def _decay(at: pd.Series, as_of: date, half_life_days: float) -> np.ndarray:
    age = (pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(days=1) - at).dt.total_seconds().to_numpy() / 86400
    return np.asarray(np.exp2(-np.clip(age, 0, None) / half_life_days))


def category_affinity(
    lines: pd.DataFrame, events: pd.DataFrame, categories: pd.Series, as_of: date, half_life_days: float = 90.0
) -> pd.DataFrame:
    """Return (customer_id, category, affinity) from purchase lines and behaviour events.

    ``lines``: customer_id, order_id, product_id, amount, at (one row per purchased order line);
    ``events``: customer_id, product_id, type, at, rating; ``categories``: product_id -> category.
    """
    signals = []
    bought = lines.assign(category=lines["product_id"].map(categories), w=_decay(lines["at"], as_of, half_life_days))
    signals.append(_signal(bought, "spend", bought["w"] * bought["amount"].astype(float)))
    per_order = bought.drop_duplicates(["order_id", "category"])
    signals.append(_signal(per_order, "orders", per_order["w"]))
    kinds = {
        "cart": events["type"] == EventType.CART_ADD.value,
        "wishlist": events["type"] == EventType.WISHLIST_ADD.value,
        "views": events["type"] == EventType.VIEW.value,
        "reviews": (events["type"] == EventType.REVIEW.value)
        & (pd.to_numeric(events["rating"], errors="coerce") >= 4 if "rating" in events.columns else False),
    }
    for name, mask in kinds.items():
        rows = events.loc[mask]
        rows = rows.assign(category=rows["product_id"].map(categories))
        signals.append(_signal(rows, name, pd.Series(_decay(rows["at"], as_of, half_life_days), index=rows.index)))
    found = [s for s in signals if len(s)]
    if not found:
        return pd.DataFrame({"customer_id": [], "category": [], "affinity": pd.Series(dtype="float64")})
    long = pd.concat(found, ignore_index=True)
    # a customer's weights renormalised over the signals they have
    present = long.drop_duplicates(["customer_id", "signal"])
    total_weight = present.assign(w=present["signal"].map(WEIGHTS)).groupby("customer_id")["w"].sum()
    long["part"] = long["share"] * long["signal"].map(WEIGHTS) / long["customer_id"].map(total_weight)
    out = long.groupby(["customer_id", "category"], sort=True, observed=True)["part"].sum().rename("affinity")
    return out.reset_index()[list(INTEREST_COLUMNS)]


def _signal(rows: pd.DataFrame, name: str, value: pd.Series) -> pd.DataFrame:
    """One signal's share per (customer, category): the customer's decayed amount there over their total."""
    frame = pd.DataFrame({"customer_id": rows["customer_id"], "category": rows["category"], "v": value})
    frame = frame.dropna(subset=["category"])
    frame = frame.loc[frame["v"] > 0]
    if frame.empty:
        return pd.DataFrame(columns=["customer_id", "category", "signal", "share"])
    sums = frame.groupby(["customer_id", "category"], sort=False, observed=True)["v"].sum().reset_index()
    sums["share"] = sums["v"] / sums.groupby("customer_id", observed=True)["v"].transform("sum")
    return sums.assign(signal=name)[["customer_id", "category", "signal", "share"]]


def top_category(affinity: pd.DataFrame) -> pd.Series:
    """Return each customer's category of highest affinity (ties: the alphabetically first)."""
    ranked = affinity.sort_values(["customer_id", "affinity", "category"], ascending=[True, False, True])
    first = ranked.drop_duplicates("customer_id")
    return pd.Series(first["category"].to_numpy(), index=first["customer_id"].to_numpy(), name="top_category")
