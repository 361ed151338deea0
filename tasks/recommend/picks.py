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
* cold start and short lists: popular products among customers of the same locale (all of them; interactions
  of customers the shop does not know count as ``en``), most popular first, the customer's top category
  (highest interest affinity) first (reason ``popular``).

Output (``PICK_COLUMNS``): customer_id, rank (1 = first), product_id, score, reason, reason_product_id.

Memory (``pick_for``): the model scores customers in blocks (``top_k_blocks``); each block's candidates stay
integer positions (customer, product) until the final picks get their ids; the rules run block by block on
those positions, and the reasons are weighed for the model's picks only, in chunks (``BECAUSE_CHUNK``). What
grows with the customers is their candidates (4 x ``per_customer`` each) and their picks; nothing grows with
customers x products, and no table of candidates holds Python strings.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.data.snapshot import read_parquet, read_table
from tasks.kernel import progress
from tasks.kernel.enums import Table
from tasks.kernel.paths import RunPaths, detail_file
from tasks.kernel.settings import Settings
from tasks.recommend.interactions import EVENT_COLUMNS, shop_interactions
from tasks.recommend.models import (
    FloatArray,
    IntArray,
    Interactions,
    Model,
    Popular,
    load_model,
    make_model,
    save_model,
    top_k_blocks,
)

PICK_COLUMNS = ("customer_id", "rank", "product_id", "score", "reason", "reason_product_id")
DUE_AGAIN, BECAUSE_OF, POPULAR = "due_again", "because_of", "popular"
Int32Array = npt.NDArray[np.int32]


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
    # per candidate (its pairs are contiguous): the first of its customer's products with the largest contribution
    present = np.flatnonzero(counts)
    best = np.maximum.reduceat(contribution, (np.cumsum(counts) - counts)[present])
    at_best = np.flatnonzero(contribution == np.repeat(best, counts[present]))
    first = at_best[np.r_[True, candidate[at_best][1:] != candidate[at_best][:-1]]]
    positive = contribution[first] > 0
    out[candidate[first][positive]] = theirs[first][positive]
    return out


