"""The send plan: one row per (customer, campaign, step, channel) with a decision and a reason.

Candidates come from each campaign's trigger (``tasks/plan/triggers.py``): the
occurrences whose steps are due today, or were due within the campaign's
``max_delay_days``, narrowed by the campaign's and the step's audience. Every
candidate then gets exactly one row. Gates run in this order; the first that
stops a row gives its reason:

1. contact validity - the channel's address is present (``no_email``, ``invalid_phone``);
2. consent - marketing needs the channel's opt-in; an SMS copy of a transactional
   message needs SMS opt-in; transactional email needs none (``no_consent``);
3. suppression - a bounced, complained or unsubscribed address or customer is
   never messaged; nothing overrides it (``suppressed``);
4. quiet hours - a send time inside the customer's quiet hours moves to their
   end; if that is tomorrow the row is ``deferred`` (``quiet_hours``) and comes
   back in tomorrow's plan, never dropped;
5. redeemed - a series with ``stop_when_redeemed`` stops once an order carries
   its coupon (``redeemed``);
6. lateness - a send more than the campaign's ``max_delay_days`` (plus a same-day
   grace of 12 hours) after its planned time (a backfill) is skipped (``too_late``);
7. pause - after a campaign with ``pause_promotions_days`` (service recovery)
   reaches a customer, other marketing to them is skipped for that long (``paused``);
8. frequency budget - at most N marketing messages a day and M in 7 days per
   customer (transactional exempt); higher priority wins; losers are
   ``deferred`` while the step's window is open, else skipped (``frequency_cap``);
9. holdout - a stable hash of customer, campaign and quarter sets a share of what
   would go out aside: recorded as ``holdout``, never sent. Last but one, so the
   held-out are exactly those who would have been sent (attribution compares them);
10. duplicate - a key the send ledger already holds is skipped (``duplicate``):
   the budget counts it as sent, so a re-run decides what the first run did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.consent.suppression import SuppressionList, address_hash
from tasks.consent.tokens import signing_key
from tasks.data.snapshot import read_table
from tasks.kernel import progress
from tasks.kernel.aws import dynamodb_client
from tasks.kernel.enums import Channel, Decision, MessageKind, SendStatus, SkipReason, Table
from tasks.kernel.paths import ADHOC_FOLDER, UPDATES_FOLDER, UPDATES_MARKETING_FILE, RunPaths
from tasks.kernel.settings import Settings
from tasks.ledger.store import open_ledger
from tasks.plan.campaigns import Campaign, OrderStatusTrigger, OrderTrigger, daily_campaigns, load_catalog
from tasks.plan.gates import (
    DeliveryRules,
    QuietHours,
    holdout_period,
    in_holdout,
    local_send_time,
    over_budget,
    too_late,
    window_open,
)
from tasks.plan.offers import coupon_code, redeemed_codes, registry, write_registry
from tasks.plan.points import PointsRules
from tasks.plan.triggers import ShopData, occurrences
from tasks.profile.features import detail_file
from tasks.profile.segments import CompiledSegment, compile_expression
from tasks.render.compose import SHARD_COLUMNS

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
    "due",
    "detail",
)


def idempotency_key(campaign: str, step: int, channel: str, customer_id: str, occurrence: str) -> str:
    """Return the marketing idempotency key: same key, at most one send."""
    return f"{campaign}/{step}/{channel}/{customer_id}/{occurrence}"


def order_key(order_id: str, status: str, channel: str) -> str:
    """Return the transactional idempotency key of an order-status message: one per order, status and channel."""
    return f"order/{order_id}/{status}/{channel}"


def audience_members(expression: str, profile: pd.DataFrame) -> pd.Series:
    """Return the customer ids (as a boolean Series indexed by id) an audience expression selects."""
    columns, run = compile_expression(expression)
    segment = CompiledSegment("audience", "", expression, columns, run)
    return pd.Series(segment.evaluate(profile).to_numpy(), index=profile["customer_id"].astype(str).to_numpy())


def campaign_candidates(campaign: Campaign, data: ShopData, as_of: date) -> pd.DataFrame:
    """Return (customer_id, step, occurrence, due, detail): the steps due today or within ``max_delay_days``."""
    first, last = campaign.offsets
    start = as_of - timedelta(days=last + campaign.max_delay_days)
    found = occurrences(campaign.trigger, data, start, as_of - timedelta(days=first))
    profile = data["profile"]
    known = found["customer_id"].astype(str).isin(set(profile["customer_id"].astype(str)))
    found = found.loc[known.to_numpy()]
    if campaign.audience:
        found = found.loc[found["customer_id"].astype(str).map(audience_members(campaign.audience, profile)).to_numpy()]
    today, earliest = pd.Timestamp(as_of), pd.Timestamp(as_of - timedelta(days=campaign.max_delay_days))
    steps = []
    for step in campaign.steps:
        due = found["occurrence"] + pd.Timedelta(days=step.offset_days)
        rows = found.loc[((due <= today) & (due >= earliest)).to_numpy()]
        if step.audience:
            rows = rows.loc[rows["customer_id"].astype(str).map(audience_members(step.audience, profile)).to_numpy()]
        steps.append(
            pd.DataFrame(
                {
                    "customer_id": rows["customer_id"].to_numpy(),
                    "step": step.step,
                    "occurrence": rows["occurrence"].dt.strftime("%Y-%m-%d").to_numpy(),
                    "due": (rows["occurrence"] + pd.Timedelta(days=step.offset_days))
                    .dt.strftime("%Y-%m-%d")
                    .to_numpy(),
                    "detail": rows["detail"].to_numpy(),
                }
            )
        )
    out = pd.concat(steps, ignore_index=True)
    # one message per customer and step: the latest occurrence wins (a second cart the next day, say)
    return out.sort_values(["customer_id", "step", "occurrence"]).drop_duplicates(["customer_id", "step"], keep="last")


def plan_campaign(
    campaign: Campaign,
    candidates: pd.DataFrame,
    customers: pd.DataFrame,
    suppressed: dict[Channel, frozenset[str]],
    as_of: date,
    rules: DeliveryRules | None = None,
) -> pd.DataFrame:
    """Turn one campaign's candidates into plan rows, one per channel, through gates 1-4 (``apply_day_gates`` does the rest)."""
    rules = rules or DeliveryRules()
    people = candidates.merge(customers, on="customer_id", how="left", validate="many_to_one")
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
    send_at, moved = local_send_time(as_of, campaign.send_hour_local, people["timezone"], people["country"], rules)
    tomorrow = moved.to_numpy() & (send_at.dt.date > as_of).to_numpy()
    gate(tomorrow, SkipReason.QUIET_HOURS, Decision.DEFERRED)

    if campaign.kind is MessageKind.TRANSACTIONAL and isinstance(campaign.trigger, OrderTrigger):
        status = campaign.trigger.status.value
        keys = [order_key(str(order), status, channel.value) for order in people["detail"]]
    elif campaign.kind is MessageKind.TRANSACTIONAL and isinstance(campaign.trigger, OrderStatusTrigger):
        # detail: "<order_id> <status>"
        pairs = [str(d).rsplit(" ", 1) for d in people["detail"]]
        keys = [order_key(order, status, channel.value) for order, status in pairs]
    else:
        keys = [
            idempotency_key(campaign.name, int(s), channel.value, str(c), str(o))
            for s, c, o in zip(people["step"], people["customer_id"], people["occurrence"], strict=True)
        ]
    return pd.DataFrame(
        {
            "idempotency_key": keys,
            "customer_id": people["customer_id"].to_numpy(),
            "campaign": campaign.name,
            "step": people["step"].to_numpy(dtype="int64"),
            "channel": channel.value,
            "kind": campaign.kind.value,
            "occurrence": people["occurrence"].to_numpy(),
            "decision": decision,
            "reason": reason,
            "send_at": send_at.to_numpy(),
            "priority": campaign.priority,
            "due": people["due"].to_numpy(),
            "detail": people["detail"].to_numpy(),
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
    redeemed: npt.NDArray[np.bool_] | None = None,
) -> pd.DataFrame:
    """Apply the gates that look across campaigns and days: redeemed, lateness, pause, budget, holdout, duplicates.

    ``redeemed``: which rows belong to a series whose coupon the customer already used.
    """
    plan = plan.copy()
    already = set(already)
    if redeemed is not None:  # a step already sent stays a duplicate, however the series ended since
        _mark(plan, redeemed & ~plan["idempotency_key"].isin(already).to_numpy(), Decision.SKIPPED, SkipReason.REDEEMED)
    pending = plan["decision"] == Decision.SEND.value
    max_delay = plan["campaign"].map({n: c.max_delay_days for n, c in campaigns.items()})

    late = pending.to_numpy() & too_late(plan["send_at"], sending_at, max_delay)
    _mark(plan, late, Decision.SKIPPED, SkipReason.TOO_LATE)

    _mark(plan, _paused(plan, campaigns, history, as_of), Decision.SKIPPED, SkipReason.PAUSED)

    over = over_budget(plan, history, as_of, rules)
    open_window = window_open(plan["due"], as_of, max_delay)
    _mark(plan, over & open_window, Decision.DEFERRED, SkipReason.FREQUENCY_CAP)
    _mark(plan, over & ~open_window, Decision.SKIPPED, SkipReason.FREQUENCY_CAP)

    # the holdout last: a held-out message is one that would have gone out today, so treatment and
    # control are the same people up to the coin (the budget counts it, as the send it stands for)
    _mark(plan, _held_out(plan, campaigns), Decision.HOLDOUT, SkipReason.HOLDOUT)

    known = plan["idempotency_key"].isin(already).to_numpy() & (plan["decision"] == Decision.SEND.value).to_numpy()
    _mark(plan, known, Decision.SKIPPED, SkipReason.DUPLICATE)
    return plan


def _held_out(plan: pd.DataFrame, campaigns: dict[str, Campaign]) -> npt.NDArray[np.bool_]:
    """Rows each campaign's holdout share sets aside: a stable hash of customer, campaign and quarter."""
    held = np.zeros(len(plan), dtype=bool)
    for name, rows in plan.groupby("campaign", sort=False):
        share = campaigns[str(name)].holdout_share
        if share > 0:
            period = holdout_period(rows["occurrence"])
            held[plan.index.get_indexer(rows.index)] = in_holdout(rows["customer_id"], str(name), period, share)
    return held


def _paused(
    plan: pd.DataFrame, campaigns: dict[str, Campaign], history: pd.DataFrame, as_of: date
) -> npt.NDArray[np.bool_]:
    """Marketing rows of customers a pausing campaign (service recovery) reached within its pause."""
    pausing = {n: c.pause_promotions_days for n, c in campaigns.items() if c.pause_promotions_days > 0}
    if not pausing:
        return np.zeros(len(plan), dtype=bool)
    today = plan.loc[plan["campaign"].isin(pausing) & (plan["decision"] == Decision.SEND.value)]
    earlier = history.loc[history["campaign"].isin(pausing)]
    since = pd.Timestamp(as_of) - pd.to_timedelta(earlier["campaign"].map(pausing).astype(int), unit="D")
    recent = earlier.loc[(earlier["day"] >= since).to_numpy()]
    paused = set(today["customer_id"].astype(str)) | set(recent["customer_id"].astype(str))
    rows = (plan["kind"] == MessageKind.MARKETING.value) & ~plan["campaign"].isin(pausing)
    return np.asarray((rows & plan["customer_id"].astype(str).isin(paused)).to_numpy(), dtype=bool)


def _mark(plan: pd.DataFrame, mask: np.ndarray, decision: Decision, reason: SkipReason) -> None:
    hit = np.asarray(mask, dtype=bool) & (plan["decision"] == Decision.SEND.value).to_numpy()
    plan.loc[hit, "decision"] = decision.value
    plan.loc[hit, "reason"] = reason.value


def marketing_history(output_dir: Path, as_of: date, days: int = 30, include_today: bool = False) -> pd.DataFrame:
    """Return (customer_id, campaign, occurrence, day) of marketing planned to send on the ``days`` before ``as_of``.

    Read from those days' plans, so a backfill run in date order sees the budget each day saw, from the
    one-off campaigns of those days, and from the marketing the order-updates runs of those days planned
    (back in stock, ``tasks/jobs/order_updates.py``). ``include_today``: ``as_of`` itself too, for runs after
    the day's daily run (order updates, ad-hoc campaigns).
    """
    frames = [_no_history()]
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


def _no_history() -> pd.DataFrame:
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
    to_send_by_campaign: dict[str, int] = {}


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


def build_plan(
    campaigns: dict[str, Campaign],
    data: ShopData,
    suppressed: dict[Channel, frozenset[str]],
    rules: DeliveryRules,
    already: Callable[[pd.Series], set[str]],
    history: pd.DataFrame,
    sending_at: datetime,
    key: bytes,
) -> pd.DataFrame:
    """Plan one day: every campaign's candidates through every gate. ``already``: keys sent or failed for good."""
    customers = data[Table.CUSTOMERS]
    plans = [
        plan_campaign(c, campaign_candidates(c, data, data.as_of), customers, suppressed, data.as_of, rules)
        for c in campaigns.values()
    ]
    plans = [p for p in plans if len(p)]
    plan = pd.concat(plans, ignore_index=True) if plans else _empty_plan()
    redeemed = redeemed_rows(plan, campaigns, key, redeemed_codes(data[Table.ORDERS]))
    known = already(plan["idempotency_key"])
    return apply_day_gates(plan, campaigns, history, known, data.as_of, sending_at, rules, redeemed)


def _empty_plan() -> pd.DataFrame:
    plan = pd.DataFrame({c: pd.Series(dtype=object) for c in PLAN_COLUMNS})
    return plan.astype({"step": "int64", "priority": "int64", "send_at": "datetime64[ns, UTC]"})


def redeemed_rows(
    plan: pd.DataFrame, campaigns: dict[str, Campaign], key: bytes, used: frozenset[str]
) -> npt.NDArray[np.bool_]:
    """Rows of a ``stop_when_redeemed`` series whose occurrence's coupon (any step's) is on an order."""
    out = np.zeros(len(plan), dtype=bool)
    if not used:
        return out
    for name, rows in plan.groupby("campaign", sort=False):
        campaign = campaigns[str(name)]
        offers = {o for o in (campaign.step_offer(s) for s in campaign.steps) if o is not None}
        if not campaign.stop_when_redeemed or not offers:
            continue
        hit = [
            any(coupon_code(key, campaign.name, o, str(c), str(d)) in used for o in offers)
            for c, d in zip(rows["customer_id"], rows["occurrence"], strict=True)
        ]
        out[plan.index.get_indexer(rows.index)] = hit
    return out


def shop_data(paths: RunPaths, as_of: date, settings: Settings) -> ShopData:
    """The day's tables for the triggers, read from the run's folder on first use."""

    def load(name: str) -> pd.DataFrame:
        if name in {t.value for t in Table}:
            return read_table(paths, Table(name))
        if name == "profile":
            return pd.read_parquet(paths.profile)
        return pd.read_parquet(detail_file(paths.profile, name))

    return ShopData(as_of=as_of, load=load, points=PointsRules(settings.points_per_unit, settings.points_valid_days))


def ledger_lookup(settings: Settings) -> Callable[[pd.Series], set[str]]:
    """Return a lookup of the keys the send ledger holds as sent or failed for good (a duplicate)."""

    def lookup(keys: pd.Series) -> set[str]:
        ledger = open_ledger(settings, dynamodb_client)
        try:
            # claimed or unknown ones go to delivery, whose claim applies the lease
            # (a crashed transactional send is retried; marketing is not)
            final = {SendStatus.SENT, SendStatus.FAILED}
            return {k for k, status in ledger.statuses(keys).items() if status in final}
        finally:
            ledger.close()

    return lookup


# Profile columns the messages use (beside the customers table's).
MESSAGE_PROFILE_COLUMNS = ("customer_id", "days_since_last_order", "top_category")


@task(cache_policy=NO_CACHE)
def plan_day(paths: RunPaths, as_of: date, settings: Settings, sending_at: datetime) -> PlanSummary:
    """Decide who hears what today: candidates, gates, decisions, coupons and send shards."""
    progress.advance("plan")
    campaigns = daily_campaigns(load_catalog(settings.campaigns_dir))
    data = shop_data(paths, as_of, settings)
    suppressions = SuppressionList.for_settings(settings)
    key = signing_key(settings)
    history = marketing_history(settings.output_dir, as_of)
    plan = build_plan(
        campaigns,
        data,
        current_suppressions(suppressions),
        delivery_rules(settings),
        ledger_lookup(settings),
        history,
        sending_at,
        key,
    )
    paths.plan.parent.mkdir(parents=True, exist_ok=True)
    plan.to_parquet(paths.plan, index=False)
    write_registry(registry(plan.loc[plan["decision"] == Decision.SEND.value], campaigns, key), paths.coupons)
    people = data[Table.CUSTOMERS].merge(data["profile"][list(MESSAGE_PROFILE_COLUMNS)], on="customer_id", how="left")
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
    return summarise_plan(plan, len(shards), waves)


def summarise_plan(plan: pd.DataFrame, shards: int, waves: dict[datetime, list[int]]) -> PlanSummary:
    """Count the plan's decisions and reasons."""
    skipped = plan.loc[plan["decision"] == Decision.SKIPPED.value, "reason"].value_counts()
    deferred = plan.loc[plan["decision"] == Decision.DEFERRED.value, "reason"].value_counts()
    sending = plan.loc[plan["decision"] == Decision.SEND.value]
    return PlanSummary(
        planned=len(plan),
        to_send=int((plan["decision"] == Decision.SEND.value).sum()),
        by_decision={str(k): int(v) for k, v in plan["decision"].value_counts().items()},
        deferred_by_reason={str(k): int(v) for k, v in deferred.items()},
        skipped_by_reason={str(k): int(v) for k, v in skipped.items()},
        shards=list(range(1, shards + 1)),
        waves=[Wave(at=at, shards=numbers) for at, numbers in waves.items()],
        to_send_by_campaign={str(k): int(v) for k, v in sending["campaign"].value_counts().sort_index().items()},
    )


def explain(plan: pd.DataFrame, customer_id: str) -> pd.DataFrame:
    """Return a customer's plan rows: what was decided for them, on which channel, and why."""
    rows = plan.loc[plan["customer_id"].astype(str) == customer_id]
    return rows[["campaign", "step", "channel", "decision", "reason", "send_at", "idempotency_key"]].reset_index(
        drop=True
    )
