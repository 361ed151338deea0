"""Recommendation models: score products for customers from their weighted interactions.

The input is a customers x products matrix of interaction weights (``Interactions``); every model
returns, for a block of customers, their top-k products with scores, never a product the customer
already has in the matrix, and never a dense customers x products matrix (customers are scored in
blocks, item-item products keep only the top n per row).

Models (``MODELS``):

* ``popular`` - products by the number of customers who interacted with them (the baseline);
* ``item_knn`` - item-item "bought together": ``sim(i, j) = x_i . x_j / |x_i|^(2 alpha) |x_j|^(2 (1 - alpha))``,
  each product keeping its ``neighbours`` most similar products; a customer's score for a product is
  the sum of the similarities to what they have. ``alpha = 0.5`` is cosine; the default 1.0 is "of the
  customers who took i, how many took j" (cosine makes a product bought by one customer the perfect
  neighbour of everything in their basket: on the Online Retail sample cosine scores NDCG@10 0.002,
  alpha 1.0 0.028, popularity 0.028). Sparse throughout: ``sparse_dot_topn`` multiplies the sparse
  matrices keeping only the top n per row, in C++ on every core;
* ``ease`` - EASE (Steck 2019), the closed-form item-item model ``B = I - P / diag(P)`` with
  ``P = (X'X + lambda I)^-1``: the most accurate here, but a dense products x products inverse, so only for
  catalogs up to ``EASE_MAX_ITEMS``;
* ``auto`` - ``ease`` when the catalog fits, else ``item_knn`` (what the daily run uses).

``recommend_csv`` is the evaluation interface: ``user_id,item_id,timestamp[,weight]`` in, ``user_id,
rank,item_id,score`` out (``loyalty recommend``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

MODELS = ("popular", "item_knn", "ease", "auto")
EASE_MAX_ITEMS = 12_000  # a 12,000 x 12,000 float64 inverse is 1.2 GB; beyond it item_knn
BLOCK_CELLS = 8_000_000  # scores held at once per block: customers x (k + most products any of them has)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class RecommendError(ValueError):
    """A model name or parameter that cannot be used; the message says which and why."""


def confidence(weight: npt.ArrayLike) -> FloatArray:
    """Diminishing returns on repeated interactions: ``w`` up to 1, ``1 + ln w`` beyond.

    A customer who bought a product fifty times likes it more than one who bought it once, not fifty times more.
    """
    w = np.asarray(weight, dtype=np.float64)
    return np.asarray(np.where(w > 1.0, 1.0 + np.log(np.maximum(w, 1.0)), w), dtype=np.float64)


@dataclass(frozen=True)
class Interactions:
    """Customers x products interaction strengths (``confidence`` of the summed weights, only positive)."""

    matrix: sp.csr_matrix
    users: pd.Index
    items: pd.Index

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, user: str = "user_id", item: str = "item_id", weight: str | None = "weight"
    ) -> Interactions:
        """Sum the weights per (user, item), keep the positive sums (a bad review can cancel a view)."""
        user_codes, users = pd.factorize(frame[user], sort=True)
        item_codes, items = pd.factorize(frame[item], sort=True)
        values = (
            frame[weight].to_numpy(dtype=np.float64) if weight is not None and weight in frame else np.ones(len(frame))
        )
        summed = sp.coo_matrix(
            (values, (user_codes, item_codes)), shape=(len(users), len(items)), dtype=np.float64
        ).tocsr()
        summed.sum_duplicates()
        summed.data = np.where(summed.data > 0, confidence(summed.data), 0.0)
        summed.eliminate_zeros()
        return cls(summed.astype(np.float32), pd.Index(users), pd.Index(items))

    def save(self, folder: Path) -> None:
        """Write the matrix and its ids into ``folder`` (``load`` reads them back as they were)."""
        folder.mkdir(parents=True, exist_ok=True)
        sp.save_npz(folder / "interactions.npz", self.matrix, compressed=False)
        for name in ("users", "items"):
            pd.DataFrame({"id": getattr(self, name)}).to_parquet(folder / f"{name}.parquet", index=False)

    @classmethod
    def load(cls, folder: Path) -> Interactions:
        ids = {name: pd.Index(pd.read_parquet(folder / f"{name}.parquet")["id"]) for name in ("users", "items")}
        return cls(sp.csr_matrix(sp.load_npz(folder / "interactions.npz")), ids["users"], ids["items"])


@dataclass(frozen=True)
class TopK:
    """Top-k per scored customer in long form: row (customer position), item (product position), score, rank."""

    rows: IntArray
    items: IntArray
    scores: FloatArray
    ranks: IntArray

    @classmethod
    def empty(cls) -> TopK:
        nothing = np.zeros(0, dtype=np.int64)
        return cls(nothing, nothing, np.zeros(0), nothing)


class Model(Protocol):
    name: str

    def fit(self, matrix: sp.csr_matrix) -> Model: ...

    def top(self, seen: sp.csr_matrix, k: int, widest: int | None = None) -> TopK:
        """Top-k per row of ``seen`` (a block of customers' interactions), their own products left out.

        ``widest``: the most products a customer of the block has (default: of these rows). Candidates are
        cut at ``k + widest``: the same ``widest`` gives a row the same top-k, ties included, whatever other
        rows are scored with it.
        """
        ...


def _row_top_k(scores: sp.csr_matrix, k: int) -> TopK:
    """The k highest entries of each row of a sparse matrix (fewer where a row has fewer), best first."""
    scores.sort_indices()
    counts = np.diff(scores.indptr)
    n_rows = scores.shape[0]
    width = int(counts.max()) if n_rows and scores.nnz else 0
    if width == 0:
        return TopK.empty()
    row_of = np.repeat(np.arange(n_rows), counts)
    slot = np.arange(scores.nnz) - scores.indptr[row_of]
    padded = np.full((n_rows, width), -np.inf, dtype=np.float64)
    columns = np.full((n_rows, width), -1, dtype=np.int64)
    padded[row_of, slot] = scores.data
    columns[row_of, slot] = scores.indices
    return _dense_top_k(padded, k, columns)


def _dense_top_k(scores: npt.NDArray[np.floating], k: int, columns: IntArray | None = None) -> TopK:
    """The k highest finite entries per row of a dense block (column positions, or ``columns``' values)."""
    n_rows, width = scores.shape
    take = min(k, width)
    if take == 0:
        return TopK.empty()
    part = (
        np.argpartition(-scores, take - 1, axis=1)[:, :take] if width > take else np.tile(np.arange(width), (n_rows, 1))
    )
    chosen = np.take_along_axis(scores, part, axis=1)
    labels = part if columns is None else np.take_along_axis(columns, part, axis=1)
    order = np.lexsort((labels, -chosen), axis=1)  # best first; equal scores by product position
    part, chosen = np.take_along_axis(part, order, axis=1), np.take_along_axis(chosen, order, axis=1)
    keep = np.isfinite(chosen)
    rows = np.broadcast_to(np.arange(n_rows)[:, None], part.shape)[keep]
    ranks = np.broadcast_to(np.arange(1, take + 1)[None, :], part.shape)[keep]
    items = (part if columns is None else np.take_along_axis(columns, part, axis=1))[keep]
    return TopK(rows.astype(np.int64), items.astype(np.int64), chosen[keep].astype(np.float64), ranks.astype(np.int64))


def _widest(seen: sp.csr_matrix, widest: int | None) -> int:
    """The most products a customer of the block has: ``widest`` if given, else of ``seen``'s rows."""
    return int(np.diff(seen.indptr).max(initial=0)) if widest is None else widest


def _without_seen(candidates: sp.csr_matrix, seen: sp.csr_matrix) -> sp.csr_matrix:
    """Drop the entries of ``candidates`` where the customer has the product already."""
    mask = seen.copy()
    mask.data = np.ones_like(mask.data)
    kept = candidates - candidates.multiply(mask)
    kept = sp.csr_matrix(kept)
    kept.eliminate_zeros()
    return kept


@dataclass
class Popular:
    """Products by how many customers interacted with them."""

    name: str = "popular"
    counts: FloatArray = field(default_factory=lambda: np.zeros(0))

    def fit(self, matrix: sp.csr_matrix) -> Popular:
        self.counts = np.asarray((matrix > 0).sum(axis=0), dtype=np.float64).ravel()
        return self

    def top(self, seen: sp.csr_matrix, k: int, widest: int | None = None) -> TopK:
        n = min(self.counts.size, k + _widest(seen, widest))
        best = np.argsort(-self.counts, kind="stable")[:n]
        rows = seen.shape[0]
        candidates = sp.csr_matrix(
            (np.tile(self.counts[best] + 1.0, rows), np.tile(best, rows), np.arange(rows + 1) * n),
            shape=seen.shape,
        )
        top = _row_top_k(_without_seen(candidates, seen), k)
        return TopK(top.rows, top.items, top.scores - 1.0, top.ranks)  # +1 kept never-bought products apart from 0


@dataclass
class ItemKNN:
    """Item-item similarity (cosine at ``alpha`` 0.5, "bought together" at 1.0), ``neighbours`` kept per product."""

    neighbours: int = 100
    alpha: float = 1.0
    name: str = "item_knn"
    threads: int = 2
    similarity: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    lookup: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))  # the same, columns sorted

    def fit(self, matrix: sp.csr_matrix) -> ItemKNN:
        from sparse_dot_topn import sp_matmul_topn

        squares = np.asarray(matrix.multiply(matrix).sum(axis=0), dtype=np.float64).ravel()
        safe = np.where(squares > 0, squares, 1.0)
        # sim(i, j) = x_i . x_j / (|x_i|^(2 alpha) |x_j|^(2 (1 - alpha))): alpha 0.5 is cosine; above it,
        # products bought by one or two customers stop looking like everybody's best neighbour
        left = sp.csr_matrix((matrix @ sp.diags(safe**-self.alpha)).T, dtype=np.float32)
        right = sp.csr_matrix(matrix @ sp.diags(safe ** -(1.0 - self.alpha)), dtype=np.float32)
        similar = sp_matmul_topn(left, right, top_n=self.neighbours + 1, n_threads=self.threads)
        similar = sp.csr_matrix(similar)
        similar.setdiag(0.0)  # a product is not its own neighbour
        similar.eliminate_zeros()
        self.similarity = similar
        self.lookup = similar.sorted_indices()  # sorted columns: scipy finds a pair by binary search, not a scan
        return self

    def similarity_of(self, theirs: IntArray, candidates: IntArray) -> FloatArray:
        """Similarity of each of a customer's products to a candidate (0 where not a kept neighbour)."""
        return np.asarray(self.lookup[theirs, candidates], dtype=np.float64).ravel()

    def top(self, seen: sp.csr_matrix, k: int, widest: int | None = None) -> TopK:
        from sparse_dot_topn import sp_matmul_topn

        n = k + _widest(seen, widest)
        candidates = sp_matmul_topn(
            sp.csr_matrix(seen, dtype=np.float32), self.similarity, top_n=n, n_threads=self.threads
        )
        return _row_top_k(_without_seen(sp.csr_matrix(candidates), seen), k)


