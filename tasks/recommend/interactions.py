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
    lines = pd.DataFrame(
        {
            "customer_id": kept["customer_id"].to_numpy()[at_order],
            "product_id": items["product_id"].to_numpy()[rows],
            "weight": np.where(returned, WEIGHTS["returned"], WEIGHTS["purchase"]),
            "at": utc_stamps(kept["created_at"])[at_order],
        }
    )
    weight = events["type"].map(WEIGHTS).to_numpy(dtype=float, na_value=np.nan)
    if "rating" in events.columns:
        rating = pd.to_numeric(events["rating"], errors="coerce").round()
        by_rating = rating.map(REVIEW_WEIGHTS).to_numpy(dtype=float, na_value=np.nan)
        is_review = events["type"].eq(EventType.REVIEW.value).to_numpy(dtype=bool, na_value=False)
        weight = np.where(is_review, by_rating, weight)
    behaviour = pd.DataFrame(
        {
            "customer_id": events["customer_id"].to_numpy(),
            "product_id": events["product_id"].to_numpy(),
            "weight": weight,
            "at": utc_stamps(events["at"]),
        }
    )
    both = pd.concat([lines, behaviour], ignore_index=True)
    both["at"] = pd.to_datetime(both["at"], utc=True)
    both = both.loc[both["weight"].notna() & (both["at"] < end)].reset_index(drop=True)
    age_days = (end - both["at"]).dt.total_seconds().to_numpy() / 86400
    both["weight"] = both["weight"].to_numpy() * np.exp2(-age_days / half_life_days)
    return both[list(INTERACTION_COLUMNS)]
