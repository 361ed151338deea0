"""Lifecycle stages: days since the last purchase against the longer of the customer's rhythm and the shop's goal."""

from __future__ import annotations

import pandas as pd

from tasks.profile.lifecycle import RETURN_GOALS, Stage, lifecycle_stage

MONTHLY = RETURN_GOALS["monthly"]


def _stages(
    purchase_days: list[int],
    since_last: list[int | None],
    own_gap: list[float | None],
    goal: int = MONTHLY,
    factors: tuple[float, float, float] = (1.5, 3.0, 6.0),
) -> list[str]:
    return lifecycle_stage(
        pd.Series(purchase_days),
        pd.Series(since_last, dtype="Int64"),
        pd.Series(own_gap, dtype="Float64"),
        goal,
        factors,
    ).tolist()


def test_a_monthly_regular_is_lapsed_from_three_to_six_rhythms_and_lost_after() -> None:
    # rhythm 30 days: active <= 45, at risk <= 90, lapsed <= 180, lost beyond
    assert _stages([5, 5, 5, 5], [90, 91, 180, 181], [30.0] * 4) == ["at_risk", "lapsed", "lapsed", "lost"]


def test_a_weekly_buyer_in_a_quarterly_shop_is_judged_on_the_shops_quarter() -> None:
    # 120 days since the last purchase of someone who bought weekly
    quarterly = _stages([10], [120], [7.0], goal=RETURN_GOALS["quarterly"])
    weekly = _stages([10], [120], [7.0], goal=RETURN_GOALS["weekly"])

    assert quarterly == ["active"]  # 120 <= 1.5 x 91
    assert weekly == ["lost"]  # 120 > 6 x 7


def test_a_one_day_buyer_is_new_for_one_goal_period_then_judged_like_everyone() -> None:
    assert _stages([1, 1, 1], [30, 31, 100], [None, None, None]) == ["new", "active", "lapsed"]


def test_the_shops_own_factors_move_the_stage_boundaries() -> None:
    stricter = (1.0, 2.0, 3.0)

    assert _stages([4, 4, 4, 4], [30, 31, 61, 91], [30.0] * 4, factors=stricter) == [
        "active",
        "at_risk",
        "lapsed",
        "lost",
    ]


def test_someone_who_never_bought_is_a_prospect_and_the_rows_keep_their_customers() -> None:
    stages = lifecycle_stage(
        pd.Series([0, 3], index=["C1", "C2"]),
        pd.Series([None, 10], index=["C1", "C2"], dtype="Int64"),
        pd.Series([None, 20.0], index=["C1", "C2"], dtype="Float64"),
        MONTHLY,
    )

    assert stages.to_dict() == {"C1": Stage.PROSPECT.value, "C2": Stage.ACTIVE.value}
    assert str(stages.dtype) == "string"
