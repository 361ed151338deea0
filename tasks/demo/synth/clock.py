"""Calendar: when people shop (demand per locale and day, time zones, sale days)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from tasks.demo.synth.common import DAY, HOUR, BoolA, FloatA, IntA, Rng

LOCALES = ("ru", "pl", "en")
_LOCALE_SHARE = (0.5, 0.3, 0.2)

# Monday..Sunday: Sunday evening and Monday are busiest, Saturday is quietest.
_WEEKDAY = np.array([1.14, 1.04, 1.0, 0.95, 0.86, 0.76, 1.25])
# Local hour of day: evenings peak, nights are quiet.
_HOUR_WEIGHT = np.concatenate(
    [
        [0.30, 0.16, 0.09, 0.06, 0.06, 0.10, 0.22, 0.42, 0.62, 0.78, 0.90, 0.96],  # 00-11
        [1.00, 0.98, 0.94, 0.93, 0.96, 1.02, 1.12, 1.30, 1.45, 1.42, 1.05, 0.62],  # 12-23
    ]
)
_HOUR_P = _HOUR_WEIGHT / _HOUR_WEIGHT.sum()


@dataclass(frozen=True)
class _Zone:
    tz: str
    country: str
    locale: str
    share: float  # within the locale
    promised_days: int  # delivery promise, days after the order day
    late_rate: float  # share of deliveries that miss the promise


def _zones() -> tuple[_Zone, ...]:
    """Every (time zone, country) a customer can live in, with delivery promises."""
    ru = (
        ("Europe/Moscow", 0.55, 4, 0.07),
        ("Europe/Kaliningrad", 0.02, 5, 0.08),
        ("Europe/Samara", 0.06, 5, 0.08),
        ("Asia/Yekaterinburg", 0.11, 6, 0.09),
        ("Asia/Omsk", 0.04, 7, 0.10),
        ("Asia/Novosibirsk", 0.08, 7, 0.10),
        ("Asia/Krasnoyarsk", 0.05, 7, 0.11),
        ("Asia/Irkutsk", 0.04, 8, 0.12),
        ("Asia/Vladivostok", 0.05, 9, 0.14),
    )
    us = (
        ("America/New_York", 0.45, 5, 0.07),
        ("America/Chicago", 0.25, 5, 0.07),
        ("America/Denver", 0.08, 6, 0.08),
        ("America/Los_Angeles", 0.22, 6, 0.08),
    )
    zones = [_Zone(tz, "RU", "ru", s, d, r) for tz, s, d, r in ru]
    zones.append(_Zone("Europe/Warsaw", "PL", "pl", 1.0, 3, 0.07))
    zones.append(_Zone("Europe/London", "GB", "en", 0.55, 3, 0.075))
    zones.append(_Zone("Europe/Dublin", "IE", "en", 0.15, 4, 0.08))
    zones.extend(_Zone(tz, "US", "en", 0.30 * s, d, r) for tz, s, d, r in us)
    return tuple(zones)


_ZONES = _zones()


@dataclass(frozen=True)
class _Clock:
    start: date
    days: int
    t0: int  # epoch seconds of the first day, 00:00 UTC
    cum: FloatA  # (locale, day + 1) running sum of daily demand: the "demand clock"
    acq_cum: FloatA  # the same with a growth trend, for when new customers arrive
    offset: IntA  # (zone, day) seconds local time is ahead of UTC
    promo: BoolA  # (day,) sale days: Black Friday week and early December

    @property
    def span(self) -> int:
        """Seconds from the first day's start to the end of the last day."""
        return self.days * DAY


def _black_friday_week(days: npt.NDArray[np.datetime64], first: date, last: date) -> BoolA:
    """Days from the Monday before Black Friday to Cyber Monday."""
    mask = np.zeros(days.size, dtype=bool)
    for year in range(first.year, last.year + 1):
        nov1 = date(year, 11, 1)
        friday = nov1 + timedelta(days=(3 - nov1.weekday()) % 7 + 22)
        lo = np.datetime64(friday - timedelta(days=4), "D")
        hi = np.datetime64(friday + timedelta(days=3), "D")
        mask |= (days >= lo) & (days <= hi)
    return mask