PICK_BLOCK_CUSTOMERS = 100_000  # customers without a model block (no interactions) picked at once
REASONS = np.array([DUE_AGAIN, BECAUSE_OF, POPULAR], dtype=object)  # reason codes 0, 1, 2 while picking
DUE, MODEL, FILL = 0, 1, 2


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
    (for the exclusive groups and the top category of the popular fill); ``replenishment``: customer_id, product_id, days_until_due.
    """
    data = Interactions.from_frame(interactions, "customer_id", "product_id", "weight")
    return pick_for(Recommender.fit(data, rules), products, customers, interests, replenishment, rules)


@dataclass(frozen=True)
class Recommender:
    """What picks are made from, the same for every customer of the day: the interaction matrix and the model fitted
    on it (``None``: no interactions). Fitted once per day; a partition loads it and picks for its customers."""

    data: Interactions
    model: Model | None

    @classmethod
    def fit(cls, data: Interactions, rules: PickRules) -> Recommender:
        return cls(data, make_model(rules.model, data.matrix.shape[1]).fit(data.matrix) if data.matrix.nnz else None)

    def save(self, folder: Path) -> None:
        """Write the matrix and the fitted model into ``folder`` (what ``load`` reads)."""
        shutil.rmtree(folder, ignore_errors=True)
        self.data.save(folder)
        if self.model is not None:
            save_model(self.model, folder / "model")

    @classmethod
    def load(cls, folder: Path) -> Recommender:
        return cls(Interactions.load(folder), load_model(folder / "model") if (folder / "model").exists() else None)


def pick_for(
    recommender: Recommender,
    products: pd.DataFrame,
    customers: pd.DataFrame,
    interests: pd.DataFrame,
    replenishment: pd.DataFrame,
    rules: PickRules = PickRules(),
    everyone: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``pick_products`` from the interaction matrix and its fitted model, in blocks of customers.

    The model scores customers block by block (``top_k_blocks``), each block's candidates kept as compact
    integer arrays (4 ``per_customer`` per customer, never customers x products); the popular fill, which
    needs every customer's count of candidates, is built next; then each block is picked, and the customers
    without a model block after them, ``PICK_BLOCK_CUSTOMERS`` at a time. The reasons are weighed for the
    model's picks only (the rules do not look at them), and ids are put back once, on the final picks.

    ``customers``: those to pick for; ``everyone``: all the shop's customers (customer_id, locale), whose locales
    make the popular lists (default: ``customers``). A partition picks for its customers the rows the whole shop's
    picks have for them.
    """
    data, model = recommender.data, recommender.model
    shop = _Shop.build(data, products, customers, interests, replenishment, rules, everyone)
    blocks: list[tuple[IntArray, _Rows]] = []
    found = shop.due_start[1:] - shop.due_start[:-1]
    if model is not None:
        popular = model if isinstance(model, Popular) else None  # short lists are filled by locale below
        mine = np.flatnonzero(shop.customer_of_user >= 0)  # only customers of the shop (of the partition) are scored
        for users, top in top_k_blocks(model, data.matrix, rules.per_customer * 4, popular, mine):
            who = shop.customer_of_user[users]
            mine_of = shop.customer_of_user[top.rows]
            clean = mine_of >= 0  # clean customers only
            unknown = np.full(int(clean.sum()), -1)  # weighed once picked
            blocks.append(
                (np.sort(who[who >= 0]), _Rows.of(mine_of[clean], top.items[clean], top.scores[clean], unknown))
            )
            found += np.bincount(mine_of[clean], minlength=found.size)
    shop = shop.with_popular_fill(found < 2 * rules.per_customer, rules)
    parts: list[_Picked] = []
    picked = np.zeros(shop.customer_ids.size, dtype=bool)
    while blocks:
        who, candidates = blocks.pop(0)
        parts.append(_with_reasons(_pick_block(shop, who, candidates, rules), model, shop))
        picked[who] = True
    rest = np.flatnonzero(~picked)
    for start in range(0, rest.size, PICK_BLOCK_CUSTOMERS):
        parts.append(_pick_block(shop, rest[start : start + PICK_BLOCK_CUSTOMERS], _Rows.empty(), rules))
    return shop.frame(parts)


def _with_reasons(picked: _Picked, model: Model | None, shop: _Shop) -> _Picked:
    """The model's picks with the customer's product behind each (``because_of``; none: ``popular``)."""
    mine = np.flatnonzero(picked.reasons == MODEL)
    if model is None or mine.size == 0:
        return picked
    users = shop.user_of_customer[picked.customers[mine]]
    behind = because_of(model, shop.matrix, users, picked.products[mine])
    because, reasons = picked.because.copy(), picked.reasons.copy()
    because[mine] = behind
    reasons[mine] = np.where(behind >= 0, MODEL, FILL)
    return replace(picked, because=because, reasons=reasons)


@dataclass(frozen=True)
class _Rows:
    """Candidate picks by position: customer, product, score, the product behind it (-1: none, or not weighed yet)."""

    customers: Int32Array
    products: Int32Array
    scores: FloatArray
    because: Int32Array

    @classmethod
    def of(cls, customers: IntArray, products: IntArray, scores: FloatArray, because: IntArray) -> _Rows:
        return cls(customers.astype(np.int32), products.astype(np.int32), scores, because.astype(np.int32))

    @classmethod
    def empty(cls) -> _Rows:
        nothing = np.zeros(0, dtype=np.int64)
        return cls.of(nothing, nothing, np.zeros(0), nothing)


@dataclass(frozen=True)
class _Picked:
    """One block's picks by position: customer, rank, product, score, reason code (``REASONS``), reason product."""

    customers: IntArray
    ranks: IntArray
    products: IntArray
    scores: FloatArray
    reasons: npt.NDArray[np.int8]
    because: IntArray


