"""Demo shop generator: a believable pet-and-home online shop, built from a seed.

``generate_shop`` returns the seven tables of the input data contract
(``tasks.data.contract.SPECS``) as pandas frames; ``write_shop`` writes them as CSV or
Parquet, one file per table.  Same arguments, same bytes: every random number comes
from ``numpy.random.default_rng`` streams derived from the seed, and nothing reads
the wall clock.

The shop, in short:

* Catalog: cat and dog food and toys plus eight general categories, lognormal prices
  per category, a launch catalogue on the first day and new arrivals later.  Some
  products sell out and come back; a few are discontinued.
* Customers: ru / pl / en locales with native names, the phone formats people type,
  emails on reserved example domains only, a little dirt (bad emails and phones).
* Purchases follow BG/NBD: each buyer has a Gamma-distributed purchase rate and a
  Beta-distributed chance to drop out after each repeat purchase.  They run on a
  demand clock that is faster on busy weekdays, in November-December and before
  23 February and 8 March.  Pet owners buy from their pet's categories and some
  re-buy their usual food at a regular interval.
* Fulfilment: processing, paid, handed to carrier, shipped, delivered against a
  promised date (about 8% late), with cancellations and returns.
* Behaviour: views, carts and wishlists around purchases and in plain browsing
  sessions; reviews some days after delivery, worse after late ones and returns.

Internally a time is int64 seconds since 00:00 UTC of the first day, and customers,
products and orders are int64 row positions in their final, time-sorted tables.
The generator is vectorised: Python loops run over categories, locales, zones,
days and purchase rounds, never over customers or orders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tasks.data.contract import LOAD_ORDER, SPECS
from tasks.kernel.enums import EventType, Gender, OrderStatus, Table

__all__ = ["DEFAULT_END", "EXTRA_COLUMNS", "generate_shop", "write_shop"]

DEFAULT_END = date(2026, 11, 20)
"""The demo's last day (a Friday); fixed so that the output is deterministic."""

EXTRA_COLUMNS: dict[Table, tuple[str, ...]] = {Table.ORDERS: ("promised_delivery_at",)}
"""Columns beyond the contract that the generator adds (the contract keeps them)."""

IntA = npt.NDArray[np.int64]
FloatA = npt.NDArray[np.float64]
BoolA = npt.NDArray[np.bool_]
StrA = npt.NDArray[Any]  # numpy StringDType arrays (no precise stub type yet)
Rng = np.random.Generator

DAY = 86_400
HOUR = 3_600
CURRENCY = "EUR"
SHOP_URL = "https://shop.example.com"
_BIG = 1 << 36  # key multiplier: (entity, time) pairs as one sortable int64
_NEVER = np.int64(1) << 60  # "this status never happens" in fulfilment times
_CHUNK = 1 << 20
_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas 3's default string dtype
_SD = np.dtypes.StringDType()

# ---------------------------------------------------------------------------
# Calendar: when people shop
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------


def _options(text: str) -> tuple[str, ...]:
    """Options separated by "|": word lists read better as one line of text."""
    return tuple(option.strip() for option in text.split("|"))


@dataclass(frozen=True)
class _CategorySpec:
    name: str
    share: float  # of the catalog
    median_price: float  # EUR
    price_sigma: float  # lognormal sigma of the price
    parts: tuple[tuple[str, ...], ...]  # a product name takes one entry from each part
    # Price multipliers for the entries of one part (a pack size, a kind of product).
    price_factor: tuple[int, tuple[float, ...]] | None = None


_CATEGORIES: tuple[_CategorySpec, ...] = (
    _CategorySpec(
        "cat_food",
        share=0.1,
        median_price=6.0,
        price_sigma=0.25,
        parts=(
            _options(
                "Whisker Farm | Purrfect | Feline Feast | Meowdy | Kitty Kitchen | Tabby Table | Catnap | Velvet Paw"
            ),
            _options("Salmon | Chicken | Turkey | Tuna | Duck | Lamb | Rabbit | Ocean Fish | Beef | Chicken & Rice"),
            _options(
                "Dry Food | Wet Food Pouches | Pâté | Kitten Food | Senior Formula | Sterilised Formula | Grain-Free Kibble | Hairball Control"
            ),
            _options("400 g | 1.5 kg | 2 kg | 4 kg | 7 kg | 10 kg | 12 x 85 g | 24 x 85 g"),
        ),
        price_factor=(3, (0.5, 1.35, 1.7, 2.8, 4.3, 5.6, 1.6, 3.0)),
    ),
    _CategorySpec(
        "cat_toys",
        share=0.07,
        median_price=9.0,
        price_sigma=0.35,
        parts=(
            _options("Pounce | Meowdy | Playful Paw | Catnap | Velvet Paw | Tabby Toys | Whisker Farm | Purrfect"),
            _options("Interactive | Plush | Deluxe | Mini | Classic | Sisal | Wooden | Electronic"),
            _options(
                "Feather Wand | Catnip Mouse | Scratching Post | Laser Toy | Play Tunnel | Ball Track | Scratcher Board | Cat Tree | Teaser Toy | Crinkle Ball"
            ),
            _options("Grey | Beige | Blue | Pink | Green | Cream | Black | Orange"),
        ),
        price_factor=(2, (0.8, 0.5, 2.5, 1.0, 1.5, 1.3, 1.2, 6.0, 0.7, 0.4)),
    ),
    _CategorySpec(
        "dog_food",
        share=0.1,
        median_price=5.5,
        price_sigma=0.25,
        parts=(
            _options(
                "Good Boy | Barkery | Happy Paws | Canine Choice | Wolfwood | Tail Wagger | Fetch & Feast | Hound Harvest"
            ),
            _options(
                "Chicken | Lamb | Beef | Salmon | Turkey | Venison | Duck | Chicken & Rice | Lamb & Rice | White Fish"
            ),
            _options(
                "Adult Dry Food | Puppy Food | Wet Food Tins | Large Breed Formula | Small Breed Kibble | Senior Formula | Light Formula | Grain-Free Kibble"
            ),
            _options("1 kg | 2.5 kg | 3 kg | 7.5 kg | 12 kg | 15 kg | 6 x 400 g | 12 x 400 g"),
        ),
        price_factor=(3, (1.0, 2.0, 2.3, 4.5, 6.5, 7.7, 3.0, 5.5)),
    ),
    _CategorySpec(
        "dog_toys",
        share=0.07,
        median_price=11.0,
        price_sigma=0.6,
        parts=(
            _options("Good Boy | Barkery | Happy Paws | Chewzilla | Wolfwood | Tail Wagger | Fetch Co | Ruff Stuff"),
            _options(
                "Rope Toy | Squeaky Ball | Chew Bone | Frisbee | Tug Ring | Plush Duck | Treat Puzzle | Fetch Stick | Rubber Kong | Snuffle Mat"
            ),
            _options("S | M | L | XL"),
            _options("Red | Blue | Green | Yellow | Orange | Grey | Pink | Purple"),
        ),
    ),
    _CategorySpec(
        "home",
        share=0.0825,
        median_price=29.0,
        price_sigma=0.7,
        parts=(
            _options("Nordic | Rustic | Modern | Vintage | Boho | Minimalist | Coastal | Classic"),
            _options(
                "Cotton Throw | Scented Candle | Table Lamp | Wall Clock | Storage Basket | Cushion Cover | Picture Frame | Doormat | Vase | Bath Towel Set"
            ),
            _options("Grey | Sand | Sage | Navy | Terracotta | Ivory | Charcoal | Mustard"),
            _options("Small | Medium | Large | Set of 2 | Set of 4 | Oversized | Compact | Tall"),
        ),
    ),
    _CategorySpec(
        "kitchen",
        share=0.0825,
        median_price=24.0,
        price_sigma=0.7,
        parts=(
            _options("Chef's Choice | Kitchenly | Copperline | Oak & Iron | Bistro | Cucina | Nordkok | Basil"),
            _options(
                "Chef's Knife | Frying Pan | Cutting Board | French Press | Mixing Bowl Set | Tea Kettle | Spice Rack | Measuring Cups | Baking Tray | Salad Spinner"
            ),
            _options("Stainless Steel | Cast Iron | Bamboo | Ceramic | Glass | Non-Stick | Enamel | Olive Wood"),
            _options("Black | White | Red | Sage | Cream | Copper | Graphite | Blue"),
        ),
    ),
    _CategorySpec(
        "beauty",
        share=0.0825,
        median_price=14.0,
        price_sigma=0.55,
        parts=(
            _options("Lumière | Botanica | Pure Bloom | Silk & Sage | Aurora | Velvet Skin | Nordic Dew | Miel"),
            _options("Lavender | Rose | Aloe | Argan | Vanilla | Citrus | Coconut | Green Tea"),
            _options(
                "Hand Cream | Lip Balm | Face Serum | Shampoo | Body Lotion | Sheet Mask Set | Eau de Toilette | Nail Polish | Shower Gel | Hair Oil"
            ),
            _options("15 ml | 30 ml | 50 ml | 75 ml | 100 ml | 200 ml | 250 ml | 500 ml"),
        ),
    ),
    _CategorySpec(
        "books",
        share=0.0825,
        median_price=13.0,
        price_sigma=0.35,
        parts=(
            _options(
                "The Silent | The Last | A Quiet | The Hidden | The Northern | The Little | Beyond the | The Winter | A Year in the | The Lost | The Secret | The Long"
            ),
            _options(
                "Garden | Harbour | Orchard | Library | Forest | Lighthouse | Kitchen | River | Station | Meadow | Island | Summer"
            ),
            _options(
                "by A. Hart | by M. Novak | by J. Reed | by E. Volkova | by K. Lis | by S. Byrne | by T. Moore | by O. Berg | by L. Kowal | by D. Frost"
            ),
            _options("(Paperback) | (Hardcover) | (Pocket Edition)"),
        ),
    ),
    _CategorySpec(
        "toys",
        share=0.0825,
        median_price=21.0,
        price_sigma=0.65,
        parts=(
            _options("Tiny Town | Brightblock | Woodland | Starlight | Little Explorer | Funfair | Rainbow | Kiddo"),
            _options(
                "Building Blocks Set | Puzzle 1000 Pieces | Wooden Train | Plush Bear | Board Game | Kite | Doll House | Remote Control Car | Science Kit | Play Dough Set"
            ),
            _options("Classic | Junior | Deluxe | Mini | Travel | Family | Collector | Starter"),
            _options("3+ | 5+ | 6+ | 8+ | 10+ | 12+"),
        ),
    ),
    _CategorySpec(
        "clothing",
        share=0.0825,
        median_price=32.0,
        price_sigma=0.55,
        parts=(
            _options("Northline | Urban Fox | Kestrel | Linden | Harbor & Co | Wildmoor | Solace | Basics"),
            _options(
                "T-Shirt | Hoodie | Jeans | Wool Scarf | Rain Jacket | Socks 3-Pack | Beanie | Linen Shirt | Leggings | Pyjama Set"
            ),
            _options("Black | White | Navy | Olive | Grey Melange | Burgundy | Camel | Denim Blue"),
            _options("XS | S | M | L | XL | XXL"),
        ),
    ),
    _CategorySpec(
        "electronics",
        share=0.0825,
        median_price=49.0,
        price_sigma=0.45,
        parts=(
            _options("Voltix | Nordtek | Lumio | Sonara | Kestrel | Zentro | Pulsar | Ampere"),
            _options(
                "Wireless Earbuds | Bluetooth Speaker | Power Bank 10000 mAh | USB-C Charger | Smart Plug | Fitness Tracker | LED Desk Lamp | Webcam | Keyboard | E-Reader"
            ),
            _options("X1 | X2 | X3 | Pro | Lite | Max | Mini | S2"),
            _options("Black | White | Graphite | Silver | Blue | Rose"),
        ),
        price_factor=(1, (1.2, 1.3, 0.6, 0.4, 0.35, 1.2, 0.7, 0.9, 0.9, 2.4)),
    ),
    _CategorySpec(
        "garden",
        share=0.0825,
        median_price=22.0,
        price_sigma=0.7,
        parts=(
            _options("Greenthumb | Bloomfield | Fern & Co | Meadowlark | Rootwise | Sunpatch | Hedgerow | Terra"),
            _options(
                "Watering Can | Pruning Shears | Plant Pot | Garden Gloves | Bird Feeder | Solar Lights | Seed Kit | Garden Hose | Compost Bin | Trowel"
            ),
            _options("Classic | Heavy Duty | Compact | Ergonomic | Terracotta | Galvanised | Eco | Premium"),
            _options("Small | Medium | Large | Set of 3 | 10 m | 15 m | Green | Black"),
        ),
    ),
)
CATEGORIES = tuple(c.name for c in _CATEGORIES)
_CAT_FOOD, _CAT_TOYS, _DOG_FOOD, _DOG_TOYS = 0, 1, 2, 3
_N_CATEGORIES = len(_CATEGORIES)


