"""Incidents (low rating, late delivery, return, paid cancellation) and who is unhappy as of a day."""

from __future__ import annotations

from datetime import date

import pandas as pd

from tasks.profile.unhappy import incidents, latest_incident


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _orders(rows: list[tuple[str, str, str]], promised: list[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "order_id": [r[0] for r in rows],
            "customer_id": [r[1] for r in rows],
            "created_at": pd.Series([_utc(r[2]) for r in rows], dtype="datetime64[ns, UTC]"),
            "status": ["delivered"] * len(rows),
        }
    )
    return frame if promised is None else frame.assign(promised_delivery_at=promised)


def _order_events(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": pd.Series([r[0] for r in rows], dtype="object"),
            "status": pd.Series([r[1] for r in rows], dtype="object"),
            "at": pd.Series([_utc(r[2]) for r in rows], dtype="datetime64[ns, UTC]"),
        }
    )


def _reviews(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="object"),
            "product_id": pd.Series(["P1"] * len(rows), dtype="object"),
            "type": pd.Series(["review"] * len(rows), dtype="object"),
            "at": pd.Series([_utc(r[1]) for r in rows], dtype="datetime64[ns, UTC]"),
            "rating": pd.array([r[2] for r in rows], dtype="Int64"),
        }
    )


NO_ORDERS = _orders([])
NO_ORDER_EVENTS = _order_events([])
NO_REVIEWS = _reviews([])


def _found(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["customer_id"], frame["reason"], strict=True))


def test_a_three_star_review_is_an_incident_only_for_a_shop_that_says_so() -> None:
    reviews = _reviews([("A", "2026-02-20 12:00", 3)])

    assert _found(incidents(NO_ORDERS, NO_ORDER_EVENTS, reviews)) == []
    assert _found(incidents(NO_ORDERS, NO_ORDER_EVENTS, reviews, max_rating=3)) == [("A", "low_rating")]


def test_without_a_promised_date_the_shops_own_delivery_time_decides_what_is_late() -> None:
    orders = _orders([("o1", "A", "2026-02-01 10:00")])
    events = _order_events([("o1", "delivered", "2026-02-06 10:00")])  # five days after the order

    assert _found(incidents(orders, events, NO_REVIEWS)) == []  # within the default seven days
    assert _found(incidents(orders, events, NO_REVIEWS, late_after_days=3)) == [("A", "late_delivery")]


def test_a_promised_date_wins_over_the_default_delivery_time() -> None:
    orders = _orders(
        [("far", "A", "2026-02-01 10:00"), ("near", "B", "2026-02-01 10:00")],
        promised=["2026-02-15T23:59:59Z", "2026-02-02T23:59:59Z"],
    )
    events = _order_events([("far", "delivered", "2026-02-11 10:00"), ("near", "delivered", "2026-02-03 10:00")])

    found = incidents(orders, events, NO_REVIEWS)

    # ten days is on time against a 15 February promise; two days is late against a 2 February one
    assert _found(found) == [("B", "late_delivery")]
    assert found["order_id"].tolist() == ["near"]


def test_the_first_delivery_counts_and_events_of_unknown_orders_are_ignored() -> None:
    orders = _orders([("o1", "A", "2026-02-01 10:00")])
    events = _order_events(
        [
            ("o1", "delivered", "2026-02-03 10:00"),
            ("o1", "delivered", "2026-02-20 10:00"),  # a repeated status update, not a late delivery
            ("ghost", "returned", "2026-02-05 10:00"),
        ]
    )

    assert incidents(orders, events, NO_REVIEWS).empty


def test_the_latest_incident_decides_the_reason_and_the_window_includes_its_last_day() -> None:
    orders = _orders([("o1", "A", "2026-01-01 10:00")])
    events = _order_events([("o1", "returned", "2026-01-10 09:00")])
    reviews = _reviews([("A", "2026-01-30 18:00", 1), ("B", "2026-01-29 08:00", 2)])
    found = incidents(orders, events, reviews)

    latest = latest_incident(found, date(2026, 3, 1), window_days=30).set_index("customer_id")

    assert latest.loc["A", "unhappy_reason"] == "low_rating"
    assert latest.loc["A", "days_since_unhappy"] == 30
    assert bool(latest.loc["A", "unhappy"])  # exactly 30 days: still inside a 30-day window
    assert latest.loc["B", "days_since_unhappy"] == 31
    assert not bool(latest.loc["B", "unhappy"])


def test_a_shop_without_incidents_has_nobody_unhappy() -> None:
    latest = latest_incident(incidents(NO_ORDERS, NO_ORDER_EVENTS, NO_REVIEWS), date(2026, 3, 1))

    assert latest.empty
    assert list(latest.columns) == ["customer_id", "unhappy", "unhappy_reason", "days_since_unhappy"]
