"""Loyalty points: lots earned per paying order, the balance on a day, and what lapses when."""

from __future__ import annotations

from datetime import date

import pandas as pd

from tasks.plan.points import LOT_COLUMNS, PointsRules, balance, points_expiring, points_ledger

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