@dataclass(frozen=True)
class _Catalog:
    category: IntA  # per product
    price_cents: IntA
    created: IntA
    name: StrA
    # The popularity sampler: products sorted by (category, created).
    key: IntA  # category * _BIG + created, ascending
    cumw: FloatA  # running popularity over that order
    prod: IntA  # product at each sorted position
    start: IntA  # (category,) first sorted position of the category
    base: FloatA  # (category,) cumw just before the category's first position


def _join(*parts: str | StrA) -> StrA:
    """Element-wise concatenation of string arrays and scalars."""
    joined: StrA = np.asarray(parts[0], dtype=_SD)
    for part in parts[1:]:
        joined = np.strings.add(joined, part)
    return joined


def _product_names(spec: _CategorySpec, n: int, rng: Rng) -> tuple[StrA, FloatA]:
    """``n`` names of the category (distinct while combinations last) and price factors."""
    sizes = [len(p) for p in spec.parts]
    total = int(np.prod(sizes))
    combo = rng.choice(total, size=n, replace=False) if n <= total else rng.integers(0, total, n)
    code = combo.copy()
    words: list[StrA] = []
    factor = np.ones(n)
    for i, (part, size) in enumerate(zip(spec.parts, sizes, strict=True)):
        words.append(np.asarray(part, dtype=_SD)[code % size])
        if spec.price_factor is not None and spec.price_factor[0] == i:
            factor = np.asarray(spec.price_factor[1])[code % size]
        code = code // size
    name = words[0]
    for w in words[1:]:
        name = _join(name, " ", w)
    if n > total:  # more products than word combinations: number the repeats
        dup = pd.Series(combo).duplicated().to_numpy()
        name[dup] = _join(name[dup], " No. ", np.arange(2, 2 + int(dup.sum())).astype(_SD))
    return name, factor


