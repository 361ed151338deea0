"""Unhappy customers: what went wrong, for whom, and when, so service recovery can say the right thing.

Incidents, each with its date and reason:

* ``low_rating`` - a review rated at or below ``max_rating`` (default 2 of 5);
* ``late_delivery`` - delivered after the promised date (the orders' ``promised_delivery_at``
  column when the shop sends it), else more than ``late_after_days`` after the order;
* ``returned`` - the order came back;
* ``cancelled`` - cancelled after payment (an unpaid order the customer let lapse is not an incident);
* ``low_score`` - a detractor's answer to the after-delivery survey (0 to ``max_score``, default 6 of 10),
  on the day of the answer. The answers are state (``tasks/state/surveys.py``), above this layer: the
  daily run writes them into the run's snapshot (``SURVEY_ANSWERS_FILE``, no comments) before the
  profile is built, so the profile reads them as data, like any table of the day.

A customer is unhappy while their latest incident is at most ``window_days`` old.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from tasks.kernel.enums import EventType, OrderStatus

INCIDENT_COLUMNS = ("customer_id", "order_id", "product_id", "reason", "at")
# the survey answers of the run, in its snapshot folder: customer_id, order_id, score, answered_at (UTC)
SURVEY_ANSWERS_FILE = "survey_answers.parquet"
ANSWER_COLUMNS = ("customer_id", "order_id", "score", "answered_at")
DETRACTOR_MAX_SCORE = 6


def incidents(
    orders: pd.DataFrame,
    order_events: pd.DataFrame,
    events: pd.DataFrame,
    max_rating: int = 2,
    late_after_days: int = 7,
    answers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Return every incident (customer_id, order_id, product_id, reason, at), oldest first.

    ``answers``: survey answers (``ANSWER_COLUMNS``); a score of ``DETRACTOR_MAX_SCORE`` or less is ``low_score``.
    """
    frames = []
    if answers is not None and len(answers):
        low = answers.loc[answers["score"].astype(int) <= DETRACTOR_MAX_SCORE]
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": low["customer_id"].to_numpy(),
                    "order_id": low["order_id"].to_numpy(),
                    "product_id": pd.NA,
                    "reason": "low_score",
                    "at": pd.to_datetime(low["answered_at"], utc=True).to_numpy(),
                }
            )
        )
    if "rating" in events.columns:
        low = events.loc[(events["type"] == EventType.REVIEW.value) & (events["rating"] <= max_rating)]
        frames.append(low.assign(order_id=None, reason="low_rating")[list(INCIDENT_COLUMNS)])
    facts = orders[["order_id", "customer_id", "created_at"]].set_index("order_id")
    # each status's first time per order, by integer position: no string group-by over millions of events
    position = facts.index.get_indexer(pd.Index(order_events["order_id"]))
    stamps = pd.to_datetime(order_events["at"], utc=True).to_numpy(dtype="datetime64[ns]").view("int64")
    status_codes, statuses = pd.factorize(order_events["status"])
    status_code = {str(name): code for code, name in enumerate(statuses)}

    def at(wanted: OrderStatus) -> pd.Series:
        first = np.full(len(facts), np.iinfo(np.int64).max, dtype=np.int64)
        hit = (status_codes == status_code.get(wanted.value, -2)) & (position >= 0)
        np.minimum.at(first, position[hit], stamps[hit])
        seen = first != np.iinfo(np.int64).max
        values = np.where(seen, first, np.iinfo(np.int64).min).view("datetime64[ns]")  # int64 min is NaT
        return pd.Series(pd.to_datetime(values, utc=True), index=facts.index)

    delivered = at(OrderStatus.DELIVERED)
    if "promised_delivery_at" in orders.columns:
        # the array, not to_numpy(): that makes an object array of Timestamps, one by one (~5 s at 2M orders)
        promise = pd.Series(
            pd.to_datetime(orders["promised_delivery_at"], errors="coerce", utc=True).array, index=facts.index
        )
    else:
        promise = pd.Series(pd.NaT, index=facts.index, dtype="datetime64[ns, UTC]")
    promise = promise.fillna(facts["created_at"] + pd.Timedelta(days=late_after_days))
    returned, cancelled, paid = at(OrderStatus.RETURNED), at(OrderStatus.CANCELLED), at(OrderStatus.PAID)
    cases = {
        "late_delivery": (delivered > promise, delivered),
        "returned": (returned.notna(), returned),
        "cancelled": (cancelled.notna() & paid.notna(), cancelled),
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
                    "at": when.loc[rows.index].array,  # the times as they are: to_numpy makes a Timestamp each
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
