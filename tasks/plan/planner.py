"""The send plan: one row per (customer, campaign, step, channel) with a decision and a reason.

Every job that sends plans through ``plan_candidates`` and commits through ``commit_shards``: the
daily run (candidates from each campaign's trigger, ``campaign_candidates``: the occurrences whose
steps are due today or within the campaign's ``max_delay_days``, narrowed by its audiences), ad-hoc
campaigns (an audience, ``tasks/jobs/adhoc.py``) and order updates (events in a window,
``tasks/jobs/order_updates.py``). A job passes only what differs: its candidates, its campaigns
(priority, channels, lateness), its send time (``Planning.schedule``) and whether the budget counts
what other runs planned today (``Planning.count_today``).

Every candidate gets exactly one row. The gates are one ordered list, ``GATES``; the first that
stops a row gives its reason:

1. contact validity - the channel's address is present (``no_email``, ``invalid_phone``);
2. consent - marketing needs the channel's opt-in; an SMS copy of a transactional
   message needs SMS opt-in; transactional email needs none (``no_consent``);
3. suppression - a bounced, complained or unsubscribed address or customer is
   never messaged; nothing overrides it (``suppressed``). Per topic (``Suppressed``):
   an unsubscribe from offers stops marketing only; a bounce, complaint, SMS STOP or
   "stop everything" (``Topic.ALL``) stops order and service messages too;
3b. preferences - what the customer chose on their preferences page (``tasks/state/preferences.py``):
   a topic turned off stops that topic's marketing (``preference_topic``), a channel turned off stops
   marketing on it (``preference_channel``), a pause stops marketing until its day (``preference_pause``);
   order and service messages go on. "At most weekly" is the budget's (gate 8) per-customer cap of one
   marketing message in any 7 days;
4. quiet hours - the job's send time: the daily run's is the campaign's hour in the customer's
   zone, moved to the end of quiet hours; if that is tomorrow the row is ``deferred``
   (``quiet_hours``) and comes back in tomorrow's plan, never dropped. Ad-hoc campaigns move a
   send to the end of quiet hours the same day; order updates defer all but transactional email;
5. redeemed - a series with ``stop_when_redeemed`` stops once an order carries
   its coupon (``redeemed``);
6. lateness - a send more than the campaign's ``max_delay_days`` (plus a same-day
   grace of 12 hours) after its planned moment (a backfill; an old event) is skipped (``too_late``);
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

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.consent.suppression import SuppressionList, address_hash, bare_address_hash
from tasks.consent.tokens import Purpose, purpose_key
from tasks.data.snapshot import read_table
from tasks.kernel import progress
from tasks.kernel.aws import dynamodb_client
from tasks.kernel.enums import Channel, Decision, Frequency, MessageKind, SendStatus, SkipReason, Table, Topic
from tasks.kernel.paths import RunPaths, detail_file
from tasks.kernel.settings import Settings
from tasks.ledger.backend import open_ledger
from tasks.plan.campaigns import (
    Campaign,
    OrderStatusTrigger,
    OrderTrigger,
    Step,
    daily_campaigns,
    load_catalog,
    survey_kind,
)
from tasks.plan.gates import (
    RESERVE_DAYS,
    Budgeted,
    DeliveryRules,
    allocate_budget,
    delivery_rules,
    holdout_period,
    in_holdout,
    local_day,
    local_send_time,
    too_late,
    window_open,
)
from tasks.plan.history import marketing_history, no_history, record_history
from tasks.plan.offers import coupon_code, coupon_rows, redeemed_codes, registry, validity, write_registry
from tasks.plan.partitions import Partition, PartitionResult, redeemed_anywhere
from tasks.plan.pauses import NO_PAUSES, CampaignPauses, campaign_pauses
from tasks.plan.points import PointsRules
from tasks.plan.replay import ReplayFilter, hold_back
from tasks.plan.triggers import ShopData, occurrences
from tasks.profile.expressions import compile_expression
from tasks.profile.segments import CompiledSegment
from tasks.profile.unhappy import SURVEY_ANSWERS_FILE
from tasks.state.backend import open_state
from tasks.state.calls import closed_incidents
from tasks.state.preferences import PREFERENCES_FILE

# Columns of a send shard: the plan row joined with what composing a message needs (customer, profile).
SHARD_COLUMNS = (
    "idempotency_key",
    "customer_id",
    "campaign",
    "channel",
    "kind",
    "email",
    "phone",
    "first_name",
    "locale",
    "days_since_last_order",
    "top_category",
    "step",
    "occurrence",
    "detail",
    "send_at",
    "send_day",
    "coupon_valid_until",
    "timezone",
    "country",
)

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
    "send_day",
    "priority",
    "due",
    "detail",
    "coupon_valid_until",
    "yields_to",
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
    """Return (customer_id, step, occurrence, due, detail): the steps due today or within ``max_delay_days``.

    A greeting on its occasion (``Campaign.on_the_day``) is a candidate on that day only.
    """
    return due_today(campaign, due_steps(campaign, data, as_of - timedelta(days=campaign.max_delay_days), as_of), as_of)


def due_today(campaign: Campaign, due: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Of a campaign's due steps, the candidates of ``as_of``: due by then and still within ``max_delay_days``."""
    today, earliest = as_of.isoformat(), (as_of - timedelta(days=campaign.max_delay_days)).isoformat()
    out = due.loc[((due["due"] <= today) & (due["due"] >= earliest)).to_numpy()]
    late = {s.step for s in campaign.steps if campaign.on_the_day(s)}
    out = out.loc[~(out["step"].isin(late) & (out["due"] != as_of.isoformat())).to_numpy()]
    # one message per customer and step: the latest occurrence wins (a second cart the next day, say)
    return out.sort_values(["customer_id", "step", "occurrence"]).drop_duplicates(["customer_id", "step"], keep="last")


