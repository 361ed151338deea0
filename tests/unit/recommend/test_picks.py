"""What each customer is shown: due products first, the model's picks, the locale's popular products, the rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tasks.kernel.settings import Settings
from tasks.recommend import models, picks
from tasks.recommend.picks import PICK_COLUMNS, PickRules, pick_products

PRODUCTS = pd.DataFrame(
    {
        "product_id": ["tea", "scone", "pierogi", "kompot", "bigos", "cat_food", "dog_food", "seeds"],
        "category": ["drinks", "bakery", "meals", "drinks", "meals", "cat_food", "dog_food", "garden"],
        "in_stock": [True] * 8,
    }
)
# pierogi is the Polish customers' favourite (3 buyers), then kompot (2), then bigos (1)
HISTORY = [
    ("en1", "tea"),
    ("en2", "tea"),
    ("en2", "scone"),
    ("pl1", "pierogi"),
    ("pl1", "kompot"),
    ("pl2", "pierogi"),
    ("pl2", "kompot"),
    ("pl3", "pierogi"),
    ("pl3", "bigos"),
]
CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["en1", "en2", "pl1", "pl2", "pl3", "new_pl", "new_de"],
        "locale": ["en", "en", "pl", "pl", "pl", "pl", "de"],
    }
)
NO_INTERESTS = pd.DataFrame({"customer_id": [], "category": [], "affinity": pd.Series(dtype="float64")})
NOTHING_DUE = pd.DataFrame({"customer_id": [], "product_id": [], "days_until_due": pd.Series(dtype="int64")})


def _interactions(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [c for c, _ in rows], "product_id": [p for _, p in rows], "weight": 1.0})


def _picks_of(picks: pd.DataFrame, customer: str) -> list[str]:
    return picks.loc[picks["customer_id"] == customer].sort_values("rank")["product_id"].tolist()


def test_a_new_customer_sees_popular_products_of_their_own_locale() -> None:
    picks = pick_products(
        _interactions(HISTORY), PRODUCTS, CUSTOMERS, NO_INTERESTS, NOTHING_DUE, PickRules(per_customer=3)
    )

    new_pl = picks.loc[picks["customer_id"] == "new_pl"]
    assert set(new_pl["product_id"]) == {"pierogi", "kompot", "bigos"}  # nothing English
    assert set(new_pl["reason"]) == {"popular"} and new_pl["reason_product_id"].isna().all()
    # a locale without any history gets the shop's popular products
    assert len(_picks_of(picks, "new_de")) == 3
    assert tuple(picks.columns) == PICK_COLUMNS


def test_a_new_customer_sees_the_locales_most_popular_product_first() -> None:
    picks = pick_products(
        _interactions(HISTORY), PRODUCTS, CUSTOMERS, NO_INTERESTS, NOTHING_DUE, PickRules(per_customer=2)
    )

    assert _picks_of(picks, "new_pl") == ["pierogi", "kompot"]  # 3 buyers, then 2; not bigos (1)


def test_a_new_customer_sees_popular_products_of_their_top_category_first() -> None:
    likes_drinks = pd.DataFrame({"customer_id": ["new_pl"], "category": ["drinks"], "affinity": [1.0]})

    picks = pick_products(
        _interactions(HISTORY), PRODUCTS, CUSTOMERS, likes_drinks, NOTHING_DUE, PickRules(per_customer=3)
    )

    assert _picks_of(picks, "new_pl")[0] == "kompot"  # the locale's only drink, ahead of the more popular pierogi


def test_the_top_category_is_the_one_the_customer_likes_most() -> None:
    interests = pd.DataFrame(
        {
            "customer_id": ["new_pl", "new_pl", "new_pl"],
            "category": ["meals", "drinks", "garden"],
            "affinity": [0.3, 0.8, 0.0],
        }
    )

    picks = pick_products(
        _interactions(HISTORY), PRODUCTS, CUSTOMERS, interests, NOTHING_DUE, PickRules(per_customer=3)
    )

    assert _picks_of(picks, "new_pl") == ["kompot", "pierogi", "bigos"]  # drinks (0.8) first, then by popularity


def test_a_new_customer_gets_a_full_list_from_what_the_customers_of_their_locale_took() -> None:
    # five Polish regulars took pierogi and one more product each (the model finds plenty for them);
    # one Polish customer took seeds, which nobody else took (the model finds nothing for them)
    regulars = [("pl1", "kompot"), ("pl2", "bigos"), ("pl3", "tea"), ("pl4", "scone"), ("pl5", "cat_food")]
    history = [*((c, "pierogi") for c, _ in regulars), *regulars, ("pl6", "seeds")]
    customers = pd.DataFrame({"customer_id": [f"pl{i}" for i in range(1, 7)] + ["new_pl"], "locale": ["pl"] * 7})
    rules = PickRules(per_customer=2, model="item_knn")

    picks = pick_products(_interactions(history), PRODUCTS, customers, NO_INTERESTS, NOTHING_DUE, rules)

    assert len(_picks_of(picks, "new_pl")) == 2  # not only the seeds


def test_a_product_due_within_the_window_comes_first_and_one_due_later_does_not() -> None:
    due = pd.DataFrame({"customer_id": ["pl1", "pl1"], "product_id": ["pierogi", "kompot"], "days_until_due": [7, 8]})

    picks = pick_products(_interactions(HISTORY), PRODUCTS, CUSTOMERS, NO_INTERESTS, due, PickRules(due_within_days=7))

    pl1 = picks.loc[picks["customer_id"] == "pl1"].sort_values("rank")
    first = pl1.iloc[0]
    assert (first["product_id"], first["reason"], first["reason_product_id"]) == ("pierogi", "due_again", "pierogi")
    assert math.isnan(first["score"])  # no model score: it is due, not predicted
    assert "due_again" not in set(pl1["reason"].iloc[1:])  # kompot is due in 8 days: not yet


def test_the_popular_fill_never_offers_what_the_customer_already_has() -> None:
    # the gardener's seeds have no neighbours: the model finds nothing, the English favourites fill in
    history = [*HISTORY, ("gardener", "seeds")]
    customers = pd.concat([CUSTOMERS, pd.DataFrame({"customer_id": ["gardener"], "locale": ["en"]})])

    picks = pick_products(
        _interactions(history), PRODUCTS, customers, NO_INTERESTS, NOTHING_DUE, PickRules(model="item_knn")
    )

    assert set(_picks_of(picks, "gardener")) == {"tea", "scone"}


def test_customers_interested_in_no_exclusive_group_see_both_and_the_rule_can_be_switched_off() -> None:
    history = [("cat1", "cat_food"), ("cat1", "dog_food"), ("cat2", "cat_food"), ("cat2", "dog_food"), ("g", "seeds")]
    customers = pd.DataFrame({"customer_id": ["cat1", "cat2", "g", "cat_owner"], "locale": ["en"] * 4})
    interests = pd.DataFrame(
        {"customer_id": ["g", "cat_owner"], "category": ["garden", "cat_food"], "affinity": [1.0, 1.0]}
    )

    def shown(rules: PickRules) -> dict[str, set[str]]:
        picks = pick_products(_interactions(history), PRODUCTS, customers, interests, NOTHING_DUE, rules)
        return {str(c): set(g["product_id"]) for c, g in picks.groupby("customer_id")}

    assert {"cat_food", "dog_food"} <= shown(PickRules())["g"]  # a gardener is neither a cat nor a dog person
    assert "dog_food" not in shown(PickRules())["cat_owner"]
    assert "dog_food" in shown(PickRules(exclusive_groups=()))["cat_owner"]


def test_no_customer_gets_more_than_the_shops_number_and_ranks_count_from_one() -> None:
    picks = pick_products(
        _interactions(HISTORY), PRODUCTS, CUSTOMERS, NO_INTERESTS, NOTHING_DUE, PickRules(per_customer=2)
    )

    ranks = picks.groupby("customer_id")["rank"].apply(list)
    assert set(ranks.index) == set(CUSTOMERS["customer_id"])
    assert all(r == list(range(1, len(r) + 1)) and len(r) <= 2 for r in ranks)


def test_pick_rules_come_from_the_settings() -> None:
    settings = Settings(
        _env_file=None,
        picks_per_customer=4,
        picks_per_category=1,
        picks_exclusive_groups=["cat", "dog", "horse"],
        recommend_model="popular",
        interest_half_life_days=30.0,
    )

    rules = PickRules.from_settings(settings)

    assert rules == PickRules(
        per_customer=4, per_category=1, exclusive_groups=("cat", "dog", "horse"), model="popular", half_life_days=30.0
    )


CATEGORIES = np.array(["cat_food", "dog_food", "drinks", "meals", "garden"])


def _catalog(
    rng: np.random.Generator, products: int, in_stock: float, customers: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Products in 5 categories (cat and dog food among them), some out of stock; customers in 3 locales."""
    width = len(str(products - 1))
    catalog = pd.DataFrame(
        {
            "product_id": [f"P{i:0{width}d}" for i in range(products)],
            "category": CATEGORIES[rng.integers(0, 5, products)],
            "in_stock": rng.random(products) < in_stock,
        }
    )
    people = pd.DataFrame(
        {"customer_id": [f"C{i:03d}" for i in range(customers)], "locale": rng.choice(["en", "pl", "ru"], customers)}
    )
    return catalog, people


