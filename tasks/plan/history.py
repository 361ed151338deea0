"""Marketing history: what each customer was sent on earlier days, for the frequency budget and pauses.

Read from the run folders' plans (the daily runs', the ad-hoc campaigns' and the order-updates
runs'), so a backfill run in date order sees the budget each day saw.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from tasks.kernel.enums import Decision, MessageKind
from tasks.kernel.paths import ADHOC_FOLDER, UPDATES_FOLDER, UPDATES_MARKETING_FILE, RunPaths


def marketing_history(output_dir: Path, as_of: date, days: int = 30, include_today: bool = False) -> pd.DataFrame:
    """Return (customer_id, campaign, occurrence, day) of marketing planned to send on the ``days`` before ``as_of``.

    Read from those days' plans, so a backfill run in date order sees the budget each day saw, from the
    one-off campaigns of those days, and from the marketing the order-updates runs of those days planned
    (back in stock, ``tasks/jobs/order_updates.py``). ``include_today``: ``as_of`` itself too, for runs after
    the day's daily run (order updates, ad-hoc campaigns).
    """
    frames = [no_history()]
    for back in range(0 if include_today else 1, days + 1):
        day = as_of - timedelta(days=back)
        daily = RunPaths.for_day(output_dir, day).plan
        # the day's plan, and the plans of one-off campaigns sent that day (a withdrawn one is renamed)
        for path in [daily, *sorted((output_dir / ADHOC_FOLDER).glob(f"*/{day.isoformat()}/plan/plan.parquet"))]:
            if path.exists():
                columns = ["customer_id", "campaign", "step", "occurrence", "kind", "decision"]
                frames.append(sent_history(pd.read_parquet(path, columns=columns), day))
        for update in sorted((output_dir / UPDATES_FOLDER / day.isoformat()).glob(f"*/plan/{UPDATES_MARKETING_FILE}")):
            planned = pd.read_parquet(update, columns=["customer_id", "campaign", "occurrence"])
            frames.append(planned.astype(object).assign(day=pd.Timestamp(day)))
    out = pd.concat(frames, ignore_index=True)
    return out.astype({"customer_id": str, "campaign": str, "occurrence": str, "day": "datetime64[ns]"})


def no_history() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in ("customer_id", "campaign", "occurrence")}).assign(
        day=pd.Series(dtype="datetime64[ns]")
    )


def sent_history(plan: pd.DataFrame, day: date) -> pd.DataFrame:
    """Return (customer_id, campaign, occurrence, day) per marketing message a day's plan sends (channels once)."""
    sent = plan.loc[(plan["kind"] == MessageKind.MARKETING.value) & (plan["decision"] == Decision.SEND.value)]
    sent = sent.drop_duplicates(["customer_id", "campaign", "step", "occurrence"])
    return pd.DataFrame(
        {
            "customer_id": sent["customer_id"].to_numpy(dtype=object),
            "campaign": sent["campaign"].to_numpy(dtype=object),
            "occurrence": sent["occurrence"].astype(str).to_numpy(dtype=object),
            "day": pd.Series(pd.Timestamp(day), index=range(len(sent)), dtype="datetime64[ns]").to_numpy(),
        }
    )