def due_steps(campaign: Campaign, data: ShopData, first_due: date, last_due: date) -> pd.DataFrame:
    """Return (customer_id, step, occurrence, due, detail) of the steps due from ``first_due`` to ``last_due``."""
    first, last = campaign.offsets
    found = occurrences(campaign.trigger, data, first_due - timedelta(days=last), last_due - timedelta(days=first))
    profile = data["profile"]
    known = found["customer_id"].astype(str).isin(profile["customer_id"].astype(str))  # a hash join, not a set
    found = found.loc[known.to_numpy()]
    if campaign.audience:
        found = found.loc[found["customer_id"].astype(str).map(audience_members(campaign.audience, profile)).to_numpy()]
    today, earliest = pd.Timestamp(last_due), pd.Timestamp(first_due)
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
    return pd.concat(steps, ignore_index=True)


class Scheduler(Protocol):
    """The job's gate 4: when each row would go out, and which rows wait for a later plan (``deferred``)."""

    def __call__(self, campaign: Campaign, rows: pd.DataFrame, planning: Planning) -> tuple[pd.Series, np.ndarray]: ...


def at_local_hour(campaign: Campaign, rows: pd.DataFrame, planning: Planning) -> tuple[pd.Series, np.ndarray]:
    """The daily run's send time: the campaign's hour in the customer's zone on ``as_of``, out of quiet hours.

    A time inside quiet hours moves to their end; if that is tomorrow, the row is deferred to tomorrow's plan.
    """
    send_at, moved = local_send_time(
        planning.as_of, campaign.send_hour_local, rows["timezone"], rows["country"], planning.rules
    )
    return send_at, np.asarray(moved.to_numpy() & (send_at.dt.date > planning.as_of).to_numpy(), dtype=bool)


@dataclass(frozen=True)
class Suppressed:
    """Who may not be messaged, per channel, as address hashes and customer ids.

    ``everything``: a bounce, a complaint, an SMS opt-out, a whole-channel unsubscribe: no message at all.
    ``marketing``: those plus the unsubscribes from offers (``Topic.MARKETING``): no marketing, and no offer
    in a service message; order and service messages go on.
    """

    everything: Mapping[Channel, frozenset[str]] = field(default_factory=dict)
    marketing: Mapping[Channel, frozenset[str]] = field(default_factory=dict)
    # the keys addresses are hashed with (current first, then earlier secrets'); the bare SHA-256 of older rows
    # is always matched too (``tasks/consent/suppression.py``)
    hash_keys: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class CustomerPreferences:
    """What customers chose on their preferences page, as the preference gate and the budget read it.

    ``topics_off`` and ``channels_off`` hold ``<customer>\x1f<topic or channel>``; ``weekly``: the customers
    who want at most one marketing message in any 7 days; ``paused_until``: customer -> ISO day marketing resumes.
    """

    topics_off: frozenset[str] = frozenset()
    channels_off: frozenset[str] = frozenset()
    weekly: frozenset[str] = frozenset()
    paused_until: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame | None) -> CustomerPreferences:
        """From the run's copy of the records (``tasks/state/preference_snapshot.py``); None: nobody chose."""
        if frame is None or frame.empty:
            return cls()
        ids = frame["customer_id"].astype(str)

        def pairs(column: str) -> frozenset[str]:
            return frozenset(
                f"{c}\x1f{v}"
                for c, text in zip(ids, frame[column].fillna(""), strict=True)
                for v in str(text).split(",")
                if v
            )

        paused = frame["frequency"] == Frequency.PAUSED.value
        return cls(
            topics_off=pairs("topics_off"),
            channels_off=pairs("channels_off"),
            weekly=frozenset(ids[(frame["frequency"] == Frequency.WEEKLY.value).to_numpy()]),
            paused_until=dict(zip(ids[paused.to_numpy()], frame.loc[paused, "paused_until"].astype(str), strict=True)),
        )


# A marketing step due on a coming day that passed the gates it can pass today: it keeps its room in the budget.
SCHEDULED_COLUMNS = ("customer_id", "campaign", "priority", "day")


@dataclass(frozen=True)
class Planning:
    """What one planning run knows besides its candidates: the day, the moment of sending, the rules, the state.

    ``catalog``: every campaign a row may name (for lateness, pauses, holdouts, coupons), the job's own included.
    ``history``: what earlier plans (and later ones: a backfill runs after) send or held out, by the day it
    goes out (``tasks/plan/history.py``). ``already``: the ledger's keys sent or failed for good.
    ``scheduled``: marketing steps due on the coming days that the budget keeps room for (``scheduled_steps``).
    ``schedule``: the job's send time (gate 4). ``pauses``: the campaigns a marketer paused (gate 7).
    """

    as_of: date
    sending_at: datetime
    rules: DeliveryRules
    catalog: Mapping[str, Campaign]
    suppressed: Suppressed = field(default_factory=Suppressed)
    history: pd.DataFrame = field(default_factory=no_history)
    already: Callable[[pd.Series], set[str]] = lambda keys: set()
    scheduled: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(SCHEDULED_COLUMNS)))
    redeemed_codes: frozenset[str] = frozenset()
    key: bytes = b""
    schedule: Scheduler = at_local_hour
    pauses: CampaignPauses = NO_PAUSES
    preferences: CustomerPreferences = field(default_factory=CustomerPreferences)


