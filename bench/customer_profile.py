"""Benchmark the customer profile: N customers with about ten orders each, time per step and peak RSS.

    uv run python bench/customer_profile.py --customers 1000000

The shop is drawn with numpy (not the demo generator, whose buyers order about twice a year):
85% of customers buy, about ten orders each over three years drawn as the models assume (a gamma
purchase rate, an exponential lifetime, a gamma usual order value per customer), 1-2 lines per order, a paid
and a delivered event per order (4% returned, 2% cancelled after payment, 8% late), one
behaviour event per order (views, cart adds, wishlists, reviews). The tables are drawn in a child
process, go through Parquet and come back with the dtypes the daily run reads, then ``build_profile`` runs once with a
timer on each of its steps. Target: under 2 minutes and 6 GB for 1,000,000 customers.
Prints a table and writes JSON to bench/results/profile-<customers>.json.
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
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

AS_OF = date(2026, 11, 20)
DAYS = 3 * 365
BENCH_ROOT = Path(__file__).resolve().parent
ZONES = np.array(["Europe/Moscow", "Europe/Warsaw", "Europe/London", "Asia/Yekaterinburg"])
CATEGORIES = np.array(["cat_food", "cat_toys", "dog_food", "dog_toys", "garden", "kitchen", "books", "toys"])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ids(prefix: str, numbers: np.ndarray) -> np.ndarray:
    return np.char.add(prefix, numbers.astype(str))


def make_shop(n: int, seed: int) -> dict[str, pd.DataFrame]:
    """The seven contract tables as clean frames (the dtypes validation writes), drawn with numpy."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp(AS_OF, tz="UTC") + pd.Timedelta(hours=20)
    start = end - pd.Timedelta(days=DAYS)
    customer = np.arange(n)
    customers = pd.DataFrame(
        {
            "customer_id": ids("C", customer),
            "email": np.char.add(ids("c", customer), "@example.com"),
            "phone": None,
            "first_name": "Anna",
            "last_name": None,
            "gender": "f",
            "birth_date": pd.to_datetime("1970-01-01") + pd.to_timedelta(rng.integers(0, 40 * 365, n), unit="D"),
            "locale": "ru",
            "timezone": ZONES[rng.integers(0, len(ZONES), n)],
            "country": "RU",
            "created_at": start,
            "email_opt_in": rng.random(n) < 0.8,
            "email_opt_in_at": start,
            "sms_opt_in": rng.random(n) < 0.3,
            "sms_opt_in_at": pd.NaT,
        }
    )
    # buyers behave as the models assume (Pareto/NBD-like): each has a purchase rate (gamma across
    # customers), a first purchase somewhere in the first 70% of the window, a lifetime (exponential)
    # after which they are gone, and a usual order value (gamma across customers)
    buyer = rng.random(n) < 0.85
    begin = rng.uniform(0, 0.7 * DAYS, n)
    active = np.minimum(rng.exponential(500, n), DAYS - begin)
    rate = rng.gamma(2.0, 0.013, n)  # purchases per day, mean 0.026
    counts = np.where(buyer, 1 + rng.poisson(rate * active), 0)
    who = np.repeat(customer, counts)
    m = who.size
    offset = np.where(np.r_[True, who[1:] != who[:-1]], 0.0, rng.random(m))  # each buyer's first order at begin
    at = start + pd.to_timedelta(((begin[who] + offset * active[who]) * 86400).astype(np.int64), unit="s")
    usual_value = rng.gamma(3.0, 15.0, n)
    order = np.arange(m)
    fate = rng.random(m)
    status = np.where(fate < 0.04, "returned", np.where(fate < 0.06, "cancelled", "delivered"))
    orders = pd.DataFrame(
        {
            "order_id": ids("O", order),
            "customer_id": ids("C", who),
            "created_at": at,
            "status": status,
            "total": np.round(rng.gamma(4.0, usual_value[who] / 4), 2) + 0.01,
            "currency": "EUR",
        }
    )
    lines = rng.integers(1, 3, m)
    line_order = np.repeat(order, lines)
    products = pd.DataFrame(
        {
            "product_id": ids("P", np.arange(2000)),
            "name": "product",
            "category": CATEGORIES[np.arange(2000) % len(CATEGORIES)],
            "price": 10.0,
            "currency": "EUR",
            "in_stock": True,
            "url": None,
            "image_url": None,
            "created_at": start,
        }
    )
    # a customer's favourite product recurs (replenishment); other lines are random
    favourite = rng.integers(0, 2000, n)[who][line_order]
    product = np.where(rng.random(line_order.size) < 0.5, favourite, rng.integers(0, 2000, line_order.size))
    items = pd.DataFrame(
        {
            "order_id": ids("O", line_order),
            "product_id": ids("P", product),
            "quantity": rng.integers(1, 4, line_order.size),
            "unit_price": np.round(rng.gamma(2.0, 10.0, line_order.size), 2),
        }
    )
    late = rng.random(m) < 0.08
    delivered = at + pd.to_timedelta(np.where(late, 9, 3), unit="D")
    returned = fate < 0.04
    cancelled = (fate >= 0.04) & (fate < 0.06)
    order_events = pd.concat(
        [
            pd.DataFrame({"order_id": orders["order_id"], "status": "paid", "at": at + pd.Timedelta(hours=1)}),
            pd.DataFrame(
                {"order_id": orders["order_id"][~cancelled], "status": "delivered", "at": delivered[~cancelled]}
            ),
            pd.DataFrame(
                {
                    "order_id": orders["order_id"][returned],
                    "status": "returned",
                    "at": delivered[returned] + pd.Timedelta(days=5),
                }
            ),
            pd.DataFrame(
                {
                    "order_id": orders["order_id"][cancelled],
                    "status": "cancelled",
                    "at": at[cancelled] + pd.Timedelta(hours=5),
                }
            ),
        ],
        ignore_index=True,
    )
    kinds = np.array(["view", "view", "view", "cart_add", "wishlist_add", "review"])
    kind = kinds[rng.integers(0, len(kinds), m)]
    events = pd.DataFrame(
        {
            "customer_id": orders["customer_id"],
            "product_id": ids("P", rng.integers(0, 2000, m)),
            "type": kind,
            "at": at - pd.Timedelta(hours=2),
            "rating": pd.Series(rng.integers(1, 6, m), dtype="Int64").where(kind == "review"),
            "text": None,
        }
    )
    stock_events = pd.DataFrame({"product_id": ["P0"], "in_stock": [True], "at": [start]})
    return {
        "customers": customers,
        "products": products,
        "orders": orders,
        "order_items": items,
        "order_events": order_events,
        "events": events,
        "stock_events": stock_events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--generate-to", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_to is not None:  # the child process: draw the shop, write it, print row counts
        shop = make_shop(args.customers, args.seed)
        for name, frame in shop.items():
            frame.to_parquet(args.generate_to / f"{name}.parquet", index=False)
        print(json.dumps({name: len(frame) for name, frame in shop.items()}))
        return

    from tasks.data.snapshot import read_parquet
    from tasks.kernel.ids import encode_ids
    from tasks.profile.features import PROFILE_INPUTS, build_coded_profile

    work = Path(tempfile.mkdtemp(prefix="loyalty-bench-profile-"))
    steps: list[dict[str, Any]] = []
    try:
        started = time.perf_counter()
        # drawn in a child process, so this process's peak RSS is the profile's alone
        child = [sys.executable, __file__, "--customers", str(args.customers), "--seed", str(args.seed)]
        made = subprocess.run([*child, "--generate-to", str(work)], capture_output=True, text=True, check=True)
        rows = json.loads(made.stdout.strip().splitlines()[-1])
        print(f"shop: {rows} in {time.perf_counter() - started:.1f} s", flush=True)
        # as the daily run's profile step reads them (tasks.profile.features.profile_customers): Arrow strings,
        # ids coded to integers as read, the string ids freed
        begin = time.perf_counter()
        tables, codes = encode_ids(
            {t: read_parquet(work / f"{t.value}.parquet", arrow_strings=True) for t in PROFILE_INPUTS}
        )
        read_seconds = time.perf_counter() - begin
        steps.append({"step": "read, ids to integer codes", "seconds": round(read_seconds, 2)})
        print(f"read and coded in {read_seconds:.1f} s: peak RSS {peak_rss_mb():,.0f} MB", flush=True)

        mark = [time.perf_counter()]

        def step_done(name: str) -> None:
            now = time.perf_counter()
            steps.append({"step": name, "seconds": round(now - mark[0], 2), "peak_rss_mb": round(peak_rss_mb(), 1)})
            print(f"  {name:<40} {now - mark[0]:7.2f} s   peak RSS {peak_rss_mb():8,.0f} MB", flush=True)
            mark[0] = now

        begin = time.perf_counter()
        parts = build_coded_profile(tables, codes, AS_OF, step_done=step_done)
        total = time.perf_counter() - begin
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "benchmark": "profile",
        "customers": args.customers,
        "rows": rows,
        "orders_per_buyer": round(rows["orders"] / max(1, int((parts.profile["orders"] > 0).sum())), 2),
        "steps": steps,
        "read_and_code_seconds": round(read_seconds, 2),
        "build_profile_seconds": round(total, 2),
        "total_seconds": round(read_seconds + total, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "prediction_basis": parts.profile["prediction_basis"].value_counts().to_dict(),
        "replenishment_pairs": len(parts.replenishment),
        "incidents": len(parts.incidents),
        "targets": {"seconds": 120, "peak_rss_mb": 6144},
        "cpus": os.cpu_count(),
    }
    target = args.json or BENCH_ROOT / "results" / f"profile-{args.customers}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"read + code {read_seconds:.1f} s, build_profile {total:.1f} s, peak RSS {peak_rss_mb():,.0f} MB -> {target}"
    )


if __name__ == "__main__":
    main()
