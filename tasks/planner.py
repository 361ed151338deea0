"""The send plan: one row per (customer, campaign, step, channel) with a decision and a reason.

Every candidate gets exactly one row. Gates run in this order; the first that
stops a row gives its reason:

1. contact validity - the channel's address is present (``no_email``, ``invalid_phone``);
2. consent - marketing needs the channel's opt-in; an SMS copy of a transactional
   message needs SMS opt-in; transactional email needs none (``no_consent``);
3. suppression - a bounced, complained or unsubscribed address or customer is
   never messaged; nothing overrides it (``suppressed``);
4. holdout - a stable hash of customer, campaign and quarter sets a share aside:
   recorded as ``holdout``, never sent;
5. quiet hours - a send time inside the customer's quiet hours moves to their
   end; if that is tomorrow the row is ``deferred`` (``quiet_hours``) and comes
   back in tomorrow's plan, never dropped;
6. lateness - a send more than the campaign's ``max_delay_days`` after its
   planned time (a backfill) is skipped (``too_late``);
7. frequency budget - at most N marketing messages a day and M in 7 days per
   customer (transactional exempt); higher priority wins; losers are
   ``deferred`` while the campaign's window is open, else skipped (``frequency_cap``);
8. duplicate - a key the send ledger already holds is skipped (``duplicate``):
   the budget counts it as sent, so a re-run decides what the first run did.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks import progress
from tasks.aws import dynamodb_client
from tasks.campaigns import Campaign, load_catalog
from tasks.compose import SHARD_COLUMNS
from tasks.enums import Channel, Decision, MessageKind, SendStatus, SkipReason, Table
from tasks.gates import (
    DeliveryRules,
    QuietHours,
    frequency_budget,
    holdout_period,
    in_holdout,
    local_send_time,
    too_late,
    window_open,
)
from tasks.ledger import open_ledger
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
    rules: DeliveryRules | None = None,
) -> pd.DataFrame:
    """Turn one campaign's candidates into plan rows, one per channel, through gates 1-5."""
    rules = rules or DeliveryRules()
    people = candidates.merge(customers, on="customer_id", how="left", validate="one_to_one")
    plans = [
        _plan_channel(campaign, channel, people, suppressed.get(channel, frozenset()), as_of, rules)
        for channel in campaign.channels
    ]
    return pd.concat(plans, ignore_index=True) if plans else pd.DataFrame(columns=list(PLAN_COLUMNS))


def _plan_channel(
    campaign: Campaign,
    channel: Channel,
    people: pd.DataFrame,
    suppressed: frozenset[str],
    as_of: date,
    rules: DeliveryRules,
) -> pd.DataFrame:
    address_col, consent_col = ("email", "email_opt_in") if channel is Channel.EMAIL else ("phone", "sms_opt_in")
    address = people[address_col]
    reason = np.full(len(people), "", dtype=object)
    decision = np.full(len(people), Decision.SEND.value, dtype=object)

    def gate(mask: np.ndarray, why: SkipReason, outcome: Decision = Decision.SKIPPED) -> None:
        hit = np.asarray(mask, dtype=bool) & (reason == "")
        reason[hit] = why.value
        decision[hit] = outcome.value

    gate(address.isna().to_numpy(), SkipReason.NO_EMAIL if channel is Channel.EMAIL else SkipReason.INVALID_PHONE)
    if campaign.kind is MessageKind.MARKETING or channel is Channel.SMS:
        gate(~people[consent_col].fillna(False).astype(bool).to_numpy(), SkipReason.NO_CONSENT)
    hashes = address.fillna("").map(address_hash)
    gate(hashes.isin(suppressed).to_numpy() | people["customer_id"].isin(suppressed).to_numpy(), SkipReason.SUPPRESSED)
    period = holdout_period(people["occurrence"])
    gate(
        in_holdout(people["customer_id"], campaign.name, period, campaign.holdout_share),
        SkipReason.HOLDOUT,
        Decision.HOLDOUT,
    )
    send_at, moved = local_send_time(as_of, campaign.send_hour_local, people["timezone"], people["country"], rules)
    tomorrow = moved.to_numpy() & (send_at.dt.date > as_of).to_numpy()
    gate(tomorrow, SkipReason.QUIET_HOURS, Decision.DEFERRED)

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
            "send_at": send_at.to_numpy(),
            "priority": campaign.priority,
        },
        columns=list(PLAN_COLUMNS),
    )


