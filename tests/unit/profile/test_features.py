"""The profile's parts on small cases computed by hand."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tasks.profile.birthdays import days_until_birthday
from tasks.profile.interests import category_affinity, top_category
from tasks.profile.lifecycle import lifecycle_stage
from tasks.profile.replenishment import replenishment
from tasks.profile.rfm import rfm_segment, score
from tasks.profile.unhappy import incidents, latest_incident

AS_OF = date(2026, 3, 1)


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# --- RFM -------------------------------------------------------------------------------------------------------


def test_frequency_ties_share_the_lowest_score_and_non_buyers_score_zero() -> None:
    purchase_days = pd.Series([1, 1, 1, 1, 1, 1, 2, 3, 5, None])

    assert score(purchase_days).tolist() == [1, 1, 1, 1, 1, 1, 4, 5, 5, 0]


def test_recency_scores_the_most_recent_highest() -> None:
    days = pd.Series([3, 10, 100, 400, 800])

    assert score(days, higher_is_better=False).tolist() == [5, 4, 3, 2, 1]


def test_the_shops_own_cut_points_replace_quintiles() -> None:
    spend = pd.Series([10.0, 50.0, 99.99, 100.0, 1000.0])

    assert score(spend, edges=(50, 100, 200, 500)).tolist() == [1, 2, 2, 3, 5]
    assert score(pd.Series([0, 7, 8, 400]), edges=(7, 30, 90, 180), higher_is_better=False).tolist() == [5, 5, 4, 1]
    with pytest.raises(ValueError, match="four"):
        score(spend, edges=(1, 2, 3))


@pytest.mark.parametrize(
    ("r", "f", "segment"),
    [
        (5, 5, "champions"),
        (4, 5, "loyal"),
        (5, 2, "potential_loyalist"),
        (5, 1, "new"),
        (4, 1, "promising"),
        (3, 3, "need_attention"),
        (3, 1, "about_to_sleep"),
        (2, 3, "at_risk"),
        (1, 5, "cant_lose"),
        (2, 2, "hibernating"),
        (1, 1, "lost"),
        (0, 0, "no_purchase"),
    ],
)
def test_named_rfm_segments_follow_the_r_by_f_grid(r: int, f: int, segment: str) -> None:
    assert rfm_segment(pd.Series([r]), pd.Series([f])).tolist() == [segment]


# --- lifecycle -------------------------------------------------------------------------------------------------


def test_stages_follow_the_shops_goal_and_the_customers_own_rhythm() -> None:
    # monthly goal (30 days). Rhythm = max(own median gap, 30).
    purchase_days = pd.Series([0, 1, 1, 4, 4, 4, 4, 4])
    since_last = pd.Series([None, 20, 40, 45, 46, 90, 181, 100], dtype="Int64")
    own_gap = pd.Series([None, None, None, 10, 30, 30, 30, 60], dtype="Float64")

    stages = lifecycle_stage(purchase_days, since_last, own_gap, goal_days=30).tolist()

    assert stages == ["prospect", "new", "active", "active", "at_risk", "at_risk", "lost", "at_risk"]
    # a weekly shop is stricter with the same weekly buyer
    assert lifecycle_stage(pd.Series([4]), pd.Series([15], dtype="Int64"), pd.Series([7.0]), 7).tolist() == ["at_risk"]


# --- birthdays -------------------------------------------------------------------------------------------------


def test_days_until_birthday_with_29_february_on_the_28th_outside_leap_years() -> None:
    born = pd.Series(["1988-02-29", "1990-03-01", "1990-03-02", "1990-02-28", None])

    assert days_until_birthday(born, date(2026, 11, 24)).tolist() == [96, 97, 98, 96, pd.NA]
    assert days_until_birthday(born, date(2027, 2, 28)).tolist()[0] == 0  # 2027: the 28th
    assert days_until_birthday(born, date(2028, 2, 28)).tolist()[0] == 1  # 2028 is a leap year: the 29th
    assert days_until_birthday(born, date(2027, 3, 2)).tolist()[2] == 0  # on the day: 0, not 365


# --- replenishment ---------------------------------------------------------------------------------------------


def test_a_product_bought_on_three_days_is_due_one_median_interval_after_the_last() -> None:
    day = pd.Timestamp
    purchases = pd.DataFrame(
        {
            "customer_id": ["A", "A", "A", "A", "B", "B"],
            "product_id": ["food", "food", "food", "food", "toy", "toy"],
            "day": [
                day("2026-01-01"),
                day("2026-01-01"),
                day("2026-01-29"),
                day("2026-02-28"),
                day("2026-01-01"),
                day("2026-02-01"),
            ],
        }
    )

    due = replenishment(purchases, AS_OF)

    # A's food: days 1 Jan, 29 Jan, 28 Feb (two orders on 1 Jan are one day); gaps 28 and 30 -> 29
    assert due.to_dict("records") == [
        {
            "customer_id": "A",
            "product_id": "food",
            "purchase_days": 3,
            "interval_days": 29,
            "last_bought_on": day("2026-02-28"),
            "due_on": day("2026-03-29"),
            "days_until_due": 28,
        }
    ]  # B bought the toy twice: a coincidence, not a habit


# --- unhappy ---------------------------------------------------------------------------------------------------


def test_incidents_name_the_reason_and_the_date() -> None:
    orders = pd.DataFrame(
        {
            "order_id": ["late", "fine", "back", "paid_cancel", "unpaid_cancel", "slow"],
            "customer_id": ["A", "A", "B", "C", "D", "E"],
            "created_at": [_utc("2026-02-01 10:00")] * 6,
            "status": ["delivered", "delivered", "returned", "cancelled", "cancelled", "delivered"],
            "promised_delivery_at": ["2026-02-04T23:59:59Z"] * 5 + [""],
        }
    )
    events_at = {
        "late": [("paid", "2026-02-01 11:00"), ("delivered", "2026-02-05 10:00")],
        "fine": [("paid", "2026-02-01 11:00"), ("delivered", "2026-02-03 10:00")],
        "back": [("paid", "2026-02-01 11:00"), ("delivered", "2026-02-03 10:00"), ("returned", "2026-02-10 09:00")],
        "paid_cancel": [("paid", "2026-02-01 11:00"), ("cancelled", "2026-02-02 09:00")],
        "unpaid_cancel": [("cancelled", "2026-02-04 09:00")],
        "slow": [("paid", "2026-02-01 11:00"), ("delivered", "2026-02-09 10:00")],  # no promise: 7 days
    }
    order_events = pd.DataFrame(
        [(o, s, _utc(t)) for o, rows in events_at.items() for s, t in rows], columns=["order_id", "status", "at"]
    )
    reviews = pd.DataFrame(
        {
            "customer_id": ["F", "G"],
            "product_id": ["P1", "P1"],
            "type": ["review", "review"],
            "at": [_utc("2026-02-20 12:00"), _utc("2026-02-20 12:00")],
            "rating": pd.array([2, 4], dtype="Int64"),
        }
    )

    found = incidents(orders, order_events, reviews)

    assert list(zip(found["customer_id"], found["reason"], found["at"].dt.strftime("%m-%d"), strict=True)) == [
        ("C", "cancelled", "02-02"),
        ("A", "late_delivery", "02-05"),
        ("E", "late_delivery", "02-09"),
        ("B", "returned", "02-10"),
        ("F", "low_rating", "02-20"),
    ]
    latest = latest_incident(found, AS_OF, window_days=20).set_index("customer_id")
    assert latest.loc["F", "unhappy"] and latest.loc["F", "days_since_unhappy"] == 9
    assert not latest.loc["C", "unhappy"]  # 27 days ago: outside a 20-day window


# --- interests -------------------------------------------------------------------------------------------------


def test_a_cat_owner_has_no_dog_food_interest_and_recent_signals_weigh_more() -> None:
    categories = pd.Series({"cat1": "cat_food", "cat2": "cat_toys", "dog1": "dog_food"})
    lines = pd.DataFrame(
        {
            "customer_id": ["cat", "cat", "dog"],
            "order_id": ["o1", "o2", "o3"],
            "product_id": ["cat1", "cat2", "dog1"],
            "amount": [20.0, 20.0, 30.0],
            "at": [_utc("2026-02-25"), _utc("2025-05-01"), _utc("2026-02-01")],
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": ["cat"],
            "product_id": ["cat2"],
            "type": ["view"],
            "at": [_utc("2026-02-28")],
            "rating": pd.array([pd.NA], dtype="Int64"),
        }
    )

    affinity = category_affinity(lines, events, categories, AS_OF, half_life_days=90)

    cat = affinity.loc[affinity["customer_id"] == "cat"].set_index("category")["affinity"]
    assert set(cat.index) == {"cat_food", "cat_toys"}  # nothing for dogs
    assert cat.sum() == pytest.approx(1.0)
    assert cat["cat_food"] > cat["cat_toys"]  # the recent purchase outweighs an old one and a view
    assert top_category(affinity).to_dict() == {"cat": "cat_food", "dog": "dog_food"}


# --- KPIs ------------------------------------------------------------------------------------------------------


def test_retention_cohorts_share_of_each_first_month_buying_later() -> None:
    from tasks.profile.kpis import retention_cohorts

    day = pd.Timestamp
    days = pd.DataFrame(
        {
            "customer_id": ["A", "A", "B", "C", "C"],
            "day": [day("2026-01-05"), day("2026-02-10"), day("2026-01-20"), day("2026-02-01"), day("2026-02-20")],
            "total": [1.0] * 5,
        }
    )

    table = retention_cohorts(days, date(2026, 2, 28), months=3)

    assert table["customers"].to_dict() == {"2026-01": 2, "2026-02": 1}
    assert table.loc["2026-01", ["m0", "m1"]].tolist() == [1.0, 0.5]  # A came back in February, B did not
    assert table.loc["2026-02", "m0"] == 1.0
    assert table.loc["2026-02", ["m1", "m2"]].isna().all()  # not reached yet: empty, not zero
    assert pd.isna(table.loc["2026-01", "m2"])


def test_a_sharp_fall_in_views_against_the_28_day_baseline_raises_the_alert() -> None:
    from tasks.profile.kpis import traffic_alert

    usual = [_utc(f"2026-02-{d:02d} 12:00") for d in range(1, 29) for _ in range(10)]  # 10 a day in February
    assert traffic_alert(pd.Series(usual + [_utc("2026-03-01 09:00")] * 4), AS_OF).alert  # 4 today: -60%
    calm = traffic_alert(pd.Series(usual + [_utc("2026-03-01 09:00")] * 9), AS_OF)
    assert (calm.alert, calm.baseline, calm.change) == (False, 10.0, -0.1)
    assert traffic_alert(pd.Series([], dtype="datetime64[ns, UTC]"), AS_OF).change is None  # no baseline, no alert


# --- the profile -----------------------------------------------------------------------------------------------


def test_purchase_days_are_the_customers_local_days_and_refunds_do_not_count() -> None:
    from tasks.profile.features import purchases_by_day

    customers = pd.DataFrame({"customer_id": ["msk", "ldn"], "timezone": ["Europe/Moscow", "Europe/London"]})
    orders = pd.DataFrame(
        {
            "order_id": ["m1", "m2", "l1", "l2", "l3"],
            "customer_id": ["msk", "msk", "ldn", "ldn", "ldn"],
            # Moscow: 01:30 and 09:00 local on 1 June (two UTC days); London: 23:30 BST 31 May and 00:30 1 June
            "created_at": [
                _utc("2026-05-31 22:30"),
                _utc("2026-06-01 06:00"),
                _utc("2026-05-31 22:30"),
                _utc("2026-05-31 23:30"),
                _utc("2026-06-01 10:00"),
            ],
            "status": ["delivered", "delivered", "delivered", "delivered", "returned"],
            "total": [10.0, 5.0, 7.0, 3.0, 100.0],
        }
    )

    days = purchases_by_day(customers, orders)

    assert list(zip(days["customer_id"], days["day"].dt.strftime("%m-%d"), days["total"], strict=True)) == [
        ("ldn", "05-31", 7.0),
        ("ldn", "06-01", 3.0),  # the returned order of 1 June is not a purchase
        ("msk", "06-01", 15.0),  # one local day, one purchase occasion
    ]


def test_profile_of_a_small_shop_has_no_made_up_numbers(tmp_path: Path) -> None:
    from tasks.data.sources import load_raw
    from tasks.data.validation import validate_snapshot
    from tasks.demo.synth import generate_shop, write_shop
    from tasks.profile.features import build_profile
    from tasks.profile.schema import PROFILE_DTYPES

    end = date(2026, 11, 20)
    write_shop(generate_shop(customers=400, days=365, seed=3, end=end), tmp_path)
    snapshot = validate_snapshot(load_raw(str(tmp_path)), end)

    profile = build_profile(snapshot.frames, end).profile

    assert profile.dtypes.astype(str).to_dict() == PROFILE_DTYPES
    assert profile["customer_id"].is_unique
    buyers, prospects = profile.loc[profile["orders"] > 0], profile.loc[profile["orders"] == 0]
    assert len(buyers) > 100 and len(prospects) > 10
    predicted = ["p_alive", "expected_purchases_90d", "expected_order_value", "predicted_clv", "days_until_next_order"]
    assert buyers[predicted].notna().all().all() and (buyers["prediction_basis"] == "bgnbd").all()
    assert buyers["p_alive"].between(0, 1).all() and (buyers["predicted_clv"] >= 0).all()
    assert prospects[predicted].isna().all().all()  # missing, not zero and not NaN from arithmetic
    assert set(prospects["lifecycle"]) == {"prospect"} and set(prospects["rfm_segment"]) == {"no_purchase"}
    assert set(buyers["lifecycle"]) <= {"new", "active", "at_risk", "lapsed", "lost"}
    assert 0 < profile["vip"].sum() <= 0.06 * len(buyers) + 1


def test_a_shop_without_order_events_or_reviews_has_no_incidents() -> None:
    orders = pd.DataFrame(
        {"order_id": ["o1"], "customer_id": ["A"], "created_at": [_utc("2026-02-01")], "status": ["placed"]}
    )
    no_events = pd.DataFrame(
        {
            "order_id": pd.Series(dtype="string"),
            "status": pd.Series(dtype="string"),
            "at": pd.Series(dtype="datetime64[ns, UTC]"),
        }
    )
    no_reviews = pd.DataFrame(
        {"customer_id": [], "product_id": [], "type": [], "at": pd.Series(dtype="datetime64[ns, UTC]")}
    )

    assert incidents(orders, no_events, no_reviews).empty


def test_products_without_a_category_add_nothing_and_belong_to_nobody_else() -> None:
    categories = pd.Series({"p1": "books", "p2": None})
    lines = pd.DataFrame(
        {
            "customer_id": ["A", "B"],
            "order_id": ["o1", "o2"],
            "product_id": ["p1", "p2"],  # B bought only an uncategorised product
            "amount": [10.0, 10.0],
            "at": [_utc("2026-02-25"), _utc("2026-02-25")],
        }
    )
    events = pd.DataFrame(
        {"customer_id": ["B"], "product_id": ["ghost"], "type": ["view"], "at": [_utc("2026-02-28")], "rating": [None]}
    )

    affinity = category_affinity(lines, events, categories, AS_OF)

    assert affinity.to_dict("records") == [{"customer_id": "A", "category": "books", "affinity": 1.0}]


def test_the_profile_is_the_same_from_python_strings_and_from_arrow_strings_read_back(tmp_path: Path) -> None:
    """The daily run reads its tables with Arrow strings and codes ids as integers; nothing may change."""
    from tasks.data.contract import LOAD_ORDER
    from tasks.data.snapshot import read_parquet
    from tasks.data.sources import load_raw
    from tasks.data.validation import validate_snapshot
    from tasks.demo.synth import generate_shop, write_shop
    from tasks.profile.features import DETAILS, build_profile

    end = date(2026, 11, 20)
    write_shop(generate_shop(customers=300, days=365, seed=5, end=end), tmp_path / "shop")
    frames = validate_snapshot(load_raw(str(tmp_path / "shop")), end).frames
    read_back = {}
    for table in LOAD_ORDER:
        frames[table].to_parquet(tmp_path / f"{table.value}.parquet", index=False)
        read_back[table] = read_parquet(tmp_path / f"{table.value}.parquet", arrow_strings=True)
    assert str(read_back[next(iter(LOAD_ORDER))]["customer_id"].dtype) == "string"

    direct, arrow = build_profile(frames, end), build_profile(read_back, end)

    pd.testing.assert_frame_equal(direct.profile, arrow.profile)
    assert len(direct.incidents) > 0 and len(direct.interests) > 0 and len(direct.purchase_days) > 0
    for name in DETAILS:
        expected, got = getattr(direct, name), getattr(arrow, name)
        pd.testing.assert_frame_equal(expected.astype(str), got.astype(str), obj=name)
        assert got["customer_id"].str.startswith("C").all(), name  # ids decoded, not integer codes
