"""Behaviour: views, carts, wishlists and reviews around purchases and in browsing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tasks.demo.synth.catalog import _Catalog, _sample_products
from tasks.demo.synth.clock import LOCALES, _Clock, _sample_days, _stamp
from tasks.demo.synth.common import _NEVER, DAY, HOUR, FloatA, IntA, Rng
from tasks.demo.synth.orders import _DELIVERED, _RETURNED, _Fulfilment, _lognormal, _Orders
from tasks.demo.synth.people import _People, _sample_categories
from tasks.kernel.enums import EventType

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