def message_rows(campaign: Campaign, candidates: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate and channel of a campaign, with its idempotency key (not yet decided)."""
    frames = []
    for channel in campaign.channels:
        if campaign.kind is MessageKind.TRANSACTIONAL and isinstance(campaign.trigger, OrderTrigger):
            status = campaign.trigger.status.value
            keys = [order_key(str(order), status, channel.value) for order in candidates["detail"]]
        elif campaign.kind is MessageKind.TRANSACTIONAL and isinstance(campaign.trigger, OrderStatusTrigger):
            pairs = [str(d).rsplit(" ", 1) for d in candidates["detail"]]  # detail: "<order_id> <status>"
            keys = [order_key(order, status, channel.value) for order, status in pairs]
        else:
            keys = [
                idempotency_key(campaign.name, int(s), channel.value, str(c), str(o))
                for s, c, o in zip(candidates["step"], candidates["customer_id"], candidates["occurrence"], strict=True)
            ]
        frames.append(
            candidates.assign(
                idempotency_key=keys,
                campaign=campaign.name,
                channel=channel.value,
                kind=campaign.kind.value,
                priority=campaign.priority,
                step=candidates["step"].to_numpy(dtype="int64"),
            )
        )
    return (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*candidates.columns, *PLAN_COLUMNS])
    )


# --- the gates, in order -----------------------------------------------------------------------------------------
# Each gate looks at the rows still to send and names the ones it stops: (rows, decision, reason).
# ``rows`` holds the plan's columns joined with the customer's (email, phone, consents, timezone, country).

Stops = Iterable[tuple[npt.NDArray[np.bool_], Decision, SkipReason]]


def _address(rows: pd.DataFrame) -> pd.Series:
    return rows["email"].where(rows["channel"] == Channel.EMAIL.value, rows["phone"])


def contact_gate(rows: pd.DataFrame, planning: Planning, known: set[str]) -> Stops:
    """1. The channel's address is present."""
    missing = _address(rows).isna().to_numpy()
    email = (rows["channel"] == Channel.EMAIL.value).to_numpy()
    yield missing & email, Decision.SKIPPED, SkipReason.NO_EMAIL
    yield missing & ~email, Decision.SKIPPED, SkipReason.INVALID_PHONE


def consent_gate(rows: pd.DataFrame, planning: Planning, known: set[str]) -> Stops:
    """2. Marketing needs the channel's opt-in; an SMS copy of a transactional message needs SMS opt-in."""
    email = rows["channel"] == Channel.EMAIL.value
    opted_in = rows["email_opt_in"].where(email, rows["sms_opt_in"]).fillna(False).astype(bool)
    needs = (rows["kind"] == MessageKind.MARKETING.value) | ~email
    yield (needs & ~opted_in).to_numpy(), Decision.SKIPPED, SkipReason.NO_CONSENT


def suppression_gate(rows: pd.DataFrame, planning: Planning, known: set[str]) -> Stops:
    """3. A bounced, complained or unsubscribed address or customer is never messaged: an unsubscribe from offers
    stops marketing, and order and service messages go on; a bounce, complaint or whole-channel one stops all."""
    marketing = (rows["kind"] == MessageKind.MARKETING.value).to_numpy()
    keys = planning.suppressed.hash_keys
    everything = _suppressed(rows, planning.suppressed.everything, keys)
    yield (
        everything | (marketing & _suppressed(rows, planning.suppressed.marketing, keys)),
        Decision.SKIPPED,
        SkipReason.SUPPRESSED,
    )


def _suppressed(
    rows: pd.DataFrame, suppressed: Mapping[Channel, frozenset[str]], keys: tuple[bytes, ...] = ()
) -> npt.NDArray[np.bool_]:
    """Rows whose address (any of its hashes: keyed with ``keys``, or bare) or customer is in ``suppressed``."""
    hit = np.zeros(len(rows), dtype=bool)
    for channel in Channel:
        suppressed_here = suppressed.get(channel, frozenset())
        on = (rows["channel"] == channel.value).to_numpy()
        if not suppressed_here or not on.any():  # nobody to match: no address need be hashed
            continue
        here = rows.loc[on]
        known = here["customer_id"].isin(suppressed_here).to_numpy()
        hit[on] = known | _hashed_in(_address(here).fillna(""), suppressed_here, keys)
    return hit


def _hashed_in(addresses: pd.Series, hashes: frozenset[str], keys: tuple[bytes, ...]) -> npt.NDArray[np.bool_]:
    """Which addresses have any of their hashes (bare, or keyed with ``keys``) in ``hashes``: each distinct
    address is hashed once (a customer has many rows, and the keyed hash reads the address's ASCII form)."""
    codes, distinct = pd.factorize(addresses.to_numpy(dtype=object))
    found = [
        bare_address_hash(a) in hashes or any(address_hash(a, k) in hashes for k in keys) for a in distinct.tolist()
    ]
    return np.asarray(found, dtype=bool)[codes] if len(codes) else np.zeros(0, dtype=bool)


def preference_gate(rows: pd.DataFrame, planning: Planning, known: set[str]) -> Stops:
    """3b. The customer's preferences page: a topic or a channel they turned off, or a pause, stops marketing;
    order and service messages go on."""
    chosen = planning.preferences
    if not (chosen.topics_off or chosen.channels_off or chosen.paused_until):
        return
    marketing = (rows["kind"] == MessageKind.MARKETING.value).to_numpy()
    customers = rows["customer_id"].astype(str)
    topics = rows["campaign"].map({n: c.mailing_topic.value for n, c in planning.catalog.items()}).astype(str)
    yield (
        marketing & (customers + "\x1f" + topics).isin(chosen.topics_off).to_numpy(),
        Decision.SKIPPED,
        SkipReason.PREFERENCE_TOPIC,
    )
    channel_off = (customers + "\x1f" + rows["channel"].astype(str)).isin(chosen.channels_off).to_numpy()
    yield marketing & channel_off, Decision.SKIPPED, SkipReason.PREFERENCE_CHANNEL
    until = customers.map(chosen.paused_until)
    paused = (until.notna() & (until.fillna("") > planning.as_of.isoformat())).to_numpy(dtype=bool)
    yield marketing & paused, Decision.SKIPPED, SkipReason.PREFERENCE_PAUSE


def quiet_hours_gate(rows: pd.DataFrame, planning: Planning, known: set[str]) -> Stops:
    """4. The job's send time (``Planning.schedule``); one inside quiet hours that cannot move today waits for
    tomorrow if its window is open then (a greeting on its occasion is not), else it is skipped.

    Sets ``send_at`` and ``send_day``: the day the message really goes out on the customer's clock (a
    backfill's past send time goes out now), which the budget and the coupon's validity count from.
    """
    deferred = np.zeros(len(rows), dtype=bool)
    send_at = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns, UTC]")
    for name, group in rows.groupby("campaign", sort=False):
        at, later = planning.schedule(planning.catalog[str(name)], group, planning)
        send_at.loc[group.index] = pd.to_datetime(at, utc=True).to_numpy()
        deferred[rows.index.get_indexer(group.index)] = later
    rows["send_at"] = send_at
    going = send_at.where(send_at >= pd.Timestamp(planning.sending_at), pd.Timestamp(planning.sending_at))
    rows["send_day"] = local_day(going, rows["timezone"])
    still_open = window_open(rows["due"], planning.as_of, _last_days(rows, planning))
    yield deferred & still_open, Decision.DEFERRED, SkipReason.QUIET_HOURS
    yield deferred & ~still_open, Decision.SKIPPED, SkipReason.QUIET_HOURS