def _make_catalog(n: int, clock: _Clock, rng: Rng) -> _Catalog:
    """Products with categories, prices, names and creation times, sorted by creation."""
    shares = np.array([c.share for c in _CATEGORIES])
    category = rng.choice(_N_CATEGORIES, size=n, p=shares / shares.sum())
    category[:_N_CATEGORIES] = np.arange(_N_CATEGORIES)  # no category is empty
    # Most products launch with the shop; the rest arrive over the period, some recently.
    span = clock.span
    recent = min(21 * DAY, span // 4)
    u = rng.random(n)
    created = np.where(
        u < 0.55,
        0,
        np.where(u < 0.95, rng.integers(0, max(span - recent, 1), n), span - recent + rng.integers(0, recent, n)),
    )
    created[:_N_CATEGORIES] = 0  # every category has products from the first second
    order = np.lexsort((rng.random(n), created))
    category, created = category[order], created[order]

    price = np.empty(n, dtype=np.int64)
    name = np.empty(n, dtype=_SD)
    for k, spec in enumerate(_CATEGORIES):
        m = np.flatnonzero(category == k)
        name[m], factor = _product_names(spec, m.size, rng)
        euros = factor * rng.lognormal(np.log(spec.median_price), spec.price_sigma, m.size)
        price[m] = np.maximum(np.round(euros).astype(np.int64), 1) * 100 - 1  # x.99 pricing
    popularity = rng.lognormal(0.0, 1.1, n)

    by_cat = np.lexsort((created, category))
    cumw = np.cumsum(popularity[by_cat])
    start = np.searchsorted(category[by_cat], np.arange(_N_CATEGORIES))
    base = np.concatenate([[0.0], cumw])[start]
    return _Catalog(
        category=category,
        price_cents=price,
        created=created,
        name=name,
        key=category[by_cat] * _BIG + created[by_cat],
        cumw=cumw,
        prod=by_cat,
        start=start,
        base=base,
    )


def _sample_products(catalog: _Catalog, category: IntA, t: IntA, rng: Rng) -> IntA:
    """Popularity-weighted products of the given categories that exist at times ``t``."""
    end = np.searchsorted(catalog.key, category * _BIG + t, side="right")
    start = catalog.start[category]
    end = np.maximum(end, start + 1)
    lo = catalog.base[category]
    hi = catalog.cumw[end - 1]
    pos = np.searchsorted(catalog.cumw, lo + rng.random(t.size) * (hi - lo), side="right")
    chosen: IntA = catalog.prod[np.clip(pos, start, end - 1)]
    return chosen


@dataclass(frozen=True)
class _Stock:
    product: IntA  # sorted by (product, at)
    at: IntA
    in_stock: BoolA
    key: IntA  # product * _BIG + at


def _make_stock(created: IntA, span: int, rng: Rng) -> _Stock:
    """Stock changes: listed at creation, volatile products sell out and return."""
    n = created.size
    products, times, states = [np.arange(n)], [created], [np.ones(n, dtype=bool)]
    stop = np.full(n, span, dtype=np.int64)
    discontinued = rng.random(n) < 0.03
    stop[discontinued] = created[discontinued] + (
        rng.random(int(discontinued.sum())) * (span - created[discontinued])
    ).astype(np.int64)
    last = np.ones(n, dtype=bool)
    idx = np.flatnonzero(rng.random(n) < 0.35)  # volatile products
    t = created[idx]
    state = True
    while idx.size:  # one round per change; all products in a round share their state
        mean = 50 * DAY if state else 6 * DAY
        t = t + rng.exponential(mean, idx.size).astype(np.int64) + (0 if state else 6 * HOUR)
        alive = t < stop[idx]
        idx, t = idx[alive], t[alive]
        state = not state
        products.append(idx)
        times.append(t)
        states.append(np.full(idx.size, state))
        last[idx] = state
    gone = np.flatnonzero(discontinued & last)  # discontinued while in stock: a last sell-out
    products.append(gone)
    times.append(stop[gone])
    states.append(np.zeros(gone.size, dtype=bool))

    product, at, in_stock = np.concatenate(products), np.concatenate(times), np.concatenate(states)
    key = product * _BIG + at
    order = np.argsort(key, kind="stable")
    return _Stock(product[order], at[order], in_stock[order], key[order])


def _in_stock(stock: _Stock, product: IntA, t: IntA) -> BoolA:
    """Whether each product exists and is in stock at time ``t``."""
    i = np.searchsorted(stock.key, product * _BIG + t, side="right") - 1
    j = np.maximum(i, 0)
    ok: BoolA = (i >= 0) & (stock.product[j] == product) & stock.in_stock[j]
    return ok


# ---------------------------------------------------------------------------
# Customers: who they are and how they behave
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Orders and their lines
# ---------------------------------------------------------------------------

_ITEMS_P = (0.46, 0.26, 0.14, 0.08, 0.06)  # 1..5 lines per order


@dataclass(frozen=True)
class _Orders:
    customer: IntA  # sorted by (t, customer)
    t: IntA
    item_order: IntA  # order lines, grouped by order
    item_product: IntA
    item_quantity: IntA
    item_cents: IntA
    total_cents: IntA


def _usual_food(people: _People, first: IntA, catalog: _Catalog, stock: _Stock, rng: Rng) -> IntA:
    """Each replenisher's usual food product, chosen at the first purchase."""
    n = people.pet.size
    food_cat = np.where(people.pet == _DOG, _DOG_FOOD, _CAT_FOOD)
    both = people.pet == _BOTH
    food_cat[both] = np.where(rng.random(int(both.sum())) < 0.5, _CAT_FOOD, _DOG_FOOD)
    food = np.full(n, -1, dtype=np.int64)
    who = np.flatnonzero(people.replenisher)
    for _ in range(4):  # the usual food was in stock when it became the usual one
        food[who] = _sample_products(catalog, food_cat[who], first[who], rng)
        who = who[~_in_stock(stock, food[who], first[who])]
    return food


def _make_orders(
    people: _People,
    purchases: _Purchases,
    food: IntA,
    catalog: _Catalog,
    stock: _Stock,
    clock: _Clock,
    rng: Rng,
) -> _Orders:
    """Order lines from the customer's interests, in stock at the time of the order."""
    n_orders = purchases.t.size
    n_items = rng.choice(len(_ITEMS_P), size=n_orders, p=_ITEMS_P) + 1
    order = np.repeat(np.arange(n_orders), n_items)
    customer, t = purchases.customer[order], purchases.t[order]
    category = _sample_categories(people.interest, customer, rng)
    product = _sample_products(catalog, category, t, rng)
    first_line = np.cumsum(n_items) - n_items
    usual = np.zeros(order.size, dtype=bool)
    usual[first_line[purchases.food]] = True
    product[usual] = food[customer[usual]]
    category[usual] = catalog.category[product[usual]]
    missing = np.flatnonzero(~_in_stock(stock, product, t))
    for _ in range(4):  # sold out: the customer picks something else from the category
        product[missing] = _sample_products(catalog, category[missing], t[missing], rng)
        missing = missing[~_in_stock(stock, product[missing], t[missing])]
    keep = np.ones(order.size, dtype=bool)
    keep[missing] = False
    # One line per product and order.
    keep &= ~pd.Series(order * _BIG + product).duplicated().to_numpy()
    order, product, usual, t = order[keep], product[keep], usual[keep], t[keep]

    m = order.size
    quantity = np.where(
        usual | (category[keep] <= _DOG_TOYS) & (rng.random(m) < 0.3),
        rng.choice(3, size=m, p=(0.6, 0.3, 0.1)) + 1,
        rng.choice(3, size=m, p=(0.86, 0.11, 0.03)) + 1,
    )
    # Sales: deeper and more frequent discounts on promo days.
    promo = clock.promo[np.clip(t // DAY, 0, clock.days - 1)]
    discounted = rng.random(m) < np.where(promo, 0.4, 0.06)
    discount = np.where(discounted, np.where(promo, rng.uniform(0.1, 0.3, m), rng.uniform(0.05, 0.2, m)), 0.0)
    cents = np.round(catalog.price_cents[product] * (1 - discount)).astype(np.int64)
    total = np.bincount(order, weights=quantity * cents, minlength=n_orders).round().astype(np.int64)

    # Keep orders with lines; number them by time.
    has_lines = np.bincount(order, minlength=n_orders) > 0
    kept = np.flatnonzero(has_lines)
    by_time = kept[np.lexsort((purchases.customer[kept], purchases.t[kept]))]
    rank = np.full(n_orders, -1, dtype=np.int64)
    rank[by_time] = np.arange(by_time.size)
    new_order = rank[order]
    lines = np.argsort(new_order, kind="stable")
    return _Orders(
        customer=purchases.customer[by_time],
        t=purchases.t[by_time],
        item_order=new_order[lines],
        item_product=product[lines],
        item_quantity=quantity[lines],
        item_cents=cents[lines],
        total_cents=total[by_time],
    )


# Fulfilment statuses in the order they happen.
_FLOW = (
    OrderStatus.PROCESSING,
    OrderStatus.PAID,
    OrderStatus.HANDED_TO_CARRIER,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
    OrderStatus.CANCELLED,
    OrderStatus.RETURNED,
)
_PROC, _PAID, _HANDED, _SHIPPED, _DELIVERED, _CANCELLED, _RETURNED = range(len(_FLOW))


@dataclass(frozen=True)
class _Fulfilment:
    at: IntA  # (order, status in _FLOW) time, or _NEVER
    promised: IntA  # promised delivery: end of the promised day, UTC
    status: IntA  # latest status by the end of the period; -1 means still "placed"


def _lognormal(rng: Rng, median: float, sigma: float, n: int) -> IntA:
    """Durations in seconds with the given median."""
    seconds: IntA = rng.lognormal(np.log(median), sigma, n).astype(np.int64) + 1
    return seconds


def _make_fulfilment(t: IntA, zone: IntA, clock: _Clock, rng: Rng) -> _Fulfilment:
    """Each order's status history, delivery promise and lateness."""
    n = t.size
    at = np.full((n, len(_FLOW)), _NEVER, dtype=np.int64)
    fate = rng.choice(3, size=n, p=(0.012, 0.018, 0.97))  # unpaid cancel, paid cancel, goes out
    unpaid, paid_cancel, goes = fate == 0, fate == 1, fate == 2
    proc = t + rng.integers(5, 120, n)
    paid = proc + np.minimum(_lognormal(rng, 90.0, 1.0, n), DAY)
    handed = paid + _lognormal(rng, 18.0 * HOUR, 0.6, n)
    shipped = handed + _lognormal(rng, 5.0 * HOUR, 0.5, n)

    promised_days = np.array([z.promised_days for z in _ZONES])[zone]
    promised = (t // DAY + promised_days + 1) * DAY - 1
    late_rate = np.array([z.late_rate for z in _ZONES])[zone]
    room = promised - shipped
    late = (rng.random(n) < late_rate) | (room < 3 * HOUR)
    on_time = shipped + 2 * HOUR + (np.maximum(room - 2 * HOUR, 0) * rng.beta(2.2, 1.6, n)).astype(np.int64)
    overdue = np.maximum(promised, shipped) + HOUR + (rng.exponential(1.6, n) * DAY).astype(np.int64)
    delivered = np.where(late, overdue, on_time)
    returned = goes & (rng.random(n) < 0.042)

    at[:, _PROC] = proc
    at[~unpaid, _PAID] = paid[~unpaid]
    at[goes, _HANDED] = handed[goes]
    at[goes, _SHIPPED] = shipped[goes]
    at[goes, _DELIVERED] = delivered[goes]
    auto_cancel = rng.random(n) < 0.4  # unpaid orders are cancelled after three days
    unpaid_at = np.where(auto_cancel, proc + 3 * DAY, proc + _lognormal(rng, 2.0 * HOUR, 1.0, n))
    at[unpaid, _CANCELLED] = unpaid_at[unpaid]
    between = paid + ((handed - paid) * rng.uniform(0.1, 0.9, n)).astype(np.int64)
    at[paid_cancel, _CANCELLED] = between[paid_cancel]
    back = delivered + ((rng.uniform(2.0, 4.0, n) + rng.exponential(6.0, n)) * DAY).astype(np.int64)
    at[returned, _RETURNED] = back[returned]

    seen = np.where(at < clock.span, at, -1)
    latest = seen.argmax(axis=1)
    status = np.where(seen.max(axis=1) >= 0, latest, -1)
    return _Fulfilment(at, promised, status)


# ---------------------------------------------------------------------------
# Behaviour: views, carts, wishlists, reviews
# ---------------------------------------------------------------------------

_EVENT_TYPES = (EventType.VIEW, EventType.CART_ADD, EventType.CART_REMOVE, EventType.WISHLIST_ADD, EventType.REVIEW)
_VIEW, _CART_ADD, _CART_REMOVE, _WISHLIST, _REVIEW = range(len(_EVENT_TYPES))

# Review texts per locale and rating; late and returned orders get their own complaints.
# No commas or quotes, so the CSV needs no quoting.
_REVIEWS: dict[str, dict[int, tuple[str, ...]]] = {
    "ru": {
        5: (
            "Отлично! Рекомендую.",
            "Всё понравилось. Закажу ещё.",
            "Супер качество. Спасибо!",
            "Качество на высоте!",
            "Лучшая покупка в этом месяце.",
        ),
        4: ("Хороший товар. Доставка быстрая.", "В целом всё хорошо.", "Хорошо но упаковка помята."),
        3: ("Нормально. Ожидания были выше.", "Средне. Цена могла быть ниже."),
        2: ("Качество так себе.", "Не совсем то что на фото."),
        1: ("Сплошное разочарование.", "Не рекомендую."),
    },
    "pl": {
        5: (
            "Super! Polecam.",
            "Wszystko w porządku. Zamówię ponownie.",
            "Świetna jakość!",
            "Dokładnie jak w opisie!",
            "Najlepszy zakup w tym miesiącu.",
        ),
        4: ("Dobry produkt. Szybka dostawa.", "Ogólnie dobrze.", "Dobrze ale opakowanie było pogniecione."),
        3: ("W porządku. Mogło być lepiej.", "Przeciętnie. Cena mogłaby być niższa."),
        2: ("Jakość taka sobie.", "Nie do końca jak na zdjęciu."),
        1: ("Duże rozczarowanie.", "Nie polecam."),
    },
    "en": {
        5: (
            "Excellent! Highly recommend.",
            "Love it. Will order again.",
            "Great quality. Thank you!",
            "Exactly as described!",
            "Best purchase this month.",
        ),
        4: ("Good product. Fast delivery.", "Happy overall.", "Good but the box was damaged."),
        3: ("It's okay. Expected a bit more.", "Average. Could be cheaper."),
        2: ("Quality is so-so.", "Not quite like the photo."),
        1: ("Very disappointed.", "Would not recommend."),
    },
}
_LATE_TEXTS = {
    "ru": ("Доставка задержалась на несколько дней.", "Ждали дольше обещанного."),
    "pl": ("Dostawa spóźniła się kilka dni.", "Dostawa trwała dłużej niż obiecano."),
    "en": ("Delivery was days late.", "Took much longer than promised."),
}
_RETURN_TEXTS = {
    "ru": ("Пришлось вернуть. Не подошло.", "Вернули товар. Брак."),
    "pl": ("Zwrot. Nie pasowało.", "Zwrot. Produkt uszkodzony."),
    "en": ("Had to return it. Did not fit.", "Returned it. Arrived faulty."),
}
# Rating 1..5 probabilities after a normal delivery, a late one and a return.
_RATING_P = np.array(
    [
        [0.04, 0.04, 0.09, 0.25, 0.58],
        [0.16, 0.17, 0.22, 0.22, 0.23],
        [0.34, 0.26, 0.20, 0.12, 0.08],
    ]
)


@dataclass(frozen=True)
class _Events:
    """Events of one type, before merging."""

    customer: IntA
    product: IntA
    kind: int  # index into _EVENT_TYPES
    at: IntA


@dataclass(frozen=True)
class _Reviews:
    events: _Events
    rating: IntA  # 1..5
    text: IntA  # index into texts
    texts: list[str]


@dataclass(frozen=True)
class _EventLog:
    customer: IntA  # all events in time order
    product: IntA
    kind: npt.NDArray[np.int8]
    at: IntA
    review: IntA  # for each review in the log, in log order: its index in _Reviews


def _review_texts() -> tuple[list[str], IntA, IntA]:
    """Flat review text list with (locale, situation, rating) -> start and count."""
    texts: list[str] = []
    start = np.zeros((len(LOCALES), 3, 6), dtype=np.int64)
    count = np.zeros((len(LOCALES), 3, 6), dtype=np.int64)
    for loc, code in enumerate(LOCALES):
        for situation, extra in enumerate(((), _LATE_TEXTS[code], _RETURN_TEXTS[code])):
            for rating in range(1, 6):
                pool = extra if extra and rating <= 3 else _REVIEWS[code][rating]
                start[loc, situation, rating] = len(texts)
                count[loc, situation, rating] = len(pool)
                texts.extend(pool)
    return texts, start, count


def _reviews(orders: _Orders, fulfilment: _Fulfilment, people: _People, clock: _Clock, rng: Rng) -> _Reviews:
    """Reviews some days after delivery; unhappy ones after late deliveries and returns."""
    delivered = fulfilment.at[:, _DELIVERED]
    late = delivered > fulfilment.promised
    returned = fulfilment.at[:, _RETURNED] < _NEVER
    situation = np.where(returned, 2, np.where(late, 1, 0))
    chance = np.array([0.13, 0.30, 0.40])[situation]
    who = np.flatnonzero((delivered < clock.span) & (rng.random(delivered.size) < chance))
    at = delivered[who] + (rng.lognormal(np.log(3.5), 0.6, who.size) * DAY).astype(np.int64)
    who, at = who[at < clock.span], at[at < clock.span]
    # The reviewed product: one line of the order.
    n_lines = np.bincount(orders.item_order, minlength=orders.t.size)
    first_line = np.cumsum(n_lines) - n_lines
    line = first_line[who] + (rng.random(who.size) * n_lines[who]).astype(np.int64)
    sit = situation[who]
    u = rng.random(who.size)[:, None]
    rating = np.minimum((np.cumsum(_RATING_P[sit], axis=1) < u).sum(axis=1) + 1, 5)
    texts, start, count = _review_texts()
    customer = orders.customer[who]
    loc = people.locale[customer]
    pick = (rng.random(who.size) * count[loc, sit, rating]).astype(np.int64)
    events = _Events(customer, orders.item_product[line], _REVIEW, at)
    return _Reviews(events, rating.astype(np.int64), start[loc, sit, rating] + pick, texts)


def _before(t: IntA, duration: IntA | FloatA, lo: float, hi: float, rng: Rng) -> IntA:
    """Times a random fraction in [lo, hi) of ``duration`` before ``t``."""
    back: IntA = t - (duration * rng.uniform(lo, hi, t.size)).astype(np.int64)
    return back


def _purchase_sessions(orders: _Orders, people: _People, created: IntA, catalog: _Catalog, rng: Rng) -> list[_Events]:
    """The browsing around each order: views and carts of what was bought, and more."""
    n = orders.t.size
    session = np.clip(_lognormal(rng, 14 * 60.0, 0.7, n), 120, 2 * HOUR)
    # Who registered at checkout browsed as a guest before: that is not in their history.
    session = np.clip(session, 0, orders.t - created[orders.customer])
    line_t = orders.t[orders.item_order]
    line_s = session[orders.item_order]
    line_c = orders.customer[orders.item_order]
    prod = orders.item_product
    out = [
        _Events(line_c, prod, _VIEW, _before(line_t, line_s, 0.45, 1.0, rng)),
        _Events(line_c, prod, _CART_ADD, _before(line_t, line_s, 0.02, 0.4, rng)),
    ]
    # Research: some bought products were looked at days before.
    early = np.flatnonzero(rng.random(prod.size) < 0.25)
    ago = (rng.exponential(2.5, early.size) * DAY).astype(np.int64) + HOUR
    out.append(_Events(line_c[early], prod[early], _VIEW, line_t[early] - ago))
    # Other products looked at in the same session.
    o = np.repeat(np.arange(n), rng.poisson(1.3, n))
    c, t = orders.customer[o], _before(orders.t[o], session[o], 0.0, 1.0, rng)
    more = _sample_products(catalog, _sample_categories(people.interest, c, rng), t, rng)
    out.append(_Events(c, more, _VIEW, t))
    # Something put in the cart and taken out again; something wished for.
    o = np.flatnonzero(rng.random(n) < 0.12)
    c, t = orders.customer[o], _before(orders.t[o], session[o], 0.5, 0.9, rng)
    removed = _sample_products(catalog, _sample_categories(people.interest, c, rng), t, rng)
    out.append(_Events(c, removed, _CART_ADD, t))
    out.append(_Events(c, removed, _CART_REMOVE, t + (session[o] * rng.uniform(0.05, 0.4, o.size)).astype(np.int64)))
    o = np.flatnonzero(rng.random(n) < 0.06)
    c, t = orders.customer[o], _before(orders.t[o], session[o], 0.0, 1.0, rng)
    wished = _sample_products(catalog, _sample_categories(people.interest, c, rng), t, rng)
    out.append(_Events(c, wished, _WISHLIST, t))
    return out


def _browsing(
    people: _People, created: IntA, death: FloatA, catalog: _Catalog, clock: _Clock, rng: Rng
) -> list[_Events]:
    """Sessions without a purchase while the customer is around: mostly views."""
    n = created.size
    lo = created / DAY
    # Interest fades after the last purchase; never-buyers drift away after a while.
    hi = np.where(people.buyer, death + rng.exponential(30.0, n), lo + rng.exponential(45.0, n))
    hi = np.clip(hi, lo, float(clock.days))
    sessions = np.minimum(rng.poisson(people.browse * (hi - lo)), 400)
    who = np.repeat(np.arange(n), sessions)
    day = _sample_days(clock.cum, people.locale[who], lo[who], hi[who], rng).astype(np.int64)
    start = _stamp(clock, day, people.zone[who], rng)
    registered = start >= created[who]  # the first day's sessions may predate the account
    who, start = who[registered], start[registered]
    n_views = 1 + rng.poisson(1.8, who.size)
    sess = np.repeat(np.arange(who.size), n_views)
    c, t0 = who[sess], start[sess]
    viewed = _sample_products(catalog, _sample_categories(people.interest, c, rng), t0, rng)
    t = t0 + (rng.random(sess.size) * n_views[sess] * 90).astype(np.int64)
    out = [_Events(c, viewed, _VIEW, t)]
    # The first product viewed may go into the cart (abandoned) or onto the wishlist.
    first = viewed[np.cumsum(n_views) - n_views]
    end = start + n_views * 90
    cart = np.flatnonzero(rng.random(who.size) < 0.09)
    out.append(_Events(who[cart], first[cart], _CART_ADD, end[cart] + 30))
    drop = cart[rng.random(cart.size) < 0.3]
    out.append(_Events(who[drop], first[drop], _CART_REMOVE, end[drop] + rng.integers(60, 900, drop.size)))
    wish = np.flatnonzero(rng.random(who.size) < 0.05)
    out.append(_Events(who[wish], first[wish], _WISHLIST, end[wish] + 15))
    return out


def _merge_events(
    parts: Sequence[_Events], reviews: _Reviews, created: IntA, catalog: _Catalog, span: int
) -> _EventLog:
    """All events in time order, without any before the customer or product existed."""

    def plausible(part: _Events) -> IntA:
        kept: IntA = np.flatnonzero(
            (part.at >= created[part.customer]) & (part.at >= catalog.created[part.product]) & (part.at < span)
        )
        return kept

    columns: list[tuple[IntA, IntA, npt.NDArray[np.int8], IntA]] = []
    review_kept = plausible(reviews.events)
    for part, keep in [*((p, plausible(p)) for p in parts), (reviews.events, review_kept)]:
        # Filtered part by part, so the big temporaries stay small; reviews come last.
        kind = np.full(keep.size, part.kind, dtype=np.int8)
        columns.append((part.customer[keep], part.product[keep], kind, part.at[keep]))
    at = np.concatenate([c[3] for c in columns])
    order = np.argsort(at, kind="stable")
    first_review = at.size - review_kept.size
    return _EventLog(
        customer=np.concatenate([c[0] for c in columns])[order],
        product=np.concatenate([c[1] for c in columns])[order],
        kind=np.concatenate([c[2] for c in columns])[order],
        at=at[order],
        review=review_kept[order[order >= first_review] - first_review],
    )


# ---------------------------------------------------------------------------
# Contacts: names, emails, phones, birthdays, consents
# ---------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    """Space-separated words: long name lists read better as text."""
    return tuple(text.split())


# Passport-style Latin spelling; the soft and hard signs (') vanish in emails.
_RU_TRANSLIT = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        _words("a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch ' y ' e yu ya"),
        strict=True,
    )
)
_PL_TRANSLIT = dict(zip("ąćęłńóśźż", "acelnoszz", strict=True))


def _ascii(name: str) -> str:
    """Lower-case Latin spelling of a name, as people put it in an email address."""
    out = []
    for ch in name.lower():
        ch = _RU_TRANSLIT.get(ch, _PL_TRANSLIT.get(ch, ch))
        out.append("".join(c for c in ch if "a" <= c <= "z"))
    return "".join(out)


def _ru_feminine(surname: str) -> str:
    """Иванов -> Иванова, Вишневский -> Вишневская; other surnames do not change."""
    if surname.endswith(("ский", "цкий")):
        return surname[:-2] + "ая"
    if surname.endswith(("ов", "ев", "ёв", "ин", "ын")):
        return surname + "а"
    return surname


def _pl_feminine(surname: str) -> str:
    """Kowalski -> Kowalska, Nowicki -> Nowicka; Nowak stays Nowak."""
    return surname[:-1] + "a" if surname.endswith("ki") else surname


_RU_SURNAMES = _words(
    "Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров Морозов "
    "Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев Орлов Андреев "
    "Макаров Никитин Захаров Зайцев Соловьёв Борисов Яковлев Григорьев Романов Воробьёв "
    "Сергеев Кузьмин Фролов Александров Дмитриев Королёв Гусев Киселёв Ильин Максимов Поляков "
    "Сорокин Виноградов Ковалёв Белов Медведев Антонов Тарасов Жуков Баранов Филиппов Комаров "
    "Давыдов Беляев Герасимов Богданов Осипов Сидоров Вишневский Покровский Троицкий "
    "Шевченко Ковальчук"
)
_PL_SURNAMES = _words(
    "Nowak Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański "
    "Woźniak Dąbrowski Kozłowski Jankowski Mazur Wojciechowski Kwiatkowski Krawczyk Kaczmarek "
    "Piotrowski Grabowski Zając Pawłowski Michalski Król Wieczorek Jabłoński Wróbel Nowakowski "
    "Majewski Olszewski Stępień Malinowski Jaworski Adamczyk Dudek Nowicki Pawlak Górski "
    "Witkowski Walczak Sikora Baran Rutkowski Michalak Szewczyk Ostrowski Tomaszewski Pietrzak "
    "Zalewski Wróblewski"
)
_EN_SURNAMES = _words(
    "Smith Jones Taylor Brown Williams Wilson Johnson Davies Robinson Wright Thompson Evans "
    "Walker White Roberts Green Hall Wood Jackson Clarke Murphy Kelly O'Brien Byrne Ryan Walsh "
    "O'Sullivan Doyle Miller Davis Garcia Rodriguez Martinez Anderson Thomas Moore Martin Lee "
    "Harris Clark"
)


@dataclass(frozen=True)
class _Names:
    female: tuple[str, ...]
    male: tuple[str, ...]
    surname_m: tuple[str, ...]
    surname_f: tuple[str, ...]
    domains: tuple[str, ...]  # reserved example domains only (RFC 2606)


_NAMES: tuple[_Names, ...] = (
    _Names(
        female=_words(
            "Анна Мария Елена Ольга Наталья Екатерина Татьяна Ирина Светлана Юлия Анастасия Дарья "
            "Ксения Алина Виктория Полина Марина Людмила Галина Валентина Софья Вера Надежда Алёна "
            "Евгения Кристина Любовь Диана Вероника Александра"
        ),
        male=_words(
            "Александр Сергей Дмитрий Андрей Алексей Максим Иван Михаил Евгений Николай Владимир "
            "Артём Денис Павел Роман Игорь Олег Никита Кирилл Егор Илья Антон Виктор Константин "
            "Юрий Григорий Тимур Фёдор Матвей Степан"
        ),
        surname_m=_RU_SURNAMES,
        surname_f=tuple(_ru_feminine(s) for s in _RU_SURNAMES),
        domains=("mail.example.com", "inbox.example.org", "post.example.net", "example.com"),
    ),
    _Names(
        female=_words(
            "Anna Maria Katarzyna Małgorzata Agnieszka Barbara Ewa Krystyna Magdalena Elżbieta "
            "Joanna Aleksandra Zofia Monika Natalia Julia Karolina Marta Beata Dorota Justyna "
            "Paulina Zuzanna Weronika Agata Hanna Łucja Iwona Grażyna Jadwiga"
        ),
        male=_words(
            "Piotr Krzysztof Andrzej Tomasz Paweł Jan Michał Marcin Jakub Adam Łukasz Mateusz "
            "Marek Grzegorz Wojciech Stanisław Józef Kamil Dariusz Rafał Szymon Bartosz Maciej "
            "Przemysław Sebastian Zbigniew Jerzy Kacper Filip Wiktor"
        ),
        surname_m=_PL_SURNAMES,
        surname_f=tuple(_pl_feminine(s) for s in _PL_SURNAMES),
        domains=("poczta.example.net", "skrzynka.example.com", "example.org", "wp.example.net"),
    ),
    _Names(
        female=_words(
            "Emma Olivia Sophie Emily Grace Charlotte Amelia Jessica Hannah Lucy Sarah Laura Chloe "
            "Megan Rachel Rebecca Katie Ella Isla Aoife Siobhan Niamh Ashley Jennifer Madison "
            "Abigail Lauren Holly Ruby Freya"
        ),
        male=_words(
            "James Oliver Jack Harry George Thomas William Daniel Samuel Joseph Liam Noah Ethan "
            "Michael David Matthew Ryan Connor Sean Patrick Cian Conor Tyler Brandon Jacob "
            "Christopher Andrew Luke Callum Alfie"
        ),
        surname_m=_EN_SURNAMES,
        surname_f=_EN_SURNAMES,
        domains=("example.com", "mail.example.org", "example.net", "inbox.example.com"),
    ),
)

_JUNK_PHONES = ("12-34", "call me", "000", "n/a", "123", "tel", "0000000")
_JUNK_EMAIL_TAILS = (">", ";", "..", "#")


def _zipf_choice(rng: Rng, size: int, n: int) -> IntA:
    """Indices 0..n-1 with a few common values and a long tail, like real names."""
    w = 1.0 / (np.arange(n) + 3.0) ** 0.9
    chosen: IntA = rng.choice(n, size=size, p=w / w.sum())
    return chosen


def _digits(rng: Rng, n: int, k: int, low: int = 0) -> StrA:
    """``n`` random zero-padded ``k``-digit strings."""
    padded: StrA = np.strings.zfill(rng.integers(low, 10**k, n).astype(_SD), k)
    return padded


def _phones(country: str, n: int, rng: Rng) -> StrA:
    """Valid mobile numbers of the country, in the formats people type them."""
    style = rng.random(n)
    if country == "RU":
        op = rng.integers(900, 1000, n)
        op[op == 930] = 931  # 930 0xx is not allocated
        a, b, c, op_s = _digits(rng, n, 3), _digits(rng, n, 2), _digits(rng, n, 2), op.astype(_SD)
        return np.where(
            style < 0.45,
            _join("8 (", op_s, ") ", a, "-", b, "-", c),
            np.where(style < 0.8, _join("+7 ", op_s, " ", a, "-", b, "-", c), _join("8", op_s, a, b, c)),
        )
    if country == "PL":
        prefixes = np.array(["45", "50", "51", "53", "57", "60", "66", "69", "72", "73", "78", "79", "88"], dtype=_SD)
        head = _join(prefixes[rng.integers(0, prefixes.size, n)], _digits(rng, n, 1))
        a, b = _digits(rng, n, 3), _digits(rng, n, 3)
        return np.where(
            style < 0.5,
            _join(head, " ", a, " ", b),
            np.where(style < 0.85, _join("+48 ", head, " ", a, " ", b), _join(head, a, b)),
        )
    if country == "GB":
        lead = np.array(list("12345789"), dtype=_SD)[rng.integers(0, 8, n)]
        rest = _digits(rng, n, 2)
        block = _join(lead, rest)
        block = np.where((block == "700") | (block == "911"), "701", block)  # not allocated
        sub = _digits(rng, n, 6)
        return np.where(style < 0.6, _join("07", block, " ", sub), _join("+44 7", block, " ", sub))
    if country == "IE":
        net = np.array(list("35679"), dtype=_SD)[rng.integers(0, 5, n)]
        a, b = _digits(rng, n, 3), _digits(rng, n, 4)
        return np.where(style < 0.6, _join("08", net, " ", a, " ", b), _join("+353 8", net, " ", a, " ", b))
    areas = np.array(["212", "312", "415", "617", "702", "303", "206", "512", "404", "305", "646", "718"], dtype=_SD)
    area = areas[rng.integers(0, areas.size, n)]
    exchange, line = _digits(rng, n, 3, low=200), _digits(rng, n, 4)
    return np.where(
        style < 0.6, _join("(", area, ") ", exchange, "-", line), _join("+1 ", area, "-", exchange, "-", line)
    )


@dataclass(frozen=True)
class _Contacts:
    first_name: StrA
    last_name: StrA
    gender: IntA  # index into Gender
    email: StrA
    email_missing: BoolA
    phone: StrA
    phone_missing: BoolA
    birth: npt.NDArray[np.datetime64]  # datetime64[D], NaT when not given


def _names(people: _People, rng: Rng) -> tuple[StrA, StrA, StrA, StrA, IntA, IntA]:
    """Native first and last names (and their Latin spellings), gender, domain."""
    n = people.locale.size
    gender = rng.choice(3, size=n, p=(0.52, 0.45, 0.03))  # f, m, unknown
    # "unknown" is what the shop knows, not what the name says.
    female = np.where(gender == 2, rng.random(n) < 0.5, gender == 0)
    first, last = np.empty(n, dtype=_SD), np.empty(n, dtype=_SD)
    first_lat, last_lat = np.empty(n, dtype=_SD), np.empty(n, dtype=_SD)
    domain = np.empty(n, dtype=np.int64)
    for loc, names in enumerate(_NAMES):
        for is_female, given, family in ((True, names.female, names.surname_f), (False, names.male, names.surname_m)):
            m = np.flatnonzero((people.locale == loc) & (female == is_female))
            g, f = _zipf_choice(rng, m.size, len(given)), _zipf_choice(rng, m.size, len(family))
            first[m] = np.asarray(given, dtype=_SD)[g]
            last[m] = np.asarray(family, dtype=_SD)[f]
            first_lat[m] = np.asarray([_ascii(x) for x in given], dtype=_SD)[g]
            last_lat[m] = np.asarray([_ascii(x) for x in family], dtype=_SD)[f]
            domain[m] = loc * 10 + rng.integers(0, len(names.domains), m.size)
    return first, last, first_lat, last_lat, gender, domain


def _emails(first: StrA, last: StrA, birth_year: IntA, domain_code: IntA, rng: Rng) -> tuple[StrA, BoolA]:
    """Emails from the names on example domains, unique, a few of them malformed."""
    n = first.size
    domains = [d for names in _NAMES for d in names.domains]
    offsets = np.cumsum([0] + [len(names.domains) for names in _NAMES])[:-1]
    d_idx = offsets[domain_code // 10] + domain_code % 10
    domain = np.asarray(domains, dtype=_SD)[d_idx]
    yy = np.strings.zfill((birth_year % 100).astype(_SD), 2)
    num = rng.integers(1, 1000, n).astype(_SD)
    initial = np.strings.slice(first, 0, 1)
    style = rng.choice(5, size=n, p=(0.38, 0.2, 0.15, 0.15, 0.12))
    local = np.select(
        [style == 0, style == 1, style == 2, style == 3],
        [_join(first, ".", last), _join(first, ".", last, yy), _join(initial, last, num), _join(first, num)],
        _join(last, "_", first),
    )
    email = _join(local, "@", domain)
    for _ in range(3):  # the address was taken: people add digits
        taken = _strings(email).duplicated().to_numpy()
        if not taken.any():
            break
        extra = rng.integers(10, 100_000, int(taken.sum())).astype(_SD)
        email[taken] = _join(local[taken], extra, "@", domain[taken])
    taken = _strings(email).duplicated().to_numpy()
    email[taken] = _join(local[taken], ".", np.flatnonzero(taken).astype(_SD), "@", domain[taken])

    # About 1.5% malformed: typos and copy-paste accidents.
    bad = np.flatnonzero(rng.random(n) < 0.015)
    kind = rng.integers(0, 5, bad.size)
    tails = np.asarray(_JUNK_EMAIL_TAILS, dtype=_SD)[rng.integers(0, len(_JUNK_EMAIL_TAILS), bad.size)]
    bare = np.asarray([d.split(".")[0] for d in domains], dtype=_SD)[d_idx[bad]]  # no TLD
    lb, db = local[bad], domain[bad]
    email[bad] = np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3],
        [_join(lb, "@@", db), _join(lb, ".", db), _join(lb, "@", db, tails), _join(lb, "@", bare)],
        _join(lb, " @", db),
    )
    missing = rng.random(n) < 0.01
    return email, missing


def _birth_dates(n: int, end: date, rng: Rng) -> npt.NDArray[np.datetime64]:
    """Ages 18-75 (most 25-45), some not given, and always a few 29 February birthdays."""
    age_days = ((18 + np.minimum(rng.gamma(2.2, 8.5, n), 57.0)) * 365.2425).astype(np.int64)
    birth = np.datetime64(end, "D") - age_days.astype("timedelta64[D]")
    birth[rng.random(n) < 0.07] = np.datetime64("NaT")
    leap = np.array([y for y in range(end.year - 75, end.year - 18) if y % 4 == 0 and (y % 100 or y % 400 == 0)])
    k = min(n, -(-n // 2000) + int(rng.integers(0, 2)))  # at least one per 2,000 customers
    who = rng.choice(n, size=k, replace=False)
    years = leap[rng.integers(0, leap.size, k)]
    birth[who] = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]") + np.timedelta64(59, "D")
    return birth


def _make_contacts(people: _People, end: date, rng: Rng) -> _Contacts:
    """Names, gender, birth date, email and phone of every customer."""
    n = people.locale.size
    first, last, first_lat, last_lat, gender, domain = _names(people, rng)
    birth = _birth_dates(n, end, rng)
    year = np.where(np.isnat(birth), rng.integers(1960, 2005, n), birth.astype("datetime64[Y]").astype(np.int64) + 1970)
    email, email_missing = _emails(first_lat, last_lat, year, domain, rng)

    phone = np.empty(n, dtype=_SD)
    country = np.array([z.country for z in _ZONES])[people.zone]
    for code in ("RU", "PL", "GB", "IE", "US"):
        m = np.flatnonzero(country == code)
        phone[m] = _phones(code, m.size, rng)
    junk = np.flatnonzero(rng.random(n) < 0.01)
    phone[junk] = np.asarray(_JUNK_PHONES, dtype=_SD)[rng.integers(0, len(_JUNK_PHONES), junk.size)]
    phone_missing = rng.random(n) < 0.18
    return _Contacts(first, last, gender, email, email_missing, phone, phone_missing, birth)


@dataclass(frozen=True)
class _Consents:
    email: BoolA
    email_at: IntA
    sms: BoolA
    sms_at: IntA


def _consent(has_channel: BoolA, share: float, created: IntA, span: int, rng: Rng) -> tuple[BoolA, IntA]:
    """Opt-in flags and times: mostly at sign-up, some later; none in the future."""
    n = created.size
    at = created + np.where(
        rng.random(n) < 0.65, rng.integers(1, 120, n), (rng.exponential(15.0, n) * DAY).astype(np.int64) + 1
    )
    opted = has_channel & (rng.random(n) < share) & (at < span)
    return opted, at


# ---------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------


def _strings(values: Any, missing: BoolA | None = None) -> pd.Series:
    """A pandas string column (pyarrow-backed) from a numpy or arrow string array."""
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=pa.large_string(), mask=missing)
    series: pd.Series = arr.to_pandas(types_mapper={pa.large_string(): _STR, pa.string(): _STR}.get)
    return series


def _ids(prefix: str, n: int, width: int) -> Any:
    """Arrow array of ids like C0000001."""
    return pa.array(_join(prefix, np.strings.zfill(np.arange(1, n + 1).astype(_SD), width)), type=pa.large_string())


def _lookup(labels: Any, codes: IntA) -> pd.Series:
    """A string column holding ``labels[codes]``."""
    return _strings(pc.take(labels, pa.array(codes)))


def _vocab(values: Sequence[str], codes: IntA) -> pd.Series:
    """A string column from a small vocabulary."""
    return _lookup(pa.array(list(values), type=pa.large_string()), codes)


def _wrap(prefix: str, labels: Any, suffix: str) -> Any:
    """Arrow array of ``prefix + label + suffix``."""
    text = [pa.scalar(prefix, pa.large_string()), labels, pa.scalar(suffix, pa.large_string())]
    return pc.binary_join_element_wise(*text, pa.scalar("", pa.large_string()))


def _utc(clock: _Clock, rel: IntA, missing: BoolA | None = None) -> pd.Series:
    """Timezone-aware UTC datetimes from seconds since the first day."""
    values = (rel + clock.t0).astype("datetime64[s]").astype("datetime64[ns]")
    if missing is not None:
        values[missing] = np.datetime64("NaT")
    return pd.Series(pd.DatetimeIndex(values).tz_localize("UTC"))


def _frame(table: Table, columns: dict[str, Any]) -> pd.DataFrame:
    """A frame with exactly the contract's columns in order, plus the allowed extras."""
    names = [c.name for c in SPECS[table].columns] + list(EXTRA_COLUMNS.get(table, ()))
    if set(columns) != set(names):
        raise AssertionError(f"{table}: columns {sorted(columns)} != contract {names}")
    return pd.DataFrame({name: columns[name] for name in names})


def _id_width(n: int, width: int) -> int:
    """Zero-padding width: the house width, or more for very large shops."""
    return max(width, len(str(n)))


@dataclass(frozen=True)
class _Keys:
    """The string ids of the final tables, and customers renumbered by registration."""

    customer: Any  # Arrow arrays of ids, by row of the final table
    product: Any
    order: Any
    rank: IntA  # internal customer index -> row in the customers table

    def customers(self, internal: IntA) -> pd.Series:
        """Customer ids of internal customer indices."""
        return _lookup(self.customer, self.rank[internal])

    def products(self, product: IntA) -> pd.Series:
        """Product ids of product rows."""
        return _lookup(self.product, product)

    def orders(self, order: IntA) -> pd.Series:
        """Order ids of order rows."""
        return _lookup(self.order, order)


def _make_keys(created: IntA, n_products: int, n_orders: int) -> _Keys:
    """Ids for every table: customers are numbered in the order they registered."""
    n = created.size
    by_created = np.lexsort((np.arange(n), created))
    rank = np.empty(n, dtype=np.int64)
    rank[by_created] = np.arange(n)
    return _Keys(
        customer=_ids("C", n, _id_width(n, 7)),
        product=_ids("P", n_products, _id_width(n_products, 5)),
        order=_ids("O", n_orders, _id_width(n_orders, 8)),
        rank=rank,
    )


def _customers_frame(
    people: _People, contacts: _Contacts, created: IntA, consents: _Consents, keys: _Keys, clock: _Clock
) -> pd.DataFrame:
    """The customers table, one row per customer in registration order."""
    s = np.argsort(keys.rank)
    email_opt, email_at = consents.email[s], consents.email_at[s]
    sms_opt, sms_at = consents.sms[s], consents.sms_at[s]
    zones = people.zone[s]
    return _frame(
        Table.CUSTOMERS,
        {
            "customer_id": _strings(keys.customer),
            "email": _strings(contacts.email[s], contacts.email_missing[s]),
            "phone": _strings(contacts.phone[s], contacts.phone_missing[s]),
            "first_name": _strings(contacts.first_name[s]),
            "last_name": _strings(contacts.last_name[s]),
            "gender": _vocab([g.value for g in Gender], contacts.gender[s]),
            "birth_date": pd.Series(contacts.birth[s].astype("datetime64[ns]")),
            "locale": _vocab(LOCALES, people.locale[s]),
            "timezone": _vocab([z.tz for z in _ZONES], zones),
            "country": _vocab([z.country for z in _ZONES], zones),
            "created_at": _utc(clock, created[s]),
            "email_opt_in": pd.Series(email_opt),
            "email_opt_in_at": _utc(clock, email_at, ~email_opt),
            "sms_opt_in": pd.Series(sms_opt),
            "sms_opt_in_at": _utc(clock, sms_at, ~sms_opt),
        },
    )


def _products_frame(catalog: _Catalog, stock: _Stock, keys: _Keys, clock: _Clock) -> pd.DataFrame:
    """The products table; ``in_stock`` is the product's last stock event."""
    n = catalog.created.size
    last_change = np.searchsorted(stock.product, np.arange(n), side="right") - 1
    return _frame(
        Table.PRODUCTS,
        {
            "product_id": _strings(keys.product),
            "name": _strings(catalog.name),
            "category": _vocab(CATEGORIES, catalog.category),
            "price": pd.Series(catalog.price_cents / 100),
            "currency": _vocab([CURRENCY], np.zeros(n, dtype=np.int64)),
            "in_stock": pd.Series(stock.in_stock[last_change]),
            "url": _strings(_wrap(f"{SHOP_URL}/p/", keys.product, "")),
            "image_url": _strings(_wrap(f"{SHOP_URL}/img/", keys.product, ".jpg")),
            "created_at": _utc(clock, catalog.created),
        },
    )


def _orders_frame(orders: _Orders, fulfilment: _Fulfilment, keys: _Keys, clock: _Clock) -> pd.DataFrame:
    """The orders table with each order's latest status and its delivery promise."""
    n = orders.t.size
    statuses = [OrderStatus.PLACED.value] + [st.value for st in _FLOW]
    return _frame(
        Table.ORDERS,
        {
            "order_id": _strings(keys.order),
            "customer_id": keys.customers(orders.customer),
            "created_at": _utc(clock, orders.t),
            "status": _vocab(statuses, fulfilment.status + 1),
            "total": pd.Series(orders.total_cents / 100),
            "currency": _vocab([CURRENCY], np.zeros(n, dtype=np.int64)),
            "promised_delivery_at": _utc(clock, fulfilment.promised),
        },
    )


def _order_items_frame(orders: _Orders, keys: _Keys) -> pd.DataFrame:
    """The order lines table."""
    return _frame(
        Table.ORDER_ITEMS,
        {
            "order_id": keys.orders(orders.item_order),
            "product_id": keys.products(orders.item_product),
            "quantity": pd.Series(orders.item_quantity),
            "unit_price": pd.Series(orders.item_cents / 100),
        },
    )


def _order_events_frame(fulfilment: _Fulfilment, keys: _Keys, clock: _Clock) -> pd.DataFrame:
    """Every status change that happened by the end of the period, by order and time."""
    order, status = np.nonzero(fulfilment.at < clock.span)
    at = fulfilment.at[order, status]
    by_time = np.lexsort((at, order))
    return _frame(
        Table.ORDER_EVENTS,
        {
            "order_id": keys.orders(order[by_time]),
            "status": _vocab([st.value for st in _FLOW], status[by_time]),
            "at": _utc(clock, at[by_time]),
        },
    )


def _events_frame(events: _EventLog, reviews: _Reviews, keys: _Keys, clock: _Clock) -> pd.DataFrame:
    """The behaviour table; rating and text only on reviews."""
    review = events.kind == _REVIEW
    rating = np.zeros(events.at.size, dtype=np.int8)
    rating[review] = reviews.rating[events.review]
    text = np.zeros(events.at.size, dtype=np.int64)
    text[review] = reviews.text[events.review]
    texts = pa.array(reviews.texts, type=pa.large_string())
    return _frame(
        Table.EVENTS,
        {
            "customer_id": keys.customers(events.customer),
            "product_id": keys.products(events.product),
            "type": _vocab([et.value for et in _EVENT_TYPES], events.kind.astype(np.int64)),
            "at": _utc(clock, events.at),
            "rating": pd.Series(pd.arrays.IntegerArray(rating, ~review)),
            "text": _strings(pc.take(texts, pa.array(text, mask=~review))),
        },
    )


def _stock_events_frame(stock: _Stock, keys: _Keys, clock: _Clock) -> pd.DataFrame:
    """Stock changes by product and time."""
    return _frame(
        Table.STOCK_EVENTS,
        {
            "product_id": keys.products(stock.product),
            "in_stock": pd.Series(stock.in_stock),
            "at": _utc(clock, stock.at),
        },
    )


def generate_shop(customers: int, days: int, seed: int, end: date = DEFAULT_END) -> dict[Table, pd.DataFrame]:
    """Generate a demo shop: ``customers`` customers over ``days`` days ending ``end``."""
    if customers < 1 or days < 1:
        raise ValueError("customers and days must be at least 1")
    # One stream per concern, so changing one part of the model leaves the others alone.
    rng_catalog, rng_stock, rng_people, rng_buy, rng_items, rng_ship, rng_events, rng_review, rng_contacts = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(9)
    )
    clock = _make_clock(end, days)
    catalog = _make_catalog(min(50_000, max(200, customers // 20)), clock, rng_catalog)
    stock = _make_stock(catalog.created, clock.span, rng_stock)
    people = _make_people(customers, clock, rng_people)
    first, created = _registrations(people, clock, rng_buy)
    purchases = _make_purchases(people, first, clock, rng_buy)
    food = _usual_food(people, first, catalog, stock, rng_items)
    orders = _make_orders(people, purchases, food, catalog, stock, clock, rng_items)
    fulfilment = _make_fulfilment(orders.t, people.zone[orders.customer], clock, rng_ship)
    reviews = _reviews(orders, fulfilment, people, clock, rng_review)
    keys = _make_keys(created, catalog.created.size, orders.t.size)

    frames: dict[Table, pd.DataFrame] = {}
    parts = [
        *_purchase_sessions(orders, people, created, catalog, rng_events),
        *_browsing(people, created, purchases.death, catalog, clock, rng_events),
    ]
    events = _merge_events(parts, reviews, created, catalog, clock.span)
    del parts  # the biggest intermediates: free them before building frames
    frames[Table.EVENTS] = _events_frame(events, reviews, keys, clock)
    del events
    contacts = _make_contacts(people, end, rng_contacts)
    consents = _Consents(
        *_consent(~contacts.email_missing, 0.81, created, clock.span, rng_contacts),
        *_consent(~contacts.phone_missing, 0.43, created, clock.span, rng_contacts),
    )
    frames[Table.CUSTOMERS] = _customers_frame(people, contacts, created, consents, keys, clock)
    frames[Table.PRODUCTS] = _products_frame(catalog, stock, keys, clock)
    frames[Table.ORDERS] = _orders_frame(orders, fulfilment, keys, clock)
    frames[Table.ORDER_ITEMS] = _order_items_frame(orders, keys)
    frames[Table.ORDER_EVENTS] = _order_events_frame(fulfilment, keys, clock)
    frames[Table.STOCK_EVENTS] = _stock_events_frame(stock, keys, clock)
    return {table: frames[table] for table in LOAD_ORDER}


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


@cache
def _times_of_day() -> Any:
    """Arrow array of "THH:MM:SSZ" for every second of a day."""
    clock = np.datetime_as_string(np.arange(DAY).astype("datetime64[s]"))
    return pa.array(np.strings.add(np.strings.slice(clock, 10, 19), "Z").astype(str))


def _iso_utc(column: Any) -> Any:
    """ISO-8601 UTC text (2026-03-05T14:03:00Z) for a timestamp column; nulls stay null.

    Much faster than strftime: the date and the time of day come from small tables.
    """
    seconds = pc.cast(pc.cast(column, pa.timestamp("s", tz="UTC"), safe=False), pa.int64())
    seconds = seconds.combine_chunks() if isinstance(seconds, pa.ChunkedArray) else seconds
    missing = seconds.is_null().to_numpy(zero_copy_only=False)
    day, second = np.divmod(seconds.fill_null(0).to_numpy(), DAY)
    first = int(day[~missing].min()) if (~missing).any() else 0
    last = int(day[~missing].max()) if (~missing).any() else 0
    dates = pa.array(np.arange(first, last + 1).astype("datetime64[D]").astype(str))
    date_part = pc.take(dates, pa.array(day - first, mask=missing))
    return pc.binary_join_element_wise(date_part, pc.take(_times_of_day(), pa.array(second)), "")


def _arrow_table(frame: pd.DataFrame) -> Any:
    """The frame as an Arrow table; naive datetimes (birth dates) become calendar dates."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            column = pc.cast(pc.cast(table.column(i), pa.timestamp("s"), safe=False), pa.date32())
        elif pa.types.is_null(field.type):  # an all-empty column is text, not "null"
            column = table.column(i).cast(pa.large_string())
        else:
            continue
        table = table.set_column(i, field.name, column)
    return table


def _csv_batch(batch: Any, schema: Any) -> Any:
    """A record batch with timestamps as ISO-8601 UTC text, ready for the CSV writer."""
    columns = [_iso_utc(c) if pa.types.is_timestamp(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _needs_quotes(table: Any) -> bool:
    """Whether any column name or text cell holds a comma, quote or line break."""
    pattern = r'[,"\r\n]'
    if any(pc.match_substring_regex(pa.array(table.column_names), pattern).to_pylist()):
        return True
    for field, column in zip(table.schema, table.columns, strict=True):
        text = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
        if text and pc.any(pc.match_substring_regex(column, pattern)).as_py():
            return True
    return False


def _write_csv(table: Any, path: Path) -> None:
    """Write a table as CSV in batches, so memory stays flat for big tables."""
    # Unquoted unless a value needs it: easier to read, and Arrow refuses to write
    # an unquoted value that would break the CSV.
    quoting = "needed" if _needs_quotes(table) else "none"
    options = pa_csv.WriteOptions(quoting_style=quoting, quoting_header=quoting)
    schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_timestamp(f.type) else f for f in table.schema])
    with pa_csv.CSVWriter(str(path), schema, write_options=options) as writer:
        for batch in table.to_batches(max_chunksize=1 << 20):
            writer.write_batch(_csv_batch(batch, schema))


def write_shop(
    frames: dict[Table, pd.DataFrame], out_dir: Path, fmt: Literal["csv", "parquet"] = "csv"
) -> dict[Table, Path]:
    """Write one file per table (``customers.csv`` etc.) into ``out_dir``; return the paths."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown format {fmt!r}: use 'csv' or 'parquet'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[Table, Path] = {}
    for table_name in [t for t in LOAD_ORDER if t in frames]:
        path = out_dir / f"{table_name.value}.{fmt}"
        table = _arrow_table(frames[table_name])
        if fmt == "parquet":
            pq.write_table(table, str(path))
        else:
            _write_csv(table, path)
        paths[table_name] = path
    return paths
