"""The day-by-day simulator: what every campaign would send each day, as a dry run.

For each day from ``start`` to ``end`` it does what that day's run would do before rendering:
validate the tables as of the day (later records invisible), build the profile, and plan every
daily campaign through every gate. What a day decides to send counts as sent for the days after it
(duplicates, the frequency budget, a series' later steps, the pause after service recovery), as the
send ledger and the earlier plans would make it count. Nothing is written, rendered or sent, and
the real ledger is not read: the simulation starts from an empty history.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import pandas as pd
from pydantic import BaseModel

from tasks.data.validation import RawTable, validate_snapshot
from tasks.kernel.enums import Channel, Decision, Table, Topic
from tasks.kernel.settings import Settings
from tasks.plan.campaigns import Campaign, daily_campaigns
from tasks.plan.gates import delivery_rules
from tasks.plan.history import no_history, sent_history
from tasks.plan.planner import Suppressed, build_plan
from tasks.plan.points import PointsRules
from tasks.plan.triggers import ShopData
from tasks.profile.features import ProfileRules, build_profile

SIMULATION_COLUMNS = (
    "date",
    "customer_id",
    "campaign",
    "step",
    "channel",
    "kind",
    "occurrence",
    "decision",
    "reason",
    "yields_to",
    "coupon_valid_until",
)
RUN_HOUR = 6  # the daily run's scheduled hour in the shop's time zone: lateness is judged from it


class SimulatedRow(BaseModel):
    """One plan row of one simulated day."""

    date: date
    customer_id: str
    campaign: str
    step: int
    channel: str
    kind: str
    occurrence: str
    decision: str
    reason: str
    yields_to: str  # the campaign a ``reserved`` row yields to
    coupon_valid_until: str | None  # the last day (ISO) the message's coupon is valid (none without a coupon)


# An opt-out during a simulation: from ``day`` on, the customer is suppressed on ``channel`` for ``topic``.
OptOut = tuple[date, str, str, str]


def days(start: date, end: date) -> Iterator[date]:
    """Every day from ``start`` to ``end``, both included."""
    for n in range((end - start).days + 1):
        yield start + timedelta(days=n)


def simulate(
    raw: dict[Table, RawTable],
    campaigns: dict[str, Campaign],
    start: date,
    end: date,
    settings: Settings,
    key: bytes,
    opt_outs: Iterable[OptOut] = (),
    preferences: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Plan every day from ``start`` to ``end``; return the plan rows with their day, in ``SIMULATION_COLUMNS``.

    ``opt_outs``: unsubscribes that arrive during the simulation, (day, customer_id, channel, topic).
    ``preferences``: customers' choices on their preferences page, as the daily run's copy has them
    (``tasks/state/preference_snapshot.py``), applied every day.
    """
    if end < start:
        raise ValueError(f"the simulation ends ({end}) before it starts ({start})")
    campaigns = daily_campaigns(campaigns)  # order updates and one-off campaigns are not planned by day
    rules, profile_rules = delivery_rules(settings), ProfileRules.from_settings(settings)
    points = PointsRules(settings.points_per_unit, settings.points_valid_days)
    sent: set[str] = set()
    history = no_history()
    opt_outs = list(opt_outs)
    frames = []
    for day in days(start, end):
        tables = validate_snapshot(raw, day).frames
        parts = build_profile(tables, day, profile_rules)
        frames_of_day: dict[str, pd.DataFrame] = {t.value: f for t, f in tables.items()}
        frames_of_day |= {"profile": parts.profile, "incidents": parts.incidents, "replenishment": parts.replenishment}
        if preferences is not None:
            frames_of_day["preferences"] = preferences
        data = ShopData.from_frames(day, frames_of_day, points)
        plan = build_plan(
            campaigns,
            data,
            _suppressed_on(day, opt_outs),
            rules,
            partial(_already, sent),
            history,
            _run_moment(day, settings.shop_timezone),
            key,
        )
        to_send = plan.loc[plan["decision"] == Decision.SEND.value]
        sent |= set(to_send["idempotency_key"])
        history = pd.concat([history, sent_history(plan, day)], ignore_index=True)
        frames.append(plan.assign(date=day.isoformat())[list(SIMULATION_COLUMNS)])
    out = pd.concat(frames, ignore_index=True)
    out["step"] = out["step"].astype("int64")
    for column in ("reason", "yields_to"):
        out[column] = out[column].fillna("").astype(str)
    out["coupon_valid_until"] = out["coupon_valid_until"].astype(object).where(out["coupon_valid_until"].notna(), None)
    return out.sort_values(["date", "campaign", "step", "customer_id", "channel"], kind="stable").reset_index(drop=True)


def _suppressed_on(day: date, opt_outs: list[OptOut]) -> Suppressed:
    """Who is suppressed per channel on ``day``: every opt-out that arrived by then, for its topic."""
    everything: dict[Channel, set[str]] = {}
    marketing: dict[Channel, set[str]] = {}
    for since, customer_id, channel, topic in opt_outs:
        if since <= day:
            marketing.setdefault(Channel(channel), set()).add(customer_id)
            if topic != Topic.MARKETING.value:
                everything.setdefault(Channel(channel), set()).add(customer_id)
    return Suppressed(
        everything={c: frozenset(ids) for c, ids in everything.items()},
        marketing={c: frozenset(ids) for c, ids in marketing.items()},
    )


def _already(sent: set[str], keys: pd.Series) -> set[str]:
    return set(keys) & sent


def _run_moment(day: date, shop_timezone: str) -> datetime:
    return datetime.combine(day, time(RUN_HOUR), ZoneInfo(shop_timezone)).astimezone(ZoneInfo("UTC"))


def daily_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Messages to send per day and campaign (a table for people; the JSON rows are for scripts)."""
    sends = rows.loc[rows["decision"] == Decision.SEND.value]
    table = sends.pivot_table(index="date", columns="campaign", values="customer_id", aggfunc="count", fill_value=0)
    return table.reindex(sorted(rows["date"].unique()), fill_value=0).astype(int)
