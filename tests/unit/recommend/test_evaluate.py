"""Recommender evaluation on hand-computed cases: each metric, both splits, and the interactions CSV reader."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from tasks.recommend.evaluate import (
    InteractionsError,
    InteractionsNotFoundError,
    evaluate,
    read_interactions_csv,
    split_leave_last,
    split_time,
)


def _frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def _pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["user_id"], frame["item_id"], strict=True))


# --- metrics ---------------------------------------------------------------


@pytest.fixture
def scored() -> dict[str, float]:
    # Given three test users and top-3 lists (k = 3) from a catalog of 10 items:
    #   A: relevant {a, b, c, d} (a listed twice in test, counts once); list a(hit) x b(hit), c at rank 4 is past k
    #   B: relevant {e};          list y e(hit) z
    #   C: relevant {f};          no list at all
    #   D: not a test user; its list (item w) is not scored and not counted in coverage
    test = pd.DataFrame(
        [("A", "a"), ("A", "a"), ("A", "b"), ("A", "c"), ("A", "d"), ("B", "e"), ("C", "f")],
        columns=["user_id", "item_id"],
    )
    recs = pd.DataFrame(
        [
            ("A", 1, "a"),
            ("A", 2, "x"),
            ("A", 3, "b"),
            ("A", 4, "c"),
            ("B", 1, "y"),
            ("B", 2, "e"),
            ("B", 3, "z"),
            ("D", 1, "w"),
        ],
        columns=["user_id", "rank", "item_id"],
    )
    return evaluate(recs, test, k=3, catalog_size=10)


def test_precision_counts_hits_over_k_and_a_user_without_a_list_scores_zero(scored: dict[str, float]) -> None:
    # A 2/3, B 1/3, C 0 -> (2/3 + 1/3 + 0) / 3 = 1/3
    assert scored["precision"] == pytest.approx(1 / 3)
    assert scored["users"] == 3


def test_recall_counts_hits_over_the_distinct_relevant_items(scored: dict[str, float]) -> None:
    # A 2/4 (the duplicate a counts once), B 1/1, C 0 -> (0.5 + 1 + 0) / 3 = 0.5
    assert scored["recall"] == pytest.approx(0.5)


def test_ndcg_discounts_by_log2_rank_plus_one_against_an_ideal_of_min_relevant_k(scored: dict[str, float]) -> None:
    # A: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG over min(4, 3) = 3 hits = 1 + 1/log2(3) + 1/log2(4) = 2.1309
    # B: DCG = 1/log2(3) = 0.6309; IDCG over min(1, 3) = 1 hit = 1
    # C: 0  ->  (1.5 / 2.1309 + 0.6309 + 0) / 3 = 0.4450
    ndcg_a = 1.5 / (1 + 1 / math.log2(3) + 0.5)
    ndcg_b = 1 / math.log2(3)
    assert scored["ndcg"] == pytest.approx((ndcg_a + ndcg_b) / 3)
    assert scored["ndcg"] == pytest.approx(0.4450, abs=1e-4)


def test_map_averages_precision_at_each_hit_over_min_relevant_k(scored: dict[str, float]) -> None:
    # A: hits at ranks 1 and 3 -> (1/1 + 2/3) / min(4, 3) = 0.5556; B: hit at rank 2 -> (1/2) / 1 = 0.5; C: 0
    # -> (0.5556 + 0.5 + 0) / 3 = 0.3519
    assert scored["map"] == pytest.approx(((1 + 2 / 3) / 3 + 0.5) / 3)


def test_coverage_counts_distinct_items_in_the_evaluated_users_top_k(scored: dict[str, float]) -> None:
    # A: a x b (c is past k), B: y e z, D is not evaluated -> 6 distinct items / catalog of 10
    assert scored["coverage"] == pytest.approx(0.6)


def test_a_perfect_list_scores_one_on_precision_ndcg_and_map_but_recall_is_capped_by_k() -> None:
    test = pd.DataFrame({"user_id": ["u"] * 4, "item_id": ["a", "b", "c", "d"]})
    recs = pd.DataFrame({"user_id": ["u", "u"], "rank": [1, 2], "item_id": ["c", "a"]})

    scores = evaluate(recs, test, k=2, catalog_size=4)

    assert scores["precision"] == scores["ndcg"] == scores["map"] == pytest.approx(1.0)
    assert scores["recall"] == pytest.approx(0.5)  # 2 of 4 relevant items fit in a list of 2


def test_an_item_listed_twice_counts_once_at_its_best_rank() -> None:
    test = pd.DataFrame({"user_id": ["u"], "item_id": ["a"]})
    recs = pd.DataFrame({"user_id": ["u", "u", "u"], "rank": [1, 2, 3], "item_id": ["x", "a", "a"]})

    scores = evaluate(recs, test, k=3, catalog_size=10)

    assert scores["precision"] == pytest.approx(1 / 3)
    assert scores["ndcg"] == pytest.approx(1 / math.log2(3))


def test_numeric_ids_in_recommendations_match_text_ids_in_the_test_set() -> None:
    test = pd.DataFrame({"user_id": ["7"], "item_id": ["42"]})
    recs = pd.DataFrame({"user_id": [7], "rank": [1], "item_id": [42]})

    assert evaluate(recs, test, k=1, catalog_size=1)["precision"] == 1.0


def test_an_empty_test_set_scores_zero_users() -> None:
    test = pd.DataFrame({"user_id": pd.Series([], dtype=str), "item_id": pd.Series([], dtype=str)})
    recs = pd.DataFrame({"user_id": ["u"], "rank": [1], "item_id": ["a"]})

    assert evaluate(recs, test, k=10, catalog_size=5)["users"] == 0.0


def test_a_rank_below_one_is_rejected() -> None:
    test = pd.DataFrame({"user_id": ["u"], "item_id": ["a"]})
    recs = pd.DataFrame({"user_id": ["u"], "rank": [0], "item_id": ["a"]})

    with pytest.raises(ValueError, match="rank"):
        evaluate(recs, test, k=10, catalog_size=5)


# --- splits ----------------------------------------------------------------


def test_leave_last_takes_the_latest_n_and_breaks_timestamp_ties_by_row_order() -> None:
    frame = _frame(
        [
            ("u", "i1", 1),
            ("u", "i2", 2),  # tied with the next two at t=2 but earliest in row order: stays in train
            ("long", "j1", 9),
            ("u", "i3", 2),
            ("u", "i4", 2),
        ]
    )

    train, test = split_leave_last(frame, n=2)

    assert _pairs(test) == [("u", "i3"), ("u", "i4")]
    assert _pairs(train) == [("u", "i1"), ("u", "i2"), ("long", "j1")]


def test_leave_last_keeps_users_with_n_or_fewer_interactions_entirely_in_train() -> None:
    frame = _frame(
        [("two", "a", 1), ("two", "b", 2), ("one", "c", 1), ("three", "d", 1), ("three", "e", 2), ("three", "f", 3)]
    )

    train, test = split_leave_last(frame, n=2)

    assert _pairs(test) == [("three", "e"), ("three", "f")]
    assert _pairs(train) == [("two", "a"), ("two", "b"), ("one", "c"), ("three", "d")]


def _time_frame() -> pd.DataFrame:
    # In time order: six rows of a and b, then b/i4 and a/i4 tied at t=70 (b's row comes first), c's only
    # row (a cold user) and b/i9 (an item nobody had before the cut). 10 rows at 70% -> the first 7 are train.
    return _frame(
        [
            ("c", "i1", 80),
            ("a", "i1", 10),
            ("b", "i1", 20),
            ("b", "i4", 70),
            ("a", "i2", 30),
            ("b", "i2", 40),
            ("a", "i4", 70),
            ("a", "i3", 50),
            ("b", "i9", 90),
            ("b", "i3", 60),
        ]
    )


def test_time_split_cuts_at_the_share_of_rows_with_ties_in_row_order_and_drops_cold_users_and_items() -> None:
    train, test = split_time(_time_frame(), train_share=0.7)

    assert sorted(_pairs(train)) == [
        ("a", "i1"),
        ("a", "i2"),
        ("a", "i3"),
        ("b", "i1"),
        ("b", "i2"),
        ("b", "i3"),
        ("b", "i4"),
    ]
    assert _pairs(test) == [("a", "i4")]


def test_time_split_can_keep_cold_items_in_the_test_set() -> None:
    _, test = split_time(_time_frame(), train_share=0.7, drop_cold_items=False)

    assert _pairs(test) == [("a", "i4"), ("b", "i9")]


@pytest.mark.parametrize("share", [0.0, 1.0, 1.5])
def test_time_split_rejects_a_share_outside_zero_to_one(share: float) -> None:
    with pytest.raises(ValueError, match="train_share"):
        split_time(_time_frame(), train_share=share)


# --- reading ---------------------------------------------------------------


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "interactions.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_ids_as_text_and_gives_weight_one_when_the_column_is_absent(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user_id,item_id,timestamp\n007, 42 ,881250949\n8,43,881250950.5\n")

    frame = read_interactions_csv(path)

    assert list(frame.columns) == ["user_id", "item_id", "timestamp", "weight"]
    assert frame["user_id"].tolist() == ["007", "8"]
    assert frame["item_id"].tolist() == ["42", "43"]
    assert frame["timestamp"].tolist() == [881250949.0, 881250950.5]
    assert frame["weight"].tolist() == [1.0, 1.0]
    assert str(frame["timestamp"].dtype) == str(frame["weight"].dtype) == "float64"


def test_reads_iso_datetimes_as_epoch_seconds_in_utc(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "user_id,item_id,timestamp,weight\n"
        "u,a,2024-01-01T00:00:00Z,2\n"
        "u,b,2024-01-01 01:00:00+01:00,0.5\n"
        "u,c,2024-01-01,1\n",
    )

    frame = read_interactions_csv(path)

    assert frame["timestamp"].tolist() == [1704067200.0] * 3  # 2024-01-01T00:00Z, three spellings
    assert frame["weight"].tolist() == [2.0, 0.5, 1.0]


def test_a_missing_column_names_the_file_and_the_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user_id,timestamp\nu,1\n")

    with pytest.raises(InteractionsError, match="item_id") as caught:
        read_interactions_csv(path)

    assert str(path) in str(caught.value)


def test_a_non_numeric_weight_names_the_file_the_column_and_the_row_but_not_the_value(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user_id,item_id,timestamp,weight\nu,a,1,1\nu,b,2,secret-note\nu,c,3,also-bad\n")

    with pytest.raises(InteractionsError) as caught:
        read_interactions_csv(path)

    message = str(caught.value)
    assert str(path) in message
    assert "'weight', row 2" in message
    assert "secret-note" not in message
    assert isinstance(caught.value, ValueError)


def test_an_empty_user_id_names_its_row(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user_id,item_id,timestamp\nu,a,1\nu,b,2\n  ,c,3\n")

    with pytest.raises(InteractionsError, match=r"'user_id', row 3: empty id"):
        read_interactions_csv(path)


def test_timestamps_follow_the_first_rows_kind_so_a_date_after_numbers_is_an_error(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user_id,item_id,timestamp\nu,a,881250949\nu,b,2024-01-01\n")

    with pytest.raises(InteractionsError, match=r"'timestamp', row 2: not a finite number"):
        read_interactions_csv(path)


def test_a_timestamp_that_is_neither_a_number_nor_a_date_is_an_error(tmp_path: Path) -> None:
    path = _csv(tmp_path, "user_id,item_id,timestamp\nu,a,yesterday\n")

    with pytest.raises(InteractionsError, match=r"'timestamp', row 1: not a number or an ISO-8601 date-time"):
        read_interactions_csv(path)


def test_a_missing_file_is_both_an_interactions_error_and_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(InteractionsNotFoundError) as caught:
        read_interactions_csv(tmp_path / "nope.csv")

    assert isinstance(caught.value, FileNotFoundError)
    assert isinstance(caught.value, InteractionsError)


def test_an_empty_file_names_the_expected_header(tmp_path: Path) -> None:
    with pytest.raises(InteractionsError, match="user_id,item_id,timestamp"):
        read_interactions_csv(_csv(tmp_path, ""))
