"""The shop's loyalty KPIs as of a date, a monthly retention-cohort table and a traffic-drop alert.

Definitions (buyers are customers with a purchase day on or before ``as_of``):

* ``repeat_purchase_rate`` - share of buyers with two purchase days or more;
* ``active_customers`` - customers whose lifecycle stage is new or active;
* ``churn_rate`` - of the customers who bought in the 90 days before ``as_of - 90``, the share
  who did not buy in the last 90 days;
* ``avg_interpurchase_days`` - mean, over repeat buyers, of their average gap between purchase days;
* ``revenue_per_customer_365d`` - purchase revenue of the last 365 days over the customers who bought in them;
* the cohort table - customers by the month of their first purchase (rows) and, per month since (columns),
  the share of the cohort who bought in that month (month 0 is 100% by construction);
* the traffic alert - the last complete day's product views (the day before ``as_of``: the daily run
  starts at 06:00, when the day has barely begun) against the mean of the 28 days before it: a fall of
  ``drop_threshold`` (default 40%) or more raises it, the earliest sign of falling loyalty.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.data.snapshot import read_table
from tasks.kernel import progress
from tasks.kernel.enums import EventType, Table
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.profile.charts import cohort_heatmap, views_trend

WINDOW = 90


class TrafficAlert(BaseModel):
    """Today's views against the trailing 28-day baseline."""

    day: date
    views: int
    baseline: float
    change: float | None  # -0.5 = half the baseline; None without a baseline
    alert: bool


class Kpis(BaseModel):
    """The headline numbers of a day."""

    as_of: date
    customers: int
    buyers: int
    repeat_purchase_rate: float | None
    active_customers: int
    churn_rate: float | None
    avg_interpurchase_days: float | None
    revenue_per_customer_365d: float | None
    traffic: TrafficAlert


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def compute_kpis(
    profile: pd.DataFrame, days: pd.DataFrame, views: pd.Series, as_of: date, drop_threshold: float = 0.4
) -> Kpis:
    """Compute the KPIs from the profile, purchase days (customer_id, day, total) and view timestamps."""
    today = pd.Timestamp(as_of)
    buyers = profile["orders"] > 0
    recent = days.loc[days["day"] > today - pd.Timedelta(days=WINDOW), "customer_id"].unique()
    before = days.loc[
        (days["day"] <= today - pd.Timedelta(days=WINDOW)) & (days["day"] > today - pd.Timedelta(days=2 * WINDOW)),
        "customer_id",
    ].unique()
    churned = len(set(before) - set(recent))
    year = days.loc[days["day"] > today - pd.Timedelta(days=365)]
    repeaters = profile.loc[profile["avg_interpurchase_days"].notna(), "avg_interpurchase_days"].astype(float)
    return Kpis(
        as_of=as_of,
        customers=len(profile),
        buyers=int(buyers.sum()),
        repeat_purchase_rate=_rate(len(repeaters), int(buyers.sum())),
        active_customers=int(profile["lifecycle"].isin(["new", "active"]).sum()),
        churn_rate=_rate(churned, len(before)),
        avg_interpurchase_days=round(float(repeaters.mean()), 1) if len(repeaters) else None,
        revenue_per_customer_365d=round(float(year["total"].sum()) / year["customer_id"].nunique(), 2)
        if len(year)
        else None,
        traffic=traffic_alert(views, last_complete_day(as_of), drop_threshold),
    )


def last_complete_day(as_of: date) -> date:
    """The last day whose views are all in: the day before the run's business date."""
    return as_of - timedelta(days=1)


def traffic_alert(views: pd.Series, as_of: date, drop_threshold: float = 0.4, baseline_days: int = 28) -> TrafficAlert:
    """Compare one day's view count (``as_of``) with the mean of the ``baseline_days`` before it (no views: 0)."""
    per_day = daily_counts(views, as_of - timedelta(days=baseline_days), as_of)
    today = int(per_day.iloc[-1])
    baseline = float(per_day.iloc[:-1].mean()) if len(per_day) > 1 else 0.0
    change = round(today / baseline - 1, 4) if baseline > 0 else None
    return TrafficAlert(
        day=as_of,
        views=today,
        baseline=round(baseline, 1),
        change=change,
        alert=change is not None and change <= -drop_threshold,
    )


def daily_counts(stamps: pd.Series, start: date, end: date) -> pd.Series:
    """Count timestamps per UTC day from ``start`` to ``end`` (both included), zeros for empty days."""
    at = pd.to_datetime(stamps, utc=True)
    at = at.loc[
        ((at >= pd.Timestamp(start, tz="UTC")) & (at < pd.Timestamp(end + timedelta(days=1), tz="UTC"))).to_numpy()
    ]
    days = at.dt.tz_convert(None).dt.floor("D")  # the days from start to end only: no other day is counted
    index = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D")
    return days.value_counts().reindex(index, fill_value=0).sort_index()


