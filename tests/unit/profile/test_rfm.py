"""RFM scores (quintiles or the shop's cut points) and the named R x F segments."""

from __future__ import annotations

import pandas as pd

from tasks.profile.rfm import NO_PURCHASE, RFM_SEGMENTS, rfm_segment, score

# The segment of every (R, F), R from 5 (top row) down to 1, F from 1 to 5: the module docstring's table.
GRID = {
    5: ["new", "potential_loyalist", "potential_loyalist", "champions", "champions"],
    4: ["promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"],
    3: ["about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"],
    2: ["hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"],
    1: ["lost", "hibernating", "at_risk", "at_risk", "cant_lose"],
}


def test_every_cell_of_the_r_by_f_grid_has_the_documented_segment() -> None:
    pairs = [(r, f) for r in GRID for f in range(1, 6)]

    names = rfm_segment(pd.Series([r for r, _ in pairs]), pd.Series([f for _, f in pairs])).tolist()

    assert names == [GRID[r][f - 1] for r, f in pairs]
    assert set(names) == set(RFM_SEGMENTS)  # every named segment is reachable


def test_five_distinct_spends_get_one_score_each_and_ten_get_two_per_score() -> None:
    assert score(pd.Series([40.0, 10.0, 50.0, 20.0, 30.0])).tolist() == [4, 1, 5, 2, 3]
    assert score(pd.Series(range(1, 11))).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_a_shop_with_no_buyers_scores_everyone_zero() -> None:
    scores = score(pd.Series([None, None], dtype="Float64", index=["C1", "C2"]))

    assert scores.to_dict() == {"C1": 0, "C2": 0}


def test_cut_points_in_any_order_cut_the_same() -> None:
    spend = pd.Series([10.0, 60.0, 150.0, 300.0, 700.0])

    assert score(spend, edges=(500, 50, 200, 100)).tolist() == score(spend, edges=(50, 100, 200, 500)).tolist()
    assert score(spend, edges=(50, 100, 200, 500)).tolist() == [1, 2, 3, 4, 5]


def test_a_customer_scored_zero_on_either_axis_has_no_purchase_and_rows_keep_their_customer() -> None:
    names = rfm_segment(pd.Series([5, 0, 3], index=["C1", "C2", "C3"]), pd.Series([0, 4, 3], index=["C1", "C2", "C3"]))

    assert names.to_dict() == {"C1": NO_PURCHASE, "C2": NO_PURCHASE, "C3": "need_attention"}
    assert str(names.dtype) == "string"
