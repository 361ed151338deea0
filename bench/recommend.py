"""Benchmark the recommender at scale: fit and top-10 for every customer, beside implicit's cosine item-item.

    uv run python bench/recommend.py --customers 1000000 --products 50000

The interactions are drawn with numpy: products in taste clusters of 100, each customer with two
clusters; about 20 interactions each, 70% in their clusters (popularity-skewed), 30% from the shop's
bestsellers (Zipf). Our side runs in this process: the interactions table (integer ids, as the
profile codes them) -> the customers x products matrix -> ``ItemKNN`` fit -> top-10 for every customer,
scored in blocks. The peer, ``implicit``'s ``CosineRecommender`` with the same number of neighbours, runs in
its own throwaway environment (``uv run --isolated --with implicit==0.7.3``) on the same matrix, fitting
and scoring every customer too. Each side reports seconds per step and its process's peak RSS. Targets: fit
plus top-10 for all under 3 minutes and 4 GB. Prints a table, writes bench/results/recommend-<customers>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

BENCH_ROOT = Path(__file__).resolve().parent
REPO = BENCH_ROOT.parent
PEER = ["--with", "implicit==0.7.3", "--with", "scipy", "--with", "numpy<2.3"]


def peak_rss_mb() -> float:
    """This process's peak RSS since the last ``reset_peak_rss`` (Linux VmHWM), else since it started."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Start the peak RSS afresh (Linux: write 5 to /proc/self/clear_refs); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def draw_interactions(customers: int, products: int, per_customer: int, seed: int) -> pd.DataFrame:
    """(customer_id, product_id, weight) with taste clusters and a popularity skew; integer ids."""
    rng = np.random.default_rng(seed)
    cluster_size = 100
    clusters = max(1, products // cluster_size)
    counts = np.maximum(1, rng.poisson(per_customer, customers))
    who = np.repeat(np.arange(customers, dtype=np.int64), counts)
    n = who.size
    tastes = rng.integers(0, clusters, (customers, 2))
    own = tastes[who, rng.integers(0, 2, n)]
    within = np.minimum((rng.pareto(1.5, n) * 5).astype(np.int64), cluster_size - 1)  # skewed inside a cluster
    in_cluster = own * cluster_size + within
    bestseller = np.minimum(rng.zipf(1.3, n) - 1, products - 1)
    product = np.where(rng.random(n) < 0.7, in_cluster, bestseller) % products
    weight = rng.choice(np.array([4.0, 2.0, 1.5, 0.5]), n, p=[0.3, 0.2, 0.1, 0.4])  # order, cart, wishlist, view
    return pd.DataFrame({"customer_id": who, "product_id": product, "weight": weight})


PEER_SCRIPT = r"""
import json, resource, sys, time
import numpy as np, scipy.sparse as sp
from threadpoolctl import threadpool_limits
from implicit.nearest_neighbours import CosineRecommender
matrix = sp.load_npz(sys.argv[1]).tocsr()
k, neighbours, sample = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out = {}
t = time.perf_counter()
model = CosineRecommender(K=neighbours, num_threads=2)
model.fit(matrix, show_progress=False)
out["fit_seconds"] = time.perf_counter() - t
users = np.arange(min(sample, matrix.shape[0]))
t = time.perf_counter()
ids, scores = model.recommend(users, matrix[users], N=k, filter_already_liked_items=True)
out["sample_seconds"] = time.perf_counter() - t
t = time.perf_counter()
block = 100_000
for start in range(0, matrix.shape[0], block):
    users = np.arange(start, min(start + block, matrix.shape[0]))
    ids, scores = model.recommend(users, matrix[users], N=k, filter_already_liked_items=True)
out["recommend_all_seconds"] = time.perf_counter() - t
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def run_peer(matrix: sp.csr_matrix, k: int, neighbours: int, sample: int, work: Path) -> dict[str, Any]:
    """implicit's CosineRecommender on the same matrix, in its own environment; its numbers or the error."""
    uv = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    sp.save_npz(work / "matrix.npz", matrix)
    (work / "peer.py").write_text(PEER_SCRIPT)
    command = [
        uv,
        "run",
        "--isolated",
        "--no-project",
        *PEER,
        "--with",
        "threadpoolctl",
        "python",
        str(work / "peer.py"),
    ]
    done = subprocess.run(
        [*command, str(work / "matrix.npz"), str(k), str(neighbours), str(sample)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _cell(value: object) -> str:
    return f"{value:>18,.2f}" if isinstance(value, int | float) else f"{'-':>18}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--per-customer", type=int, default=20)
    parser.add_argument("--neighbours", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-peer", action="store_true", help="Skip implicit (no package index reachable).")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from tasks.recommend.models import Interactions, ItemKNN, Popular, top_k

    work = Path(tempfile.mkdtemp(prefix="loyalty-bench-recommend-"))
    steps: dict[str, float] = {}
    try:
        started = time.perf_counter()
        frame = draw_interactions(args.customers, args.products, args.per_customer, args.seed)
        print(f"interactions: {len(frame):,} in {time.perf_counter() - started:.1f} s", flush=True)
        drawing_rss = peak_rss_mb()
        reset = reset_peak_rss()  # from here on, the peak is the recommender's (with the table it reads)

        mark = time.perf_counter()
        data = Interactions.from_frame(frame, "customer_id", "product_id", "weight")
        steps["matrix"] = time.perf_counter() - mark
        del frame
        mark = time.perf_counter()
        model = ItemKNN(neighbours=args.neighbours).fit(data.matrix)
        popular = Popular().fit(data.matrix)
        steps["fit"] = time.perf_counter() - mark
        mark = time.perf_counter()
        found = top_k(model, data.matrix, args.k, popular)
        steps["recommend_all"] = time.perf_counter() - mark
        sample = min(10_000, data.matrix.shape[0])
        mark = time.perf_counter()
        top_k(model, data.matrix[:sample], args.k, popular)
        steps["sample_10k"] = time.perf_counter() - mark
        ours = {
            **{f"{name}_seconds": round(seconds, 2) for name, seconds in steps.items()},
            "fit_plus_recommend_seconds": round(steps["fit"] + steps["recommend_all"], 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "peak_rss_drawing_mb": round(drawing_rss, 1),
            "peak_rss_measured_from": "after drawing" if reset else "process start",
            "customers_with_k": int((np.bincount(found.rows, minlength=data.matrix.shape[0]) == args.k).sum()),
            "similarity_nnz": int(model.similarity.nnz),
        }
        matrix = data.matrix
        del data, model, found
        peer = {"skipped": True} if args.no_peer else run_peer(matrix, args.k, args.neighbours, sample, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'':<28}{'ours (ItemKNN)':>18}{'implicit Cosine':>18}")
    for label, key in [
        ("fit s", "fit_seconds"),
        ("top-10 for 10,000 s", "sample_seconds"),
        ("top-10 for everyone s", "recommend_all_seconds"),
        ("peak RSS MB", "peak_rss_mb"),
    ]:
        mine = ours.get(key, ours.get(key.replace("sample_seconds", "sample_10k_seconds")))
        print(f"{label:<28}{_cell(mine)}{_cell(peer.get(key))}")
    report = {
        "benchmark": "recommend",
        "customers": args.customers,
        "products": args.products,
        "interactions": int(matrix.nnz),
        "neighbours": args.neighbours,
        "k": args.k,
        "ours": ours,
        "implicit_cosine": peer,
        "targets": {"fit_plus_recommend_seconds": 180, "peak_rss_mb": 4096},
        "cpus": os.cpu_count(),
    }
    target = args.json or BENCH_ROOT / "results" / f"recommend-{args.customers}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"fit + top-{args.k} for all: {ours['fit_plus_recommend_seconds']} s, peak RSS {ours['peak_rss_mb']:,} MB")
    print(f"-> {target}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
