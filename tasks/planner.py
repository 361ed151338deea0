"""The send plan: one row per (customer, campaign, step, channel) with a decision and a reason.

Gates run in this order, and the first that stops a candidate gives its reason:

1. contact validity - the channel's address is present and valid;
2. consent - marketing needs the channel's opt-in;
3. suppression - a bounced, complained or unsubscribed address is never sent to.
"""

from __future__ import annotations

from datetime import date, datetime, time

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks import progress
from tasks.campaigns import Campaign, load_catalog
from tasks.compose import SHARD_COLUMNS
from tasks.enums import Channel, Decision, MessageKind, SkipReason, Table
from tasks.paths import RunPaths
from tasks.settings import Settings
from tasks.snapshot import read_table
from tasks.suppression import SuppressionList, address_hash

PLAN_COLUMNS = (
    "idempotency_key",
    "customer_id",
    "campaign",
    "step",
    "channel",
    "kind",
    "occurrence",
    "decision",
    "reason",
    "send_at",
    "priority",
)


def idempotency_key(campaign: str, step: int, channel: str, customer_id: str, occurrence: str) -> str:
    """Return the marketing idempotency key: same key, at most one send."""
    return f"{campaign}/{step}/{channel}/{customer_id}/{occurrence}"


def win_back_candidates(campaign: Campaign, profile: pd.DataFrame) -> pd.DataFrame:
    """Return customers whose last purchase is inside the audience window, with the episode date.

    The occurrence is the day the customer crossed the window's lower bound, so
    a customer hears once per lapse however many daily runs see them lapsed.
    """
    low, high = campaign.audience.days_since_last_order
    days = profile["days_since_last_order"]
    inside = profile.loc[days.between(low, high).fillna(False).astype(bool)]
    occurrence = inside["last_order_at"].dt.floor("D") + pd.Timedelta(days=low)
    return pd.DataFrame(
        {"customer_id": inside["customer_id"].to_numpy(), "occurrence": occurrence.dt.strftime("%Y-%m-%d").to_numpy()}
    )


def plan_campaign(
    campaign: Campaign,
    candidates: pd.DataFrame,
    customers: pd.DataFrame,
    suppressed: dict[Channel, frozenset[str]],
    as_of: date,
) -> pd.DataFrame:
    """Turn candidates into send-plan rows, one per channel, each with a decision and reason."""
    people = candidates.merge(customers, on="customer_id", how="left", validate="one_to_one")
    plans = [
        _plan_channel(campaign, channel, people, suppressed.get(channel, frozenset()), as_of)
        for channel in campaign.channels
    ]
    plan = pd.concat(plans, ignore_index=True) if plans else pd.DataFrame(columns=list(PLAN_COLUMNS))
    return plan


def _plan_channel(
    campaign: Campaign, channel: Channel, people: pd.DataFrame, suppressed: frozenset[str], as_of: date
) -> pd.DataFrame:
    address_col, consent_col = ("email", "email_opt_in") if channel is Channel.EMAIL else ("phone", "sms_opt_in")
    address = people[address_col]
    reason = np.full(len(people), "", dtype=object)

    def gate(mask: np.ndarray, why: SkipReason) -> None:
        reason[mask & (reason == "")] = why.value

    gate(address.isna().to_numpy(), SkipReason.NO_EMAIL if channel is Channel.EMAIL else SkipReason.INVALID_PHONE)
    if campaign.kind is MessageKind.MARKETING:
        gate(~people[consent_col].fillna(False).astype(bool).to_numpy(), SkipReason.NO_CONSENT)
    hashes = address.fillna("").map(address_hash)
    gate(hashes.isin(suppressed).to_numpy(), SkipReason.SUPPRESSED)

    decision = np.where(reason == "", Decision.SEND.value, Decision.SKIPPED.value)
    keys = [
        idempotency_key(campaign.name, campaign.step, channel.value, c, o)
        for c, o in zip(people["customer_id"], people["occurrence"], strict=True)
    ]
    return pd.DataFrame(
        {
            "idempotency_key": keys,
            "customer_id": people["customer_id"].to_numpy(),
            "campaign": campaign.name,
            "step": campaign.step,
            "channel": channel.value,
            "kind": campaign.kind.value,
            "occurrence": people["occurrence"].to_numpy(),
            "decision": decision,
            "reason": reason,
            "send_at": local_time_utc(as_of, campaign.send_hour_local, people["timezone"]),
            "priority": campaign.priority,
        },
        columns=list(PLAN_COLUMNS),
    )


def local_time_utc(day: date, hour: int, timezones: pd.Series) -> pd.Series:
    """Return ``day`` at ``hour`` o'clock in each row's time zone, as UTC."""
    naive = pd.Timestamp(datetime.combine(day, time(hour)))
    out = pd.Series(pd.NaT, index=timezones.index, dtype="datetime64[ns, UTC]")
    for zone, rows in timezones.fillna("UTC").groupby(timezones.fillna("UTC")).groups.items():
        out.loc[rows] = naive.tz_localize(str(zone), nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")
    return out.reset_index(drop=True)


class PlanSummary(BaseModel):
    """What the plan decided, per campaign: counts per decision and reason, and the send shards."""

    planned: int
    to_send: int
    by_decision: dict[str, int]
    skipped_by_reason: dict[str, int]
    shards: list[int]


def shard_plan(plan: pd.DataFrame, people: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """Cut the rows to send into shards of ``size``, joined with what composing needs."""
    send = plan.loc[plan["decision"] == Decision.SEND.value].sort_values("idempotency_key")
    send = send.merge(people, on="customer_id", how="left")[list(SHARD_COLUMNS)]
    return [send.iloc[i : i + size].reset_index(drop=True) for i in range(0, len(send), size)]


@task(cache_policy=NO_CACHE)
def plan_day(paths: RunPaths, as_of: date, settings: Settings) -> PlanSummary:
    """Decide who hears what today: candidates, gates, decisions, and send shards."""
    progress.advance("plan")
    campaigns = load_catalog(settings.campaigns_dir)
    customers = read_table(paths, Table.CUSTOMERS)
    profile = pd.read_parquet(paths.profile)
    suppressions = SuppressionList(settings.state_dir / "suppressions.sqlite")
    suppressed = {channel: suppressions.hashes(channel) for channel in Channel}
    plans = [
        plan_campaign(c, win_back_candidates(c, profile), customers, suppressed, as_of) for c in campaigns.values()
    ]
    plan = pd.concat(plans, ignore_index=True) if plans else pd.DataFrame(columns=list(PLAN_COLUMNS))
    paths.plan.parent.mkdir(parents=True, exist_ok=True)
    plan.to_parquet(paths.plan, index=False)
    people = customers.merge(profile[["customer_id", "days_since_last_order"]], on="customer_id", how="left")
    shards = shard_plan(plan, people, settings.shard_size)
    for number, shard in enumerate(shards, start=1):
        shard.to_parquet(paths.send_shard(number), index=False)
    to_send = sum(len(s) for s in shards)
    progress.advance("render", 0, to_send)
    progress.advance("send", 0, to_send)
    skipped = plan.loc[plan["decision"] == Decision.SKIPPED.value, "reason"].value_counts()
    return PlanSummary(
        planned=len(plan),
        to_send=int((plan["decision"] == Decision.SEND.value).sum()),
        by_decision={str(k): int(v) for k, v in plan["decision"].value_counts().items()},
        skipped_by_reason={str(k): int(v) for k, v in skipped.items()},
        shards=list(range(1, len(shards) + 1)),
    )
