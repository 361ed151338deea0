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

from tasks.kernel.enums import EventType

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
    Customers and categories are turned into integer codes once; every sum is a ``bincount``
    over a (customer, category) code, so ten million rows take seconds, not minutes.
    """
    customer_codes, customers = pd.factorize(pd.concat([lines["customer_id"], events["customer_id"]]), sort=True)
    in_lines, in_events = customer_codes[: len(lines)], customer_codes[len(lines) :]
    category_of, names = _category_codes(pd.concat([lines["product_id"], events["product_id"]]), categories)
    cat_lines, cat_events = category_of[: len(lines)], category_of[len(lines) :]
    width = max(len(names), 1)

    signals: list[tuple[str, np.ndarray, np.ndarray]] = []  # (name, pair code, value)
    decay = _decay(lines["at"], as_of, half_life_days)
    pair = np.where(cat_lines >= 0, in_lines.astype(np.int64) * width + cat_lines, -1)  # -1: no category
    signals.append(("spend", pair, decay * lines["amount"].to_numpy(dtype=float)))
    order_codes = pd.factorize(lines["order_id"])[0].astype(np.int64)
    first_in_order = ~pd.Series(order_codes * width + cat_lines).duplicated().to_numpy()  # one order counts once
    signals.append(("orders", pair[first_in_order], decay[first_in_order]))
    kind = events["type"]
    rating = pd.to_numeric(events["rating"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    event_pair = np.where(cat_events >= 0, in_events.astype(np.int64) * width + cat_events, -1)
    event_decay = _decay(events["at"], as_of, half_life_days)
    masks = {
        "cart": text_equals(kind, EventType.CART_ADD.value),
        "wishlist": text_equals(kind, EventType.WISHLIST_ADD.value),
        "views": text_equals(kind, EventType.VIEW.value),
        "reviews": (text_equals(kind, EventType.REVIEW.value)) & (rating >= 4),
    }
    for name, mask in masks.items():
        signals.append((name, event_pair[mask], event_decay[mask]))

    n_customers = len(customers)
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    weight_present = np.zeros(n_customers)
    for name, codes, value in signals:
        keep = (codes >= 0) & (value > 0)
        codes, value = codes[keep], value[keep]
        if codes.size == 0:
            continue
        pairs, sums = _sum_by_pair(codes, value, n_customers * width)
        owner = pairs // width
        totals = np.bincount(owner, weights=sums, minlength=n_customers)
        weight_present[np.unique(owner)] += WEIGHTS[name]
        parts.append((pairs, WEIGHTS[name] * sums / totals[owner]))
    if not parts:
        return pd.DataFrame({"customer_id": [], "category": [], "affinity": pd.Series(dtype="float64")})
    pairs, affinity = _sum_by_pair(
        np.concatenate([p for p, _ in parts]), np.concatenate([v for _, v in parts]), n_customers * width
    )
    owner = pairs // width
    # a customer's weights renormalised over the signals they have
    affinity = affinity / weight_present[owner]
    return pd.DataFrame(
        {
            "customer_id": np.asarray(customers)[owner],
            "category": np.asarray(names)[pairs % width],
            "affinity": affinity,
        }
    )


# Up to this many (customer, category) cells, sums go into one dense array (8 bytes a cell, 400 MB at
# most, for a moment) instead of sorting tens of millions of codes: a million customers in 40 categories fit.
DENSE_PAIRS = 50_000_000


def _sum_by_pair(codes: np.ndarray, values: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the distinct pair codes, ascending, and the sum of the (positive) values of each.

    Dense by ``bincount`` when the cells fit ``DENSE_PAIRS``, else by sorting the codes; the same sums
    either way (each adds its values in the order given).
    """
    if cells <= DENSE_PAIRS:
        sums = np.bincount(codes, weights=values, minlength=cells)
        pairs = np.flatnonzero(sums)  # every value is above zero: a cell's sum is too exactly where it has one
        return pairs, sums[pairs]
    pairs, inverse = np.unique(codes, return_inverse=True)
    return pairs, np.bincount(inverse, weights=values)


def text_equals(column: pd.Series, value: str) -> np.ndarray:
    """Where a text column equals ``value`` (missing: no), as a bool array compared as stored: no Python string
    per row (the planner's triggers use it on the events too)."""
    return np.asarray(column.eq(value).to_numpy(dtype=bool, na_value=False))


def _category_codes(products: pd.Series, categories: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return each product's category code (-1: unknown product or no category) and the sorted category names."""
    known = categories.dropna()
    codes, names = pd.factorize(known, sort=True)
    by_product = pd.Series(codes, index=known.index)
    product_codes, product_names = pd.factorize(products)
    per_unique = by_product.reindex(product_names).fillna(-1).to_numpy(dtype=np.int64)
    found = np.where(product_codes >= 0, per_unique[np.maximum(product_codes, 0)], -1)
    return np.asarray(found, dtype=np.int64), np.asarray(names, dtype=object)


def top_category(affinity: pd.DataFrame) -> pd.Series:
    """Return each customer's category of highest affinity; ties go to the first row (``category_affinity``
    lists a customer's categories alphabetically, so the alphabetically first)."""
    if affinity.empty:
        return pd.Series(dtype="object", name="top_category")
    best = affinity.groupby("customer_id", sort=False)["affinity"].idxmax()
    return pd.Series(affinity.loc[best.to_numpy(), "category"].to_numpy(), index=best.index, name="top_category")