def _demand(days: npt.NDArray[np.datetime64], locale: str, black_friday: BoolA) -> FloatA:
    """Relative demand per calendar day for one locale: weekday times season."""
    month = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    season = np.ones(days.size)
    season[month == 11] = 1.2
    season[(month == 12) & (dom <= 20)] = 1.55
    season[(month == 7) | (month == 8)] = 0.88
    if locale == "ru":
        season[(month == 12) & (dom >= 21) & (dom <= 30)] = 1.5  # New Year gifts
        season[(month == 1) & (dom <= 8)] = 0.6  # New Year holidays
        season[(month == 2) & (dom >= 16) & (dom <= 22)] = 1.35  # before 23 February
        season[(month == 3) & (dom <= 7)] = 1.45  # before 8 March
    else:
        season[(month == 12) & (dom >= 21) & (dom <= 24)] = 1.3
        season[(month == 12) & (dom >= 25)] = 0.75
        season[(month == 1) & (dom <= 2)] = 0.7
        if locale == "pl":
            season[(month == 3) & (dom <= 7)] = 1.25  # Dzień Kobiet
        else:
            season[(month == 2) & (dom >= 8) & (dom <= 13)] = 1.2  # Valentine's Day
    season[black_friday] = 2.1
    weight: FloatA = _WEEKDAY[weekday] * season
    return weight


def _utc_offsets(start: date, days: int) -> IntA:
    """Seconds each zone is ahead of UTC at local noon of each day (DST included)."""
    out = np.empty((len(_ZONES), days), dtype=np.int64)
    for z, zone in enumerate(_ZONES):
        tz = ZoneInfo(zone.tz)
        for i in range(days):
            delta = datetime.combine(start + timedelta(days=i), time(12), tzinfo=tz).utcoffset()
            out[z, i] = int(delta.total_seconds()) if delta is not None else 0
    return out


def _make_clock(end: date, days: int) -> _Clock:
    """The period's calendar: demand per locale and day, zone offsets, sale days."""
    start = end - timedelta(days=days - 1)
    cal = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D") + 1)
    black_friday = _black_friday_week(cal, start, end)
    weight = np.stack([_demand(cal, loc, black_friday) for loc in LOCALES])
    weight /= weight.mean(axis=1, keepdims=True)
    # More customers arrive later in the period: the shop grows.
    acq = weight * np.linspace(0.6, 1.4, days)
    zero = np.zeros((len(LOCALES), 1))
    month = cal.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (cal - cal.astype("datetime64[M]")).astype(np.int64) + 1
    return _Clock(
        start=start,
        days=days,
        t0=int(datetime.combine(start, time(), tzinfo=UTC).timestamp()),
        cum=np.concatenate([zero, np.cumsum(weight, axis=1)], axis=1),
        acq_cum=np.concatenate([zero, np.cumsum(acq, axis=1)], axis=1),
        offset=_utc_offsets(start, days),
        promo=black_friday | ((month == 12) & (dom <= 15)),
    )


def _clock_at(cum: FloatA, locale: IntA, day: FloatA) -> FloatA:
    """Demand-clock reading at continuous day positions."""
    out = np.empty(day.size)
    grid = np.arange(cum.shape[1], dtype=np.float64)
    for loc in range(len(LOCALES)):
        m = locale == loc
        out[m] = np.interp(day[m], grid, cum[loc])
    return out


def _day_at(cum: FloatA, locale: IntA, reading: FloatA) -> FloatA:
    """Continuous day position where the demand clock shows ``reading``."""
    out = np.empty(reading.size)
    grid = np.arange(cum.shape[1], dtype=np.float64)
    for loc in range(len(LOCALES)):
        m = locale == loc
        out[m] = np.interp(reading[m], cum[loc], grid)
    return out


def _sample_days(cum: FloatA, locale: IntA, lo: FloatA, hi: FloatA, rng: Rng) -> FloatA:
    """Day positions in [lo, hi) drawn in proportion to the locale's demand."""
    a = _clock_at(cum, locale, lo)
    b = _clock_at(cum, locale, hi)
    return _day_at(cum, locale, a + rng.random(lo.size) * (b - a))


def _stamp(clock: _Clock, day: IntA, zone: IntA, rng: Rng) -> IntA:
    """Times on local calendar days, at the hours people shop, in seconds UTC."""
    day = np.clip(day, 0, clock.days - 1)
    hour = rng.choice(24, size=day.size, p=_HOUR_P)
    t = day * DAY + hour * HOUR + rng.integers(0, HOUR, day.size) - clock.offset[zone, day]
    # The first and last local days straddle the period's edges in UTC: fold them in.
    t = np.where(t < 0, t + DAY, t)
    folded: IntA = np.where(t >= clock.span, t - DAY, t)
    return folded