@dataclass
class Ease:
    """EASE (Steck 2019): a dense closed-form item-item model, for catalogs up to ``EASE_MAX_ITEMS``."""

    regularization: float = 500.0
    name: str = "ease"
    dense_scores: ClassVar[bool] = True  # scores every product: top_k blocks customers x catalog
    weights: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    def fit(self, matrix: sp.csr_matrix) -> Ease:
        n_items = matrix.shape[1]
        if n_items > EASE_MAX_ITEMS:
            raise RecommendError(
                f"ease needs a dense {n_items:,} x {n_items:,} matrix; use item_knn above {EASE_MAX_ITEMS:,} products"
            )
        gram = np.asarray((matrix.T @ matrix).toarray(), dtype=np.float64)
        gram[np.diag_indices(n_items)] += self.regularization
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)
        weights[np.diag_indices(n_items)] = 0.0
        self.weights = weights.astype(np.float32)
        return self

    def similarity_of(self, theirs: IntArray, candidates: IntArray) -> FloatArray:
        """The weight of each of a customer's products in a candidate's score."""
        return np.asarray(self.weights[theirs, candidates], dtype=np.float64)

    def top(self, seen: sp.csr_matrix, k: int, widest: int | None = None) -> TopK:  # scores every product
        # float32 as computed: the same order as in float64, half the memory and time to partition
        scores = np.asarray(sp.csr_matrix(seen, dtype=np.float32) @ self.weights, dtype=np.float32)
        rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
        scores[rows, seen.indices] = -np.inf
        return _dense_top_k(scores, k)