def retention_cohorts(days: pd.DataFrame, as_of: date, months: int = 12) -> pd.DataFrame:
    """Return the share of each first-purchase-month cohort buying in each later month (0..months-1).

    Rows: cohort month (``YYYY-MM``) with its size in column ``customers``; columns ``m0``..: shares.
    Months not yet reached are left empty (NaN), not zero.
    """
    if days.empty:
        return pd.DataFrame(columns=["customers", *[f"m{i}" for i in range(months)]])
    month = days["day"].dt.year * 12 + days["day"].dt.month - 1  # months since year 0
    first = month.groupby(days["customer_id"]).transform("min")
    cohort = (first // 12).astype(str) + "-" + (first % 12 + 1).astype(str).str.zfill(2)
    active = pd.DataFrame({"cohort": cohort, "offset": month - first, "customer_id": days["customer_id"]})
    active = active.loc[active["offset"] < months].drop_duplicates()
    counts = active.groupby(["cohort", "offset"])["customer_id"].nunique().unstack("offset")
    size = counts[0]
    table = counts.div(size, axis=0).round(4)
    table = table.reindex(columns=range(months))
    last = as_of.year * 12 + as_of.month - 1
    starts = np.array([int(str(n)[:4]) * 12 + int(str(n)[5:7]) - 1 for n in table.index])
    reached = (last - starts)[:, None] >= np.arange(months)[None, :]
    table = table.where(reached)  # months not reached yet stay empty
    table.columns = pd.Index([f"m{c}" for c in range(months)])
    table.insert(0, "customers", size.astype(int))
    return table


def _views(events: pa.Table) -> pa.Table:
    """The view events of an Arrow table of events."""
    return events.filter(pc.equal(events.column("type"), EventType.VIEW.value))


@task(cache_policy=NO_CACHE)
def report_kpis(paths: RunPaths, as_of: date, settings: Settings) -> Kpis:
    """Compute the day's KPIs; write kpis.json, cohorts.csv and two PNG charts; publish them as artifacts."""
    from tasks.kernel.paths import detail_file

    progress.advance("KPIs")
    profile = pd.read_parquet(paths.profile, columns=["orders", "avg_interpurchase_days", "lifecycle"])
    days = pd.read_parquet(detail_file(paths.profile, "purchase_days"))  # the profile step's local purchase days
    # the views' times only: the other events are dropped in Arrow, before any becomes a row of a frame
    views = read_table(paths, Table.EVENTS, ["type", "at"], rows=_views)["at"]
    kpis = compute_kpis(profile, days, views, as_of, settings.traffic_drop_threshold)
    cohorts = retention_cohorts(days, as_of)
    folder = paths.root / "kpis"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kpis.json").write_text(json.dumps(kpis.model_dump(mode="json"), indent=2) + "\n")
    cohorts.to_csv(folder / "cohorts.csv", index_label="cohort")
    cohort_heatmap(cohorts.tail(12), folder / "cohorts.png")
    last = kpis.traffic.day
    views_trend(daily_counts(views, last - timedelta(days=90), last), kpis.traffic.alert, folder / "views.png")
    create_markdown_artifact(markdown=kpi_markdown(kpis, folder), key="loyalty-kpis", description="Loyalty KPIs")
    create_table_artifact(
        table=[
            {"cohort": str(cohort), **{str(k): ("" if pd.isna(v) else v) for k, v in row.items()}}
            for cohort, row in cohorts.tail(12).iterrows()
        ],
        key="retention-cohorts",
        description="Share of each first-purchase cohort buying in each later month",
    )
    return kpis


def kpi_markdown(kpis: Kpis, folder: Path) -> str:
    """The KPIs as the markdown shown in the Prefect UI, with where the charts are."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    traffic = kpis.traffic
    alert = "**TRAFFIC DROP**: " if traffic.alert else ""
    change = "n/a" if traffic.change is None else f"{traffic.change:+.0%}"
    lines = [
        f"# Loyalty KPIs {kpis.as_of}",
        "",
        "| KPI | value |",
        "|---|---:|",
        f"| customers | {kpis.customers} |",
        f"| buyers | {kpis.buyers} |",
        f"| repeat purchase rate | {pct(kpis.repeat_purchase_rate)} |",
        f"| active customers | {kpis.active_customers} |",
        f"| churn (90 days) | {pct(kpis.churn_rate)} |",
        f"| average days between purchases | {kpis.avg_interpurchase_days or 'n/a'} |",
        f"| revenue per customer, 365 days | {kpis.revenue_per_customer_365d or 'n/a'} |",
        "",
        f"{alert}views on {traffic.day} (the last complete day) {traffic.views} against a 28-day mean of "
        f"{traffic.baseline} ({change}).",
        "",
        f"Charts: `{folder / 'cohorts.png'}`, `{folder / 'views.png'}`.",
    ]
    return "\n".join(lines) + "\n"
