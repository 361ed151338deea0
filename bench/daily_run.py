"""Benchmark the daily run: synthesise N customers, then time each step of a dry run, with peak RSS.

    uv run python bench/daily_run.py --customers 100000

Each step runs through its task's ``.fn`` (the same code the flow runs, without
Prefect's bookkeeping), then the whole flow runs under Prefect for comparison.
Prints a table and writes JSON to bench/results/daily_run-<customers>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time as clock
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(results: list[dict[str, Any]], name: str, fn: Callable[[], Any]) -> Any:
    start = clock.perf_counter()
    value = fn()
    seconds = clock.perf_counter() - start
    results.append({"step": name, "seconds": round(seconds, 2), "peak_rss_mb": round(peak_rss_mb(), 1)})
    print(f"{name:<28} {seconds:8.2f} s   peak RSS {peak_rss_mb():8.1f} MB", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="where to write results")
    parser.add_argument("--keep", action="store_true", help="keep the generated shop and run folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="loyalty-bench-"))
    os.environ["LOYALTY_OUTPUT_DIR"] = str(work / "out")
    os.environ["LOYALTY_STATE_DIR"] = str(work / "state")

    from tasks.data.snapshot import load_snapshot
    from tasks.demo.synth import DEFAULT_END, generate_shop, write_shop
    from tasks.kernel.paths import RunPaths
    from tasks.kernel.settings import Settings
    from tasks.plan.planner import plan_day
    from tasks.profile.features import profile_customers
    from tasks.recommend.picks import recommend_products
    from tasks.render.compose import render_messages

    results: list[dict[str, Any]] = []
    as_of: date = DEFAULT_END
    shop = work / "shop"
    print(f"daily run benchmark: {args.customers:,} customers, {args.days} days, in {work}")
    frames = timed(results, "synth: generate", lambda: generate_shop(args.customers, args.days, args.seed, as_of))
    rows = {t.value: len(f) for t, f in frames.items()}
    timed(results, "synth: write csv", lambda: write_shop(frames, shop))
    frames.clear()  # free the memory before the run

    settings = Settings()
    paths = RunPaths.for_day(settings.output_dir, as_of)
    snapshot = timed(results, "load + validate", lambda: load_snapshot.fn(str(shop), as_of, paths, settings))
    timed(results, "profile", lambda: profile_customers.fn(paths, as_of, settings))
    timed(results, "recommendations", lambda: recommend_products.fn(paths, as_of, settings))
    # the run sends at 06:00 in the shop's zone on its day, as the schedule does
    morning = datetime.combine(as_of, time(6), ZoneInfo(settings.shop_timezone))
    plan = timed(results, "plan", lambda: plan_day.fn(paths, as_of, settings, morning))
    rendered = timed(
        results, "render (all shards)", lambda: sum(render_messages.fn(paths, s, as_of, settings) for s in plan.shards)
    )
    steps_total = sum(r["seconds"] for r in results if not r["step"].startswith("synth"))

    from flows.daily_run import daily_run

    shutil.rmtree(paths.root)
    timed(
        results,
        "whole flow under Prefect",
        lambda: daily_run(as_of=as_of, dry_run=True, data=str(shop), now=morning),
    )

    report = {
        "benchmark": "daily_run",
        "customers": args.customers,
        "days": args.days,
        "rows": rows,
        "quarantined": snapshot.quarantined,
        "planned": plan.planned,
        "to_send_by_campaign": plan.to_send_by_campaign,
        "rendered": rendered,
        "steps": results,
        "steps_total_seconds": round(steps_total, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpus": os.cpu_count(),
    }
    target = args.json or Path(__file__).parent / "results" / f"daily_run-{args.customers}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"rows: {rows}\nplanned {plan.planned}, rendered {rendered}, quarantined {snapshot.quarantined}")
    print(f"to send by campaign: {plan.to_send_by_campaign}")
    print(f"steps total {steps_total:.1f} s, peak RSS {peak_rss_mb():.0f} MB -> {target}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