@dataclass(frozen=True)
class _Shop:
    """What the rules need, by position: customers (clean, in id order) and products (the matrix's, then due ones).

    ``fill_*``: the popular fill (``with_popular_fill``), one list per locale plus the shop's overall list last,
    each most popular first (``fill_list`` says which a customer gets, ``short`` who gets it); ``fill_by_category``
    the same lists by category, of which a customer gets their ``top_category``'s first.
    """

    customer_ids: npt.NDArray[np.object_]
    product_ids: npt.NDArray[np.object_]
    customer_of_user: IntArray  # per matrix row: the clean customer's position, -1 if not a clean customer
    user_of_customer: IntArray  # per customer: the matrix row, -1 without interactions
    matrix: sp.csr_matrix
    due_start: IntArray  # per customer: where its due products start in due_products (and the next's end)
    due_products: IntArray
    in_stock: npt.NDArray[np.bool_]  # per product
    category: IntArray  # per product; a missing category is a category of its own
    group: IntArray  # per product: its exclusive group, -1 none
    liked: npt.NDArray[np.bool_]  # customers x exclusive groups with interest
    top_category: IntArray  # per customer: the category of their highest positive interest, -1 none
    locale: IntArray  # per customer
    locales: int
    user_locale: IntArray  # per matrix row: its customer's locale among all the shop's (``en`` for one it lacks)
    short: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))  # per customer
    fill_list: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # per customer
    fill_products: IntArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))  # lists x depth
    fill_scores: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    fill_by_category: IntArray = field(default_factory=lambda: np.zeros((0, 0, 0), dtype=np.int64))  # x categories
    fill_by_category_scores: FloatArray = field(default_factory=lambda: np.zeros((0, 0, 0)))

    @classmethod
    def build(
        cls,
        data: Interactions,
        products: pd.DataFrame,
        customers: pd.DataFrame,
        interests: pd.DataFrame,
        replenishment: pd.DataFrame,
        rules: PickRules,
        everyone: pd.DataFrame | None = None,
    ) -> _Shop:
        people = customers.drop_duplicates("customer_id").sort_values("customer_id", kind="stable")
        customer_ids = people["customer_id"].to_numpy(dtype=object)
        customer_index = pd.Index(customer_ids)
        shop_people = people if everyone is None else everyone.drop_duplicates("customer_id")
        shop_index = pd.Index(shop_people["customer_id"].to_numpy(dtype=object))
        customer_of_user = customer_index.get_indexer(np.asarray(data.users, dtype=object)).astype(np.int64)
        user_of_customer = np.full(customer_ids.size, -1, dtype=np.int64)
        is_customer = customer_of_user >= 0
        user_of_customer[customer_of_user[is_customer]] = np.flatnonzero(is_customer)

        due = replenishment.loc[replenishment["days_until_due"] <= rules.due_within_days]
        # the products are the whole shop's (the matrix's, then any other due for one of its customers): the same
        # positions, categories and popular lists whichever customers are picked for
        due_ids = due["customer_id"].to_numpy(dtype=object)
        shop_due = due["product_id"].to_numpy(dtype=object)[shop_index.get_indexer(due_ids) >= 0]
        due_customer = customer_index.get_indexer(due_ids)
        due_product = due["product_id"].to_numpy(dtype=object)[due_customer >= 0]
        due_customer = due_customer[due_customer >= 0]
        items = np.asarray(data.items, dtype=object)
        extra = pd.Index(shop_due).unique().difference(pd.Index(items), sort=False)
        product_ids = np.concatenate([items, np.asarray(extra, dtype=object)])
        product_index = pd.Index(product_ids)
        order = np.argsort(due_customer, kind="stable")
        due_start = np.r_[0, np.cumsum(np.bincount(due_customer, minlength=customer_ids.size))].astype(np.int64)

        catalog = products.set_index("product_id")
        in_stock = catalog["in_stock"].reindex(product_index).fillna(False).astype(bool).to_numpy()
        category_codes, categories = pd.factorize(catalog["category"].reindex(product_index))
        category = np.where(category_codes >= 0, category_codes, categories.size).astype(np.int64)
        groups = list(dict.fromkeys(rules.exclusive_groups)) if not interests.empty else []
        group = np.append(_groups_of(categories, groups), -1)[category]

        liked = np.zeros((customer_ids.size, len(groups)), dtype=bool)
        if groups:
            likes = interests.loc[interests["affinity"] > 0, ["customer_id", "category"]]
            codes, named = pd.factorize(likes["category"])
            liked_group = np.append(_groups_of(named, groups), -1)[codes]
            who = customer_index.get_indexer(likes["customer_id"].to_numpy(dtype=object))
            kept = (liked_group >= 0) & (who >= 0)
            liked[who[kept], liked_group[kept]] = True

        top_category = _top_categories(interests, customer_index, categories)
        shop_locale = shop_people["locale"].astype("string").fillna("en").to_numpy(dtype=object)
        shop_codes, locales = pd.factorize(np.append(shop_locale, "en"))
        of_user = shop_index.get_indexer(np.asarray(data.users, dtype=object))
        user_locale = np.where(of_user >= 0, shop_codes[np.maximum(of_user, 0)], shop_codes[-1]).astype(np.int64)
        locale = pd.Index(locales).get_indexer(people["locale"].astype("string").fillna("en").to_numpy(dtype=object))
        return cls(
            customer_ids=customer_ids,
            product_ids=product_ids,
            customer_of_user=customer_of_user,
            user_of_customer=user_of_customer,
            matrix=data.matrix,
            due_start=due_start,
            due_products=product_index.get_indexer(due_product[order]).astype(np.int64),
            in_stock=in_stock,
            category=category,
            group=group,
            liked=liked,
            top_category=top_category,
            locale=locale.astype(np.int64),
            locales=int(locales.size),
            user_locale=user_locale,
        )

    def with_popular_fill(self, short: npt.NDArray[np.bool_], rules: PickRules) -> _Shop:
        """The shop with its popular fill for the ``short`` customers (too few due and model candidates).

        A locale's popularity sums the interactions of all its customers (not only the short ones); those of
        customers the shop does not know count as ``en``. A locale without any gets the shop's overall list.
        """
        popular = _popular_lists(self.matrix, self.user_locale, self.locales, self.category, self.in_stock, rules)
        fill_list = np.where(popular.has_list[self.locale], self.locale, self.locales).astype(np.int64)
        return replace(
            self,
            short=short,
            fill_list=fill_list,
            fill_products=popular.products,
            fill_scores=popular.scores,
            fill_by_category=popular.by_category,
            fill_by_category_scores=popular.by_category_scores,
        )

    def frame(self, parts: list[_Picked]) -> pd.DataFrame:
        """The picks with their ids, by customer and rank (``PICK_COLUMNS``)."""
        customers = np.concatenate([np.zeros(0, dtype=np.int64), *(p.customers for p in parts)])
        ranks = np.concatenate([np.zeros(0, dtype=np.int64), *(p.ranks for p in parts)])
        order = np.lexsort((ranks, customers))
        products = np.concatenate([np.zeros(0, dtype=np.int64), *(p.products for p in parts)])[order]
        scores = np.concatenate([np.zeros(0), *(p.scores for p in parts)])[order]
        reasons = np.concatenate([np.zeros(0, dtype=np.int8), *(p.reasons for p in parts)])[order]
        because = np.concatenate([np.zeros(0, dtype=np.int64), *(p.because for p in parts)])[order]
        behind = np.full(because.size, None, dtype=object)
        behind[because >= 0] = self.product_ids[because[because >= 0]]
        return pd.DataFrame(
            {
                "customer_id": self.customer_ids[customers[order]],
                "rank": ranks[order],
                "product_id": self.product_ids[products],
                "score": np.round(scores, 6),
                "reason": REASONS[reasons],
                "reason_product_id": behind,
            },
            columns=list(PICK_COLUMNS),
        )


