"""The evaluation splits on MovieLens-100k give the published shape of the data and the warm-user count."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.recommend.evaluate import split_leave_last, split_time
from tests.datasets import movielens_100k


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return movielens_100k()


def test_movielens_100k_has_100000_ratings_by_943_users_of_1682_movies(ratings: pd.DataFrame) -> None:
    assert len(ratings) == 100_000
    assert ratings["user_id"].nunique() == 943
    assert ratings["item_id"].nunique() == 1682
    assert ratings["rating"].between(1, 5).all()


def test_leave_last_10_puts_ten_ratings_of_every_user_in_test(ratings: pd.DataFrame) -> None:
    train, test = split_leave_last(ratings, n=10)

    assert len(test) == 9430
    assert (test.groupby("user_id").size() == 10).all()
    assert len(train) + len(test) == len(ratings)


def test_time_split_80_20_leaves_107_warm_users_with_warm_items(ratings: pd.DataFrame) -> None:
    train, test = split_time(ratings, train_share=0.8)
    _, with_cold_items = split_time(ratings, train_share=0.8, drop_cold_items=False)

    assert len(train) == 80_000
    assert test["user_id"].nunique() == 107
    assert with_cold_items["user_id"].nunique() == 109  # two users rated only movies first rated after the cut
