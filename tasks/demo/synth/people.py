"""Customers: who they are and how they behave (locales, pets, interests, BG/NBD purchases)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tasks.demo.synth.catalog import _N_CATEGORIES
from tasks.demo.synth.clock import _LOCALE_SHARE, _ZONES, LOCALES, _Clock, _clock_at, _day_at, _sample_days, _stamp
from tasks.demo.synth.common import _CHUNK, DAY, HOUR, BoolA, FloatA, IntA, Rng

_NO_PET, _CAT, _DOG, _BOTH = 0, 1, 2, 3
_PET_SHARE = (0.50, 0.22, 0.20, 0.08)
# Interest in (cat_food, cat_toys, dog_food, dog_toys) by pet, and the pet categories'
# share of all interest: owners buy mostly for their pet, others rarely (gifts).
_PET_SPLIT = np.array(
    [[0.25, 0.25, 0.25, 0.25], [0.59, 0.40, 0.005, 0.005], [0.005, 0.005, 0.59, 0.40], [0.32, 0.18, 0.32, 0.18]]
)
_PET_WEIGHT = np.array([0.03, 0.72, 0.72, 0.80])


@dataclass(frozen=True)
class _People:
    locale: IntA
    zone: IntA
    pet: IntA
    interest: npt.NDArray[np.float32]  # (customer, category) cumulative interest
    buyer: BoolA
    acq: FloatA  # day position of the first purchase (buyers) or registration
    rate: FloatA  # BG/NBD purchase rate per average day
    dropout: FloatA  # BG/NBD dropout probability after each repeat purchase
    replenisher: BoolA  # re-buys the usual pet food at a regular interval
    interval: FloatA  # days between food purchases
    quit: FloatA  # chance to stop re-buying after each food purchase
    browse: FloatA  # browsing sessions per active day


def _make_people(n: int, clock: _Clock, rng: Rng) -> _People:
    """Locale, zone, pet, interests and the parameters of each customer's behaviour."""
    locale = rng.choice(len(LOCALES), size=n, p=_LOCALE_SHARE)
    zone = np.empty(n, dtype=np.int64)
    for loc, code in enumerate(LOCALES):
        m = np.flatnonzero(locale == loc)
        ids = np.array([z for z, zone_ in enumerate(_ZONES) if zone_.locale == code])
        share = np.array([_ZONES[z].share for z in ids])
        zone[m] = ids[rng.choice(ids.size, size=m.size, p=share / share.sum())]

    pet = rng.choice(4, size=n, p=_PET_SHARE)
    general = rng.gamma(0.45, 1.0, size=(n, _N_CATEGORIES - 4)) + 1e-3
    general /= general.sum(axis=1, keepdims=True)
    weights = np.concatenate([_PET_WEIGHT[pet, None] * _PET_SPLIT[pet], (1 - _PET_WEIGHT[pet, None]) * general], axis=1)
    interest = np.cumsum(weights, axis=1).astype(np.float32)
    interest[:, -1] = 1.0

    buyer = rng.random(n) < 0.78
    acq = _sample_days(clock.acq_cum, locale, np.zeros(n), np.full(n, float(clock.days)), rng)
    rate = rng.gamma(0.55, 0.012 / 0.55, n)  # mean 0.012 a day, heavy-tailed
    dropout = rng.beta(1.0, 3.0, n)
    replenisher = buyer & (pet != _NO_PET) & (rng.random(n) < 0.35)
    interval = np.clip(rng.lognormal(np.log(30.0), 0.25, n), 14.0, 60.0)
    quit_ = rng.beta(1.2, 12.0, n)
    browse = rng.gamma(0.9, 0.018 / 0.9, n) + rate
    return _People(locale, zone, pet, interest, buyer, acq, rate, dropout, replenisher, interval, quit_, browse)


def _sample_categories(interest: npt.NDArray[np.float32], customer: IntA, rng: Rng) -> IntA:
    """A category per row, drawn from the customer's interests."""
    out = np.empty(customer.size, dtype=np.int64)
    u = rng.random(customer.size, dtype=np.float32)
    for s in range(0, customer.size, _CHUNK):  # chunks bound the (rows, categories) temporary
        e = s + _CHUNK
        out[s:e] = (interest[customer[s:e]] < u[s:e, None]).sum(axis=1)
    capped: IntA = np.minimum(out, _N_CATEGORIES - 1)
    return capped


