"""The gates after consent: quiet hours, lateness, holdout and the frequency budget.

Pure functions over plan frames, so ``loyalty why`` can explain every decision
and a backfill of a day decides what the day decided.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd

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


# A step scheduled up to this many days ahead keeps its room in the budget (the 7-day window, today included).
RESERVE_DAYS = 6


@dataclass(frozen=True)
class Budgeted:
    """What the budget decided for today's marketing messages, in the order given."""

    over: npt.NDArray[np.bool_]  # no room: frequency_cap
    yields_to: npt.NDArray[np.object_]  # room kept for a higher-priority step already scheduled: its campaign, else ""


def allocate_budget(
    messages: pd.DataFrame,
    taken: pd.DataFrame,
    scheduled: pd.DataFrame,
    rules: DeliveryRules,
    weekly: frozenset[str] = frozenset(),
) -> Budgeted:
    """Decide which of today's marketing messages fit the frequency budget, counted on the days they go out.

    ``messages``: one row per message (customer_id, campaign, occurrence, priority, day: the day it goes out).
    ``taken``: (customer_id, day) per marketing message already going out on some day (the send history, and
    today's messages the ledger already holds as sent). ``scheduled``: (customer_id, campaign, priority, day)
    of marketing steps due on the coming days (``RESERVE_DAYS``).

    Per customer, in priority order (today's before a scheduled step of the same priority, then the older
    occurrence, then the campaign name, so row order never matters), each message takes a day if that day
    keeps at most ``marketing_per_day`` and every 7-day window holding it at most ``marketing_per_week``.
    A scheduled step books its own day; a message of today that would fit without the bookings of
    higher-priority scheduled steps yields to them (``yields_to``), else it is over the budget.
    ``weekly``: customers who asked for at most one marketing message in any 7 days (their preferences page).
    """
    n = len(messages)
    over = np.zeros(n, dtype=bool)
    yields_to = np.full(n, "", dtype=object)
    if n == 0:
        return Budgeted(over, yields_to)
    taken_by = _days_by_customer(taken["customer_id"], taken["day"])
    ahead = scheduled.loc[scheduled["customer_id"].isin(set(messages["customer_id"]))]
    ahead_by: dict[str, list[tuple[int, str, int]]] = {}
    for customer, campaign, priority, day in zip(
        ahead["customer_id"].astype(str),
        ahead["campaign"].astype(str),
        ahead["priority"],
        _ordinals(ahead["day"]),
        strict=True,
    ):
        ahead_by.setdefault(customer, []).append((int(priority), campaign, day))
    order = messages.assign(_row=np.arange(n), _day=_ordinals(messages["day"])).sort_values(
        ["customer_id", "priority", "occurrence", "campaign"], ascending=[True, False, True, True], kind="stable"
    )
    customers = order["customer_id"].astype(str).to_numpy()
    starts = np.flatnonzero(np.r_[True, customers[1:] != customers[:-1]])
    rows, days, priorities = order["_row"].to_numpy(), order["_day"].to_numpy(), order["priority"].to_numpy()
    # most customers get one message today with nothing else on their days: it fits exactly when one message fits
    alone_fits = rules.marketing_per_day >= 1 and rules.marketing_per_week >= 1
    for lo, hi in zip(starts, [*starts[1:], len(order)], strict=True):
        customer = customers[lo]
        if hi - lo == 1 and customer not in taken_by and customer not in ahead_by:
            over[rows[lo]] = not alone_fits
            continue
        lowest = int(priorities[lo:hi].min())
        # (priority, today first, position, day, campaign); scheduled steps only matter above today's lowest
        items = [(-int(priorities[i]), 0, i, int(days[i]), "") for i in range(lo, hi)]
        items += [(-p, 1, k, day, name) for k, (p, name, day) in enumerate(ahead_by.get(customer, ())) if p > lowest]
        counts: dict[int, int] = {}
        for day in taken_by.get(customer, ()):
            counts[day] = counts.get(day, 0) + 1
        booked: list[tuple[int, str]] = []
        limits = replace(rules, marketing_per_week=min(1, rules.marketing_per_week)) if customer in weekly else rules
        for _, later, i, day, name in sorted(items):
            if _fits(counts, day, limits):
                counts[day] = counts.get(day, 0) + 1
                if later:
                    booked.append((day, name))
                continue
            if later:
                continue
            blocker = next((c for d, c in booked if _fits(_without(counts, d), day, limits)), None)
            if blocker is not None:
                yields_to[rows[i]] = blocker
            else:
                over[rows[i]] = True
    return Budgeted(over, yields_to)


def _fits(counts: dict[int, int], day: int, rules: DeliveryRules) -> bool:
    """One more message on ``day`` keeps the day's count and every 7-day window holding it within the budget."""
    if counts.get(day, 0) + 1 > rules.marketing_per_day:
        return False
    if not counts:
        return rules.marketing_per_week >= 1
    near = [counts.get(d, 0) for d in range(day - 6, day + 7)]  # the 13 days any window holding ``day`` spans
    window = sum(near[:7])
    for k in range(7, 14):
        if window + 1 > rules.marketing_per_week:
            return False
        if k < 13:
            window += near[k] - near[k - 7]
    return True


def _without(counts: dict[int, int], day: int) -> dict[int, int]:
    return counts | {day: counts[day] - 1}


def _ordinals(days: pd.Series) -> npt.NDArray[np.int64]:
    """Days as day numbers (whole days since the epoch)."""
    stamps = pd.to_datetime(days).to_numpy(dtype="datetime64[D]")
    return np.asarray(stamps.astype("int64"), dtype=np.int64)


def _days_by_customer(customer_ids: pd.Series, days: pd.Series) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for customer, day in zip(customer_ids.astype(str), _ordinals(days), strict=True):
        out.setdefault(customer, []).append(int(day))
    return out


def local_day(moments: pd.Series, timezones: pd.Series) -> pd.Series:
    """The calendar day of each UTC moment on the customer's own clock (midnight, naive)."""
    zones = timezones.fillna("UTC").astype(str)
    out = pd.Series(pd.NaT, index=moments.index, dtype="datetime64[ns]")
    stamps = pd.to_datetime(moments, utc=True)
    for zone, members in zones.groupby(zones).groups.items():
        out.loc[members] = stamps.loc[members].dt.tz_convert(str(zone)).dt.tz_localize(None).dt.normalize()
    return out


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


def window_open(due: pd.Series, as_of: date, max_delay_days: pd.Series) -> npt.NDArray[np.bool_]:
    """Return which steps (by their due day) may still be sent tomorrow: a deferral keeps only those alive."""
    last_day = pd.to_datetime(due) + pd.to_timedelta(max_delay_days.astype(int), unit="D")
    return np.asarray((last_day > pd.Timestamp(as_of)).to_numpy(dtype=bool), dtype=bool)
