"""Measure the plan over weeks: what a multi-week ``loyalty simulate`` sends and which promises it keeps.

    uv run python bench/simulate_weeks.py --customers 1500 --seed 7 --from 2027-02-18 --to 2027-03-12

Generates a demo shop (``tasks/demo/synth``, a year of history ending on ``--to``), simulates every
daily campaign day by day from ``--from`` to ``--to`` (the planner's gates, what a day sends counting
as sent for the days after) and counts, over the whole run:

- messages sent per campaign (a message is one (customer, campaign, step, occurrence), channels once);
- capped customer-days: a customer and day with a ``frequency_cap`` row; of those, the ones with
  nothing sent that day while fewer than the weekly budget went in the 7 days ending that day (the
  budget broke its own promise);
- ``reserved`` rows per campaign (a message that gave way to a higher-priority step, ``yields_to``);
- holdout rows, held-out occurrences, and the most days and rows one occurrence was recorded as held out;
- messages sent with a coupon and those whose coupon had expired on the day they went out. Rows
  carry ``coupon_valid_until``; for plans made before they did, the validity is recomputed from the
  catalog as that code computed it (from the occurrence).

Rows from code older than issue 12 carry no ``occurrence``: the script says so, counts a message per
(customer, campaign, step, day) instead, and leaves the figures that need the occurrence (holdouts
per occurrence, coupons) as null.

Prints a table and writes JSON (``--json``, default ``bench/results/simulate-<customers>.json``), with
the wall time and the peak memory (max RSS) of the process.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.data.sources import load_raw
from tasks.demo.synth import generate_shop, write_shop
from tasks.kernel.settings import PROJECT_ROOT, Settings
from tasks.plan.campaigns import Campaign, load_catalog
from tasks.plan.offers import validity
from tasks.plan.simulate import simulate

MESSAGE = ["customer_id", "campaign", "step", "occurrence"]
KEY = b"bench-simulate-weeks-key-0123456789"


def measure(rows: pd.DataFrame, catalog: dict[str, Campaign], per_week: int) -> dict[str, object]:
    """The counts of the module docstring, from a simulation's rows."""
    if "occurrence" not in rows.columns:
        print(
            "note: these simulation rows have no 'occurrence' column (code older than issue 12): a message is "
            "counted per (customer, campaign, step, day); holdouts per occurrence and coupons are not measured (null)",
            file=sys.stderr,
        )
    key = MESSAGE if "occurrence" in rows.columns else [*MESSAGE[:3], "date"]
    sent = rows.loc[rows["decision"] == "send"]
    messages = sent.drop_duplicates(key)
    marketing = messages.loc[messages["campaign"].map(lambda c: catalog[c].kind.value) == "marketing"]
    days = pd.to_datetime(marketing["date"])
    on_day = marketing.groupby(["customer_id", "date"]).size()
    capped = rows.loc[rows["reason"] == "frequency_cap", ["customer_id", "date"]].drop_duplicates()
    by_customer = {c: pd.to_datetime(g["date"]) for c, g in marketing.assign(d=days).groupby("customer_id")}
    broken = 0
    for customer, day in zip(capped["customer_id"], capped["date"], strict=True):
        if on_day.get((customer, day), 0):
            continue
        went = by_customer.get(customer, pd.Series(dtype="datetime64[ns]"))
        stamp = pd.Timestamp(day)
        if ((went > stamp - timedelta(days=7)) & (went <= stamp)).sum() < per_week:
            broken += 1
    held = rows.loc[rows["decision"] == "holdout"]
    reserved = rows.loc[rows["reason"] == "reserved"].drop_duplicates(list(dict.fromkeys([*key, "date"])))
    result: dict[str, object] = {
        "sent_by_campaign": {str(k): int(v) for k, v in messages["campaign"].value_counts().sort_index().items()},
        "messages_sent": len(messages),
        "capped_customer_days": len(capped),
        "capped_with_nothing_sent_under_weekly_budget": broken,
        "reserved_by_campaign": {str(k): int(v) for k, v in reserved["campaign"].value_counts().sort_index().items()},
        "holdout_rows": len(held),
        "held_out_occurrences": None,
        "most_holdout_days_for_one_occurrence": None,
        "most_holdout_rows_for_one_occurrence": None,
        "sent_with_coupon": None,
        "coupons_expired_at_send": None,
    }
    if "occurrence" not in rows.columns:
        return result
    occurrence = ["customer_id", "campaign", "occurrence"]
    days_held = held.drop_duplicates([*occurrence, "date"]).groupby(occurrence).size()
    rows_held = held.groupby(occurrence).size()
    with_coupon, expired = _coupons(sent.drop_duplicates([*MESSAGE, "date"]), catalog)
    return result | {
        "held_out_occurrences": len(rows_held),
        "most_holdout_days_for_one_occurrence": int(days_held.max()) if len(held) else 0,
        "most_holdout_rows_for_one_occurrence": int(rows_held.max()) if len(held) else 0,
        "sent_with_coupon": with_coupon,
        "coupons_expired_at_send": expired,
    }


def _coupons(sent: pd.DataFrame, catalog: dict[str, Campaign]) -> tuple[int, int]:
    """(messages sent with a coupon, of them sent after the coupon's last day)."""
    if "coupon_valid_until" in sent.columns:
        carried = sent.loc[sent["coupon_valid_until"].notna()]
        return len(carried), int((carried["coupon_valid_until"].astype(str) < carried["date"].astype(str)).sum())
    total = expired = 0
    for campaign_name, step_number, occurrence, day in zip(
        sent["campaign"], sent["step"], sent["occurrence"], sent["date"], strict=True
    ):
        campaign = catalog[campaign_name]
        offer = campaign.step_offer(next(s for s in campaign.steps if s.step == int(step_number)))
        if offer is None:
            continue
        total += 1
        expired += validity(campaign, offer, date.fromisoformat(str(occurrence)))[1] < date.fromisoformat(str(day))
    return total, expired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--from", dest="start", default="2027-02-18")
    parser.add_argument("--to", dest="end", default="2027-03-12")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    catalog = load_catalog(PROJECT_ROOT / "campaigns")
    settings = Settings()
    with tempfile.TemporaryDirectory() as folder:
        write_shop(generate_shop(customers=args.customers, days=365, seed=args.seed, end=end), Path(folder))
        raw = load_raw(folder)
        began = time.perf_counter()
        rows = simulate(raw, catalog, start, end, settings, KEY)
        seconds = time.perf_counter() - began
    result = {
        "customers": args.customers,
        "seed": args.seed,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "days": (end - start).days + 1,
        "plan_rows": len(rows),
        "simulate_seconds": round(seconds, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **measure(rows, catalog, settings.marketing_per_week),
    }
    for name, value in result.items():
        if isinstance(value, dict):
            print(f"{name}:")
            for key, count in value.items():
                print(f"  {key:<28} {count:>7}")
        else:
            print(f"{name:<46} {value}")
    target = args.json or Path(__file__).resolve().parent / "results" / f"simulate-{args.customers}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
