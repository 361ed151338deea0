"""What customers did with products, as weighted interactions for the recommender, as of a date.

Each purchase line, cart add or removal, wishlist add, view and review becomes one row
``(customer_id, product_id, weight, at)``. Weights follow the strength of the signal (``WEIGHTS``):
a purchase says more than a cart add, a cart add more than a wishlist, a wishlist more than a view;
a removal from the cart is a weak positive (they wanted it once); a review counts by its rating and a
low rating counts *against* the product (``REVIEW_WEIGHTS``); a returned order counts against its
products. Every weight decays with age (half-life ``half_life_days``), and nothing after the as-of
date is seen (no leakage from the future into a backfill).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from tasks.kernel.enums import EventType, OrderStatus
from tasks.profile.features import order_lines, utc_stamps

WEIGHTS = {
    "purchase": 4.0,
    EventType.CART_ADD.value: 2.0,
    EventType.WISHLIST_ADD.value: 1.5,
    EventType.VIEW.value: 0.5,
    EventType.CART_REMOVE.value: 0.25,
    "returned": -2.0,
}
REVIEW_WEIGHTS = {5: 3.0, 4: 2.0, 3: 0.5, 2: -2.0, 1: -4.0}
INTERACTION_COLUMNS = ("customer_id", "product_id", "weight", "at")
EVENT_COLUMNS = ("customer_id", "product_id", "type", "at", "rating")  # what is read of the events (rating optional)


def shop_interactions(
    orders: pd.DataFrame,
    items: pd.DataFrame,
    events: pd.DataFrame,
    as_of: date,
    half_life_days: float = 90.0,
) -> pd.DataFrame:
    """Return one weighted, decayed interaction per purchase line and behaviour event up to ``as_of``.

    ``orders``: order_id, customer_id, created_at, status; ``items``: order_id, product_id;
    ``events``: customer_id, product_id, type, at[, rating].
    """
    end = pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(days=1)
    kept = orders.loc[
        orders["status"] != OrderStatus.CANCELLED.value, ["order_id", "customer_id", "created_at", "status"]
    ]
    rows, at_order = order_lines(kept, items)
    returned = kept["status"].eq(OrderStatus.RETURNED.value).to_numpy(dtype=bool, na_value=False)[at_order]
    types, named = pd.factorize(events["type"])
    weight = np.append([WEIGHTS.get(str(t), np.nan) for t in named], np.nan)[types]  # -1 (missing): the last
    if "rating" in events.columns:
        is_review = events["type"].eq(EventType.REVIEW.value).to_numpy(dtype=bool, na_value=False)
        rating = pd.to_numeric(events["rating"].loc[is_review], errors="coerce").round()
        weight[is_review] = rating.map(REVIEW_WEIGHTS).to_numpy(dtype=float, na_value=np.nan)
    weight = np.concatenate([np.where(returned, WEIGHTS["returned"], WEIGHTS["purchase"]), weight])
    at = np.concatenate([utc_stamps(kept["created_at"])[at_order], utc_stamps(events["at"])])
    known = ~np.isnan(weight) & (at < end.to_datetime64())  # a missing time is never before the end
    # ids keep their dtype (Arrow strings stay one buffer, not a Python string per row)
    customer_ids = pd.concat([kept["customer_id"].iloc[at_order], events["customer_id"]], ignore_index=True)
    product_ids = pd.concat([items["product_id"].iloc[rows], events["product_id"]], ignore_index=True)
    if not known.all():  # (usually all are: copying the ids is the dearest step here)
        customer_ids = customer_ids.loc[known].reset_index(drop=True)
        product_ids = product_ids.loc[known].reset_index(drop=True)
        weight, at = weight[known], at[known]
    age_days = (end.value - at.view(np.int64)) / 1_000_000_000 / 86400
    return pd.DataFrame(
        {
            "customer_id": customer_ids,
            "product_id": product_ids,
            "weight": weight * np.exp2(-age_days / half_life_days),
            "at": pd.DatetimeIndex(at).tz_localize("UTC"),  # no parsing, nor to_datetime's cache of uniques
        },
        columns=list(INTERACTION_COLUMNS),
    )
