"""What each customer is shown: the recommender's candidates through the shop's rules, each with a reason.

Rules, in order:

* products due again come first (replenishment due within ``due_within_days``, reason ``due_again``);
* the model's candidates (``tasks/recommend/models.py``; never a product the customer already interacted with),
  reason ``because_of`` with the customer's product that led there most;
* only products in stock;
* exclusive category groups: categories named ``<group>_...`` (``cat_food``, ``dog_toys``) whose group is in
  ``exclusive_groups``; a customer with interest in some of those groups and none in another never sees the
  other's products (a cat owner gets no dog food);
* at most ``per_category`` products of a category, for variety;
* cold start and short lists: popular products among customers of the same locale, the customer's top
  category first (reason ``popular``).

Output (``PICK_COLUMNS``): customer_id, rank (1 = first), product_id, score, reason, reason_product_id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.data.snapshot import read_table
from tasks.kernel import progress
from tasks.kernel.enums import Table
from tasks.kernel.paths import RunPaths, detail_file
from tasks.kernel.settings import Settings
from tasks.recommend.interactions import shop_interactions
from tasks.recommend.models import Interactions, Model, Popular, TopK, make_model, top_k

PICK_COLUMNS = ("customer_id", "rank", "product_id", "score", "reason", "reason_product_id")
DUE_AGAIN, BECAUSE_OF, POPULAR = "due_again", "because_of", "popular"


@dataclass(frozen=True)
class PickRules:
    """The shop's rules on what a customer is shown."""

    per_customer: int = 6
    per_category: int = 2
    exclusive_groups: tuple[str, ...] = ("cat", "dog")
    due_within_days: int = 7
    model: str = "auto"
    half_life_days: float = 90.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PickRules:
        return cls(
            per_customer=settings.picks_per_customer,
            per_category=settings.picks_per_category,
            exclusive_groups=tuple(settings.picks_exclusive_groups),
            model=settings.recommend_model,
            half_life_days=settings.interest_half_life_days,
        )


def _group(categories: pd.Series, groups: tuple[str, ...]) -> pd.Series:
    """The exclusive group of each category (``cat`` for ``cat_food``), or missing."""
    head = categories.astype("string").str.split("_").str[0]
    return head.where(head.isin(list(groups)))


BECAUSE_CHUNK = 2_000_000  # (candidate, customer product) pairs weighed at once