def _groups_of(categories: pd.Index, groups: list[str]) -> IntArray:
    """The exclusive group of each category (``cat`` for ``cat_food``) as a position in ``groups``, -1 none."""
    heads = [str(category).split("_")[0] for category in categories]
    return np.array([groups.index(head) if head in groups else -1 for head in heads], dtype=np.int64)


def _top_categories(interests: pd.DataFrame, customer_index: pd.Index, categories: pd.Index) -> IntArray:
    """Per customer: the category (a position in ``categories``) of their highest positive affinity, -1 none.

    Ties go to the category whose name sorts first; categories no product of the shop has are not counted.
    """
    top = np.full(customer_index.size, -1, dtype=np.int64)
    likes = interests.loc[interests["affinity"] > 0]
    who = customer_index.get_indexer(pd.Index(likes["customer_id"]))
    category = categories.get_indexer(pd.Index(likes["category"]))
    kept = (who >= 0) & (category >= 0)
    if not kept.any():
        return top
    who, category, affinity = who[kept], category[kept], likes["affinity"].to_numpy(dtype=np.float64)[kept]
    name_rank = np.argsort(np.argsort(categories.astype(str).to_numpy(), kind="stable"), kind="stable")
    order = np.lexsort((name_rank[category], -affinity, who))
    first = order[np.r_[True, who[order][1:] != who[order][:-1]]]
    top[who[first]] = category[first]
    return top


