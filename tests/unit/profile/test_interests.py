"""Category interests: decayed signals mixed by weight, renormalised over the signals a customer has."""

from __future__ import annotations

from datetime import date
from unittest.mock import patch

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.profile import interests
from tasks.profile.interests import INTEREST_COLUMNS, category_affinity, top_category

AS_OF = date(2026, 3, 1)
CATEGORIES = pd.Series({"book1": "books", "book2": "books", "game1": "games", "toy1": "toys"})


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _lines(rows: list[tuple[str, str, str, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="object"),
            "order_id": pd.Series([r[1] for r in rows], dtype="object"),
            "product_id": pd.Series([r[2] for r in rows], dtype="object"),
            "amount": pd.Series([r[3] for r in rows], dtype="float64"),
            "at": pd.Series([_utc(r[4]) for r in rows], dtype="datetime64[ns, UTC]"),
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


def _affinity(frame: pd.DataFrame, customer: str) -> dict[str, float]:
    mine = frame.loc[frame["customer_id"] == customer]
    return dict(zip(mine["category"], mine["affinity"], strict=True))


def test_a_purchase_and_a_view_mix_by_the_weights_of_the_signals_the_customer_has() -> None:
    # given: books bought (spend 0.30 + orders 0.25), games only viewed (views 0.10), all on the same day
    lines = _lines([("A", "o1", "book1", 25.0, "2026-02-20")])
    events = _events([("A", "game1", "view", "2026-02-20", None)])

    # when
    affinity = category_affinity(lines, events, CATEGORIES, AS_OF)

    # then: weights renormalised over the three signals A has (0.65)
    assert _affinity(affinity, "A") == pytest.approx({"books": 0.55 / 0.65, "games": 0.10 / 0.65})


def test_two_lines_of_one_category_in_one_order_count_as_one_order() -> None:
    # books: one order of two lines (10 + 10); games: one order of one line (20)
    lines = _lines(
        [
            ("A", "o1", "book1", 10.0, "2026-02-20"),
            ("A", "o1", "book2", 10.0, "2026-02-20"),
            ("A", "o2", "game1", 20.0, "2026-02-20"),
        ]
    )

    affinity = category_affinity(lines, _events([]), CATEGORIES, AS_OF)

    # spend splits 20/20 and orders 1/1: had the lines counted as orders, books would lead
    assert _affinity(affinity, "A") == pytest.approx({"books": 0.5, "games": 0.5})


def test_a_signal_one_half_life_older_weighs_half() -> None:
    lines = _lines(
        [
            ("A", "o1", "book1", 30.0, "2026-03-01"),
            ("A", "o2", "game1", 30.0, "2025-12-01"),  # 90 days earlier
        ]
    )

    affinity = category_affinity(lines, _events([]), CATEGORIES, AS_OF, half_life_days=90)

    assert _affinity(affinity, "A") == pytest.approx({"books": 2 / 3, "games": 1 / 3})


def test_only_well_rated_reviews_show_interest_and_carts_and_wishlists_do() -> None:
    events = _events(
        [
            ("unhappy", "book1", "review", "2026-02-20", 2),
            ("pleased", "book1", "review", "2026-02-20", 4),
            ("shopper", "toy1", "cart_add", "2026-02-20", None),
            ("dreamer", "game1", "wishlist_add", "2026-02-20", None),
        ]
    )

    affinity = category_affinity(_lines([]), events, CATEGORIES, AS_OF)

    assert sorted(zip(affinity["customer_id"], affinity["category"], affinity["affinity"], strict=True)) == [
        ("dreamer", "games", 1.0),
        ("pleased", "books", 1.0),
        ("shopper", "toys", 1.0),
    ]  # a 2-star review is no interest: "unhappy" has none at all


def test_a_shop_without_purchases_or_events_has_no_interests() -> None:
    affinity = category_affinity(_lines([]), _events([]), CATEGORIES, AS_OF)

    assert affinity.empty
    assert tuple(affinity.columns) == INTEREST_COLUMNS
    assert top_category(affinity).empty


def test_the_top_category_of_a_tie_is_the_alphabetically_first() -> None:
    lines = _lines([("A", "o1", "toy1", 10.0, "2026-02-20"), ("A", "o2", "book1", 10.0, "2026-02-20")])

    affinity = category_affinity(lines, _events([]), CATEGORIES, AS_OF)

    assert _affinity(affinity, "A") == pytest.approx({"books": 0.5, "toys": 0.5})
    assert top_category(affinity).to_dict() == {"A": "books"}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "C", "D"]),
            st.sampled_from(["o1", "o2", "o3"]),
            st.sampled_from([*CATEGORIES.index, "unknown"]),
            st.floats(0.5, 500),
            st.integers(0, 400),
        ),
        max_size=30,
    ),
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "E"]),
            st.sampled_from([*CATEGORIES.index, "unknown"]),
            st.sampled_from(["view", "cart_add", "wishlist_add", "review"]),
            st.integers(0, 400),
            st.one_of(st.none(), st.integers(1, 5)),
        ),
        max_size=30,
    ),
)
def test_sums_in_one_dense_array_and_by_sorted_codes_are_the_same_to_the_last_bit(
    lines: list[tuple[str, str, str, float, int]], events: list[tuple[str, str, str, int, int | None]]
) -> None:
    # given: a shop's purchase lines and events (days before the date)
    day = pd.Timestamp(AS_OF)

    def stamp(days: int) -> str:
        return str((day - pd.Timedelta(days=days)).date())

    bought = _lines([(c, o, p, a, stamp(d)) for c, o, p, a, d in lines])
    seen = _events([(c, p, t, stamp(d), r) for c, p, t, d, r in events])

    # when: the pairs summed densely (the shop fits), and by sorting (a shop too big for the dense array)
    dense = category_affinity(bought, seen, CATEGORIES, AS_OF)
    with patch.object(interests, "DENSE_PAIRS", 0):
        sorted_ = category_affinity(bought, seen, CATEGORIES, AS_OF)

    # then: the same rows, the same affinities exactly
    pd.testing.assert_frame_equal(dense, sorted_, check_exact=True)