def because_of(model: Model, seen: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
    """For each (customer row, product) candidate: the customer's product that adds most to its score (-1: none).

    Weighed in chunks of about ``BECAUSE_CHUNK`` pairs, so memory does not grow with the customers.
    """
    counts = np.diff(seen.indptr)[rows]
    similarity_of = getattr(model, "similarity_of", None)
    out = np.full(rows.size, -1, dtype=np.int64)
    if counts.sum() == 0 or similarity_of is None:
        return out
    ends = np.searchsorted(np.cumsum(counts), np.arange(BECAUSE_CHUNK, counts.sum() + BECAUSE_CHUNK, BECAUSE_CHUNK))
    start = 0
    for end in np.unique(np.minimum(ends + 1, rows.size)):
        chunk = slice(start, int(end))
        out[chunk] = _because_of_chunk(similarity_of, seen, rows[chunk], items[chunk], counts[chunk])
        start = int(end)
    return out


def _because_of_chunk(
    similarity_of: Callable[[np.ndarray, np.ndarray], np.ndarray],
    seen: sp.csr_matrix,
    rows: np.ndarray,
    items: np.ndarray,
    counts: np.ndarray,
) -> np.ndarray:
    out = np.full(rows.size, -1, dtype=np.int64)
    if counts.sum() == 0:
        return out
    candidate = np.repeat(np.arange(rows.size), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    position = np.repeat(seen.indptr[rows], counts) + offsets
    theirs = seen.indices[position]
    contribution = seen.data[position] * similarity_of(theirs, items[candidate])
    order = np.lexsort((-contribution, candidate))
    first = order[np.r_[True, candidate[order][1:] != candidate[order][:-1]]]
    positive = contribution[first] > 0
    out[candidate[first][positive]] = theirs[first][positive]
    return out


def pick_products(
    interactions: pd.DataFrame,
    products: pd.DataFrame,
    customers: pd.DataFrame,
    interests: pd.DataFrame,
    replenishment: pd.DataFrame,
    rules: PickRules = PickRules(),
) -> pd.DataFrame:
    """Return up to ``rules.per_customer`` products per customer, best first, each with its reason.

    ``interactions``: customer_id, product_id, weight (``tasks/recommend/interactions.py``); ``products``: product_id,
    category, in_stock; ``customers``: customer_id, locale; ``interests``: customer_id, category, affinity
    (for the exclusive groups); ``replenishment``: customer_id, product_id, days_until_due.
    """
    data = Interactions.from_frame(interactions, "customer_id", "product_id", "weight")
    catalog = products.set_index("product_id")
    item_ids = np.asarray(data.items, dtype=object)
    candidates = _model_candidates(data, rules)

    due = replenishment.loc[replenishment["days_until_due"] <= rules.due_within_days]
    due_rows = pd.DataFrame(
        {
            "customer_id": due["customer_id"].to_numpy(),
            "product_id": due["product_id"].to_numpy(),
            "score": np.inf,
            "reason": DUE_AGAIN,
            "reason_product_id": due["product_id"].to_numpy(),
        }
    )
    model_rows = pd.DataFrame(
        {
            "customer_id": np.asarray(data.users, dtype=object)[candidates.rows],
            "product_id": item_ids[candidates.items],
            "score": candidates.scores,
            "reason": np.where(candidates.reason >= 0, BECAUSE_OF, POPULAR),
            "reason_product_id": np.where(candidates.reason >= 0, item_ids[np.maximum(candidates.reason, 0)], None),
        }
    )
    # the locale's popular products for customers the model found few for (new, anonymous history, narrow tastes)
    found = pd.concat([due_rows["customer_id"], model_rows["customer_id"]]).value_counts()
    short = customers.loc[~customers["customer_id"].isin(found.index[found >= 2 * rules.per_customer])]
    fill = _popular_fill(data, short, rules)
    ranked = pd.concat([due_rows, model_rows, fill], ignore_index=True)
    ranked = ranked.loc[ranked["customer_id"].isin(customers["customer_id"])]  # clean customers only
    ranked["order"] = np.arange(len(ranked))  # due first, then the model's order, then the fill
    ranked["category"] = ranked["product_id"].map(catalog["category"])
    ranked = ranked.loc[ranked["product_id"].map(catalog["in_stock"]).fillna(False).astype(bool)]
    ranked = ranked.drop_duplicates(["customer_id", "product_id"])
    ranked = _respect_exclusive_groups(ranked, interests, rules.exclusive_groups)
    ranked = ranked.loc[ranked.groupby(["customer_id", "category"], dropna=False).cumcount() < rules.per_category]
    ranked = ranked.loc[ranked.groupby("customer_id").cumcount() < rules.per_customer]
    ranked = ranked.sort_values(["customer_id", "order"], kind="stable")
    ranked["rank"] = ranked.groupby("customer_id").cumcount() + 1
    ranked["score"] = ranked["score"].replace(np.inf, np.nan).round(6)
    return ranked[list(PICK_COLUMNS)].reset_index(drop=True)


@dataclass(frozen=True)
class _Candidates(TopK):
    reason: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # product position, -1: none


def _model_candidates(data: Interactions, rules: PickRules) -> _Candidates:
    """The model's top candidates per customer (more than shown, so the rules have room), with their reason."""
    if data.matrix.nnz == 0:
        none = TopK.empty()
        return _Candidates(none.rows, none.items, none.scores, none.ranks, none.rows)
    model = make_model(rules.model, data.matrix.shape[1]).fit(data.matrix)
    popular = model if isinstance(model, Popular) else None  # short lists are filled by locale below
    found = top_k(model, data.matrix, rules.per_customer * 4, popular)
    reason = because_of(model, data.matrix, found.rows, found.items)
    return _Candidates(found.rows, found.items, found.scores, found.ranks, reason)


def _popular_fill(data: Interactions, customers: pd.DataFrame, rules: PickRules) -> pd.DataFrame:
    """Popular products among customers of the same locale (the shop's overall where a locale has no history)."""
    weights = pd.DataFrame(
        {
            "customer_id": np.repeat(np.asarray(data.users, dtype=object), np.diff(data.matrix.indptr)),
            "product_id": np.asarray(data.items, dtype=object)[data.matrix.indices],
            "w": data.matrix.data,
        }
    )
    locale = customers.set_index("customer_id")["locale"].astype("string").fillna("en")
    weights["locale"] = weights["customer_id"].map(locale).fillna("en")
    per_locale = weights.groupby(["locale", "product_id"])["w"].sum().rename("popularity").reset_index()
    overall = weights.groupby("product_id")["w"].sum().rename("popularity").reset_index()
    depth = rules.per_customer * 4
    top_local = per_locale.sort_values(["locale", "popularity"], ascending=[True, False], kind="stable")
    top_local = top_local.groupby("locale").head(depth)
    top_overall = overall.sort_values("popularity", ascending=False, kind="stable").head(depth)
    people = pd.DataFrame({"customer_id": customers["customer_id"].to_numpy(), "locale": locale.to_numpy()})
    local = people.merge(top_local, on="locale", how="inner")
    missing = people.loc[~people["locale"].isin(set(top_local["locale"]))]
    fallback = missing.merge(top_overall, how="cross")
    fill = pd.concat([local, fallback], ignore_index=True)
    if fill.empty:
        return pd.DataFrame(columns=["customer_id", "product_id", "score", "reason", "reason_product_id"])
    seen = weights[["customer_id", "product_id"]].assign(seen=True)
    fill = fill.merge(seen, on=["customer_id", "product_id"], how="left")
    fill = fill.loc[fill["seen"].isna()]
    return pd.DataFrame(
        {
            "customer_id": fill["customer_id"].to_numpy(),
            "product_id": fill["product_id"].to_numpy(),
            "score": -1.0 / (1.0 + fill["popularity"].to_numpy(dtype=float)),  # below every model score
            "reason": POPULAR,
            "reason_product_id": None,
        }
    ).sort_values(["customer_id", "score"], ascending=[True, True], kind="stable")


def _respect_exclusive_groups(ranked: pd.DataFrame, interests: pd.DataFrame, groups: tuple[str, ...]) -> pd.DataFrame:
    """Drop products of an exclusive group the customer shows no interest in while they have another's."""
    if not groups or interests.empty:
        return ranked
    liked = interests.loc[interests["affinity"] > 0, ["customer_id", "category"]]
    liked = liked.assign(group=_group(liked["category"], groups)).dropna(subset=["group"])
    liked = liked[["customer_id", "group"]].drop_duplicates()
    marked = ranked.assign(group=_group(ranked["category"], groups).to_numpy())
    marked = marked.merge(liked.assign(likes=True), on=["customer_id", "group"], how="left")
    has_any = marked["customer_id"].isin(liked["customer_id"]).to_numpy()
    blocked = marked["group"].notna().to_numpy() & has_any & marked["likes"].isna().to_numpy()
    return marked.loc[~blocked].drop(columns=["group", "likes"])


@task(cache_policy=NO_CACHE)
def recommend_products(paths: RunPaths, as_of: date, settings: Settings) -> int:
    """Pick every customer's products for the day's messages; write them beside the profile; return how many."""
    progress.advance("recommend")
    orders = read_table(paths, Table.ORDERS, ["order_id", "customer_id", "created_at", "status"], arrow_strings=True)
    items = read_table(paths, Table.ORDER_ITEMS, ["order_id", "product_id"], arrow_strings=True)
    events = read_table(paths, Table.EVENTS, arrow_strings=True)
    interactions = shop_interactions(orders, items, events, as_of, settings.interest_half_life_days)
    picks = pick_products(
        interactions,
        read_table(paths, Table.PRODUCTS, ["product_id", "category", "in_stock"]),
        read_table(paths, Table.CUSTOMERS, ["customer_id", "locale"]),
        pd.read_parquet(detail_file(paths.profile, "interests")),
        pd.read_parquet(detail_file(paths.profile, "replenishment")),
        PickRules.from_settings(settings),
    )
    paths.recommendations.parent.mkdir(parents=True, exist_ok=True)
    picks.to_parquet(paths.recommendations, index=False)
    return int(picks["customer_id"].nunique())