@dataclass(frozen=True)
class _PopularLists:
    """Each locale's popular products, then the shop's overall list, most popular first (-1 past a list's end).

    ``products``/``scores``: lists x depth; ``by_category``/``by_category_scores``: lists x categories x
    category depth; ``has_list``: which locales have popular products of their own.
    """

    products: IntArray
    scores: FloatArray
    by_category: IntArray
    by_category_scores: FloatArray
    has_list: npt.NDArray[np.bool_]


def _popular_lists(
    matrix: sp.csr_matrix,
    user_locale: IntArray,
    n_locales: int,
    category: IntArray,
    in_stock: npt.NDArray[np.bool_],
    rules: PickRules,
) -> _PopularLists:
    """Each locale's popular in-stock products (summed weights of its customers), then the shop's overall list.

    The popularity is a (locales + 1) x products table; lists of ``4 x per_customer`` products (by category:
    ``4 x per_category``), the most popular first, ties by product (the matrix's columns are in id order).
    Scores are ``-1 / (1 + popularity)``: below every model score, higher for the more popular.
    """
    depth, category_depth = rules.per_customer * 4, rules.per_category * 4
    n_lists, n_products, n_categories = n_locales + 1, matrix.shape[1], int(category.max(initial=0)) + 1
    locale_of_entry = user_locale[np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))]
    popularity = np.bincount(
        locale_of_entry * n_products + matrix.indices, weights=matrix.data, minlength=n_locales * n_products
    ).reshape(n_locales, n_products)
    popularity = np.vstack([popularity, popularity.sum(axis=0)])
    popularity[:, ~in_stock[:n_products]] = 0.0
    lists, products = np.nonzero(popularity > 0)
    weight = popularity[lists, products]
    score = -1.0 / (1.0 + weight)

    order = np.lexsort((products, -weight, lists))  # per list: most popular first, ties by product
    rank = _cumcount(lists[order])
    order, rank = order[rank < depth], rank[rank < depth]
    shown = np.full((n_lists, depth), -1, dtype=np.int64)
    scores = np.zeros((n_lists, depth))
    shown[lists[order], rank] = products[order]
    scores[lists[order], rank] = score[order]

    order = np.lexsort((products, -weight, category[products], lists))  # the same, per list and category
    rank = _cumcount(lists[order] * n_categories + category[products[order]])
    order, rank = order[rank < category_depth], rank[rank < category_depth]
    by_category = np.full((n_lists, n_categories, category_depth), -1, dtype=np.int64)
    by_category_scores = np.zeros((n_lists, n_categories, category_depth))
    by_category[lists[order], category[products[order]], rank] = products[order]
    by_category_scores[lists[order], category[products[order]], rank] = score[order]
    has_list = np.asarray((popularity[:n_locales] > 0).any(axis=1), dtype=bool)
    return _PopularLists(shown, scores, by_category, by_category_scores, has_list)


