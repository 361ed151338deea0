"""Unhappy customers: what went wrong, for whom, and when, so service recovery can say the right thing.

Incidents, each with its date and reason:

* ``low_rating`` - a review rated at or below ``max_rating`` (default 2 of 5);
* ``late_delivery`` - delivered after the promised date (the orders' ``promised_delivery_at``
  column when the shop sends it), else more than ``late_after_days`` after the order;
* ``returned`` - the order came back;
* ``cancelled`` - cancelled after payment (an unpaid order the customer let lapse is not an incident).

A customer is unhappy while their latest incident is at most ``window_days`` old.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from tasks.enums import EventType, OrderStatus

INCIDENT_COLUMNS = ("customer_id", "order_id", "product_id", "reason", "at")


def incidents(
    orders: pd.DataFrame,
    order_events: pd.DataFrame,
    events: pd.DataFrame,
    max_rating: int = 2,
    late_after_days: int = 7,
) -> pd.DataFrame:
    """Return every incident (customer_id, order_id, product_id, reason, at), oldest first."""
    frames = []
    if "rating" in events.columns:
        low = events.loc[(events["type"] == EventType.REVIEW.value) & (events["rating"] <= max_rating)]
        frames.append(low.assign(order_id=None, reason="low_rating")[list(INCIDENT_COLUMNS)])
    wanted = [s.value for s in (OrderStatus.DELIVERED, OrderStatus.RETURNED, OrderStatus.CANCELLED, OrderStatus.PAID)]
    relevant = order_events.loc[order_events["status"].isin(wanted), ["order_id", "status", "at"]]
    if relevant.empty:
        by_status = pd.DataFrame(index=pd.Index([], name="order_id"))
    else:
        by_status = relevant.groupby(["order_id", "status"], sort=False, observed=True)["at"].min().unstack("status")
    facts = orders.set_index("order_id")[["customer_id", "created_at"]].join(by_status, how="inner")

    def at(status: OrderStatus) -> pd.Series:
        if status.value in facts.columns:
            return pd.to_datetime(facts[status.value], utc=True)
        return pd.Series(pd.NaT, index=facts.index, dtype="datetime64[ns, UTC]")

    delivered = at(OrderStatus.DELIVERED)
    if "promised_delivery_at" in orders.columns:
        promised = pd.to_datetime(orders.set_index("order_id")["promised_delivery_at"], errors="coerce", utc=True)
        promise = promised.reindex(facts.index)
    else:
        promise = pd.Series(pd.NaT, index=facts.index, dtype="datetime64[ns, UTC]")
    promise = promise.fillna(facts["created_at"] + pd.Timedelta(days=late_after_days))
    cases = {
        "late_delivery": (delivered > promise, delivered),
        "returned": (at(OrderStatus.RETURNED).notna(), at(OrderStatus.RETURNED)),
        "cancelled": (at(OrderStatus.CANCELLED).notna() & at(OrderStatus.PAID).notna(), at(OrderStatus.CANCELLED)),
    }
    for reason, (hit, when) in cases.items():
        rows = facts.loc[hit.fillna(False).astype(bool)]
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": rows["customer_id"].to_numpy(),
                    "order_id": rows.index.to_numpy(),
                    "product_id": pd.NA,
                    "reason": reason,
                    "at": when.loc[rows.index].to_numpy(),
                }
            )
        )
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in INCIDENT_COLUMNS})
    # column by column: frames where order_id or product_id is all missing keep the column's dtype
    out = pd.DataFrame(
        {c: np.concatenate([f[c].to_numpy(dtype=object) for f in frames]) for c in INCIDENT_COLUMNS if c != "at"}
    )
    out["at"] = pd.to_datetime(pd.concat([pd.to_datetime(f["at"], utc=True) for f in frames], ignore_index=True))
    return out.sort_values(["at", "customer_id"], kind="stable").reset_index(drop=True)


def latest_incident(found: pd.DataFrame, as_of: date, window_days: int = 90) -> pd.DataFrame:
    """Return per customer: unhappy (latest incident within the window), its reason and days since it."""
    if found.empty:
        return pd.DataFrame(columns=["customer_id", "unhappy", "unhappy_reason", "days_since_unhappy"])
    last = found.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    days = (pd.Timestamp(as_of, tz="UTC") - last["at"].dt.floor("D")).dt.days.astype("Int64")
    return pd.DataFrame(
        {
            "customer_id": last.index,
            "unhappy": (days <= window_days).to_numpy(dtype=bool),
            "unhappy_reason": last["reason"].astype("string").to_numpy(),
            "days_since_unhappy": days.to_numpy(),
        }
    )