def redeemed_gate(rows: pd.DataFrame, planning: Planning, known: set[str]) -> Stops:
    """5. A ``stop_when_redeemed`` series stops once an order carries its coupon (a step already sent stays a duplicate)."""
    used = redeemed_rows(rows, planning.catalog, planning.key, planning.redeemed_codes)
    yield used & ~rows["idempotency_key"].isin(known).to_numpy(), Decision.SKIPPED, SkipReason.REDEEMED


def lateness_gate(rows: pd.DataFrame, planning: Planning, known: set[str]) -> Stops:
    """6. More than ``max_delay_days`` (plus the same-day grace) after the planned moment: the event's (``at``) or the send time."""
    planned = rows["at"] if "at" in rows.columns else rows["send_at"]
    yield too_late(planned, planning.sending_at, _last_days(rows, planning)), Decision.SKIPPED, SkipReason.TOO_LATE


def coupon_gate(rows: pd.DataFrame, planning: Planning, known: set[str]) -> Stops:
    """7. The coupon a message carries is valid on the day it goes out: counted from that day where the offer
    allows (``valid_days``), else (fixed by its occasion) a step that would carry it expired is skipped.

    Sets ``coupon_valid_until`` (empty without a coupon). A service message (transactional with an offer:
    service recovery) carries its coupon only to those who accept offers on the channel.
    """
    valid_until = pd.Series(None, index=rows.index, dtype=object)
    expired = np.zeros(len(rows), dtype=bool)
    offers_ok = _accepts_offers(rows, planning)
    for (name, number), group in rows.groupby(["campaign", "step"], sort=False):
        campaign = planning.catalog[str(name)]
        offer = campaign.step_offer(_step(campaign, int(str(number))))
        if offer is None:
            continue
        ends = [
            validity(campaign, offer, date.fromisoformat(str(o)), pd.Timestamp(d).date())[1]
            for o, d in zip(group["occurrence"], group["send_day"], strict=True)
        ]
        at = rows.index.get_indexer(group.index)
        lapsed = np.array([end < pd.Timestamp(d).date() for end, d in zip(ends, group["send_day"], strict=True)])
        expired[at] = lapsed
        carries = offers_ok[at] & ~lapsed
        valid_until.loc[group.index] = [e.isoformat() if c else None for e, c in zip(ends, carries, strict=True)]
    rows["coupon_valid_until"] = valid_until
    yield expired, Decision.SKIPPED, SkipReason.COUPON_EXPIRED


def _accepts_offers(rows: pd.DataFrame, planning: Planning) -> npt.NDArray[np.bool_]:
    """Marketing carries its offer (its consent was checked); a service message only to those opted in to the
    channel's marketing, not unsubscribed from it and not turned it off on their preferences page."""
    email = rows["channel"] == Channel.EMAIL.value
    opted_in = rows["email_opt_in"].where(email, rows["sms_opt_in"]).fillna(False).astype(bool)
    marketing = rows["kind"] == MessageKind.MARKETING.value
    stopped = _suppressed(rows, planning.suppressed.marketing, planning.suppressed.hash_keys)
    turned_off = rows["customer_id"].astype(str) + "\x1f" + rows["channel"].astype(str)
    stopped |= turned_off.isin(planning.preferences.channels_off).to_numpy()
    return np.asarray((marketing | opted_in).to_numpy(), dtype=bool) & ~stopped


def _step(campaign: Campaign, number: int) -> Step:
    return next(s for s in campaign.steps if s.step == number)


def pause_gate(rows: pd.DataFrame, planning: Planning, known: set[str]) -> Stops:
    """7. A campaign a marketer paused (``paused_campaigns``) sends nothing; after a pausing campaign (service
    recovery) reaches a customer, other marketing waits that long."""
    pauses = planning.pauses
    if pauses.names or pauses.all_marketing:
        # decided once per (campaign, kind), not per row
        pairs = (rows["campaign"].astype(str) + "\x1f" + rows["kind"].astype(str)).to_numpy(dtype=object)
        codes, distinct = pd.factorize(pairs)
        stops = np.asarray([pauses.stops(*str(pair).split("\x1f", 1)) for pair in distinct], dtype=bool)
        yield stops[codes], Decision.SKIPPED, SkipReason.CAMPAIGN_PAUSED
    yield _paused(rows, planning.catalog, planning.history, planning.as_of), Decision.SKIPPED, SkipReason.PAUSED