def apply_day_gates(
    plan: pd.DataFrame,
    campaigns: dict[str, Campaign],
    history: pd.DataFrame,
    already: Iterable[str],
    as_of: date,
    sending_at: datetime,
    rules: DeliveryRules,
) -> pd.DataFrame:
    """Apply the gates that look across campaigns and days: lateness, frequency budget, duplicates."""
    plan = plan.copy()
    pending = plan["decision"] == Decision.SEND.value
    max_delay = plan["campaign"].map({n: c.max_delay_days for n, c in campaigns.items()})

    late = pending.to_numpy() & too_late(plan["send_at"], sending_at, max_delay)
    _mark(plan, late, Decision.SKIPPED, SkipReason.TOO_LATE)

    marketing = (plan["decision"] == Decision.SEND.value) & (plan["kind"] == MessageKind.MARKETING.value)
    over = np.zeros(len(plan), dtype=bool)
    over[np.flatnonzero(marketing.to_numpy())] = frequency_budget(plan.loc[marketing], history, as_of, rules)
    open_window = window_open(plan["occurrence"], as_of, max_delay)
    _mark(plan, over & open_window, Decision.DEFERRED, SkipReason.FREQUENCY_CAP)
    _mark(plan, over & ~open_window, Decision.SKIPPED, SkipReason.FREQUENCY_CAP)

    known = plan["idempotency_key"].isin(set(already)).to_numpy() & (plan["decision"] == Decision.SEND.value).to_numpy()
    _mark(plan, known, Decision.SKIPPED, SkipReason.DUPLICATE)
    return plan


def _mark(plan: pd.DataFrame, mask: np.ndarray, decision: Decision, reason: SkipReason) -> None:
    hit = np.asarray(mask, dtype=bool) & (plan["decision"] == Decision.SEND.value).to_numpy()
    plan.loc[hit, "decision"] = decision.value
    plan.loc[hit, "reason"] = reason.value


def marketing_history(output_dir: Path, as_of: date, days: int = 6) -> pd.DataFrame:
    """Return (customer_id, day) of marketing messages planned to send on the ``days`` before ``as_of``.

    Read from those days' plans, so a backfill run in date order sees the budget each day saw.
    """
    frames = []
    for back in range(1, days + 1):
        day = as_of - timedelta(days=back)
        path = RunPaths.for_day(output_dir, day).plan
        if path.exists():
            plan = pd.read_parquet(path, columns=["customer_id", "campaign", "step", "occurrence", "kind", "decision"])
            sent = plan.loc[(plan["kind"] == MessageKind.MARKETING.value) & (plan["decision"] == Decision.SEND.value)]
            sent = sent.drop_duplicates(["customer_id", "campaign", "step", "occurrence"])
            frames.append(pd.DataFrame({"customer_id": sent["customer_id"].to_numpy(), "day": pd.Timestamp(day)}))
    if not frames:
        return pd.DataFrame({"customer_id": pd.Series(dtype=object), "day": pd.Series(dtype="datetime64[ns]")})
    return pd.concat(frames, ignore_index=True)


def current_suppressions(suppressions: SuppressionList) -> dict[Channel, frozenset[str]]:
    """Return suppressed address hashes and customer ids per channel.

    The hashes include the addresses that customers suppressed by id were messaged at, so
    re-importing them under a new id, or moving the address to another record, changes nothing.
    """
    return {channel: suppressions.hashes(channel) | suppressions.customers(channel) for channel in Channel}


def delivery_rules(settings: Settings) -> DeliveryRules:
    """Build quiet hours and the frequency budget from settings."""
    return DeliveryRules(
        quiet=QuietHours(settings.quiet_hours_start, settings.quiet_hours_end),
        quiet_by_country={c.upper(): QuietHours(*hours) for c, hours in settings.quiet_hours_by_country.items()},
        marketing_per_day=settings.marketing_per_day,
        marketing_per_week=settings.marketing_per_week,
    )


class Wave(BaseModel):
    """The shards whose messages go out at one moment (a send hour in some customers' time zone)."""

    at: datetime
    shards: list[int]


class PlanSummary(BaseModel):
    """What the plan decided, per campaign: counts per decision and reason, and the send shards."""

    planned: int
    to_send: int
    by_decision: dict[str, int]
    deferred_by_reason: dict[str, int]
    skipped_by_reason: dict[str, int]
    shards: list[int]
    waves: list[Wave] = []