def _pick_block(shop: _Shop, who: IntArray, model: _Rows, rules: PickRules) -> _Picked:
    """The picks of a block of customers (positions, ascending) from the model's rows for them and the rules."""
    # due products first, in the replenishment's order
    due_counts = shop.due_start[who + 1] - shop.due_start[who]
    due_at = np.repeat(shop.due_start[who], due_counts) + _offsets(due_counts)
    due_products = shop.due_products[due_at]
    # the locale's popular products for those the model and the due list found few for
    # (their top category's first: its rows come before the locale's, and the customers' rows keep their order)
    short = who[shop.short[who]]
    lists = shop.fill_list[short]
    top = shop.top_category[short]
    liking = top >= 0
    fill_products = np.concatenate(
        [shop.fill_by_category[lists[liking], top[liking]].ravel(), shop.fill_products[lists].ravel()]
    )
    fill_scores = np.concatenate(
        [shop.fill_by_category_scores[lists[liking], top[liking]].ravel(), shop.fill_scores[lists].ravel()]
    )
    fill_customers = np.concatenate(
        [np.repeat(short[liking], shop.fill_by_category.shape[2]), np.repeat(short, shop.fill_products.shape[1])]
    )
    listed = fill_products >= 0
    fill_products, fill_scores, fill_customers = fill_products[listed], fill_scores[listed], fill_customers[listed]
    users = shop.user_of_customer[fill_customers]
    has_history = users >= 0
    seen = np.zeros(fill_products.size, dtype=bool)
    if has_history.any():
        sampled = shop.matrix[users[has_history], fill_products[has_history]]
        seen[has_history] = np.asarray(sampled).ravel() != 0
    fill = _Rows.of(fill_customers[~seen], fill_products[~seen], fill_scores[~seen], np.full(int((~seen).sum()), -1))

    customers = np.concatenate([np.repeat(who, due_counts), model.customers, fill.customers]).astype(np.int64)
    products = np.concatenate([due_products, model.products, fill.products]).astype(np.int64)
    scores = np.concatenate([np.full(due_products.size, np.nan), model.scores, fill.scores])
    because = np.concatenate([due_products, model.because, fill.because]).astype(np.int64)
    reasons = np.concatenate(
        [
            np.full(due_products.size, DUE, dtype=np.int8),
            np.full(model.products.size, MODEL, dtype=np.int8),
            np.full(fill.products.size, FILL, dtype=np.int8),
        ]
    )
    # each customer's rows in order: due, the model's by rank, the fill's
    keep = np.argsort(customers, kind="stable")
    keep = keep[shop.in_stock[products[keep]]]
    group = shop.group[products[keep]]
    if shop.liked.shape[1]:  # an exclusive group's products only for those who like it or none of the groups
        liking = shop.liked[customers[keep]]
        blocked = (group >= 0) & liking.any(axis=1) & ~liking[np.arange(keep.size), np.maximum(group, 0)]
        keep = keep[~blocked]
    pair = customers[keep] * np.int64(shop.product_ids.size) + products[keep]
    keep = keep[np.sort(np.unique(pair, return_index=True)[1])]  # a product once, where it came first
    n_categories = int(shop.category.max(initial=0)) + 1
    keep = keep[_cumcount(customers[keep] * n_categories + shop.category[products[keep]]) < rules.per_category]
    rank = _cumcount(customers[keep]) + 1
    keep, rank = keep[rank <= rules.per_customer], rank[rank <= rules.per_customer]
    return _Picked(customers[keep], rank, products[keep], scores[keep], reasons[keep], because[keep])