def _registrations(people: _People, clock: _Clock, rng: Rng) -> tuple[IntA, IntA]:
    """First-purchase (or registration) times and account creation times."""
    first = _stamp(clock, people.acq.astype(np.int64), people.zone, rng)
    n = first.size
    # Almost half register at checkout, minutes before paying; others days earlier.
    delay = np.where(
        rng.random(n) < 0.45,
        rng.integers(60, 1_500, n),
        (rng.exponential(12.0, n) * DAY).astype(np.int64) + 60,
    )
    created = np.where(people.buyer, first - delay, first)
    early = created < 0
    created[early] = (first[early] * rng.random(int(early.sum()))).astype(np.int64)
    return first, created


@dataclass(frozen=True)
class _Purchases:
    customer: IntA
    t: IntA
    food: BoolA  # a replenishment order: the usual food comes first
    death: FloatA  # per customer: day position when they stopped buying


def _make_purchases(people: _People, first: IntA, clock: _Clock, rng: Rng) -> _Purchases:
    """Order times: first purchases, BG/NBD repeats and food replenishment."""
    buyers = np.flatnonzero(people.buyer)
    loc = people.locale[buyers]
    # BG/NBD on the demand clock: exponential gaps in demand units, so busy days get
    # more purchases; after each repeat purchase the buyer may drop out for good.
    x = _clock_at(clock.cum, loc, people.acq[buyers])
    end_x = clock.cum[loc, -1]
    death_x = end_x.copy()
    rate, dropout = people.rate[buyers], people.dropout[buyers]
    alive = np.arange(buyers.size)
    rep_who: list[IntA] = []
    rep_x: list[FloatA] = []
    while alive.size:  # one round per purchase; rounds shrink as buyers drop out
        nxt = x[alive] + rng.exponential(1.0, alive.size) / rate[alive]
        inside = nxt < end_x[alive]
        alive, nxt = alive[inside], nxt[inside]
        rep_who.append(alive)
        rep_x.append(nxt)
        x[alive] = nxt
        drop = rng.random(alive.size) < dropout[alive]
        death_x[alive[drop]] = nxt[drop]
        alive = alive[~drop]
    who = np.concatenate(rep_who)
    repeat_day = _day_at(clock.cum, loc[who], np.concatenate(rep_x))
    death = np.full(people.acq.size, float(clock.days))
    death[buyers] = _day_at(clock.cum, loc, death_x)

    # Replenishment: the usual food again after a personal, fairly regular interval.
    rep = np.flatnonzero(people.replenisher)
    day = people.acq[rep].copy()
    food_who: list[IntA] = []
    food_day: list[FloatA] = []
    going = np.arange(rep.size)
    while going.size:
        day[going] += people.interval[rep[going]] * (1 + 0.08 * rng.standard_normal(going.size))
        going = going[day[going] < clock.days]
        food_who.append(rep[going])
        food_day.append(day[going])
        going = going[rng.random(going.size) >= people.quit[rep[going]]]
    stopped = np.where(day < clock.days, day, float(clock.days))
    death[rep] = np.maximum(death[rep], stopped)

    later_who = np.concatenate([buyers[who], *food_who])
    later_day = np.concatenate([repeat_day, *food_day]).astype(np.int64)
    later_t = _stamp(clock, later_day, people.zone[later_who], rng)
    # A repeat on the day of the first order must come after it.
    before = later_t <= first[later_who]
    later_t[before] = first[later_who[before]] + rng.integers(20 * 60, 8 * HOUR, int(before.sum()))
    n_repeat = who.size
    customer = np.concatenate([buyers, later_who])
    t = np.concatenate([first[buyers], later_t])
    food = np.concatenate(
        [people.replenisher[buyers], np.zeros(n_repeat, dtype=bool), np.ones(later_who.size - n_repeat, dtype=bool)]
    )
    keep = t < clock.span
    return _Purchases(customer[keep], t[keep], food[keep], death)