def duplicate_gate(rows: pd.DataFrame, planning: Planning, known: set[str]) -> Stops:
    """9. A key the send ledger holds as sent or failed for good: it went, and takes no second place in the budget."""
    yield rows["idempotency_key"].isin(known).to_numpy(), Decision.SKIPPED, SkipReason.DUPLICATE


def holdout_gate(rows: pd.DataFrame, planning: Planning, known: set[str]) -> Stops:
    """10. A stable hash sets each campaign's holdout share aside: decided once per occurrence, never sent.

    The first row of a held-out occurrence is recorded as ``holdout`` (attribution counts it); its later
    steps and days are skipped (``holdout``). Before the budget: a held-out message takes no one's room.
    """
    held = _held_out(rows, planning.catalog)
    history = planning.history
    earlier = history.loc[history["decision"] == Decision.HOLDOUT.value]
    ids = set(_message_ids(earlier, ("customer_id", "campaign", "occurrence")))
    recorded = _message_ids(rows, ("customer_id", "campaign", "occurrence")).isin(ids).to_numpy(dtype=bool)
    yield recorded, Decision.SKIPPED, SkipReason.HOLDOUT
    yield held & ~recorded, Decision.HOLDOUT, SkipReason.HOLDOUT


def budget_gate(rows: pd.DataFrame, planning: Planning, known: set[str]) -> Stops:
    """11. At most N marketing messages a day and M in 7 days, counted on the days they go out; higher priority
    wins, and a message yields (``reserved``) where it would leave no room for a higher-priority step already
    scheduled inside the window. Losers wait while their window is open, else they are skipped."""
    budgeted = _budget(rows, planning)
    still_open = window_open(rows["due"], planning.as_of, _last_days(rows, planning))
    reserved = budgeted.yields_to != ""
    rows["yields_to"] = pd.Series(budgeted.yields_to, index=rows.index).where(reserved, "")
    yield budgeted.over & still_open, Decision.DEFERRED, SkipReason.FREQUENCY_CAP
    yield budgeted.over & ~still_open, Decision.SKIPPED, SkipReason.FREQUENCY_CAP
    yield reserved & still_open, Decision.DEFERRED, SkipReason.RESERVED
    yield reserved & ~still_open, Decision.SKIPPED, SkipReason.RESERVED


MESSAGE = ("customer_id", "campaign", "step", "occurrence")  # one message, however many channels carry it


def _message_ids(frame: pd.DataFrame, columns: tuple[str, ...] = MESSAGE) -> pd.Series:
    """One text per message (vectorised: histories run to millions of rows)."""
    out = pd.Series("", index=frame.index, dtype=object)
    for n, column in enumerate(columns):
        out = out + ("\x1f" if n else "") + frame[column].astype(str)
    return out


def _budget(rows: pd.DataFrame, planning: Planning) -> Budgeted:
    """The budget over the rows still to send (per message), against what already goes out on each day."""
    out = Budgeted(np.zeros(len(rows), dtype=bool), np.full(len(rows), "", dtype=object))
    marketing = rows["kind"] == MessageKind.MARKETING.value
    candidates = rows.loc[(marketing & (rows["decision"] == Decision.SEND.value)).to_numpy()]
    if candidates.empty:
        return out
    history = planning.history
    sent = history.loc[(history["kind"] == MessageKind.MARKETING.value) & (history["decision"] == Decision.SEND.value)]
    # a message an earlier plan meant to send that is still a candidate did not go (held at night, failed for
    # now): it does not take its own room
    sent = sent.loc[~_message_ids(sent).isin(set(_message_ids(candidates))).to_numpy()]
    # today's messages the ledger holds as sent, that no earlier plan recorded (a re-run of this plan): they went
    went = rows.loc[(marketing & (rows["reason"] == SkipReason.DUPLICATE.value)).to_numpy()]
    went = went.loc[~_message_ids(went).isin(set(_message_ids(sent))).to_numpy()].drop_duplicates(list(MESSAGE))
    # a message that went on one channel and is still a candidate on another (its SMS copy was parked): one room
    went = went.loc[~_message_ids(went).isin(set(_message_ids(candidates))).to_numpy()]
    taken = pd.concat(
        [sent[["customer_id", "day"]], went[["customer_id"]].assign(day=went["send_day"])], ignore_index=True
    )
    messages = candidates.drop_duplicates(list(MESSAGE)).assign(day=lambda f: f["send_day"])
    decided = allocate_budget(messages, taken, planning.scheduled, planning.rules, planning.preferences.weekly)
    per_message = pd.DataFrame(
        {"_id": _message_ids(messages).to_numpy(), "over": decided.over, "yields_to": decided.yields_to}
    ).set_index("_id")
    ids = _message_ids(rows)
    hit = (marketing & (rows["decision"] == Decision.SEND.value)).to_numpy()
    out.over[hit] = per_message["over"].reindex(ids[hit]).to_numpy(dtype=bool)
    out.yields_to[hit] = per_message["yields_to"].reindex(ids[hit]).to_numpy(dtype=object)
    return out


Gate = Callable[[pd.DataFrame, Planning, set[str]], Stops]
# The one ordered list every job plans through; the first gate that stops a row gives its reason.
GATES: tuple[Gate, ...] = (
    contact_gate,
    consent_gate,
    suppression_gate,
    preference_gate,
    quiet_hours_gate,
    redeemed_gate,
    lateness_gate,
    coupon_gate,
    pause_gate,
    duplicate_gate,
    holdout_gate,
    budget_gate,
)