def make_model(name: str, n_items: int) -> Model:
    """The model of a name (``MODELS``); ``auto`` picks ``ease`` when the catalog fits, else ``item_knn``."""
    if name == "auto":
        name = "ease" if n_items <= EASE_MAX_ITEMS else "item_knn"
    if name == "popular":
        return Popular()
    if name == "item_knn":
        return ItemKNN()
    if name == "ease":
        return Ease()
    raise RecommendError(f"unknown model {name!r}: use one of {', '.join(MODELS)}")


# What a fitted model keeps, by model: written as arrays (no pickles: a run folder may come from S3).
_FITTED = {"popular": "counts", "item_knn": "similarity", "ease": "weights"}


def save_model(model: Model, folder: Path) -> None:
    """Write a fitted model into ``folder``: its name and parameters, and what it learned."""
    folder.mkdir(parents=True, exist_ok=True)
    learned = getattr(model, _FITTED[model.name])
    parameters = {k: v for k, v in vars(model).items() if k not in (_FITTED[model.name], "lookup")}
    (folder / "model.json").write_text(json.dumps(parameters))
    if sp.issparse(learned):
        sp.save_npz(folder / "model.npz", learned, compressed=False)
    else:
        np.save(folder / "model.npy", learned, allow_pickle=False)


def load_model(folder: Path) -> Model:
    """The model ``save_model`` wrote, as fitted."""
    parameters = json.loads((folder / "model.json").read_text())
    name = parameters["name"]
    kinds: dict[str, type[Popular] | type[ItemKNN] | type[Ease]] = {
        "popular": Popular,
        "item_knn": ItemKNN,
        "ease": Ease,
    }
    model = kinds[name](**parameters)
    if name == "item_knn":
        similarity = sp.csr_matrix(sp.load_npz(folder / "model.npz"))
        model.similarity, model.lookup = similarity, similarity.sorted_indices()  # type: ignore[union-attr]
    else:
        setattr(model, _FITTED[name], np.load(folder / "model.npy", allow_pickle=False))
    return model


