"""Holdout attribution: did a campaign's messages make customers order more than its holdout did?

A *message* is (customer, campaign, step, occurrence): its email and SMS copies, and the rows the
daily plans record for it day after day, are one message. Only marketing messages count.

1. Treatment: the message has a ``send`` row; it was exposed at the earliest send time.
2. Control: it has ``holdout`` rows and no ``send`` row (a holdout is a stable hash, so both cannot
   happen; if they do, it is treatment); its would-have-been send is the earliest holdout row's time
   (a holdout is re-recorded every day its customer is a candidate).
3. A message only ever deferred or skipped is in neither group.
4. A message converted if its customer placed a non-cancelled order in (exposure, exposure + window];
   its revenue is the total of every such order.
5. Per campaign (or step): uplift is the treatment's conversion rate minus the holdout's, with
   Newcombe's hybrid score interval (see ``newcombe_interval``); without a holdout there is no uplift.
6. Redemptions: non-cancelled orders carrying a code (``coupon_code``) that the coupon registry
   (``<day>/offers/coupons.csv``) lists for the campaign.
7. Subject variants (an ad-hoc campaign's A/B test, the plan's ``variant`` column): per variant, the sent
   messages' conversion rate with its Wilson interval, and its difference from the first variant (A) with
   Newcombe's interval, as for a holdout (``attribute_variants``; plans from ``read_adhoc_plans``).

A period counts the messages first exposed by the runs of its days (the run's day, not the UTC date
of the send: a 10:00 send in Auckland is the evening before in UTC). Messages a run before the period
already sent or held out belong to the earlier period, however often later plans repeat them.

Caveats, by design: "send" is the plan's decision (intention to treat), so a message the provider
failed to deliver still counts as sent. Revenue is not shared out: an order inside the windows of two
messages counts for both, so campaign revenues do not add up to the shop's. Totals are summed as
they are (one shop, one currency).
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tasks.data.sources import S3ClientFactory, load_raw
from tasks.data.validation import validate_snapshot
from tasks.kernel.enums import Decision, MessageKind, OrderStatus, Table
from tasks.kernel.paths import ADHOC_FOLDER, RunPaths

# Two-sided 95%: scipy.stats.norm.ppf(0.975).
Z95 = 1.959963984540054
DEFAULT_WINDOW_DAYS = 5
# Plans of this many days before a period are read too, so a message an earlier run already sent or
# held out is not counted again; a holdout is re-recorded daily, so one day suffices unless runs were missed.
LOOKBACK_DAYS = 7

MESSAGE = ("customer_id", "campaign", "step", "occurrence")
PLAN_COLUMNS = ("customer_id", "campaign", "step", "kind", "occurrence", "decision", "send_at")
COUPON_COLUMNS = ("code", "campaign", "step")


class CampaignAttribution(BaseModel):
    """One campaign's (or one step's) messages against its holdout over a period."""

    model_config = ConfigDict(frozen=True)

    campaign: str
    step: int | None = Field(None, description="The step; None when all steps are counted together.")
    sent: int = Field(description="Messages sent (treatment); email and SMS copies are one message.")
    conversions: int = Field(description="Sent messages followed by an order within the window.")
    conversion_rate: float | None = Field(description="conversions / sent; None if nothing was sent.")
    revenue: float = Field(description="Order totals within the windows of the sent messages.")
    revenue_per_message: float | None
    holdout: int = Field(description="Messages held out (control).")
    holdout_conversions: int
    holdout_rate: float | None
    holdout_revenue: float
    holdout_revenue_per_message: float | None
    uplift: float | None = Field(description="conversion_rate - holdout_rate; None without both groups.")
    uplift_low: float | None = Field(description="Lower end of the 95% interval of the uplift (Newcombe).")
    uplift_high: float | None = Field(description="Upper end of the 95% interval of the uplift (Newcombe).")
    relative_uplift: float | None = Field(description="uplift / holdout_rate; None if the holdout never converted.")
    incremental_conversions: float | None = Field(description="uplift x sent: conversions the messages caused.")
    redemptions: int | None = Field(
        description="Orders with a coupon this campaign issued; None without a coupon registry or coupon codes."
    )

    @classmethod
    def from_row(cls, row: dict[Hashable, Any]) -> CampaignAttribution:
        """Build one from a row of ``attribute``'s frame (missing values become None)."""
        return cls.model_validate({str(k): _plain(v) for k, v in row.items()})


