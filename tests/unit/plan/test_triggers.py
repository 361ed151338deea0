"""Triggers and loyalty points on small shops built by hand: who fires, on which local day, with which detail."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pandas as pd
import pytest

from tasks.kernel.enums import OrderStatus
from tasks.plan.campaigns import (
    BirthdayTrigger,
    CartTrigger,
    HolidayTrigger,
    IncidentTrigger,
    LapseTrigger,
    OrderTrigger,
    OverdueTrigger,
    PointsTrigger,
    ReplenishmentTrigger,
    ScheduleTrigger,
    SignupTrigger,
    Trigger,
)
from tasks.plan.points import PointsRules, balance, points_ledger
from tasks.plan.triggers import OCCURRENCE_COLUMNS, ShopData, occurrences

AS_OF = date(2026, 3, 31)
MARCH = (date(2026, 3, 1), date(2026, 3, 31))
VLADIVOSTOK = "Asia/Vladivostok"  # UTC+10, no daylight saving

CUSTOMER_COLUMNS = ["customer_id", "timezone", "country", "birth_date", "created_at"]
ORDER_COLUMNS = ["order_id", "customer_id", "created_at", "status", "total"]
ITEM_COLUMNS = ["order_id", "product_id"]
ORDER_EVENT_COLUMNS = ["order_id", "status", "at"]
EVENT_COLUMNS = ["customer_id", "product_id", "type", "at"]


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _customer(
    customer_id: str,
    timezone: str = "UTC",
    country: str = "GB",
    birth_date: str | None = None,
    created_at: str = "2025-01-01T10:00:00Z",
) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "timezone": timezone,
        "country": country,
        "birth_date": birth_date,
        "created_at": _utc(created_at),
    }


def _order(order_id: str, customer_id: str, at: str, status: str = "delivered", total: float = 10.0) -> dict[str, Any]:
    return {"order_id": order_id, "customer_id": customer_id, "created_at": _utc(at), "status": status, "total": total}


def _event(customer_id: str, product_id: str, kind: str, at: str) -> dict[str, Any]:
    return {"customer_id": customer_id, "product_id": product_id, "type": kind, "at": _utc(at)}


def _table(rows: list[dict[str, Any]], columns: list[str], stamp: str | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    if stamp is not None:  # an empty table keeps the contract's tz-aware type
        frame[stamp] = pd.to_datetime(frame[stamp], utc=True)
    return frame


def _shop(
    customers: list[dict[str, Any]],
    *,
    orders: list[dict[str, Any]] | None = None,
    items: list[tuple[str, str]] | None = None,
    order_events: list[tuple[str, str, str]] | None = None,
    events: list[dict[str, Any]] | None = None,
    profile: dict[str, int | None] | None = None,
    details: dict[str, pd.DataFrame] | None = None,
    points: PointsRules | None = None,
) -> ShopData:
    """A shop of these rows; ``profile`` maps customer ids to days since their last order."""
    days_since = profile or {c["customer_id"]: None for c in customers}
    frames = {
        "customers": _table(customers, CUSTOMER_COLUMNS),
        "orders": _table(orders or [], ORDER_COLUMNS, "created_at"),
        "order_items": _table([dict(zip(ITEM_COLUMNS, i, strict=True)) for i in items or []], ITEM_COLUMNS),
        "order_events": _table(
            [{"order_id": o, "status": s, "at": _utc(a)} for o, s, a in order_events or []], ORDER_EVENT_COLUMNS, "at"
        ),
        "events": _table(events or [], EVENT_COLUMNS, "at"),
        "profile": pd.DataFrame(
            {
                "customer_id": list(days_since),
                "days_since_last_order": pd.array(list(days_since.values()), dtype="Int64"),
            }
        ),
    }
    return ShopData.from_frames(AS_OF, frames | (details or {}), points)


def _fired(trigger: Trigger, data: ShopData, start: date, end: date) -> list[tuple[str, str, Any]]:
    """(customer, local day, detail) of each occurrence, sorted; a missing detail reads as None."""
    found = occurrences(trigger, data, start, end)
    rows = [
        (str(c), pd.Timestamp(day).date().isoformat(), None if pd.isna(detail) else detail)
        for c, day, detail in zip(found["customer_id"], found["occurrence"], found["detail"], strict=True)
    ]
    return sorted(rows)


def _days(trigger: Trigger, data: ShopData, start: date, end: date) -> list[tuple[str, str]]:
    return [(c, day) for c, day, _ in _fired(trigger, data, start, end)]


CART = CartTrigger(type="cart")


# --- cart ------------------------------------------------------------------------------------------------------


def test_a_cart_left_alone_fires_on_the_day_of_the_add_with_the_product() -> None:
    data = _shop([_customer("C1")], events=[_event("C1", "P1", "cart_add", "2026-03-05T12:00:00Z")])

    assert _fired(CART, data, *MARCH) == [("C1", "2026-03-05", "P1")]


def test_removing_the_product_later_cancels_the_cart() -> None:
    data = _shop(
        [_customer("C1")],
        events=[
            _event("C1", "P1", "cart_add", "2026-03-05T12:00:00Z"),
            _event("C1", "P1", "cart_remove", "2026-03-05T12:30:00Z"),
        ],
    )

    assert _fired(CART, data, *MARCH) == []


def test_adding_again_after_a_removal_opens_a_new_cart() -> None:
    data = _shop(
        [_customer("C1")],
        events=[
            _event("C1", "P1", "cart_add", "2026-03-05T12:00:00Z"),
            _event("C1", "P1", "cart_remove", "2026-03-05T12:30:00Z"),
            _event("C1", "P1", "cart_add", "2026-03-07T09:00:00Z"),
        ],
    )

    assert _fired(CART, data, *MARCH) == [("C1", "2026-03-07", "P1")]


def test_ordering_the_product_later_cancels_the_cart() -> None:
    data = _shop(
        [_customer("C1")],
        orders=[_order("O1", "C1", "2026-03-06T08:00:00Z", status="paid")],
        items=[("O1", "P1")],
        events=[_event("C1", "P1", "cart_add", "2026-03-05T12:00:00Z")],
    )

    assert _fired(CART, data, *MARCH) == []


def test_an_order_placed_before_the_add_leaves_the_cart_open() -> None:
    data = _shop(
        [_customer("C1")],
        orders=[_order("O1", "C1", "2026-03-01T08:00:00Z")],
        items=[("O1", "P1")],
        events=[_event("C1", "P1", "cart_add", "2026-03-05T12:00:00Z")],
    )

    assert _fired(CART, data, *MARCH) == [("C1", "2026-03-05", "P1")]


def test_ordering_one_of_two_carted_products_leaves_the_other_in_the_cart() -> None:
    data = _shop(
        [_customer("C1")],
        orders=[_order("O1", "C1", "2026-03-06T08:00:00Z")],
        items=[("O1", "P1")],
        events=[
            _event("C1", "P1", "cart_add", "2026-03-05T12:00:00Z"),
            _event("C1", "P2", "cart_add", "2026-03-05T12:05:00Z"),
        ],
    )

    assert _fired(CART, data, *MARCH) == [("C1", "2026-03-05", "P2")]


def test_a_cancelled_order_of_the_product_leaves_the_cart_open() -> None:
    data = _shop(
        [_customer("C1")],
        orders=[_order("O1", "C1", "2026-03-06T08:00:00Z", status="cancelled")],
        items=[("O1", "P1")],
        events=[_event("C1", "P1", "cart_add", "2026-03-05T12:00:00Z")],
    )

    assert _fired(CART, data, *MARCH) == [("C1", "2026-03-05", "P1")]


def test_someone_else_ordering_the_product_leaves_the_cart_open() -> None:
    data = _shop(
        [_customer("C1"), _customer("C2")],
        orders=[_order("O1", "C2", "2026-03-06T08:00:00Z")],
        items=[("O1", "P1")],
        events=[_event("C1", "P1", "cart_add", "2026-03-05T12:00:00Z")],
    )

    assert _fired(CART, data, *MARCH) == [("C1", "2026-03-05", "P1")]


def test_two_products_added_the_same_day_make_one_cart_listing_both_sorted() -> None:
    data = _shop(
        [_customer("C1")],
        events=[
            _event("C1", "P9", "cart_add", "2026-03-05T09:00:00Z"),
            _event("C1", "P1", "cart_add", "2026-03-05T18:00:00Z"),
            _event("C1", "P9", "cart_add", "2026-03-05T19:00:00Z"),  # the same product twice lists it once
        ],
    )

    assert _fired(CART, data, *MARCH) == [("C1", "2026-03-05", "P1 P9")]


def test_the_cart_day_is_the_customers_local_day() -> None:
    # 20:00 UTC on 1 March is 06:00 on 2 March in Vladivostok
    data = _shop(
        [_customer("C1", timezone=VLADIVOSTOK)], events=[_event("C1", "P1", "cart_add", "2026-03-01T20:00:00Z")]
    )

    assert _fired(CART, data, *MARCH) == [("C1", "2026-03-02", "P1")]


# --- orders ----------------------------------------------------------------------------------------------------


def test_delivered_fires_on_the_delivery_day_with_the_order_id() -> None:
    data = _shop(
        [_customer("C1")],
        orders=[_order("O1", "C1", "2026-03-02T10:00:00Z")],
        order_events=[("O1", "placed", "2026-03-02T10:00:00Z"), ("O1", "delivered", "2026-03-06T15:00:00Z")],
    )

    fired = _fired(OrderTrigger(type="order", status=OrderStatus.DELIVERED), data, *MARCH)

    assert fired == [("C1", "2026-03-06", "O1")]


def test_first_only_fires_for_the_customers_first_order_alone() -> None:
    data = _shop(
        [_customer("C1")],
        orders=[_order("O2", "C1", "2026-03-10T10:00:00Z"), _order("O1", "C1", "2026-03-02T10:00:00Z")],
        order_events=[("O1", "delivered", "2026-03-05T10:00:00Z"), ("O2", "delivered", "2026-03-12T10:00:00Z")],
    )

    first = _fired(OrderTrigger(type="order", status=OrderStatus.DELIVERED, first_only=True), data, *MARCH)
    every = _fired(OrderTrigger(type="order", status=OrderStatus.DELIVERED), data, *MARCH)

    assert first == [("C1", "2026-03-05", "O1")]
    assert every == [("C1", "2026-03-05", "O1"), ("C1", "2026-03-12", "O2")]


def test_placed_fires_on_the_local_day_the_order_was_created() -> None:
    data = _shop(
        [_customer("C1", timezone=VLADIVOSTOK), _customer("C2")],
        orders=[_order("O1", "C1", "2026-03-01T20:00:00Z"), _order("O2", "C2", "2026-03-01T20:00:00Z")],
    )

    fired = _fired(OrderTrigger(type="order", status=OrderStatus.PLACED), data, *MARCH)

    assert fired == [("C1", "2026-03-02", "O1"), ("C2", "2026-03-01", "O2")]


# --- lapse -----------------------------------------------------------------------------------------------------


def test_lapse_fires_on_the_day_the_customer_crossed_the_threshold() -> None:
    # as of 31 March: 90 days since the last order crossed 60 thirty days ago; 60 crosses today; 59 not yet
    data = _shop(
        [_customer(c) for c in ("C1", "C2", "C3", "C4")],
        profile={"C1": 90, "C2": 60, "C3": 59, "C4": None},
    )

    assert _days(LapseTrigger(type="lapse", days=60), data, *MARCH) == [("C1", "2026-03-01"), ("C2", "2026-03-31")]


# --- overdue ---------------------------------------------------------------------------------------------------


def _orders_on(customer_id: str, *days: str, status: str = "delivered") -> list[dict[str, Any]]:
    return [_order(f"{customer_id}-{n}", customer_id, f"{day}T12:00:00Z", status) for n, day in enumerate(days)]


def test_overdue_fires_the_first_day_past_factor_times_the_customers_median_gap() -> None:
    # C1's gaps are 10 and 20 days: a median of 15, twice that is 30, so day 31 after 31 January is 3 March;
    # C2 bought on one day only (no rhythm yet); C3's two orders fall on one day (still one purchase day)
    data = _shop(
        [_customer(c) for c in ("C1", "C2", "C3")],
        orders=[
            *_orders_on("C1", "2026-01-01", "2026-01-11", "2026-01-31"),
            *_orders_on("C2", "2026-02-01"),
            *_orders_on("C3", "2026-02-01", "2026-02-01"),
        ],
    )

    assert _days(OverdueTrigger(type="overdue", factor=2), data, *MARCH) == [("C1", "2026-03-03")]


def test_a_rhythm_shorter_than_the_floor_counts_as_the_floor() -> None:
    # a weekly buyer with a 30-day floor and factor 1.5: overdue past 45 days, on day 46 after 1 February
    data = _shop([_customer("W1")], orders=_orders_on("W1", "2026-01-18", "2026-01-25", "2026-02-01"))

    fired = _days(OverdueTrigger(type="overdue", factor=1.5, min_rhythm_days=30), data, *MARCH)
    unfloored = _days(OverdueTrigger(type="overdue", factor=1.5), data, date(2026, 2, 1), date(2026, 3, 31))

    assert fired == [("W1", "2026-03-19")]
    assert unfloored == [("W1", "2026-02-12")]  # 10.5 days exceeded on day 11


def test_buying_again_ends_the_overdue_gap_and_starts_a_new_one() -> None:
    # gap of 10 days: overdue on day 21 after 11 January, 1 February; a purchase on 5 February ends that gap
    # (gaps 10 and 25: median 17.5, past 35 days on day 36 after it, 13 March)
    before = _shop([_customer("C1")], orders=_orders_on("C1", "2026-01-01", "2026-01-11"))
    after = _shop([_customer("C1")], orders=_orders_on("C1", "2026-01-01", "2026-01-11", "2026-02-05"))
    trigger = OverdueTrigger(type="overdue", factor=2)

    assert _days(trigger, before, date(2026, 1, 1), date(2026, 3, 31)) == [("C1", "2026-02-01")]
    assert _days(trigger, after, date(2026, 1, 1), date(2026, 3, 31)) == [("C1", "2026-03-13")]


def test_overdue_counts_local_purchase_days_and_leaves_cancelled_and_returned_orders_out() -> None:
    # in Vladivostok 20:00 UTC is the next morning: purchase days 2 and 12 February, a gap of 10;
    # the cancelled and returned orders in between would have shortened it
    data = _shop(
        [_customer("C1", timezone=VLADIVOSTOK)],
        orders=[
            _order("O1", "C1", "2026-02-01T20:00:00Z"),
            _order("O2", "C1", "2026-02-05T10:00:00Z", status="cancelled"),
            _order("O3", "C1", "2026-02-08T10:00:00Z", status="returned"),
            _order("O4", "C1", "2026-02-11T20:00:00Z"),
        ],
    )

    assert _days(OverdueTrigger(type="overdue", factor=2), data, *MARCH) == [("C1", "2026-03-05")]


def test_an_occurrence_later_than_max_days_after_the_last_purchase_is_left_to_the_lapse() -> None:
    # gaps of 40 days: 1.5 x 40 = 60 is exceeded on day 61 (2 March), past a max of 60 days; within 61
    data = _shop([_customer("C1")], orders=_orders_on("C1", "2025-11-21", "2025-12-31"))

    assert _days(OverdueTrigger(type="overdue", factor=1.5, max_days=60), data, *MARCH) == []
    assert _days(OverdueTrigger(type="overdue", factor=1.5, max_days=61), data, *MARCH) == [("C1", "2026-03-02")]


def test_a_factor_times_a_rhythm_that_is_a_whole_number_is_not_exceeded_on_that_day() -> None:
    # 2.3 x 10 is 22.999999999999996 in floating point: still 23 days, exceeded on day 24
    data = _shop([_customer("C1")], orders=_orders_on("C1", "2026-01-28", "2026-02-07"))

    assert _days(OverdueTrigger(type="overdue", factor=2.3), data, *MARCH) == [("C1", "2026-03-03")]


# --- sign-up ---------------------------------------------------------------------------------------------------


def test_signup_fires_on_the_local_day_the_customer_signed_up() -> None:
    # 20:00 UTC on 1 March is 06:00 on 2 March in Vladivostok
    data = _shop(
        [
            _customer("C1", timezone=VLADIVOSTOK, created_at="2026-03-01T20:00:00Z"),
            _customer("C2", created_at="2026-03-01T20:00:00Z"),
            _customer("C3", created_at="2026-02-27T10:00:00Z"),  # before the window
        ]
    )

    assert _days(SignupTrigger(type="signup"), data, *MARCH) == [("C1", "2026-03-02"), ("C2", "2026-03-01")]


def test_never_ordered_leaves_out_whoever_placed_an_order_even_one_cancelled_later() -> None:
    signed_up = "2026-03-01T10:00:00Z"
    data = _shop(
        [_customer(c, created_at=signed_up) for c in ("C1", "C2", "C3")],
        orders=[
            _order("O1", "C2", "2026-03-04T10:00:00Z"),
            _order("O2", "C3", "2026-03-04T10:00:00Z", status="cancelled"),
        ],
    )

    assert _days(SignupTrigger(type="signup", never_ordered=True), data, *MARCH) == [("C1", "2026-03-01")]
    assert len(_days(SignupTrigger(type="signup"), data, *MARCH)) == 3


# --- schedule --------------------------------------------------------------------------------------------------


def test_a_weekly_schedule_fires_every_matching_weekday_for_every_customer() -> None:
    data = _shop([_customer("C1"), _customer("C2")])

    fired = _days(ScheduleTrigger(type="schedule", weekday="friday"), data, *MARCH)

    fridays = ["2026-03-06", "2026-03-13", "2026-03-20", "2026-03-27"]
    assert fired == [(c, d) for c in ("C1", "C2") for d in fridays]


def test_every_second_week_keeps_the_even_iso_weeks() -> None:
    # the Fridays of March 2026 fall in ISO weeks 10, 11, 12 and 13
    data = _shop([_customer("C1")])

    fired = _days(ScheduleTrigger(type="schedule", weekday="friday", every_weeks=2), data, *MARCH)

    assert fired == [("C1", "2026-03-06"), ("C1", "2026-03-20")]


def test_a_monthly_schedule_fires_on_that_day_of_each_month() -> None:
    data = _shop([_customer("C1")])

    fired = _days(ScheduleTrigger(type="schedule", month_day=1), data, date(2026, 2, 15), date(2026, 4, 30))

    assert fired == [("C1", "2026-03-01"), ("C1", "2026-04-01")]


# --- holidays --------------------------------------------------------------------------------------------------


def test_each_country_gets_its_own_holiday_and_the_rest_the_default() -> None:
    data = _shop([_customer("R1", country="RU"), _customer("G1", country="GB")])
    trigger = HolidayTrigger(type="holiday", dates={"RU": "02-23", "default": "03-08"})

    fired = _days(trigger, data, date(2026, 2, 1), date(2026, 3, 31))

    assert fired == [("G1", "2026-03-08"), ("R1", "2026-02-23")]


def test_without_a_default_other_countries_get_no_holiday() -> None:
    data = _shop([_customer("R1", country="RU"), _customer("G1", country="GB")])

    fired = _days(HolidayTrigger(type="holiday", dates={"RU": "02-23"}), data, date(2026, 1, 1), date(2026, 12, 31))

    assert fired == [("R1", "2026-02-23")]


def test_a_29_february_holiday_falls_on_28_february_in_a_common_year() -> None:
    data = _shop([_customer("G1")])
    trigger = HolidayTrigger(type="holiday", dates={"default": "02-29"})

    common = _days(trigger, data, date(2026, 2, 1), date(2026, 3, 31))
    leap = _days(trigger, data, date(2028, 2, 1), date(2028, 3, 31))

    assert common == [("G1", "2026-02-28")]
    assert leap == [("G1", "2028-02-29")]


# --- birthdays, incidents, replenishment -----------------------------------------------------------------------


def test_birthdays_fire_in_every_year_of_the_window_and_29_february_on_28_february() -> None:
    data = _shop(
        [
            _customer("B1", birth_date="1990-12-31"),
            _customer("B2", birth_date="1992-02-29"),
            _customer("B3"),  # no birth date known
        ]
    )

    fired = _days(BirthdayTrigger(type="birthday"), data, date(2025, 12, 1), date(2026, 3, 31))

    assert fired == [("B1", "2025-12-31"), ("B2", "2026-02-28")]


def test_an_incident_fires_on_its_local_day_with_the_reason() -> None:
    incidents = pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "reason": ["late_delivery", "low_rating"],
            "at": [_utc("2026-03-01T20:00:00Z"), _utc("2026-03-01T20:00:00Z")],
        }
    )
    data = _shop([_customer("C1", timezone=VLADIVOSTOK), _customer("C2")], details={"incidents": incidents})

    fired = _fired(IncidentTrigger(type="incident"), data, *MARCH)

    assert fired == [("C1", "2026-03-02", "late_delivery"), ("C2", "2026-03-01", "low_rating")]


def test_an_incident_support_resolved_on_a_call_fires_no_more_and_the_others_still_do() -> None:
    incidents = pd.DataFrame(
        {
            "customer_id": ["C1", "C1"],
            "order_id": ["O1", "O2"],
            "product_id": [None, None],
            "reason": ["late_delivery", "returned"],
            "at": [_utc("2026-03-01T20:00:00Z"), _utc("2026-03-05T08:00:00Z")],
        }
    )
    data = _shop([_customer("C1", timezone=VLADIVOSTOK)], details={"incidents": incidents})
    data = replace(data, closed_incidents=frozenset({("C1", "2026-03-02:late_delivery:O1")}))

    fired = _fired(IncidentTrigger(type="incident"), data, *MARCH)

    assert fired == [("C1", "2026-03-05", "returned")]


def test_products_due_again_the_same_day_are_one_reminder_listing_them_sorted() -> None:
    due = pd.DataFrame(
        {
            "customer_id": ["C1", "C1", "C1"],
            "product_id": ["P9", "P1", "P5"],
            "due_on": pd.to_datetime(["2026-03-10", "2026-03-10", "2026-03-12"]),
        }
    )
    data = _shop([_customer("C1")], details={"replenishment": due})

    fired = _fired(ReplenishmentTrigger(type="replenishment"), data, *MARCH)

    assert fired == [("C1", "2026-03-10", "P1 P9"), ("C1", "2026-03-12", "P5")]


# --- points ----------------------------------------------------------------------------------------------------


def test_each_paying_order_earns_its_total_times_the_rate_rounded_down_on_the_local_day() -> None:
    customers = _table([_customer("C1", timezone=VLADIVOSTOK)], CUSTOMER_COLUMNS)
    orders = _table(
        [
            _order("O1", "C1", "2026-01-10T20:00:00Z", total=129.90),  # 11 January in Vladivostok
            _order("O2", "C1", "2026-01-12T10:00:00Z", status="cancelled", total=500.0),
            _order("O3", "C1", "2026-01-13T10:00:00Z", status="returned", total=500.0),
            _order("O4", "C1", "2026-01-14T10:00:00Z", total=9.99),  # under one point: no lot
        ],
        ORDER_COLUMNS,
    )

    lots = points_ledger(orders, customers, PointsRules(per_unit=0.1, valid_days=30))

    assert lots["order_id"].tolist() == ["O1"]
    assert lots["points"].tolist() == [12]
    assert lots["earned_on"].tolist() == [pd.Timestamp("2026-01-11")]
    assert lots["expires_on"].tolist() == [pd.Timestamp("2026-02-10")]


def test_the_balance_holds_points_from_the_day_after_earning_until_the_expiry_day() -> None:
    customers = _table([_customer("C1")], CUSTOMER_COLUMNS)
    orders = _table([_order("O1", "C1", "2026-01-10T10:00:00Z", total=100.0)], ORDER_COLUMNS)
    lots = points_ledger(orders, customers, PointsRules(per_unit=1.0, valid_days=30))

    def held(day: date) -> int:
        return int(balance(lots, day).get("C1", 0))

    assert held(date(2026, 1, 10)) == 0  # earned that day: not yet in the balance
    assert held(date(2026, 1, 11)) == 100
    assert held(date(2026, 2, 8)) == 100
    assert held(date(2026, 2, 9)) == 0  # the expiry day


def _movements(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """A ``point_movements`` table of (customer, at, kind, signed points) rows."""
    return pd.DataFrame(
        {
            "movement_id": [f"M{n}" for n in range(len(rows))],
            "customer_id": [r[0] for r in rows],
            "at": pd.Series([_utc(r[1]) for r in rows], dtype="datetime64[ns, UTC]"),
            "kind": [r[2] for r in rows],
            "points": pd.array([r[3] for r in rows], dtype="Int64"),
            "order_id": pd.Series([None] * len(rows), dtype=object),
        }
    )


def test_the_statement_fires_on_the_first_of_each_month_with_the_balance_net_of_spending() -> None:
    # C1 earns 100 on 10 January (gone 11 March), spends 30 on 20 February, earns 50 on 10 March;
    # C2's only order was cancelled
    data = _shop(
        [_customer("C1"), _customer("C2")],
        orders=[
            _order("O1", "C1", "2026-01-10T10:00:00Z", total=100.0),
            _order("O2", "C1", "2026-03-10T10:00:00Z", total=50.0),
            _order("O3", "C2", "2026-01-10T10:00:00Z", status="cancelled", total=80.0),
        ],
        details={"point_movements": _movements([("C1", "2026-02-20T12:00:00Z", "spent", -30)])},
        points=PointsRules(per_unit=1.0, valid_days=60),
    )

    fired = _fired(PointsTrigger(type="points", event="statement"), data, date(2026, 2, 15), date(2026, 4, 15))

    assert fired == [("C1", "2026-03-01", "70 balance"), ("C1", "2026-04-01", "50 balance")]


def test_without_spending_data_the_statement_says_what_was_earned_in_the_month_before_never_a_balance() -> None:
    data = _shop(
        [_customer("C1")],
        orders=[
            _order("O1", "C1", "2026-01-10T10:00:00Z", total=100.0),
            _order("O2", "C1", "2026-03-10T10:00:00Z", total=50.0),
        ],
        points=PointsRules(per_unit=1.0, valid_days=60),
    )

    fired = _fired(PointsTrigger(type="points", event="statement"), data, date(2026, 2, 1), date(2026, 4, 15))

    # nothing earned in February: no statement on 1 March
    assert fired == [("C1", "2026-02-01", "100 earned"), ("C1", "2026-04-01", "50 earned")]


def test_the_expiry_fires_on_the_expiry_day_with_what_spending_left_of_the_lapsing_points() -> None:
    # two lots earned on 10 January lapse together on 11 March; the third on 20 March. C1 spent 110 of the
    # oldest points on 1 February; C2 spent everything it had
    data = _shop(
        [_customer("C1"), _customer("C2")],
        orders=[
            _order("O1", "C1", "2026-01-10T09:00:00Z", total=100.0),
            _order("O2", "C1", "2026-01-10T17:00:00Z", total=25.0),
            _order("O3", "C1", "2026-01-19T10:00:00Z", total=40.0),
            _order("O4", "C2", "2026-01-19T10:00:00Z", total=40.0),
        ],
        details={
            "point_movements": _movements(
                [("C1", "2026-02-01T12:00:00Z", "spent", -110), ("C2", "2026-02-01T12:00:00Z", "spent", -40)]
            )
        },
        points=PointsRules(per_unit=1.0, valid_days=60),
    )

    fired = _fired(PointsTrigger(type="points", event="expiry"), data, *MARCH)

    assert fired == [("C1", "2026-03-11", "15 balance"), ("C1", "2026-03-20", "40 balance")]


def test_without_spending_data_the_expiry_names_the_points_earned_on_the_lapsing_day() -> None:
    data = _shop(
        [_customer("C1")],
        orders=[
            _order("O1", "C1", "2026-01-10T09:00:00Z", total=100.0),
            _order("O2", "C1", "2026-01-10T17:00:00Z", total=25.0),
            _order("O3", "C1", "2026-01-19T10:00:00Z", total=40.0),
        ],
        points=PointsRules(per_unit=1.0, valid_days=60),
    )

    fired = _fired(PointsTrigger(type="points", event="expiry"), data, *MARCH)

    assert fired == [("C1", "2026-03-11", "125 earned"), ("C1", "2026-03-20", "40 earned")]


# --- the window ------------------------------------------------------------------------------------------------


def test_only_occurrences_inside_the_window_are_returned_bounds_included() -> None:
    data = _shop(
        [_customer("C1")],
        events=[
            _event("C1", "P1", "cart_add", "2026-03-01T12:00:00Z"),
            _event("C1", "P2", "cart_add", "2026-03-05T12:00:00Z"),
            _event("C1", "P3", "cart_add", "2026-03-10T12:00:00Z"),
        ],
    )

    assert _fired(CART, data, date(2026, 3, 2), date(2026, 3, 9)) == [("C1", "2026-03-05", "P2")]
    assert _fired(CART, data, date(2026, 3, 5), date(2026, 3, 5)) == [("C1", "2026-03-05", "P2")]
    assert _days(CART, data, date(2026, 3, 1), date(2026, 3, 10)) == [
        ("C1", "2026-03-01"),
        ("C1", "2026-03-05"),
        ("C1", "2026-03-10"),
    ]


@pytest.mark.parametrize(
    "trigger",
    [CART, ScheduleTrigger(type="schedule", weekday="friday"), LapseTrigger(type="lapse", days=1)],
    ids=["cart", "schedule", "lapse"],
)
def test_a_window_ending_before_it_starts_is_empty(trigger: Trigger) -> None:
    data = _shop([_customer("C1")], events=[_event("C1", "P1", "cart_add", "2026-03-05T12:00:00Z")])

    found = occurrences(trigger, data, date(2026, 3, 31), date(2026, 3, 1))

    assert found.empty
    assert tuple(found.columns) == OCCURRENCE_COLUMNS
