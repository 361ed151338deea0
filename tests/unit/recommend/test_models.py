"""Recommendation models on tiny hand-checked matrices, the shop's interaction weights and the pick rules."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tasks.recommend import models as recommend
from tasks.recommend import picks
from tasks.recommend.interactions import shop_interactions
from tasks.recommend.models import Ease, Interactions, ItemKNN, Popular, RecommendError, recommend_csv, top_k
from tasks.recommend.picks import PickRules, pick_products

# Four users, four items:   a  b  c  d
#                      u1   1  1  .  .
#                      u2   1  1  1  .
#                      u3   .  1  1  .
#                      u4   1  .  .  1
MATRIX = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [1, 0, 0, 1]], dtype=np.float32))


def test_cosine_neighbours_are_the_hand_computed_ones() -> None:
    # column norms: a sqrt3, b sqrt3, c sqrt2, d 1; co-occurrence a.b = 2, a.c = 1, a.d = 1, b.c = 2
    model = ItemKNN(neighbours=2, alpha=0.5).fit(MATRIX)
    sim = model.similarity.toarray()

    assert sim[0, 1] == pytest.approx(2 / 3)  # a~b = 2 / (sqrt3 sqrt3)
    assert sim[1, 2] == pytest.approx(2 / np.sqrt(6))  # b~c
    assert sim[0, 3] == pytest.approx(1 / np.sqrt(3))  # a~d
    assert np.all(np.diag(sim) == 0)  # nobody is their own neighbour
    assert ((sim > 0).sum(axis=1) <= 2).all()  # two neighbours kept per item
    assert sim[0, 2] == 0  # a's third-best neighbour (c: 1/sqrt6) dropped


def test_bought_together_similarity_is_the_share_of_is_customers_who_took_j() -> None:
    sim = ItemKNN(neighbours=3, alpha=1.0).fit(MATRIX).similarity.toarray()

    assert sim[0, 1] == pytest.approx(2 / 3)  # 2 of a's 3 customers took b
    assert sim[3, 0] == pytest.approx(1.0)  # d's one customer took a
    assert sim[0, 3] == pytest.approx(1 / 3)  # 1 of a's 3 took d: not symmetric


def test_item_knn_top_k_sums_similarities_and_leaves_out_what_the_user_has() -> None:
    model = ItemKNN(neighbours=3, alpha=0.5).fit(MATRIX)
    found = top_k(model, MATRIX, 2)
    picks = pd.DataFrame({"row": found.rows, "item": found.items, "score": found.scores, "rank": found.ranks})

    u1 = picks.loc[picks["row"] == 0]
    # u1 has a, b: c scores a~c + b~c = 1/sqrt6 + 2/sqrt6, d scores a~d + b~d = 1/sqrt3 + 0
    assert list(u1["item"]) == [2, 3]
    assert u1["score"].tolist() == pytest.approx([3 / np.sqrt(6), 1 / np.sqrt(3)], rel=1e-5)
    assert not ((picks["row"] == 1) & picks["item"].isin([0, 1, 2])).any()  # u2 is only offered d
    # u3 (b, c) is offered a only: d's one neighbour is a; u4 (a, d) gets b and c
    assert picks.groupby("row")["rank"].apply(list).to_dict() == {0: [1, 2], 1: [1], 2: [1], 3: [1, 2]}


def test_popularity_counts_users_and_fills_short_lists() -> None:
    popular = Popular().fit(MATRIX)
    assert popular.counts.tolist() == [3, 3, 2, 1]

    found = top_k(popular, MATRIX, 2)
    u3 = found.items[found.rows == 2]
    assert u3.tolist() == [0, 3]  # a (3 users), then d: b and c are theirs


def test_ease_matches_its_closed_form() -> None:
    lam = 2.0
    gram = MATRIX.T.toarray() @ MATRIX.toarray() + lam * np.eye(4)
    p = np.linalg.inv(gram)
    expected = -p / np.diag(p)
    np.fill_diagonal(expected, 0.0)

    model = Ease(regularization=lam).fit(MATRIX)

    assert model.weights == pytest.approx(expected.astype(np.float32), abs=1e-6)
    found = top_k(model, MATRIX, 1)
    u1_scores = MATRIX[0].toarray() @ expected
    assert found.items[found.rows == 0].tolist() == [int(np.argmax(np.where([0, 0, 1, 1], u1_scores[0], -np.inf)))]


def test_ease_refuses_a_catalog_too_big_for_its_dense_inverse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recommend, "EASE_MAX_ITEMS", 3)
    with pytest.raises(RecommendError, match="use item_knn above 3 products"):
        Ease().fit(MATRIX)
    assert isinstance(recommend.make_model("auto", 4), ItemKNN) and isinstance(recommend.make_model("auto", 3), Ease)


def test_scoring_in_small_blocks_gives_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    dense = (rng.random((300, 40)) < 0.15).astype(np.float32)
    matrix = sp.csr_matrix(dense)
    model = ItemKNN(neighbours=10).fit(matrix)
    whole = top_k(model, matrix, 5, Popular().fit(matrix))
    monkeypatch.setattr(recommend, "BLOCK_CELLS", 50)  # a few customers per block
    blocked = top_k(model, matrix, 5, Popular().fit(matrix))

    assert np.array_equal(whole.rows, blocked.rows) and np.allclose(whole.scores, blocked.scores)  # ties may swap
    seen = set(zip(*matrix.nonzero(), strict=True))
    assert not any((r, i) in seen for r, i in zip(whole.rows, whole.items, strict=True))
    has_any = np.flatnonzero(np.diff(matrix.indptr) > 0)
    assert (np.bincount(whole.rows, minlength=300)[has_any] == 5).all()  # five each, the fill included


def test_ease_is_scored_in_blocks_of_customers_by_the_whole_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    # EASE scores every product: a block of light customers must not hold customers x catalog past the limit
    rng = np.random.default_rng(4)
    matrix = sp.csr_matrix((rng.random((300, 40)) < 0.1).astype(np.float32))
    model = Ease(regularization=5.0).fit(matrix)
    whole = top_k(model, matrix, 5)
    sizes: list[int] = []
    score = model.top
    monkeypatch.setattr(model, "top", lambda seen, k, widest: (sizes.append(seen.shape[0]), score(seen, k, widest))[1])
    monkeypatch.setattr(recommend, "BLOCK_CELLS", 40 * 25)  # 25 customers x 40 products

    blocked = top_k(model, matrix, 5)

    assert max(sizes) <= 25
    assert np.array_equal(whole.rows, blocked.rows) and np.allclose(whole.scores, blocked.scores)


def test_the_reason_for_a_pick_is_the_same_however_the_pairs_are_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    matrix = sp.csr_matrix((rng.random((200, 30)) < 0.2).astype(np.float32))
    model = ItemKNN(neighbours=10).fit(matrix)
    found = top_k(model, matrix, 4)
    whole = picks.because_of(model, matrix, found.rows, found.items)
    monkeypatch.setattr(picks, "BECAUSE_CHUNK", 7)

    assert np.array_equal(picks.because_of(model, matrix, found.rows, found.items), whole)
    assert (whole >= 0).mean() > 0.9  # nearly every pick has a product of the customer's behind it


def test_recommend_csv_writes_ranked_ids_and_rejects_unknown_models() -> None:
    train = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u2"], "item_id": ["a", "b", "a", "b", "c"]})
    recs = recommend_csv(train, 1, "item_knn")

    assert recs.to_dict("records") == [
        {"user_id": "u1", "rank": 1, "item_id": "c", "score": pytest.approx(recs["score"].iloc[0])}
    ]  # u2 has every item: nothing left to offer
    with pytest.raises(RecommendError, match="unknown model 'als'"):
        recommend_csv(train, 1, "als")


def test_repeated_interactions_have_diminishing_weight() -> None:
    frame = pd.DataFrame({"user_id": ["u"] * 3 + ["v"], "item_id": ["a", "a", "b", "a"], "weight": [1.0, 1.0, -2.0, 1]})
    data = Interactions.from_frame(frame)

    assert data.matrix.toarray().tolist() == [[pytest.approx(1 + np.log(2)), 0.0], [1.0, 0.0]]  # b nets to -2: gone


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_shop_weights_order_over_cart_over_view_low_ratings_against_decay_and_no_future() -> None:
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3"],
            "customer_id": ["A", "A", "A"],
            "created_at": [_utc("2026-03-01"), _utc("2026-03-01"), _utc("2026-03-01")],
            "status": ["delivered", "cancelled", "returned"],
        }
    )
    items = pd.DataFrame({"order_id": ["o1", "o2", "o3"], "product_id": ["p1", "p2", "p3"]})
    events = pd.DataFrame(
        {
            "customer_id": ["A"] * 5,
            "product_id": ["p4", "p5", "p6", "p7", "p8"],
            "type": ["cart_add", "view", "review", "review", "view"],
            "at": [_utc("2026-03-01")] * 4 + [_utc("2026-03-05")],
            "rating": pd.array([None, None, 1, 5, None], dtype="Int64"),
        }
    )
    got = shop_interactions(orders, items, events, date(2026, 3, 1), half_life_days=1.0)
    weight = dict(zip(got["product_id"], got["weight"], strict=True))

    decay = 2**-1.0  # everything happened at midnight, one day (one half-life) before the end of 1 March
    assert weight == pytest.approx(
        {"p1": 4 * decay, "p3": -2 * decay, "p4": 2 * decay, "p5": 0.5 * decay, "p6": -4 * decay, "p7": 3 * decay}
    )
    assert "p2" not in weight and "p8" not in weight  # cancelled, and after the as-of date


def test_pick_rules_stock_exclusive_groups_category_cap_due_first_and_cold_start() -> None:
    products = pd.DataFrame(
        {
            "product_id": ["cf1", "cf2", "cf3", "ct1", "df1", "gx1"],
            "category": ["cat_food", "cat_food", "cat_food", "cat_toys", "dog_food", "garden"],
            "in_stock": [True, True, True, False, True, True],
        }
    )
    rows = [
        ("A", "cf1"),
        ("A", "cf2"),
        ("A", "cf3"),
        ("A", "ct1"),
        ("A", "df1"),
        ("A", "gx1"),
        ("B", "cf1"),
        ("B", "cf2"),
        ("B", "cf3"),
        ("B", "ct1"),
        ("C", "cf1"),
        ("D", "df1"),
        ("D", "gx1"),
    ]
    interactions = pd.DataFrame(
        {"customer_id": [c for c, _ in rows], "product_id": [p for _, p in rows], "weight": 1.0}
    )
    customers = pd.DataFrame({"customer_id": ["A", "B", "C", "D", "E"], "locale": ["en"] * 5})
    interests = pd.DataFrame({"customer_id": ["C", "D"], "category": ["cat_food", "dog_food"], "affinity": [1.0, 1.0]})
    due = pd.DataFrame({"customer_id": ["C"], "product_id": ["cf1"], "days_until_due": [2]})

    picks = pick_products(interactions, products, customers, interests, due, PickRules(per_customer=4, per_category=1))
    by = {c: g.sort_values("rank") for c, g in picks.groupby("customer_id")}

    assert by["C"].iloc[0][["product_id", "reason", "reason_product_id"]].tolist() == ["cf1", "due_again", "cf1"]
    assert not by["C"]["product_id"].isin(["df1"]).any()  # a cat person: no dog food
    assert (by["C"]["product_id"].map(products.set_index("product_id")["category"]).value_counts() <= 1).all()
    assert not picks["product_id"].eq("ct1").any()  # out of stock
    assert "E" in by and set(by["E"]["reason"]) == {"popular"}  # no history: the locale's popular products
    assert set(picks["customer_id"]) <= set(customers["customer_id"])
    because = by["C"].loc[by["C"]["reason"] == "because_of"]
    assert because["reason_product_id"].eq("cf1").all()  # C has only cf1: it explains every model pick