def _offsets(counts: IntArray) -> IntArray:
    """0, 1, ... within each run of ``counts``."""
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)


def _cumcount(keys: IntArray) -> IntArray:
    """How many earlier entries have the same key (pandas' ``groupby().cumcount()``)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]] if ordered.size else np.zeros(0, dtype=bool)
    position = np.arange(ordered.size, dtype=np.int64)
    counts = np.empty(ordered.size, dtype=np.int64)
    counts[order] = position - np.maximum.accumulate(np.where(starts, position, 0))
    return counts


@task(cache_policy=NO_CACHE)
def recommend_products(paths: RunPaths, as_of: date, settings: Settings, partitioned: bool = False) -> None:
    """Pick every customer's products for the day's messages; write them beside the profile.

    ``partitioned``: the day's partitions pick for their customers (``recommend_partition``): fit the model here,
    once for the shop, and write it with the interaction matrix (``RunPaths.recommender``) instead.
    """
    progress.advance("recommend")
    orders = read_table(paths, Table.ORDERS, ["order_id", "customer_id", "created_at", "status"], arrow_strings=True)
    items = read_table(paths, Table.ORDER_ITEMS, ["order_id", "product_id"], arrow_strings=True)
    present = pq.read_schema(paths.table(Table.EVENTS)).names  # rating is optional; review texts are not read
    events = read_table(paths, Table.EVENTS, [c for c in EVENT_COLUMNS if c in present], arrow_strings=True)
    interactions = shop_interactions(orders, items, events, as_of, settings.interest_half_life_days)
    del orders, items, events  # the tables are the biggest things here: only the matrix goes on
    data = Interactions.from_frame(interactions, "customer_id", "product_id", "weight")
    del interactions
    rules = PickRules.from_settings(settings)
    recommender = Recommender.fit(data, rules)
    if partitioned:
        recommender.save(paths.recommender)
        return
    picks = pick_for(
        recommender,
        read_table(paths, Table.PRODUCTS, ["product_id", "category", "in_stock"]),
        read_table(paths, Table.CUSTOMERS, ["customer_id", "locale"]),
        pd.read_parquet(detail_file(paths.profile, "interests")),
        pd.read_parquet(detail_file(paths.profile, "replenishment")),
        rules,
    )
    paths.recommendations.parent.mkdir(parents=True, exist_ok=True)
    picks.to_parquet(paths.recommendations, index=False)


@task(cache_policy=NO_CACHE)
def recommend_partition(
    paths: RunPaths, settings: Settings, mine: Callable[[pa.Table], pa.Table], target: Path
) -> None:
    """A partition's customers' picks (``mine``: its filter of the tables' rows) into ``target``, from the day's
    fitted model: the rows the whole day's picks have for them. The popular lists weigh every customer's locale.
    """
    people = pq.read_table(paths.table(Table.CUSTOMERS), columns=["customer_id", "locale"])  # read once, filtered
    picks = pick_for(
        Recommender.load(paths.recommender),
        read_table(paths, Table.PRODUCTS, ["product_id", "category", "in_stock"]),
        mine(people).to_pandas(),
        read_parquet(detail_file(paths.profile, "interests"), rows=mine),
        pd.read_parquet(detail_file(paths.profile, "replenishment")),  # whole: its products are the shop's
        PickRules.from_settings(settings),
        people.to_pandas(),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    picks.to_parquet(target, index=False)


def merge_picks(parts: Sequence[Path], target: Path) -> None:
    """The day's picks file from its partitions' files, in their order; each part goes once merged."""
    tables = [pq.read_table(part).replace_schema_metadata(None) for part in parts]
    partial = target.with_suffix(".parquet.partial")
    # a partition whose customers have no reason product has an all-null column: promoted to the others' type
    pq.write_table(pa.concat_tables(tables, promote_options="default"), partial)
    partial.replace(target)
    for part in parts:
        part.unlink()
