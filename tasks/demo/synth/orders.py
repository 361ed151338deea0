"""Orders and their lines, and each order's fulfilment history."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.demo.synth.catalog import _CAT_FOOD, _DOG_FOOD, _DOG_TOYS, _Catalog, _in_stock, _sample_products, _Stock
from tasks.demo.synth.clock import _ZONES, _Clock
from tasks.demo.synth.common import _BIG, _NEVER, DAY, HOUR, IntA, Rng
from tasks.demo.synth.people import _BOTH, _DOG, _People, _Purchases, _sample_categories
from tasks.kernel.enums import OrderStatus

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
