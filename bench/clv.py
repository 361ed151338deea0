"""Benchmark the CLV models: CDNOW (2,357 customers) and a synthetic population of a million.

uv run python bench/clv.py                       # CDNOW best of 5, then 1,000,000 synthetic customers
uv run python bench/clv.py --customers 200000 --json /tmp/clv.json

The synthetic customers follow the BG/NBD story with CDNOW's published parameters (first purchases spread over
12 weeks, a 39-week calibration, a 39-week holdout) and spend per Gamma-Gamma; purchases land on calendar days.
The timed path is what a nightly run does: summary -> BG/NBD fit -> Gamma-Gamma fit -> every prediction for
every customer. Generating the purchase log is timed separately.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.profile import clv

REPO_ROOT = Path(__file__).resolve().parents[1]
CDNOW_BGNBD = clv.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=-9582.4)
CDNOW_SPEND = clv.GammaGammaParams(p=6.25, q=3.74, gamma=15.44, log_likelihood=0.0)
START = date(1997, 1, 1)
FIRST_PURCHASE_DAYS = 84  # first purchases in the first 12 weeks, as in the CDNOW cohort
CALIBRATION_DAYS = 273  # 39 weeks: to 1997-09-30
HOLDOUT_DAYS = 273  # 39 more: to 1998-06-30


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # Linux: KiB, macOS: bytes


def simulate_transactions(
    customers: int, bgnbd: clv.BgNbdParams, spend: clv.GammaGammaParams, seed: int
) -> pd.DataFrame:
    """Draw a purchase log ``customer_id, date, amount`` from the BG/NBD and Gamma-Gamma generative stories.

    Each customer buys at a rate ``lambda ~ Gamma(r, alpha)`` per week from a first purchase in the first 12
    weeks; after each repeat purchase they leave for good with probability ``p ~ Beta(a, b)``. Each purchase's
    amount is ``Gamma(p, nu)`` with ``nu ~ Gamma(q, gamma)`` per customer. Vectorised over customers: each
    round draws the next purchase of every customer still buying.
    """
    rng = np.random.default_rng(seed)
    first = rng.integers(0, FIRST_PURCHASE_DAYS, customers)
    window = CALIBRATION_DAYS + HOLDOUT_DAYS - first  # days each customer can be seen buying after the first
    rate = np.maximum(rng.gamma(bgnbd.r, 1.0 / bgnbd.alpha, customers), 1e-300) / 7.0  # per day
    leave = rng.beta(bgnbd.a, bgnbd.b, customers)
    spend_rate = rng.gamma(spend.q, 1.0 / spend.gamma, customers)

    who, when = [np.arange(customers)], [first]
    clock = np.zeros(customers)
    buying = np.arange(customers)
    while buying.size:
        clock[buying] += rng.exponential(1.0 / rate[buying])
        buying = buying[clock[buying] < window[buying]]
        who.append(buying)
        when.append(first[buying] + np.floor(clock[buying]).astype(np.int64))
        buying = buying[rng.random(buying.size) >= leave[buying]]
    ids = np.concatenate(who)
    days = np.concatenate(when)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "date": np.datetime64(START, "D") + days.astype("timedelta64[D]"),
            "amount": rng.gamma(spend.p, 1.0 / spend_rate[ids]),
        }
    )


def _cdnow(repeats: int) -> dict[str, object]:
    """Fit CDNOW ``repeats`` times; the best time counts (the machine is shared)."""
    sys.path.insert(0, str(REPO_ROOT))  # tests.datasets downloads and caches the lifetimes wheel
    from tests.datasets import cdnow_transactions

    log = cdnow_transactions()[["customer_id", "date", "amount"]]
    summary = clv.summary_data(log, "1997-09-30", "1998-06-30")
    bgnbd_times, total_times = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        bgnbd = clv.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
        bgnbd_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        report = clv.fit_transactions(log, "1997-09-30", "1998-06-30")
        total_times.append(time.perf_counter() - started)
    spend = report.gamma_gamma
    return {
        "customers": report.n_customers,
        "repeat_customers": report.n_repeat_customers,
        "bgnbd_fit_seconds_best": round(min(bgnbd_times), 4),
        "summary_and_both_fits_seconds_best": round(min(total_times), 4),
        "bgnbd": bgnbd.model_dump(),
        "gamma_gamma": spend.model_dump(),
        "holdout": report.holdout.model_dump() if report.holdout else None,
    }


def _synthetic(customers: int, seed: int) -> dict[str, object]:
    started = time.perf_counter()
    log = simulate_transactions(customers, CDNOW_BGNBD, CDNOW_SPEND, seed)
    generated = time.perf_counter()
    summary = clv.summary_data(log, "1997-09-30", "1998-06-30")
    summarised = time.perf_counter()
    bgnbd = clv.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    bgnbd_fitted = time.perf_counter()
    spend = clv.fit_gamma_gamma(summary["frequency"], summary["monetary_value"])
    spend_fitted = time.perf_counter()
    predictions = clv.predict(bgnbd, spend, summary, horizon=52, discount_rate=0.002)
    predicted = time.perf_counter()
    holdout = clv.holdout_check(bgnbd, summary)
    assert not predictions.isna().any().any(), "a prediction is NaN"
    return {
        "customers": len(summary),
        "purchases": len(log),
        "repeat_customers": int((summary["frequency"] > 0).sum()),
        "seed": seed,
        "generate_seconds": round(generated - started, 2),
        "summary_seconds": round(summarised - generated, 2),
        "bgnbd_fit_seconds": round(bgnbd_fitted - summarised, 2),
        "gamma_gamma_fit_seconds": round(spend_fitted - bgnbd_fitted, 2),
        "predict_seconds": round(predicted - spend_fitted, 2),
        "summary_fit_predict_seconds": round(predicted - generated, 2),
        "true_bgnbd": CDNOW_BGNBD.model_dump(exclude={"log_likelihood"}),
        "bgnbd": bgnbd.model_dump(),
        "true_gamma_gamma": CDNOW_SPEND.model_dump(exclude={"log_likelihood"}),
        "gamma_gamma": spend.model_dump(),
        "holdout": holdout.model_dump(),
        "mean_clv_52w": round(float(predictions["clv"].mean()), 3),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run both benchmarks once, print a summary and write it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=5, help="CDNOW fits; the best time counts")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "bench" / "results" / "clv.json")
    args = parser.parse_args(argv)

    cdnow = _cdnow(args.repeats)
    print(
        f"CDNOW: {cdnow['customers']:,} customers; BG/NBD fit {cdnow['bgnbd_fit_seconds_best']} s, "
        f"summary + both fits {cdnow['summary_and_both_fits_seconds_best']} s (best of {args.repeats})"
    )
    print(f"  BG/NBD {cdnow['bgnbd']}\n  Gamma-Gamma {cdnow['gamma_gamma']}")
    synthetic = _synthetic(args.customers, args.seed)
    print(
        f"synthetic: {synthetic['customers']:,} customers, {synthetic['purchases']:,} purchases "
        f"(generated in {synthetic['generate_seconds']} s)\n"
        f"  summary {synthetic['summary_seconds']} s, BG/NBD {synthetic['bgnbd_fit_seconds']} s, "
        f"Gamma-Gamma {synthetic['gamma_gamma_fit_seconds']} s, predictions {synthetic['predict_seconds']} s: "
        f"total {synthetic['summary_fit_predict_seconds']} s"
    )
    print(f"  true      {synthetic['true_bgnbd']} {synthetic['true_gamma_gamma']}")
    print(f"  recovered {synthetic['bgnbd']}\n            {synthetic['gamma_gamma']}")
    print(f"  holdout   {synthetic['holdout']}")
    result: dict[str, object] = {
        "benchmark": "clv",
        "cdnow": cdnow,
        "synthetic": synthetic,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"peak RSS {result['peak_rss_mb']} MiB")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