def _random_shop(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A shop with everything the rules look at: 3 locales, cat and dog food, stock-outs, due products, newcomers."""
    rng = np.random.default_rng(seed)
    products, customers = _catalog(rng, 30, 0.85, 60)
    buyers = rng.integers(0, 50, 500)  # C050-C059 have no history; X1 is not a clean customer
    interactions = pd.DataFrame(
        {
            "customer_id": [*(f"C{b:03d}" for b in buyers), "X1", "X1"],
            "product_id": [f"P{i:02d}" for i in rng.integers(0, 30, 502)],
            "weight": [*rng.random(500) * 4, 3.0, 3.0],  # continuous: no ties for a block to break differently
        }
    )
    interests = pd.DataFrame(
        {"customer_id": customers["customer_id"], "category": rng.choice(CATEGORIES, 60), "affinity": rng.random(60)}
    )
    due = interactions.iloc[rng.integers(0, 500, 25)][["customer_id", "product_id"]].assign(
        days_until_due=rng.integers(0, 14, 25)
    )
    return interactions, products, customers, interests, due


@pytest.mark.parametrize("model", ["item_knn", "ease"])
def test_picking_in_tiny_blocks_gives_the_same_picks_as_one_block(monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    shop = _random_shop(11)
    rules = PickRules(per_customer=4, model=model)
    whole = pick_products(*shop, rules)
    monkeypatch.setattr(models, "BLOCK_CELLS", 60)  # one or two customers per model block
    monkeypatch.setattr(picks, "PICK_BLOCK_CUSTOMERS", 3)  # and per block of customers without history
    monkeypatch.setattr(picks, "BECAUSE_CHUNK", 5)

    blocked = pick_products(*shop, rules)

    pd.testing.assert_frame_equal(blocked, whole)
    assert set(whole["customer_id"]) == set(shop[2]["customer_id"])  # everyone, the newcomers too
    assert set(whole["reason"]) == {"due_again", "because_of", "popular"}


def _tied_shop(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """200 products, 80 customers (10 without history) with 1 to 24 products each, every weight 1.0: scores tie."""
    rng = np.random.default_rng(seed)
    products, customers = _catalog(rng, 200, 0.9, 80)
    buyers = np.repeat(np.arange(70), rng.integers(1, 25, 70))
    interactions = pd.DataFrame(
        {
            "customer_id": [f"C{b:03d}" for b in buyers],
            "product_id": [f"P{i:03d}" for i in rng.integers(0, 200, buyers.size)],
            "weight": 1.0,
        }
    )
    interests = pd.DataFrame(
        {"customer_id": customers["customer_id"], "category": rng.choice(CATEGORIES, 80), "affinity": rng.random(80)}
    )
    due = interactions.iloc[rng.integers(0, len(interactions), 25)][["customer_id", "product_id"]].assign(
        days_until_due=rng.integers(0, 14, 25)
    )
    return interactions, products, customers, interests, due


@pytest.mark.parametrize("model", ["item_knn", "ease", "popular"])
def test_a_partition_picks_for_its_customers_what_the_whole_shop_picks_for_them(
    monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    # given: a shop whose scores tie at the cut of the candidates, picked in blocks of a few customers (seed 8:
    # the item-item model's candidates for a customer depended on who else was in their block)
    interactions, products, customers, interests, due = _tied_shop(8)
    rules = PickRules(per_customer=4, model=model)
    monkeypatch.setattr(models, "BLOCK_CELLS", 150)
    recommender = picks.Recommender.fit(
        models.Interactions.from_frame(interactions, "customer_id", "product_id", "weight"), rules
    )
    whole = picks.pick_for(recommender, products, customers, interests, due, rules)

    # when: three partitions each pick for a third of the customers (the due list and the locales whole)
    thirds = [customers.iloc[p::3] for p in range(3)]
    parts = [
        picks.pick_for(
            recommender,
            products,
            third,
            interests[interests["customer_id"].isin(third["customer_id"])],
            due,
            rules,
            everyone=customers,
        )
        for third in thirds
    ]

    # then: together, the whole shop's picks row for row
    merged = pd.concat(parts, ignore_index=True).sort_values(["customer_id", "rank"], ignore_index=True)
    pd.testing.assert_frame_equal(merged, whole.sort_values(["customer_id", "rank"], ignore_index=True))
    assert set(whole["reason"]) >= {"due_again", "popular"} and whole["customer_id"].nunique() == 80