def shard_plan(plan: pd.DataFrame, people: pd.DataFrame, size: int) -> list[tuple[datetime, pd.DataFrame]]:
    """Cut the rows to send into waves by send time, and each wave into shards of at most ``size``.

    Returns (send time, shard) in sending order, joined with what composing needs; a shard
    never mixes two send times, so a wave is sent by its own shards.
    """
    send = plan.loc[plan["decision"] == Decision.SEND.value].sort_values(["send_at", "idempotency_key"])
    send = send.merge(people, on="customer_id", how="left")[list(SHARD_COLUMNS)]
    shards: list[tuple[datetime, pd.DataFrame]] = []
    for at, wave in send.groupby("send_at", sort=True):
        moment = cast(pd.Timestamp, at).to_pydatetime()
        shards += [(moment, wave.iloc[i : i + size].reset_index(drop=True)) for i in range(0, len(wave), size)]
    return shards


@task(cache_policy=NO_CACHE)
def plan_day(paths: RunPaths, as_of: date, settings: Settings, sending_at: datetime) -> PlanSummary:
    """Decide who hears what today: candidates, gates, decisions, and send shards."""
    progress.advance("plan")
    campaigns = load_catalog(settings.campaigns_dir)
    customers = read_table(paths, Table.CUSTOMERS)
    profile = pd.read_parquet(paths.profile)
    suppressions = SuppressionList.for_settings(settings)
    suppressed = current_suppressions(suppressions)
    rules = delivery_rules(settings)
    plans = [
        plan_campaign(c, win_back_candidates(c, profile), customers, suppressed, as_of, rules)
        for c in campaigns.values()
    ]
    plan = pd.concat(plans, ignore_index=True) if plans else pd.DataFrame(columns=list(PLAN_COLUMNS))
    ledger = open_ledger(settings, dynamodb_client)
    try:
        # sent or failed for good: a duplicate. Claimed or unknown ones go to delivery, whose claim applies the
        # lease (a crashed transactional send is retried; marketing is not)
        final = {SendStatus.SENT, SendStatus.FAILED}
        already = {k for k, status in ledger.statuses(plan["idempotency_key"]).items() if status in final}
    finally:
        ledger.close()
    history = marketing_history(settings.output_dir, as_of)
    plan = apply_day_gates(plan, campaigns, history, already, as_of, sending_at, rules)
    paths.plan.parent.mkdir(parents=True, exist_ok=True)
    plan.to_parquet(paths.plan, index=False)
    people = customers.merge(profile[["customer_id", "days_since_last_order"]], on="customer_id", how="left")
    shards = shard_plan(plan, people, settings.shard_size)
    waves: dict[datetime, list[int]] = {}
    for number, (at, shard) in enumerate(shards, start=1):
        # remembered before sending: an unsubscribe by id then covers the address too
        for channel, column in ((Channel.EMAIL, "email"), (Channel.SMS, "phone")):
            rows = shard.loc[shard["channel"] == channel.value]
            suppressions.remember(channel, zip(rows["customer_id"], rows[column], strict=True))
        shard.to_parquet(paths.send_shard(number), index=False)
        waves.setdefault(at, []).append(number)
    to_send = sum(len(s) for _, s in shards)
    progress.advance("render", 0, to_send)
    progress.advance("send", 0, to_send)
    skipped = plan.loc[plan["decision"] == Decision.SKIPPED.value, "reason"].value_counts()
    deferred = plan.loc[plan["decision"] == Decision.DEFERRED.value, "reason"].value_counts()
    return PlanSummary(
        planned=len(plan),
        to_send=int((plan["decision"] == Decision.SEND.value).sum()),
        by_decision={str(k): int(v) for k, v in plan["decision"].value_counts().items()},
        deferred_by_reason={str(k): int(v) for k, v in deferred.items()},
        skipped_by_reason={str(k): int(v) for k, v in skipped.items()},
        shards=list(range(1, len(shards) + 1)),
        waves=[Wave(at=at, shards=numbers) for at, numbers in waves.items()],
    )


def explain(plan: pd.DataFrame, customer_id: str) -> pd.DataFrame:
    """Return a customer's plan rows: what was decided for them, on which channel, and why."""
    rows = plan.loc[plan["customer_id"].astype(str) == customer_id]
    return rows[["campaign", "step", "channel", "decision", "reason", "send_at", "idempotency_key"]].reset_index(
        drop=True
    )
