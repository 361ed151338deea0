"""The gates after consent: holdout, quiet hours, the frequency budget and lateness.

Pure functions over plan frames, so ``loyalty why`` can explain every decision
and a backfill of a day decides what the day decided.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from tasks.kernel.enums import Decision, MessageKind
from tasks.kernel.settings import Settings


@dataclass(frozen=True)
class QuietHours:
    """Local hours when nobody is messaged: from ``start`` to ``end`` o'clock (wrapping midnight)."""

    start: int = 21
    end: int = 9

    def contains(self, hours: pd.Series) -> pd.Series:
        if self.start > self.end:  # e.g. 21:00-09:00 wraps midnight
            return (hours >= self.start) | (hours < self.end)
        return (hours >= self.start) & (hours < self.end)


@dataclass(frozen=True)
class DeliveryRules:
    """Quiet hours (default and per country) and the marketing frequency budget."""

    quiet: QuietHours = QuietHours()
    quiet_by_country: dict[str, QuietHours] = field(default_factory=dict)
    marketing_per_day: int = 1
    marketing_per_week: int = 3  # in any 7 days, today included


def delivery_rules(settings: Settings) -> DeliveryRules:
    """Build quiet hours and the frequency budget from settings."""
    return DeliveryRules(
        quiet=QuietHours(settings.quiet_hours_start, settings.quiet_hours_end),
        quiet_by_country={c.upper(): QuietHours(*hours) for c, hours in settings.quiet_hours_by_country.items()},
        marketing_per_day=settings.marketing_per_day,
        marketing_per_week=settings.marketing_per_week,
    )


def in_holdout(customer_ids: pd.Series, campaign: str, period: pd.Series, share: float) -> npt.NDArray[np.bool_]:
    """Return which customers a campaign holds out for a period: a stable hash, not a random draw."""
    if share <= 0:
        return np.zeros(len(customer_ids), dtype=bool)
    salted = campaign + "\x1f" + customer_ids.astype(str) + "\x1f" + period.astype(str)
    buckets = salted.map(lambda s: int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "big") / 2**64)
    return np.asarray(buckets.to_numpy(dtype=float) < share, dtype=bool)


def holdout_period(occurrence: pd.Series) -> pd.Series:
    """Return the calendar quarter of each occurrence: a customer stays in or out for the whole quarter."""
    days = pd.to_datetime(occurrence)
    return days.dt.year.astype(str) + "Q" + days.dt.quarter.astype(str)


def quiet_now(
    moment: datetime, timezones: pd.Series, countries: pd.Series, rules: DeliveryRules
) -> npt.NDArray[np.bool_]:
    """Return which customers are inside their quiet hours at ``moment`` (their local clock, their country's rule)."""
    zones = timezones.fillna("UTC").astype(str)
    country = countries.fillna("").astype(str).str.upper()
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    hours = pd.Series(0, index=zones.index)
    for zone, members in zones.groupby(zones).groups.items():
        hours.loc[members] = stamp.tz_convert(str(zone)).hour
    quiet = pd.Series(False, index=zones.index)
    for code in set(country):
        rows = country == code
        quiet |= rows & rules.quiet_by_country.get(code, rules.quiet).contains(hours)
    return np.asarray(quiet.to_numpy(dtype=bool), dtype=bool)


def local_send_time(
    day: date, hour: int, timezones: pd.Series, countries: pd.Series, rules: DeliveryRules
) -> tuple[pd.Series, pd.Series]:
    """Return (send_at in UTC, moved) for a send at ``hour`` local time on ``day``, out of quiet hours.

    A time inside the customer's quiet hours moves to the end of them; ``moved``
    says which rows were moved (their send is deferred, never dropped).
    """
    zones = timezones.fillna("UTC").astype(str)
    country = countries.fillna("").astype(str)
    local_hour = pd.Series(hour, index=zones.index)
    quiet_end = pd.Series(rules.quiet.end, index=zones.index)
    moved = pd.Series(False, index=zones.index)
    for code in set(country) | {""}:
        rows = country == code
        quiet = rules.quiet_by_country.get(code, rules.quiet)
        inside = rows & quiet.contains(local_hour)
        moved |= inside
        quiet_end = quiet_end.mask(rows, quiet.end)
    # move into the next allowed hour: the end of quiet hours, the next day if quiet started today
    next_day = moved & (local_hour >= quiet_end)
    hours = local_hour.mask(moved, quiet_end)
    days = pd.Series(pd.Timestamp(day), index=zones.index) + pd.to_timedelta(next_day.astype(int), unit="D")
    naive = days + pd.to_timedelta(hours, unit="h")
    send_at = pd.Series(pd.NaT, index=zones.index, dtype="datetime64[ns, UTC]")
    for zone, members in zones.groupby(zones).groups.items():
        local = naive.loc[members]
        # ambiguous wall times (clocks going back) take the later, standard-time reading
        standard = np.zeros(len(local), dtype=bool)
        send_at.loc[members] = local.dt.tz_localize(
            str(zone), nonexistent="shift_forward", ambiguous=standard
        ).dt.tz_convert("UTC")
    return send_at, moved