def plan_candidates(
    batches: Iterable[tuple[Campaign, pd.DataFrame]], customers: pd.DataFrame, planning: Planning
) -> pd.DataFrame:
    """Plan candidates through every gate: one row per (customer, campaign, step, channel) with a decision.

    ``batches``: each campaign with its candidates (customer_id, step, occurrence, due, detail, and ``at``
    for event-driven jobs: the moment lateness counts from). Returns ``PLAN_COLUMNS`` (and ``at``).
    """
    frames = [message_rows(c, cands) for c, cands in batches if len(cands)]
    if not frames:
        return _empty_plan()
    rows = pd.concat(frames, ignore_index=True)
    rows = rows.merge(customers, on="customer_id", how="left", validate="many_to_one", suffixes=("", "_customer"))
    rows["decision"] = Decision.SEND.value
    rows["reason"] = ""
    known = planning.already(rows["idempotency_key"])
    for gate in GATES:
        for mask, decision, reason in gate(rows, planning, known):
            _mark(rows, mask, decision, reason)
    columns = [*PLAN_COLUMNS, *(["at"] if "at" in rows.columns else [])]
    return rows[columns].reset_index(drop=True)


def _last_days(rows: pd.DataFrame, planning: Planning) -> pd.Series:
    """Per row, how many days after its due day it may still go out (0 for a greeting on its occasion)."""
    days = {(n, s.step): c.last_day(s) for n, c in planning.catalog.items() for s in c.steps}
    pairs = zip(rows["campaign"].astype(str), rows["step"].astype("int64"), strict=True)
    return pd.Series([days.get(pair, 0) for pair in pairs], index=rows.index, dtype="int64")


def _held_out(plan: pd.DataFrame, campaigns: Mapping[str, Campaign]) -> npt.NDArray[np.bool_]:
    """Rows each campaign's holdout share sets aside: a stable hash of customer, campaign and quarter."""
    held = np.zeros(len(plan), dtype=bool)
    for name, rows in plan.groupby("campaign", sort=False):
        share = campaigns[str(name)].holdout_share
        if share > 0:
            period = holdout_period(rows["occurrence"])
            held[plan.index.get_indexer(rows.index)] = in_holdout(rows["customer_id"], str(name), period, share)
    return held


