"""Frames: the contract tables as pandas frames, and ``generate_shop`` that builds them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tasks.data.contract import LOAD_ORDER, SPECS
from tasks.demo.synth.behaviour import (
    _EVENT_TYPES,
    _REVIEW,
    _browsing,
    _EventLog,
    _merge_events,
    _purchase_sessions,
    _Reviews,
    _reviews,
)
from tasks.demo.synth.catalog import CATEGORIES, _Catalog, _make_catalog, _make_stock, _Stock
from tasks.demo.synth.clock import _ZONES, LOCALES, _Clock, _make_clock
from tasks.demo.synth.common import _SD, CURRENCY, DEFAULT_END, EXTRA_COLUMNS, SHOP_URL, BoolA, IntA, _join, _strings
from tasks.demo.synth.contacts import _consent, _Consents, _Contacts, _make_contacts
from tasks.demo.synth.orders import _FLOW, _Fulfilment, _make_fulfilment, _make_orders, _Orders, _usual_food
from tasks.demo.synth.people import _make_people, _make_purchases, _People, _registrations
from tasks.demo.synth.points import _make_movements, _Movements
from tasks.kernel.enums import Gender, OrderStatus, PointMovement, Table


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
    ads_opt, ads_at = consents.ads[s], consents.ads_at[s]
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
            "ads_opt_in": pd.Series(ads_opt),
            "ads_opt_in_at": _utc(clock, ads_at, ~ads_opt),
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


def _point_movements_frame(movements: _Movements, orders: _Orders, keys: _Keys, clock: _Clock) -> pd.DataFrame:
    """Points spent, given back and credited, by time; each names its order."""
    n = movements.t.size
    return _frame(
        Table.POINT_MOVEMENTS,
        {
            "movement_id": _strings(_ids("M", n, _id_width(n, 8))),
            "customer_id": keys.customers(orders.customer[movements.order]),
            "at": _utc(clock, movements.t),
            "kind": _vocab([PointMovement.SPENT.value, PointMovement.ADJUSTED.value], movements.kind),
            "points": pd.Series(movements.points),
            "order_id": keys.orders(movements.order),
        },
    )


def generate_shop(customers: int, days: int, seed: int, end: date = DEFAULT_END) -> dict[Table, pd.DataFrame]:
    """Generate a demo shop: ``customers`` customers over ``days`` days ending ``end``."""
    if customers < 1 or days < 1:
        raise ValueError("customers and days must be at least 1")
    # One stream per concern, so changing one part of the model leaves the others alone.
    # (a stream added at the end leaves the others' numbers as they were)
    streams = np.random.SeedSequence(seed).spawn(11)
    rng_catalog, rng_stock, rng_people, rng_buy, rng_items, rng_ship, rng_events, rng_review, rng_contacts = (
        np.random.default_rng(s) for s in streams[:9]
    )
    rng_points = np.random.default_rng(streams[9])
    rng_ads = np.random.default_rng(streams[10])
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
        # advertising by their address (hashed audiences): asked of everyone with an email or a phone
        *_consent(~(contacts.email_missing & contacts.phone_missing), 0.42, created, clock.span, rng_ads),
    )
    frames[Table.CUSTOMERS] = _customers_frame(people, contacts, created, consents, keys, clock)
    frames[Table.PRODUCTS] = _products_frame(catalog, stock, keys, clock)
    frames[Table.ORDERS] = _orders_frame(orders, fulfilment, keys, clock)
    frames[Table.ORDER_ITEMS] = _order_items_frame(orders, keys)
    frames[Table.ORDER_EVENTS] = _order_events_frame(fulfilment, keys, clock)
    frames[Table.STOCK_EVENTS] = _stock_events_frame(stock, keys, clock)
    movements = _make_movements(orders, fulfilment, clock.span, rng_points)
    frames[Table.POINT_MOVEMENTS] = _point_movements_frame(movements, orders, keys, clock)
    return {table: frames[table] for table in LOAD_ORDER}