def frequency_budget(
    plan: pd.DataFrame, history: pd.DataFrame, as_of: date, rules: DeliveryRules, count_today: bool = False
) -> npt.NDArray[np.bool_]:
    """Return which of today's marketing sends are over the customer's budget.

    ``plan`` rows are candidate marketing sends (customer_id, campaign, step, occurrence, priority);
    ``history`` rows are marketing messages planned to send on earlier days (customer_id, day).
    ``count_today``: history dated ``as_of`` counts too (runs that plan more than once a day: order
    updates, ad-hoc campaigns, after the daily run). A message counts once however many channels
    carry it; higher priority wins, then older occurrence, then campaign name, so the outcome never
    depends on row order.
    """
    if plan.empty:
        return np.zeros(0, dtype=bool)
    today = pd.Timestamp(as_of)
    until = today + pd.Timedelta(days=1) if count_today else today
    recent = history.loc[(history["day"] >= pd.Timestamp(as_of - timedelta(days=6))) & (history["day"] < until)]
    sent_week = recent.groupby("customer_id")["day"].size()
    sent_today = recent.loc[recent["day"] == today].groupby("customer_id")["day"].size()
    messages = plan[["customer_id", "campaign", "step", "occurrence", "priority"]].drop_duplicates(
        ["customer_id", "campaign", "step", "occurrence"]
    )
    messages = messages.sort_values(
        ["customer_id", "priority", "occurrence", "campaign"], ascending=[True, False, True, True]
    )
    rank = messages.groupby("customer_id").cumcount()  # 0 = first choice today
    room_day = rules.marketing_per_day - messages["customer_id"].map(sent_today).fillna(0).astype(int)
    room_week = rules.marketing_per_week - messages["customer_id"].map(sent_week).fillna(0).astype(int)
    messages = messages.assign(over=(rank >= np.minimum(room_day, room_week)).to_numpy())
    over = plan.merge(
        messages[["customer_id", "campaign", "step", "occurrence", "over"]],
        on=["customer_id", "campaign", "step", "occurrence"],
        how="left",
    )["over"]
    return np.asarray(over.fillna(False).to_numpy(dtype=bool), dtype=bool)


def over_budget(
    plan: pd.DataFrame, history: pd.DataFrame, as_of: date, rules: DeliveryRules, count_today: bool = False
) -> npt.NDArray[np.bool_]:
    """``frequency_budget`` over a whole plan: which rows still to send are marketing over the budget."""
    marketing = ((plan["decision"] == Decision.SEND.value) & (plan["kind"] == MessageKind.MARKETING.value)).to_numpy()
    over = np.zeros(len(plan), dtype=bool)
    over[np.flatnonzero(marketing)] = frequency_budget(plan.loc[marketing], history, as_of, rules, count_today)
    return over


def quiet_until(moment: datetime, timezones: pd.Series, countries: pd.Series, rules: DeliveryRules) -> pd.Series:
    """Return, per customer, when their quiet hours end (UTC) if ``moment`` is inside them, else ``moment``."""
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    zones = timezones.fillna("UTC").astype(str)
    codes = countries.fillna("").astype(str).str.upper()
    out = pd.Series(stamp, index=zones.index, dtype="datetime64[ns, UTC]")
    quiet = pd.Series(quiet_now(stamp.to_pydatetime(), zones, codes, rules), index=zones.index)
    inside = pd.DataFrame({"zone": zones, "code": codes}).loc[quiet]
    for key, rows in inside.groupby(["zone", "code"]).groups.items():
        zone, code = (str(part) for part in cast(tuple[object, object], key))
        end = rules.quiet_by_country.get(code, rules.quiet).end
        local = stamp.tz_convert(zone)
        day = local.tz_localize(None).normalize() + pd.Timedelta(days=1 if local.hour >= end else 0)
        wall = day + pd.Timedelta(hours=end)
        out.loc[rows] = wall.tz_localize(zone, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")
    return out


# A message may still go out this long after its planned time on top of its campaign's max_delay_days:
# a run at 06:00 Moscow is past 10:00 in Vladivostok, and the greeting should still go that day.
SAME_DAY_GRACE = timedelta(hours=12)


def too_late(send_at: pd.Series, sending_at: datetime, max_delay_days: pd.Series) -> npt.NDArray[np.bool_]:
    """Return which sends would go out more than their campaign's ``max_delay_days`` (plus the same-day
    grace of 12 hours) after their planned time."""
    limit = pd.Timestamp(sending_at) - pd.to_timedelta(max_delay_days.astype(int), unit="D") - SAME_DAY_GRACE
    late = pd.to_datetime(send_at, utc=True) < limit.dt.tz_convert("UTC") if limit.dt.tz else send_at < limit
    return np.asarray(late.to_numpy(dtype=bool, na_value=False), dtype=bool)


def window_open(occurrence: pd.Series, as_of: date, max_delay_days: pd.Series) -> npt.NDArray[np.bool_]:
    """Return which occurrences may still be sent tomorrow (a deferral keeps them alive)."""
    last_day = pd.to_datetime(occurrence) + pd.to_timedelta(max_delay_days.astype(int), unit="D")
    return np.asarray((last_day > pd.Timestamp(as_of)).to_numpy(dtype=bool), dtype=bool)
