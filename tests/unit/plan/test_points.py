"""Loyalty points: lots earned per paying order, spending and adjustments taking the oldest points first, the
balance on a day (earned - spent - expired), and what really lapses when."""

from __future__ import annotations

from datetime import date

import pandas as pd

from tasks.kernel.enums import PointsBasis
from tasks.plan.points import (
    LOT_COLUMNS,
    PointsRules,
    balance,
    points_detail,
    points_earned,
    points_expiring,
    points_ledger,
    points_taken,
    read_points_detail,
)

CUSTOMERS = pd.DataFrame({"customer_id": ["C1", "C2"], "timezone": ["Europe/Warsaw", "America/New_York"]})


def _orders(rows: list[tuple[object, str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": [r[0] for r in rows],
            "customer_id": [r[1] for r in rows],
            "created_at": pd.Series([pd.Timestamp(r[2], tz="UTC") for r in rows], dtype="datetime64[ns, UTC]"),
            "status": [r[3] for r in rows],
            "total": [r[4] for r in rows],
        }
    )


def test_an_order_of_a_customer_not_in_the_customers_table_earns_on_its_utc_day() -> None:
    # 02:00 UTC on 10 January is still 9 January in New York
    orders = _orders([(101, "C2", "2026-01-10 02:00", "paid", 40.0), (102, "C9", "2026-01-10 02:00", "paid", 40.0)])

    lots = points_ledger(orders, CUSTOMERS, PointsRules())

    assert lots["order_id"].tolist() == ["101", "102"]  # order ids as text
    assert lots["earned_on"].tolist() == [pd.Timestamp("2026-01-09"), pd.Timestamp("2026-01-10")]
    assert list(lots.columns) == list(LOT_COLUMNS)


def test_a_fractional_rate_earns_the_exact_product_rounded_down() -> None:
    orders = _orders([("O1", "C1", "2026-01-10 12:00", "delivered", 90.0)])

    lots = points_ledger(orders, CUSTOMERS, PointsRules(per_unit=0.7))

    assert lots["points"].tolist() == [63]


def test_the_balance_sums_every_live_lot_of_a_customer() -> None:
    orders = _orders(
        [
            ("O1", "C1", "2026-01-01 12:00", "delivered", 100.0),  # lapses on 31 January
            ("O2", "C1", "2026-01-20 12:00", "delivered", 30.0),  # lapses on 19 February
            ("O3", "C2", "2026-01-20 17:00", "delivered", 5.0),
        ]
    )
    lots = points_ledger(orders, CUSTOMERS, PointsRules(per_unit=1.0, valid_days=30))

    assert balance(lots, date(2026, 1, 25)).to_dict() == {"C1": 130, "C2": 5}
    assert balance(lots, date(2026, 1, 31)).to_dict() == {"C1": 30, "C2": 5}  # the first lot lapsed today
    assert balance(lots, date(2026, 3, 1)).empty


def test_points_lapsing_on_one_day_are_added_up_per_customer() -> None:
    orders = _orders(
        [
            ("O1", "C1", "2026-01-01 09:00", "delivered", 10.0),
            ("O2", "C1", "2026-01-01 15:00", "delivered", 20.0),
            ("O3", "C1", "2026-01-02 15:00", "delivered", 5.0),
            ("O4", "C2", "2026-01-01 18:00", "delivered", 7.0),
        ]
    )
    lots = points_ledger(orders, CUSTOMERS, PointsRules(valid_days=10))

    lapsing = points_expiring(lots)

    assert sorted(zip(lapsing["customer_id"], lapsing["day"].dt.strftime("%m-%d"), lapsing["points"], strict=True)) == [
        ("C1", "01-11", 30),
        ("C1", "01-12", 5),
        ("C2", "01-11", 7),
    ]


def test_a_shop_whose_orders_were_all_cancelled_or_returned_has_no_points() -> None:
    orders = _orders(
        [("O1", "C1", "2026-01-01 09:00", "cancelled", 10.0), ("O2", "C1", "2026-01-01 09:00", "returned", 20.0)]
    )

    lots = points_ledger(orders, CUSTOMERS, PointsRules())

    assert lots.empty
    assert balance(lots, date(2026, 1, 5)).empty
    assert points_expiring(lots).empty


# --- spending and adjustments -----------------------------------------------------------------------------------

RULES = PointsRules(per_unit=1.0, valid_days=30)


def _movements(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """``point_movements`` rows: (customer, at, kind, signed points)."""
    return pd.DataFrame(
        {
            "movement_id": [f"M{n}" for n in range(len(rows))],
            "customer_id": [r[0] for r in rows],
            "at": pd.Series([pd.Timestamp(r[1], tz="UTC") for r in rows], dtype="datetime64[ns, UTC]"),
            "kind": [r[2] for r in rows],
            "points": pd.array([r[3] for r in rows], dtype="Int64"),
            "order_id": pd.Series([None] * len(rows), dtype=object),
        }
    )


def _book(
    orders: list[tuple[object, str, str, str, float]], movements: list[tuple[str, str, str, int]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    moved = _movements(movements)
    return points_ledger(_orders(orders), CUSTOMERS, RULES, moved), points_taken(moved, CUSTOMERS)


def _lapsing(lots: pd.DataFrame, taken: pd.DataFrame) -> list[tuple[str, str, int]]:
    out = points_expiring(lots, taken)
    return list(zip(out["customer_id"], out["day"].dt.strftime("%m-%d"), out["points"].astype(int), strict=True))


def test_points_spent_before_they_expire_never_expire() -> None:
    # 100 earned on 1 January (lapse 31 January), all 100 spent on 20 January
    lots, taken = _book(
        [("O1", "C1", "2026-01-01 12:00", "delivered", 100.0)], [("C1", "2026-01-20 12:00", "spent", -100)]
    )

    assert _lapsing(lots, taken) == []
    assert balance(lots, date(2026, 1, 19), taken).to_dict() == {"C1": 100}
    assert balance(lots, date(2026, 1, 21), taken).empty


def test_a_partial_spend_takes_the_oldest_points_first_and_expiry_takes_only_what_is_left() -> None:
    # 100 on 1 January (lapse 31 January), 50 on 20 January (lapse 19 February); 70 spent on 25 January
    lots, taken = _book(
        [("O1", "C1", "2026-01-01 12:00", "delivered", 100.0), ("O2", "C1", "2026-01-20 12:00", "delivered", 50.0)],
        [("C1", "2026-01-25 12:00", "spent", -70)],
    )

    assert balance(lots, date(2026, 1, 26), taken).to_dict() == {"C1": 80}  # 150 earned - 70 spent
    assert _lapsing(lots, taken) == [("C1", "01-31", 30), ("C1", "02-19", 50)]
    assert balance(lots, date(2026, 1, 31), taken).to_dict() == {"C1": 50}  # 150 - 70 spent - 30 expired


def test_spending_after_a_lapse_takes_from_the_lots_still_alive() -> None:
    # 100 on 1 January lapses whole on 31 January; the 30 spent on 5 February come out of the 50 of 20 January
    lots, taken = _book(
        [("O1", "C1", "2026-01-01 12:00", "delivered", 100.0), ("O2", "C1", "2026-01-20 12:00", "delivered", 50.0)],
        [("C1", "2026-02-05 12:00", "spent", -30)],
    )

    assert _lapsing(lots, taken) == [("C1", "01-31", 100), ("C1", "02-19", 20)]
    assert balance(lots, date(2026, 2, 6), taken).to_dict() == {"C1": 20}


def test_adjustments_add_a_lot_of_their_own_or_take_the_oldest_points() -> None:
    # 100 on 1 January; a goodwill credit of 40 on 10 January (its own lot, lapses 9 February);
    # a correction of -60 on 15 January takes from the oldest lot
    lots, taken = _book(
        [("O1", "C1", "2026-01-01 12:00", "delivered", 100.0)],
        [("C1", "2026-01-10 12:00", "adjusted", 40), ("C1", "2026-01-15 12:00", "adjusted", -60)],
    )

    assert sorted(lots["points"].tolist()) == [40, 100]
    assert taken["points"].tolist() == [60]
    assert balance(lots, date(2026, 1, 16), taken).to_dict() == {"C1": 80}
    assert _lapsing(lots, taken) == [("C1", "01-31", 40), ("C1", "02-09", 40)]


def test_more_spent_than_earned_is_paid_from_the_next_points_earned() -> None:
    # the shop says 130 were spent of the 100 we know of: the 30 come out of the next lot, never a balance too high
    lots, taken = _book(
        [("O1", "C1", "2026-01-01 12:00", "delivered", 100.0), ("O2", "C1", "2026-01-20 12:00", "delivered", 50.0)],
        [("C1", "2026-01-10 12:00", "spent", -130)],
    )

    assert balance(lots, date(2026, 1, 15), taken).empty
    assert balance(lots, date(2026, 1, 21), taken).to_dict() == {"C1": 20}
    assert _lapsing(lots, taken) == [("C1", "02-19", 20)]


def test_the_points_earned_in_a_month_count_orders_of_its_days_only() -> None:
    orders = _orders(
        [
            ("O1", "C1", "2026-01-31 12:00", "delivered", 10.0),
            ("O2", "C1", "2026-02-01 12:00", "delivered", 20.0),
            ("O3", "C1", "2026-02-28 12:00", "delivered", 5.0),
            ("O4", "C2", "2026-03-01 12:00", "delivered", 7.0),
        ]
    )
    lots = points_ledger(orders, CUSTOMERS, PointsRules())

    assert points_earned(lots, date(2026, 2, 1), date(2026, 2, 28)).to_dict() == {"C1": 25}


def test_a_points_detail_reads_back_and_a_bare_number_from_an_older_plan_is_a_balance() -> None:
    details = points_detail(pd.Series([1250, 7]), PointsBasis.EARNED)

    assert details.tolist() == ["1250 earned", "7 earned"]
    assert read_points_detail("1250 earned") == (1250, PointsBasis.EARNED)
    assert read_points_detail("300") == (300, PointsBasis.BALANCE)