def _blocks(seen_counts: IntArray, k: int, dense_width: int | None = None) -> Iterator[IntArray]:
    """Customer positions in blocks of at most ``BLOCK_CELLS`` scores, the lightest customers first.

    A block holds customers x (k + the most products one of them has) candidate scores; sorted by how much
    they have, one heavy customer does not widen a block of light ones. A model that scores every product
    (``dense_width``: the catalog's size) holds customers x products.
    """
    order = np.argsort(seen_counts, kind="stable")
    counts = seen_counts[order]
    start = 0
    while start < order.size:
        width = np.full(order.size - start, dense_width) if dense_width else k + counts[start:]
        cells = (np.arange(1, order.size - start + 1)) * width  # nondecreasing
        end = start + max(1, int(np.searchsorted(cells, BLOCK_CELLS, side="right")))
        yield order[start:end]
        start = end


def top_k(model: Model, matrix: sp.csr_matrix, k: int, popular: Popular | None = None) -> TopK:
    """Top-k products for every customer with interactions, scored block by block.

    A customer for whom the model finds fewer than k products gets the rest from ``popular``
    (score 0 or less after the model's, so they rank below), so every customer gets k while the catalog allows.
    """
    return _joined([found for _, found in top_k_blocks(model, matrix, k, popular)])