ATTRIBUTION_COLUMNS = tuple(CampaignAttribution.model_fields)
_DTYPES = {
    name: "Float64" if field.annotation in (float, float | None) else "Int64"
    for name, field in CampaignAttribution.model_fields.items()
    if name != "campaign"
}


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Return Wilson's score interval for a proportion, without continuity correction.

    (p + z²/2n ± z·√(p(1-p)/n + z²/4n²)) / (1 + z²/n), with p = successes / trials.
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, not {successes}/{trials}")
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    scale = 1 + z * z / trials
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Return Newcombe's hybrid score interval for the difference of proportions x1/n1 - x2/n2.

    Method 10 of Newcombe, "Interval estimation for the difference between independent
    proportions", Statistics in Medicine 17 (1998) 873-890: with Wilson intervals (l1, u1) and
    (l2, u2) for each proportion and d = p1 - p2, the interval is
    [d - √((p1-l1)² + (u2-p2)²), d + √((u1-p1)² + (p2-l2)²)].
    Unlike the Wald interval it stays inside [-1, 1] and holds its coverage at rates near 0 and in
    small groups. The paper's table II: 56/70 vs 48/80 gives 0.0524 to 0.3339 around d = 0.2.
    """
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def exposures(plans: pd.DataFrame) -> pd.DataFrame:
    """Return one row per marketing message sent or held out: whether it was sent, and when it was exposed.

    Columns: customer_id, campaign, step, occurrence, treated, exposed_at (UTC), and ``day`` (the
    run that exposed it) when the plans carry it, as ``read_plans`` gives them.
    """
    decision = plans["decision"].astype(str)
    rows = plans.loc[
        (plans["kind"].astype(str) == MessageKind.MARKETING.value)
        & decision.isin([Decision.SEND.value, Decision.HOLDOUT.value])
    ]
    frame = pd.DataFrame(
        {
            "customer_id": rows["customer_id"].astype(str),
            "campaign": rows["campaign"].astype(str),
            "step": rows["step"].astype(int),
            "occurrence": _day_text(rows["occurrence"]),
            "treated": decision.loc[rows.index] == Decision.SEND.value,
            "exposed_at": pd.to_datetime(rows["send_at"], utc=True),
        }
    )
    if "day" in rows.columns:
        frame["day"] = pd.to_datetime(rows["day"])
    frame = frame.dropna(subset=["exposed_at"])
    # a send row wins over holdout rows; within the group, the earliest time
    frame = frame.sort_values(["treated", "exposed_at"], ascending=[False, True], kind="stable")
    return frame.drop_duplicates(list(MESSAGE)).sort_values(list(MESSAGE)).reset_index(drop=True)


def _day_text(values: pd.Series) -> pd.Series:
    text: pd.Series = values.dt.strftime("%Y-%m-%d") if pd.api.types.is_datetime64_any_dtype(values) else values
    return text.astype(str)


def attribute(
    plans: pd.DataFrame,
    orders: pd.DataFrame,
    window_days: int = DEFAULT_WINDOW_DAYS,
    coupons: pd.DataFrame | None = None,
    *,
    by_step: bool = False,
    period: tuple[date, date] | None = None,
) -> pd.DataFrame:
    """Compare each campaign's sent messages with its holdout: one row per campaign (or step).

    ``period``: count only the messages first exposed by the runs of these days (inclusive); the
    plans must then carry the run's ``day`` (``read_plans`` adds it). Columns are
    ``ATTRIBUTION_COLUMNS``; what cannot be computed (a rate without messages, an uplift without a
    holdout) is missing (NA), never 0.
    """
    if window_days < 1:
        raise ValueError(f"the window is at least one day, not {window_days}")
    messages = exposures(plans)
    if period is not None:
        if "day" not in messages.columns:
            raise ValueError("a period needs the run day of each plan row (the 'day' column read_plans adds)")
        first, last = pd.Timestamp(period[0]), pd.Timestamp(period[1])
        messages = messages.loc[messages["day"].between(first, last)].reset_index(drop=True)
    messages = _outcomes(messages, orders, pd.Timedelta(days=window_days))
    keys = ["campaign", "step"] if by_step else ["campaign"]
    redeemed = _redemptions(orders, coupons, keys)
    rows = []
    for key, group in messages.groupby(keys, sort=True):
        campaign, step = str(key[0]), (int(_plain(key[1])) if by_step else None)
        redemptions = None if redeemed is None else redeemed.get((campaign, step) if by_step else (campaign,), 0)
        rows.append(_summarise(campaign, step, group, redemptions))
    frame = pd.DataFrame([r.model_dump() for r in rows], columns=list(ATTRIBUTION_COLUMNS))
    frame["campaign"] = frame["campaign"].astype(object)
    return frame.astype(_DTYPES)


def _outcomes(messages: pd.DataFrame, orders: pd.DataFrame, window: pd.Timedelta) -> pd.DataFrame:
    """Add ``converted`` and ``revenue``: the customer's non-cancelled orders in (exposure, exposure + window]."""
    live = orders.loc[orders["status"].astype(str) != OrderStatus.CANCELLED.value]
    buys = pd.DataFrame(
        {
            "customer_id": live["customer_id"].astype(str),
            "created_at": pd.to_datetime(live["created_at"], utc=True),
            "total": pd.to_numeric(live["total"]).fillna(0.0).astype(float),
        }
    ).reset_index(drop=True)
    out = messages.copy()
    if messages.empty:
        return out.assign(converted=pd.Series(dtype=bool), revenue=pd.Series(dtype=float))
    buys = buys.loc[
        (buys["created_at"] > messages["exposed_at"].min())
        & (buys["created_at"] <= messages["exposed_at"].max() + window)
    ]
    pairs = pd.DataFrame(
        {
            "message": np.arange(len(messages)),
            "customer_id": messages["customer_id"],
            "exposed_at": messages["exposed_at"],
        }
    ).merge(buys, on="customer_id")
    inside = pairs.loc[
        (pairs["created_at"] > pairs["exposed_at"]) & (pairs["created_at"] <= pairs["exposed_at"] + window)
    ]
    revenue = inside.groupby("message")["total"].sum()
    out["converted"] = np.isin(np.arange(len(messages)), revenue.index.to_numpy())
    out["revenue"] = revenue.reindex(np.arange(len(messages)), fill_value=0.0).to_numpy(dtype=float)
    return out


