"""Score our recommenders and peer libraries side by side on MovieLens-100k, with the same splits and metrics.

uv run python bench/recommend_quality.py                 # k = 10, writes bench/results/recommend-quality.json
uv run python bench/recommend_quality.py --k 20 --json /tmp/quality.json

Every rating is one interaction of weight 1. Two splits (``tasks.recommend.evaluate``): each user's last 10
ratings as test, and a global 80/20 cut in time (test: warm users and warm items, 107 users). For each split
the train and test sets go to CSV files in a temporary directory (removed at the end); the peers run in their
own throwaway environment (``bench/recommend_peers.py`` under ``uv run --isolated``: rectools needs numpy 1.26)
and write their top-k lists there; our models are ``tasks.recommend.models.recommend_csv`` for each name in
``tasks.recommend.models.MODELS``, run in this process (skipped, with a notice, while that module does not exist).
Everything is scored by ``tasks.recommend.evaluate.evaluate`` against the catalog of items seen in train.

Peer NDCG@10 measured earlier on this machine (``REFERENCE_NDCG``) is printed beside ours: matching it within
a few thousandths checks the splits and the metrics. LightFM is tried once per run (``--with lightfm==1.17``);
when it cannot be installed the reason is recorded in its place.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.recommend.evaluate import METRICS, evaluate, split_leave_last, split_time

REPO_ROOT = Path(__file__).resolve().parents[1]

PEER_PACKAGES = ("implicit==0.7.3", "rectools==0.19.0")
LIGHTFM_PACKAGE = "lightfm==1.17"
PEERS_SCRIPT = REPO_ROOT / "bench" / "recommend_peers.py"
LEAVE_LAST = 10
TRAIN_SHARE = 0.8
# NDCG@10 of the peers as measured before on this machine. The time split's "implicit item-item" is matched
# by the plain co-occurrence ItemItemRecommender (0.160); its cosine/TF-IDF/BM25 variants give 0.141-0.147.
REFERENCE_NDCG: dict[str, dict[str, float]] = {
    "leave_last_10": {"popular": 0.082, "itemknn_tfidf": 0.138, "ease": 0.146, "lightfm_warp": 0.140},
    "time_80_20": {"popular": 0.149, "itemknn": 0.161, "ease": 0.178},
}


def _uv() -> str:
    """The uv binary the Makefile would use: the one on PATH, else the project's own ``.tools/bin/uv``."""
    return shutil.which("uv") or str(REPO_ROOT / ".tools" / "bin" / "uv")


def _peer_command(train: Path, k: int, out_dir: Path, with_lightfm: bool) -> list[str]:
    packages = [*PEER_PACKAGES, *([LIGHTFM_PACKAGE] if with_lightfm else [])]
    withs = [arg for package in packages for arg in ("--with", package)]
    script = [str(PEERS_SCRIPT), "--train", str(train), "--k", str(k), "--out-dir", str(out_dir)]
    return [_uv(), "run", "--isolated", "--no-project", *withs, "python", *script]


def _install_failure(stderr: str) -> str:
    """uv's one-line reason and the build's last error line, e.g. a setup.py traceback's last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    first = next((line for line in lines if line.startswith("error:")), lines[0] if lines else "uv failed")
    last = next((line for line in reversed(lines) if "Error" in line and not line.startswith("hint:")), "")
    return f"{first} ({last})" if last and last != first else first


def run_peers(train: Path, k: int, out_dir: Path, lightfm: dict[str, str | None]) -> dict[str, Any]:
    """Run the peers script in its throwaway environment; returns its timings.json.

    ``lightfm`` carries the LightFM install outcome across splits: tried once, and once it has failed the
    peers run without it and its entry says why.
    """
    env = {name: value for name, value in os.environ.items() if name != "VIRTUAL_ENV"}  # ours, not theirs
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")

    def peers(with_lightfm: bool) -> subprocess.CompletedProcess[str]:
        command = _peer_command(train, k, out_dir, with_lightfm)
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False)

    done = peers(with_lightfm=lightfm.get("error") is None)
    installed = (out_dir / "timings.json").exists()
    if lightfm.get("error") is None and done.returncode != 0 and not installed and "lightfm" in done.stderr:
        lightfm["error"] = f"{LIGHTFM_PACKAGE} did not install: {_install_failure(done.stderr)}"
        print(f"  {lightfm['error']}; peers run without it")
        done = peers(with_lightfm=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise RuntimeError(f"the peers script failed with exit code {done.returncode}")
    timings: dict[str, Any] = json.loads((out_dir / "timings.json").read_text())
    if lightfm.get("error") is not None:
        timings["lightfm_warp"] = {"error": lightfm["error"]}
    return timings


def _recs_path(split_dir: Path, model: str) -> Path:
    """Where a model's top-k CSV lives: peers write ``<model>.csv``, ours ``ours-<model>.csv``."""
    return split_dir / f"{model.replace(':', '-')}.csv"