def top_k_blocks(
    model: Model, matrix: sp.csr_matrix, k: int, popular: Popular | None = None, rows: IntArray | None = None
) -> Iterator[tuple[IntArray, TopK]]:
    """``top_k`` one block of customers at a time: (the block's customer rows, their top-k by row and rank).

    For callers that use each block's answer and let it go, so nothing grows with customers x products or
    holds every customer's candidates at once. Customers without interactions are in no block.

    ``rows``: score only these rows of the matrix (a partition's customers), each as when every row is scored:
    the blocks are cut over every row, and each block's rows are scored with the block's ``widest``.
    """
    seen_counts = np.diff(matrix.indptr).astype(np.int64)
    wanted = seen_counts > 0
    if rows is not None:
        wanted &= np.isin(np.arange(seen_counts.size), rows)
    dense_width = matrix.shape[1] if getattr(model, "dense_scores", False) else None
    for block in _blocks(seen_counts, k, dense_width):
        widest = int(seen_counts[block].max(initial=0))
        block = block[wanted[block]]
        if block.size == 0:
            continue
        seen = matrix[block]
        found = model.top(seen, k, widest)
        parts = [TopK(block[found.rows], found.items, found.scores, found.ranks)]
        short = np.flatnonzero(np.bincount(found.rows, minlength=block.size) < k)
        if popular is not None and short.size:
            parts.append(_fill(popular, seen, block, short, found, k, widest + k))
        yield block, _joined(parts)


def _joined(parts: list[TopK]) -> TopK:
    """Parts of a top-k in one, ordered by row, then rank."""
    if not parts:
        return TopK.empty()
    rows = np.concatenate([p.rows for p in parts])
    items = np.concatenate([p.items for p in parts])
    scores = np.concatenate([p.scores for p in parts])
    ranks = np.concatenate([p.ranks for p in parts])
    order = np.lexsort((ranks, rows))
    return TopK(rows[order], items[order], scores[order], ranks[order])


def _fill(
    popular: Popular, seen: sp.csr_matrix, block: IntArray, short: IntArray, found: TopK, k: int, widest: int
) -> TopK:
    """Popular products after the model's, for the customers of a block it found fewer than k for (``widest``: the
    most products one of the block's customers has, with the model's picks)."""
    have = sp.csr_matrix(
        (np.ones(found.rows.size), (found.rows, found.items)), shape=seen.shape
    )  # the model's picks count as seen for the fill
    taken = (seen + have)[short]
    extra = popular.top(taken, k, widest)
    already = np.bincount(found.rows, minlength=seen.shape[0])[short]
    rank = extra.ranks + already[extra.rows]
    keep = rank <= k
    floor = found.scores.min(initial=0.0) if found.scores.size else 0.0
    scores = np.minimum(floor, 0.0) - 1.0 + extra.scores[keep] / (1.0 + popular.counts.max(initial=1.0))
    return TopK(block[short[extra.rows[keep]]], extra.items[keep], scores, rank[keep])


def recommend_csv(train: pd.DataFrame, k: int, model: str = "auto") -> pd.DataFrame:
    """Top-k per user of ``train`` (user_id, item_id[, weight]): user_id, rank, item_id, score."""
    if k < 1:
        raise RecommendError(f"k must be at least 1, got {k}")
    data = Interactions.from_frame(train)
    fitted = make_model(model, len(data.items)).fit(data.matrix)
    popular = fitted if isinstance(fitted, Popular) else Popular().fit(data.matrix)
    found = top_k(fitted, data.matrix, k, popular)
    return pd.DataFrame(
        {
            "user_id": np.asarray(data.users)[found.rows],
            "rank": found.ranks,
            "item_id": np.asarray(data.items)[found.items],
            "score": np.round(found.scores, 6),
        }
    )