def _redemptions(
    orders: pd.DataFrame, coupons: pd.DataFrame | None, keys: list[str]
) -> dict[tuple[Any, ...], int] | None:
    """Count non-cancelled orders per campaign (or step) that carry a code the campaign issued.

    The steps of one occurrence share its code: per step, a redemption counts for the step that
    first registered the code (the registry's first row for it).
    """
    if coupons is None or "coupon_code" not in orders.columns:
        return None
    codes = pd.DataFrame(
        {
            "code": _code(coupons["code"]),
            "campaign": coupons["campaign"].astype(str),
            "step": pd.to_numeric(coupons["step"], errors="coerce").astype("Int64"),
        }
    )
    codes = codes.loc[codes["code"] != ""].drop_duplicates("code")
    live = orders.loc[orders["status"].astype(str) != OrderStatus.CANCELLED.value]
    used = pd.DataFrame({"order_id": live["order_id"].astype(str), "code": _code(live["coupon_code"])})
    hits = used.loc[used["code"] != ""].merge(codes, on="code").drop_duplicates("order_id")
    counts = hits.groupby(keys, dropna=True).size()
    return {tuple(_plain(k) for k in (key if isinstance(key, tuple) else (key,))): int(n) for key, n in counts.items()}


def _code(values: pd.Series) -> pd.Series:
    # codes are issued in capitals; customers type them as they like
    return values.astype("string").fillna("").str.strip().str.upper().astype(object)


