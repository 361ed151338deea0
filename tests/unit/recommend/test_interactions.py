"""The recommender's interactions: one weighted, decayed row per purchase line and event, nothing from the future."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from tasks.recommend.interactions import INTERACTION_COLUMNS, REVIEW_WEIGHTS, WEIGHTS, shop_interactions

AS_OF = date(2026, 3, 1)


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _orders(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": pd.Series([r[0] for r in rows], dtype="object"),
            "customer_id": pd.Series([r[1] for r in rows], dtype="object"),
            "created_at": pd.Series([_utc(r[2]) for r in rows], dtype="datetime64[ns, UTC]"),
            "status": pd.Series([r[3] for r in rows], dtype="object"),
        }
    )


def _items(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": pd.Series([r[0] for r in rows], dtype="object"),
            "product_id": pd.Series([r[1] for r in rows], dtype="object"),
        }
    )


def _events(rows: list[tuple[str, str, str, str, int | None]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="object"),
            "product_id": pd.Series([r[1] for r in rows], dtype="object"),
            "type": pd.Series([r[2] for r in rows], dtype="object"),
            "at": pd.Series([_utc(r[3]) for r in rows], dtype="datetime64[ns, UTC]"),
            "rating": pd.array([r[4] for r in rows], dtype="Int64"),
        }
    )


def test_a_wishlist_add_and_a_cart_removal_are_weak_positives_without_decay_at_the_end_of_the_day() -> None:
    events = _events(
        [
            ("A", "wish", "wishlist_add", "2026-03-01 23:59:59.999", None),
            ("A", "removed", "cart_remove", "2026-03-01 23:59:59.999", None),
        ]
    )

    got = shop_interactions(_orders([]), _items([]), events, AS_OF, half_life_days=90)

    weight = dict(zip(got["product_id"], got["weight"], strict=True))
    assert weight == pytest.approx({"wish": WEIGHTS["wishlist_add"], "removed": WEIGHTS["cart_remove"]}, rel=1e-6)
    assert 0 < weight["removed"] < weight["wish"]


@pytest.mark.parametrize(("rating", "expected"), [(5, 3.0), (4, 2.0), (3, 0.5), (2, -2.0), (1, -4.0)])
def test_a_review_counts_by_its_rating_and_a_poor_one_counts_against(rating: int, expected: float) -> None:
    events = _events([("A", "P1", "review", "2026-02-28 00:00", rating)])  # two days before the end: one half-life

    got = shop_interactions(_orders([]), _items([]), events, AS_OF, half_life_days=2.0)

    assert REVIEW_WEIGHTS[rating] == expected
    assert got["weight"].tolist() == pytest.approx([expected / 2])


def test_a_review_without_a_rating_says_nothing() -> None:
    events = _events([("A", "P1", "review", "2026-02-28 00:00", None)])

    assert shop_interactions(_orders([]), _items([]), events, AS_OF).empty


def test_every_line_of_an_order_is_one_interaction_and_lines_of_unknown_orders_are_left_out() -> None:
    orders = _orders([("o1", "A", "2026-03-01 12:00", "delivered")])
    items = _items([("o1", "P1"), ("o1", "P2"), ("ghost", "P3")])

    got = shop_interactions(orders, items, _events([]), AS_OF)

    assert got["customer_id"].tolist() == ["A", "A"]
    assert got["product_id"].tolist() == ["P1", "P2"]
    assert (got["weight"] > 3.9).all()  # a purchase (4) half a day old


def test_the_last_moment_of_the_as_of_day_is_seen_and_the_next_day_is_not() -> None:
    orders = _orders(
        [("late", "A", "2026-03-01 23:59:59", "placed"), ("tomorrow", "A", "2026-03-02 00:00:00", "placed")]
    )
    items = _items([("late", "P1"), ("tomorrow", "P2")])

    got = shop_interactions(orders, items, _events([]), AS_OF)

    assert got["product_id"].tolist() == ["P1"]


def test_a_shop_without_orders_or_events_has_no_interactions() -> None:
    got = shop_interactions(_orders([]), _items([]), _events([]), AS_OF)

    assert got.empty
    assert tuple(got.columns) == INTERACTION_COLUMNS