def _paused(
    plan: pd.DataFrame, campaigns: Mapping[str, Campaign], history: pd.DataFrame, as_of: date
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


def current_suppressions(suppressions: SuppressionList) -> Suppressed:
    """Return suppressed address hashes and customer ids per channel: for every message, and for marketing.

    The hashes include the addresses that customers suppressed by id were messaged at, so
    re-importing them under a new id, or moving the address to another record, changes nothing.
    """
    topic = Topic.MARKETING.value
    return Suppressed(
        everything={c: suppressions.hashes(c) | suppressions.customers(c) for c in Channel},
        marketing={c: suppressions.hashes(c, topic) | suppressions.customers(c, topic) for c in Channel},
        hash_keys=(*([] if suppressions.key is None else [suppressions.key]), *suppressions.old_keys),
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
    suppressed: Suppressed,
    rules: DeliveryRules,
    already: Callable[[pd.Series], set[str]],
    history: pd.DataFrame,
    sending_at: datetime,
    key: bytes,
    pauses: CampaignPauses = NO_PAUSES,
    redeemed: frozenset[str] | None = None,
) -> pd.DataFrame:
    """Plan one day of the daily run: every campaign's candidates through every gate.

    ``redeemed``: the codes used on orders, where ``data`` holds only some customers' orders (a partition).
    """
    planning = Planning(
        as_of=data.as_of,
        sending_at=sending_at,
        rules=rules,
        catalog=campaigns,
        suppressed=suppressed,
        history=history,
        already=already,
        redeemed_codes=redeemed_codes(data[Table.ORDERS]) if redeemed is None else redeemed,
        key=key,
        pauses=pauses,
        preferences=CustomerPreferences.from_frame(data.optional("preferences")),
    )
    # one pass over each trigger: today's candidates, and the steps due on the coming days the budget keeps room for
    as_of = data.as_of
    due = {
        c.name: due_steps(c, data, as_of - timedelta(days=c.max_delay_days), as_of + timedelta(days=RESERVE_DAYS))
        for c in campaigns.values()
    }
    coming = {n: rows.loc[(rows["due"] > as_of.isoformat()).to_numpy()] for n, rows in due.items()}
    planning = replace(planning, scheduled=scheduled_steps(campaigns, coming, data[Table.CUSTOMERS], planning))
    batches = [(c, due_today(c, due[c.name], as_of)) for c in campaigns.values()]
    return plan_candidates(batches, data[Table.CUSTOMERS], planning)


# The gates a step due on a coming day can pass today: only those it passes keep room in the budget.
SCHEDULING_GATES: tuple[Gate, ...] = (
    contact_gate,
    consent_gate,
    suppression_gate,
    preference_gate,
    pause_gate,
    holdout_gate,
)


def scheduled_steps(
    campaigns: Mapping[str, Campaign], coming: Mapping[str, pd.DataFrame], customers: pd.DataFrame, planning: Planning
) -> pd.DataFrame:
    """Of the marketing steps due on the coming days (``coming``, per campaign), those the budget keeps room for
    on their due day: the ones that pass the gates a step can pass before its day (contact, consent, suppression,
    pause, holdout)."""
    batches = [(c, coming[n]) for n, c in campaigns.items() if c.kind is MessageKind.MARKETING and n in coming]
    frames = [message_rows(c, cands) for c, cands in batches if len(cands)]
    if not frames:
        return pd.DataFrame(columns=list(SCHEDULED_COLUMNS))
    rows = pd.concat(frames, ignore_index=True).merge(
        customers, on="customer_id", how="left", validate="many_to_one", suffixes=("", "_customer")
    )
    rows["decision"], rows["reason"] = Decision.SEND.value, ""
    for gate in SCHEDULING_GATES:
        for mask, decision, reason in gate(rows, planning, set()):
            _mark(rows, mask, decision, reason)
    kept = rows.loc[rows["decision"] == Decision.SEND.value].drop_duplicates(list(MESSAGE))
    return pd.DataFrame(
        {
            "customer_id": kept["customer_id"].astype(str).to_numpy(),
            "campaign": kept["campaign"].to_numpy(),
            "priority": kept["priority"].astype("int64").to_numpy(),
            "day": pd.to_datetime(kept["due"]).to_numpy(),
        }
    )


def _empty_plan() -> pd.DataFrame:
    plan = pd.DataFrame({c: pd.Series(dtype=object) for c in PLAN_COLUMNS})
    return plan.astype(
        {"step": "int64", "priority": "int64", "send_at": "datetime64[ns, UTC]", "send_day": "datetime64[ns]"}
    )


def redeemed_rows(
    plan: pd.DataFrame, campaigns: Mapping[str, Campaign], key: bytes, used: frozenset[str]
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


# The tables keyed by order, without a customer_id: a partition reads its customers' orders' rows of them.
ORDER_KEYED = frozenset({Table.ORDER_ITEMS, Table.ORDER_EVENTS})
# The columns of the events table the triggers read (the cart trigger).
TRIGGER_EVENT_COLUMNS = ("customer_id", "product_id", "type", "at")


def shop_data(paths: RunPaths, as_of: date, settings: Settings, partition: Partition | None = None) -> ShopData:
    """The day's tables for the triggers, read from the run's folder on first use (``partition``: its customers')."""
    rows = None if partition is None else partition.arrow_rows(paths.table(Table.CUSTOMERS))

    @functools.cache  # the partition's orders' ids: read once, on first use, for every table keyed by order
    def by_order(partition: Partition, rows: Callable[[pa.Table], pa.Table]) -> Callable[[pa.Table], pa.Table]:
        return partition.arrow_order_rows(paths.table(Table.ORDERS), rows)

    def rows_of(table: Table) -> Callable[[pa.Table], pa.Table] | None:
        if partition is None or rows is None or partition.count == 1 or table not in ORDER_KEYED:
            return rows
        return by_order(partition, rows)

    def load(name: str) -> pd.DataFrame:
        frame = _load(name)
        return frame if partition is None or name in {t.value for t in Table} else partition.only_mine(frame)

    def _load(name: str) -> pd.DataFrame:
        if name in {t.value for t in Table}:
            if not paths.table(Table(name)).exists():
                raise KeyError(name)  # an optional table the shop does not give (``ShopData.optional``)
            if name == Table.EVENTS.value:  # the biggest table, read by the cart trigger only: its columns, compactly
                columns = list(TRIGGER_EVENT_COLUMNS)
                return read_table(paths, Table.EVENTS, columns=columns, arrow_strings=True, rows=rows)
            return read_table(paths, Table(name), rows=rows_of(Table(name)))
        if name == "profile":
            return pd.read_parquet(paths.profile)
        if name == "preferences":  # the daily run's copy of the customers' preferences (``merge_preferences``)
            chosen = paths.table(Table.ORDERS).with_name(PREFERENCES_FILE)
            if not chosen.exists():
                raise KeyError(name)
            return pd.read_parquet(chosen)
        if name == "survey_answers":  # the daily run's copy of the survey answers (``snapshot_answers``)
            answers = paths.table(Table.ORDERS).with_name(SURVEY_ANSWERS_FILE)
            if not answers.exists():
                raise KeyError(name)
            return pd.read_parquet(answers)
        return pd.read_parquet(detail_file(paths.profile, name))

    return ShopData(
        as_of=as_of,
        load=load,
        points=PointsRules(settings.points_per_unit, settings.points_valid_days),
        closed_incidents=closed_incidents(open_state(settings, dynamodb_client).calls.outcomes()),
    )


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


def commit_shards(
    plan: pd.DataFrame,
    people: pd.DataFrame,
    paths: RunPaths,
    settings: Settings,
    campaigns: Mapping[str, Campaign],
    *,
    history: bool = True,
    partition: Partition | None = None,
) -> PlanSummary:
    """Commit a plan for sending: its coupon registry, then its send shards wave by wave; return its summary.

    Every job that sends (the daily run, ad-hoc campaigns, order updates) commits through here. The
    state backend keeps what the plan sends or holds out (the send history every host's budget reads;
    ``history=False``: the job records its own) and every coupon code, unless the run is a dry run. Each shard's addresses are
    remembered by the suppression list before anything is sent, so an unsubscribe by customer id also
    covers the address the message went to.

    ``partition``: a partition's share of the day (``tasks/plan/partitions.py``): its plan and registry under its
    own names, its shards under its own numbers; the day's history is recorded when the parts are merged.
    """
    plan_file = paths.plan if partition is None else partition.plan_file(paths)
    plan_file.parent.mkdir(parents=True, exist_ok=True)
    plan.to_parquet(plan_file, index=False)
    sends = plan.loc[plan["decision"] == Decision.SEND.value]
    codes = registry(sends, dict(campaigns), purpose_key(settings, Purpose.COUPON))
    write_registry(codes, paths.coupons if partition is None else partition.coupons_file(paths))
    if not settings.dry_run:  # a rehearsal issues no code and takes no host's budget
        state = open_state(settings, dynamodb_client)
        day = run_day(paths)
        state.coupons.record(coupon_rows(codes, day))
        if history and partition is None:
            record_history(state.history, plan, paths.plan, day)
    suppressions = SuppressionList.for_settings(settings)
    waves: dict[datetime, list[int]] = {}
    numbers: list[int] = []
    for k, (at, shard) in enumerate(shard_plan(plan, people, settings.shard_size)):
        number = k + 1 if partition is None else partition.shard_number(k)
        for channel, column in ((Channel.EMAIL, "email"), (Channel.SMS, "phone")):
            rows = shard.loc[shard["channel"] == channel.value]
            # the snapshot's addresses: already the form the engine sends to (``tasks/data/contacts.py``)
            suppressions.remember(channel, zip(rows["customer_id"], rows[column], strict=True), normal_form=True)
        shard.to_parquet(paths.send_shard(number), index=False)
        waves.setdefault(at, []).append(number)
        numbers.append(number)
    return summarise_plan(plan, numbers, waves)


def merge_partitions(paths: RunPaths, settings: Settings, parts: Sequence[PartitionResult]) -> PlanSummary:
    """The day's plan from its partitions' parts (``flows/partition.py``): the plan, the coupon registry, the send
    history (unless a dry run), the waves; the parts' plan and registry files go once merged.

    The plan's rows are the single-process plan's: every gate decides per customer. Partitions in order.
    """
    partitions = [Partition(r.index, r.count) for r in sorted(parts, key=lambda r: r.index)]
    plan = pd.concat([pd.read_parquet(p.plan_file(paths)) for p in partitions], ignore_index=True)
    plan.to_parquet(paths.plan, index=False)
    header, lines = "", list[str]()
    for part in partitions:  # the registry's CSV text as each partition wrote it: one header
        first, *rows = part.coupons_file(paths).read_text(encoding="utf-8").splitlines(keepends=True)
        header, lines = first, [*lines, *rows]
    partial = paths.coupons.with_suffix(".csv.partial")
    partial.write_text(header + "".join(lines), encoding="utf-8")
    partial.replace(paths.coupons)
    if not settings.dry_run:
        record_history(open_state(settings, dynamodb_client).history, plan, paths.plan, run_day(paths))
    waves: dict[datetime, list[int]] = {}
    for result in parts:
        for at, numbers in result.waves.items():
            waves.setdefault(at, []).extend(numbers)
    for part in partitions:
        part.plan_file(paths).unlink()
        part.coupons_file(paths).unlink()
    ordered = {at: sorted(waves[at]) for at in sorted(waves)}
    return summarise_plan(plan, [n for r in parts for n in r.shards], ordered)


def run_day(paths: RunPaths) -> date:
    """The day a run folder is for: the nearest folder named by a date (``<day>``, ``adhoc/<name>/<day>``,
    ``updates/<day>/<run>``)."""
    for folder in (paths.root, *paths.root.parents):
        try:
            return date.fromisoformat(folder.name)
        except ValueError:
            continue
    raise ValueError(f"{paths.root} is not a run folder: no folder in its path is named by a date")


def message_people(customers: pd.DataFrame, profile: pd.DataFrame | None) -> pd.DataFrame:
    """The customers with the profile columns messages use (none where a job builds no profile)."""
    if profile is None:
        return customers.assign(**{c: None for c in MESSAGE_PROFILE_COLUMNS if c != "customer_id"})
    return customers.merge(profile[list(MESSAGE_PROFILE_COLUMNS)], on="customer_id", how="left")


@task(cache_policy=NO_CACHE)
def plan_day(
    paths: RunPaths,
    as_of: date,
    settings: Settings,
    sending_at: datetime,
    only: ReplayFilter | None = None,
    partition: Partition | None = None,
) -> PlanSummary:
    """Decide who hears what today: candidates, gates, decisions, coupons and send shards.

    ``only`` (a filtered replay): the day is planned whole, then what it leaves out is held back (``replay``).
    ``partition``: plan only its customers (a partition's flow run); ``merge_partitions`` makes the day's plan.
    """
    progress.advance("plan")
    campaigns = daily_campaigns(survey_kind(load_catalog(settings.campaigns_dir), settings.survey_is_service))
    data = shop_data(paths, as_of, settings, partition)
    history = marketing_history(settings.output_dir, as_of, exclude=paths.plan, store=open_state(settings).history)
    redeemed = None
    if partition is not None:
        partition.clear(paths)  # an earlier attempt's shards (its worker died) are not this attempt's
        history, redeemed = partition.only_mine(history), redeemed_anywhere(paths)
    plan = build_plan(
        campaigns,
        data,
        current_suppressions(SuppressionList.for_settings(settings)),
        delivery_rules(settings),
        ledger_lookup(settings),
        history,
        sending_at,
        purpose_key(settings, Purpose.COUPON),
        campaign_pauses(settings),
        redeemed,
    )
    plan = hold_back(plan, only)
    people = message_people(data[Table.CUSTOMERS], data["profile"])
    summary = commit_shards(plan, people, paths, settings, campaigns, partition=partition)
    progress.advance("render", 0, summary.to_send)
    progress.advance("send", 0, summary.to_send)
    return summary


def summarise_plan(plan: pd.DataFrame, shards: list[int], waves: dict[datetime, list[int]]) -> PlanSummary:
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
        shards=sorted(shards),
        waves=[Wave(at=at, shards=numbers) for at, numbers in waves.items()],
        to_send_by_campaign={str(k): int(v) for k, v in sending["campaign"].value_counts().sort_index().items()},
    )


def explain(plan: pd.DataFrame, customer_id: str) -> pd.DataFrame:
    """Return a customer's plan rows: what was decided for them, on which channel, and why."""
    rows = plan.loc[plan["customer_id"].astype(str) == customer_id]
    columns = ["campaign", "step", "channel", "decision", "reason", "send_at", "idempotency_key"]
    # plans written before the budget named what a message yields to have no ``yields_to``
    return rows[[*columns, *(["yields_to"] if "yields_to" in rows.columns else [])]].reset_index(drop=True)