def run_ours(train: pd.DataFrame, k: int, out_dir: Path) -> dict[str, Any]:
    """Run each of our models through ``recommend_csv``; returns {model: timings or error}."""
    try:
        from tasks.recommend import models as recommend
    except ImportError as exc:
        print(f"  our models skipped: tasks.recommend.models is not importable ({type(exc).__name__}: {exc})")
        return {}
    timings: dict[str, Any] = {}
    for name in recommend.MODELS:
        started = time.perf_counter()
        try:
            recs = recommend.recommend_csv(train, k, name)
        except Exception as exc:  # one broken model must not hide the others' scores
            timings[f"ours:{name}"] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"  ours:{name} failed: {timings[f'ours:{name}']['error']}")
            continue
        seconds = time.perf_counter() - started
        recs.to_csv(_recs_path(out_dir, f"ours:{name}"), index=False)
        timings[f"ours:{name}"] = {"seconds": seconds}
    return timings


def score(
    split: str, train: pd.DataFrame, test: pd.DataFrame, k: int, workdir: Path, lightfm: dict[str, str | None]
) -> dict[str, Any]:
    """Write one split's files, run every model on it and score them."""
    split_dir = workdir / split
    split_dir.mkdir()
    train_csv = split_dir / "train.csv"
    train.to_csv(train_csv, index=False)
    test.to_csv(split_dir / "test.csv", index=False)
    catalog_size = train["item_id"].nunique()

    timings = run_peers(train_csv, k, split_dir, lightfm)
    timings.update(run_ours(train, k, split_dir))
    models: dict[str, Any] = {}
    for name, timing in timings.items():
        if "error" in timing:
            models[name] = {"error": timing["error"]}
            continue
        recs = pd.read_csv(_recs_path(split_dir, name), dtype={"user_id": str, "item_id": str})
        seconds = timing.get("seconds", timing.get("fit_seconds", 0.0) + timing.get("recommend_seconds", 0.0))
        models[name] = {**evaluate(recs, test, k, catalog_size), **timing, "seconds": seconds}
    return {
        "train_rows": len(train),
        "test_rows": len(test),
        "test_users": int(test["user_id"].nunique()),
        "catalog_size": catalog_size,
        "models": models,
        "reference_ndcg": REFERENCE_NDCG.get(split, {}),
    }


def print_table(split: str, result: dict[str, Any], k: int) -> None:
    print(
        f"\n{split}: {result['train_rows']:,} train rows, {result['test_rows']:,} test rows, "
        f"{result['test_users']} test users, {result['catalog_size']:,} items in train"
    )
    header = f"{'model':<16}" + "".join(f"{f'{m}@{k}':>14}" for m in METRICS[:4])
    print(header + f"{'coverage':>10}{'seconds':>9}{'ref NDCG':>10}")
    for name, row in result["models"].items():
        if "error" in row:
            print(f"{name:<16}  {row['error']}")
            continue
        reference = result["reference_ndcg"].get(name)
        ref = f"{reference:>10.3f}" if reference is not None else f"{'':>10}"
        cells = "".join(f"{row[m]:>14.4f}" for m in METRICS[:4])
        print(f"{name:<16}{cells}{row['coverage']:>10.3f}{row['seconds']:>9.2f}{ref}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Score every model on both splits, print one table per split and write the results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=10, help="list length per user")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "bench" / "results" / "recommend-quality.json")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO_ROOT))  # tests.datasets downloads and caches the recbole wheel
    from tests.datasets import movielens_100k

    ratings = movielens_100k()
    interactions = ratings.loc[:, ["user_id", "item_id", "timestamp"]].assign(weight=1.0)
    splits = {
        f"leave_last_{LEAVE_LAST}": split_leave_last(interactions, LEAVE_LAST),
        f"time_{round(TRAIN_SHARE * 100)}_{round((1 - TRAIN_SHARE) * 100)}": split_time(interactions, TRAIN_SHARE),
    }
    lightfm: dict[str, str | None] = {"error": None}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="recommend-quality-") as tmp:
        for split, (train, test) in splits.items():
            print(f"{split}: running the peers and our models ...")
            results[split] = score(split, train, test, args.k, Path(tmp), lightfm)
    for split, result in results.items():
        print_table(split, result, args.k)

    output: dict[str, Any] = {
        "benchmark": "recommend-quality",
        "dataset": "movielens-100k (recbole==1.2.1 ml-100k.inter), every rating an interaction of weight 1",
        "k": args.k,
        "peer_packages": [*PEER_PACKAGES, LIGHTFM_PACKAGE],
        "splits": results,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(output, indent=2) + "\n")
    print(f"\nwritten to {args.json}")
    return output


if __name__ == "__main__":
    main()