def _summarise(campaign: str, step: int | None, group: pd.DataFrame, redemptions: int | None) -> CampaignAttribution:
    treated, control = group.loc[group["treated"]], group.loc[~group["treated"]]
    sent, conversions, revenue = len(treated), int(treated["converted"].sum()), float(treated["revenue"].sum())
    held, held_conversions = len(control), int(control["converted"].sum())
    held_revenue = float(control["revenue"].sum())
    uplift = low = high = relative = incremental = None
    if sent and held:
        rate, held_rate = conversions / sent, held_conversions / held
        uplift = rate - held_rate
        low, high = newcombe_interval(conversions, sent, held_conversions, held)
        relative = uplift / held_rate if held_rate else None
        incremental = uplift * sent
    return CampaignAttribution(
        campaign=campaign,
        step=step,
        sent=sent,
        conversions=conversions,
        conversion_rate=conversions / sent if sent else None,
        revenue=revenue,
        revenue_per_message=revenue / sent if sent else None,
        holdout=held,
        holdout_conversions=held_conversions,
        holdout_rate=held_conversions / held if held else None,
        holdout_revenue=held_revenue,
        holdout_revenue_per_message=held_revenue / held if held else None,
        uplift=uplift,
        uplift_low=low,
        uplift_high=high,
        relative_uplift=relative,
        incremental_conversions=incremental,
        redemptions=redemptions,
    )


def attribution_records(frame: pd.DataFrame) -> list[CampaignAttribution]:
    """Return ``attribute``'s rows as models (missing values as None), e.g. for JSON."""
    return [CampaignAttribution.from_row(row) for row in frame.to_dict(orient="records")]


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def plan_days(output_dir: Path, start: date, end: date) -> list[date]:
    """Return the days from ``start`` to ``end`` (inclusive) that have a plan."""
    return [day for day in _days(start, end) if RunPaths.for_day(output_dir, day).plan.is_file()]


def read_plans(output_dir: Path, start: date, end: date) -> pd.DataFrame:
    """Read each day's current plan from ``start`` to ``end`` (inclusive), with the run's ``day``.

    Plans of earlier runs of a day (``<day>/earlier/``) are ignored: only what the last run decided counts.
    """
    frames = []
    for day in plan_days(output_dir, start, end):
        plan = pd.read_parquet(RunPaths.for_day(output_dir, day).plan, columns=list(PLAN_COLUMNS))
        frames.append(plan.assign(day=pd.Timestamp(day)))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PLAN_COLUMNS}).assign(
            send_at=pd.Series(dtype="datetime64[ns, UTC]"), day=pd.Series(dtype="datetime64[ns]")
        )
    return pd.concat(frames, ignore_index=True)


