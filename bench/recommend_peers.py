"""Fit peer recommender libraries on a train CSV and write their top-k lists, for ``bench/recommend_quality.py``.

Runs in its own throwaway environment, never in the project's locked one (rectools pins numpy 1.26):

uv run --isolated --no-project --with implicit==0.7.3 --with rectools==0.19.0 \\
    python bench/recommend_peers.py --train TRAIN.csv --k 10 --out-dir DIR

So it imports nothing from ``tasks``: it reads the CSV (``user_id,item_id,timestamp[,weight]``) with pandas.
For each peer it writes ``DIR/<model>.csv`` (``user_id,rank,item_id,score``: the top ``k`` for every user
with train interactions, items the user already has left out) and ``DIR/timings.json``
(``{model: {fit_seconds, recommend_seconds}}``, or ``{model: {error}}`` for a peer that cannot run here).

Every peer goes through rectools (its ``Dataset`` maps ids, its ``recommend(filter_viewed=True)`` leaves
seen items out the same way for all of them); fit time includes building that ``Dataset`` from the frame,
as our models build their matrices inside ``recommend_csv``. One thread everywhere (implicit's
``num_threads=1``, BLAS limited to one thread), so timings compare like for like.

Peers and their settings:

* ``popular``: rectools ``PopularModel`` (items by number of distinct users).
* ``itemknn``, ``itemknn_cosine``, ``itemknn_tfidf``, ``itemknn_bm25``: implicit ``ItemItemRecommender``
  (raw co-occurrence counts), ``CosineRecommender``, ``TFIDFRecommender``, ``BM25Recommender``, each with
  the default ``K=20`` neighbours (BM25 ``K1=1.2, B=0.75``).
* ``ease``: rectools ``EASEModel`` with its default ``regularization=500``.
* ``als``: implicit ``AlternatingLeastSquares(factors=64, iterations=15, regularization=0.01, alpha=1)``,
  ``random_state=42``.
* ``lightfm_warp``: LightFM ``loss="warp"``, 64 components, 30 epochs, ``random_state=42``; only when
  ``lightfm`` is importable (``--with lightfm==1.17``), else recorded as an error.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

SEED = 42
THREADS = 1


def read_train(path: Path) -> pd.DataFrame:
    """The train CSV as rectools interactions: ``user_id, item_id, weight, datetime``."""
    raw = pd.read_csv(path, dtype={"user_id": str, "item_id": str})
    timestamps = pd.to_numeric(raw["timestamp"], errors="coerce")
    if timestamps.notna().all():
        moments = pd.to_datetime(timestamps, unit="s")
    else:
        moments = pd.to_datetime(raw["timestamp"], utc=True, format="ISO8601").dt.tz_localize(None)
    weight = raw["weight"].astype("float64") if "weight" in raw.columns else 1.0
    return pd.DataFrame({"user_id": raw["user_id"], "item_id": raw["item_id"], "weight": weight, "datetime": moments})


def peers() -> dict[str, Callable[[], Any]]:
    """A factory per peer: each call makes a fresh, unfitted rectools model."""
    from implicit.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import (
        BM25Recommender,
        CosineRecommender,
        ItemItemRecommender,
        TFIDFRecommender,
    )
    from rectools.models import EASEModel, ImplicitALSWrapperModel, ImplicitItemKNNWrapperModel, PopularModel

    def lightfm_warp() -> Any:
        from lightfm import LightFM  # only in an environment made with --with lightfm==1.17
        from rectools.models import LightFMWrapperModel

        model = LightFM(no_components=64, loss="warp", random_state=SEED)
        return LightFMWrapperModel(model, epochs=30, num_threads=THREADS)

    return {
        "popular": lambda: PopularModel(),
        "itemknn": lambda: ImplicitItemKNNWrapperModel(ItemItemRecommender(num_threads=THREADS)),
        "itemknn_cosine": lambda: ImplicitItemKNNWrapperModel(CosineRecommender(num_threads=THREADS)),
        "itemknn_tfidf": lambda: ImplicitItemKNNWrapperModel(TFIDFRecommender(num_threads=THREADS)),
        "itemknn_bm25": lambda: ImplicitItemKNNWrapperModel(BM25Recommender(num_threads=THREADS)),
        "ease": lambda: EASEModel(),  # regularization=500.0, rectools' default
        "als": lambda: ImplicitALSWrapperModel(
            AlternatingLeastSquares(
                factors=64, iterations=15, regularization=0.01, alpha=1.0, random_state=SEED, num_threads=THREADS
            )
        ),
        "lightfm_warp": lightfm_warp,
    }


def run_peer(make: Callable[[], Any], train: pd.DataFrame, k: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """Fit one peer on the train frame and recommend ``k`` unseen items to every train user."""
    from rectools.dataset import Dataset

    model = make()
    started = time.perf_counter()
    dataset = Dataset.construct(train)
    model.fit(dataset)
    fitted = time.perf_counter()
    users = dataset.user_id_map.external_ids
    recs = model.recommend(users=users, dataset=dataset, k=k, filter_viewed=True)
    done = time.perf_counter()
    frame = pd.DataFrame(
        {
            "user_id": recs["user_id"].astype(str),
            "rank": recs["rank"].astype("int64"),
            "item_id": recs["item_id"].astype(str),
            "score": recs["score"].astype("float64"),
        }
    ).sort_values(["user_id", "rank"], kind="stable")
    return frame, {"fit_seconds": fitted - started, "recommend_seconds": done - fitted}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="train CSV: user_id,item_id,timestamp[,weight]")
    parser.add_argument("--k", type=int, default=10, help="list length per user")
    parser.add_argument("--out-dir", type=Path, required=True, help="where <model>.csv and timings.json go")
    parser.add_argument("--models", nargs="*", help="peers to run (default: all)")
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    train = read_train(args.train)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    factories = peers()
    unknown = sorted(set(args.models or ()) - set(factories))
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(factories)}")
    timings: dict[str, dict[str, Any]] = {}
    for name in args.models or list(factories):
        try:
            with threadpool_limits(limits=THREADS, user_api="blas"):
                frame, timing = run_peer(factories[name], train, args.k)
        except ImportError as exc:
            hint = " (add --with lightfm==1.17 to the uv command)" if exc.name == "lightfm" else ""
            timings[name] = {"error": f"{type(exc).__name__}: {exc}{hint}"}
            print(f"{name:>15}: skipped ({timings[name]['error']})")
            continue
        frame.to_csv(args.out_dir / f"{name}.csv", index=False)
        timings[name] = timing
        print(f"{name:>15}: fit {timing['fit_seconds']:.2f}s, recommend {timing['recommend_seconds']:.2f}s")
    (args.out_dir / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")


if __name__ == "__main__":
    main()
