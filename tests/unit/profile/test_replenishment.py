"""Replenishment: the usual interval between a customer's purchase days of a product and when it is due again."""

from __future__ import annotations

from datetime import date

import pandas as pd

from tasks.profile.replenishment import REPLENISHMENT_COLUMNS, replenishment

AS_OF = date(2026, 3, 1)


def _purchases(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="object"),
            "product_id": pd.Series([r[1] for r in rows], dtype="object"),
            "day": pd.Series([pd.Timestamp(r[2]) for r in rows], dtype="datetime64[ns]"),
        }
    )


def test_two_customers_buying_one_product_each_keep_their_own_rhythm() -> None:
    # A every 10 days, B every 20 days, their days interleaved
    purchases = _purchases(
        [
            ("A", "food", "2026-02-01"),
            ("B", "food", "2026-01-15"),
            ("A", "food", "2026-02-11"),
            ("B", "food", "2026-02-04"),
            ("A", "food", "2026-02-21"),
            ("B", "food", "2026-02-24"),
        ]
    )

    due = replenishment(purchases, AS_OF).set_index("customer_id")

    assert due["interval_days"].to_dict() == {"A": 10, "B": 20}
    assert due["due_on"].to_dict() == {"A": pd.Timestamp("2026-03-03"), "B": pd.Timestamp("2026-03-16")}
    assert due["days_until_due"].to_dict() == {"A": 2, "B": 15}


def test_the_median_gap_ignores_one_long_break() -> None:
    purchases = _purchases(
        [("A", "food", d) for d in ("2025-11-01", "2025-11-11", "2025-11-21", "2026-01-01")]
    )  # gaps 10, 10, 41

    due = replenishment(purchases, AS_OF)

    assert due[["purchase_days", "interval_days"]].to_dict("records") == [{"purchase_days": 4, "interval_days": 10}]


def test_an_overdue_product_has_negative_days_until_due() -> None:
    purchases = _purchases([("A", "food", d) for d in ("2026-01-01", "2026-01-08", "2026-01-15")])

    due = replenishment(purchases, AS_OF)

    assert due["due_on"].tolist() == [pd.Timestamp("2026-01-22")]
    assert due["days_until_due"].tolist() == [-38]


def test_a_shop_that_calls_two_purchases_a_habit_gets_them() -> None:
    purchases = _purchases([("A", "toy", "2026-01-01"), ("A", "toy", "2026-02-01")])

    assert replenishment(purchases, AS_OF).empty  # the default: three days make a habit
    assert replenishment(purchases, AS_OF, min_purchases=2)["due_on"].tolist() == [pd.Timestamp("2026-03-04")]


def test_a_shop_without_purchases_has_nothing_due() -> None:
    due = replenishment(_purchases([]), AS_OF)

    assert due.empty
    assert tuple(due.columns) == REPLENISHMENT_COLUMNS