def read_coupons(output_dir: Path, start: date, end: date) -> pd.DataFrame | None:
    """Read the coupon registry of each day from ``start`` to ``end``, in day order; None if no day has one."""
    frames = []
    for day in _days(start, end):
        path = RunPaths.for_day(output_dir, day).coupons
        if not path.is_file():
            continue
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            continue  # created, not yet written
        missing = [c for c in COUPON_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing column '{missing[0]}'")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else None


def load_orders(source: str, until: date, s3_client: S3ClientFactory | None = None) -> pd.DataFrame:
    """Read the shop's clean orders as of the end of ``until``, as the daily run reads and validates them."""
    return validate_snapshot(load_raw(source, s3_client), until).frames[Table.ORDERS]


def snapshot_orders(output_dir: Path, first: date, last: date) -> tuple[date, pd.DataFrame] | None:
    """Return the latest run's clean orders from ``last`` back to ``first``, with that run's day."""
    for day in reversed(_days(first, last)):
        path = RunPaths.for_day(output_dir, day).table(Table.ORDERS)
        if path.is_file():
            return day, pd.read_parquet(path)
    return None


class VariantAttribution(BaseModel):
    """One subject variant of a campaign's A/B test: its sent messages' conversions against the first variant's."""

    model_config = ConfigDict(frozen=True)

    campaign: str
    variant: str
    sent: int
    conversions: int
    conversion_rate: float | None
    rate_low: float | None = Field(description="Lower end of the 95% interval of the rate (Wilson).")
    rate_high: float | None = Field(description="Upper end of the 95% interval of the rate (Wilson).")
    revenue: float
    vs_first: float | None = Field(description="conversion_rate minus the first variant's; None for the first.")
    vs_first_low: float | None = Field(description="Lower end of the 95% interval of vs_first (Newcombe).")
    vs_first_high: float | None = Field(description="Upper end of the 95% interval of vs_first (Newcombe).")


def attribute_variants(
    plans: pd.DataFrame,
    orders: pd.DataFrame,
    window_days: int = DEFAULT_WINDOW_DAYS,
    *,
    period: tuple[date, date] | None = None,
) -> list[VariantAttribution]:
    """Compare the subject variants of each campaign that has them: one row per (campaign, variant).

    ``plans`` carry ``variant`` (``read_adhoc_plans``); rows without one are not in an A/B test. A message is
    counted once, in the variant of its first send row; ``period`` as in ``attribute``.
    """
    if "variant" not in plans.columns:
        return []
    rows = plans.loc[
        (plans["decision"].astype(str) == Decision.SEND.value)
        & (plans["kind"].astype(str) == MessageKind.MARKETING.value)
        & (plans["variant"].fillna("").astype(str) != "")
    ]
    if period is not None and "day" in rows.columns:
        rows = rows.loc[pd.to_datetime(rows["day"]).between(pd.Timestamp(period[0]), pd.Timestamp(period[1]))]
    messages = pd.DataFrame(
        {
            "customer_id": rows["customer_id"].astype(str),
            "campaign": rows["campaign"].astype(str),
            "step": rows["step"].astype(int),
            "occurrence": _day_text(rows["occurrence"]),
            "variant": rows["variant"].astype(str),
            "exposed_at": pd.to_datetime(rows["send_at"], utc=True),
        }
    ).dropna(subset=["exposed_at"])
    messages = messages.sort_values("exposed_at", kind="stable").drop_duplicates(list(MESSAGE))
    messages = _outcomes(messages.reset_index(drop=True), orders, pd.Timedelta(days=window_days))
    out: list[VariantAttribution] = []
    for campaign, group in messages.groupby("campaign", sort=True):
        first: tuple[int, int] | None = None
        for variant, arm in group.groupby("variant", sort=True):
            sent, conversions = len(arm), int(arm["converted"].sum())
            low, high = wilson_interval(conversions, sent)
            diff = diff_low = diff_high = None
            if first is None:
                first = (conversions, sent)
            else:
                diff = conversions / sent - first[0] / first[1]
                diff_low, diff_high = newcombe_interval(conversions, sent, *first)
            out.append(
                VariantAttribution(
                    campaign=str(campaign),
                    variant=str(variant),
                    sent=sent,
                    conversions=conversions,
                    conversion_rate=conversions / sent,
                    rate_low=low,
                    rate_high=high,
                    revenue=float(arm["revenue"].sum()),
                    vs_first=diff,
                    vs_first_low=diff_low,
                    vs_first_high=diff_high,
                )
            )
    return out


def read_adhoc_plans(output_dir: Path, start: date, end: date) -> pd.DataFrame:
    """Read the plans of the ad-hoc campaigns of ``start`` to ``end`` (inclusive) that record a subject variant,
    with the run's ``day``."""
    frames = []
    for day in _days(start, end):
        for folder in sorted((output_dir / ADHOC_FOLDER).glob(f"*/{day.isoformat()}")):
            path = RunPaths(root=folder).plan
            if not path.is_file():
                continue
            plan = pd.read_parquet(path)
            if "variant" in plan.columns:
                frames.append(plan[[*PLAN_COLUMNS, "variant"]].assign(day=pd.Timestamp(day)))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in (*PLAN_COLUMNS, "variant", "day")})
    return pd.concat(frames, ignore_index=True)


def write_reports(frame: pd.DataFrame, folder: Path, name: str) -> tuple[Path, Path]:
    """Write the attribution as ``<name>.json`` (a list of rows) and ``<name>.csv``; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    as_json, as_csv = folder / f"{name}.json", folder / f"{name}.csv"
    records = [r.model_dump(mode="json") for r in attribution_records(frame)]
    as_json.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    frame.to_csv(as_csv, index=False)
    return as_json, as_csv
