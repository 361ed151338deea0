"""Catalog: products, prices, names, popularity and stock changes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.demo.synth.clock import _Clock
from tasks.demo.synth.common import _BIG, _SD, DAY, HOUR, BoolA, FloatA, IntA, Rng, StrA, _join


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
