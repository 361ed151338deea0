"""Loyalty points the demo's customers spend and get back (the ``point_movements`` table).

Points are earned at the engine's default rule (1 point per unit of the order total, ``LOYALTY_POINTS_PER_UNIT``),
so the demo's balances add up under the default settings. At checkout, about a third of the orders that follow
a paying order within 300 days use part of that order's points (never more than it earned, so spending stays
within what was earned); a cancelled or returned order gives its spent points back (an adjustment up); and
about a third of the late deliveries get a goodwill credit of 50 points a day after they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.demo.synth.common import DAY, IntA, Rng
from tasks.demo.synth.orders import _CANCELLED, _DELIVERED, _RETURNED, _Fulfilment, _Orders

SPENT, ADJUSTED = 0, 1  # kinds, as PointMovement's values in this order
_USE_SHARE = 0.35  # orders that follow a paying one and use its points
_USE_WITHIN = 300 * DAY  # points older than this may have lapsed (365 days by default): not used
_GOODWILL_SHARE = 0.3  # late deliveries that get a credit
_GOODWILL_POINTS = 50


@dataclass(frozen=True)
class _Movements:
    order: IntA  # the order each movement belongs to; sorted by (t, order, kind)
    t: IntA
    kind: IntA  # SPENT or ADJUSTED
    points: IntA  # signed: spent is negative


def _previous_order(customer: IntA) -> IntA:
    """Each order's customer's previous order (orders are sorted by time), or -1."""
    n = customer.size
    seq = np.lexsort((np.arange(n), customer))
    same = customer[seq[1:]] == customer[seq[:-1]]
    previous = np.full(n, -1, dtype=np.int64)
    previous[seq[1:][same]] = seq[:-1][same]
    return previous


def _make_movements(orders: _Orders, fulfilment: _Fulfilment, span: int, rng: Rng) -> _Movements:
    """Points spent at checkout, given back on cancelled and returned orders, and goodwill after late deliveries."""
    n = orders.t.size
    # drawn for every order whatever is used, so one rule changing leaves the others' draws alone
    use, share, goodwill = rng.random(n), rng.uniform(0.3, 1.0, n), rng.random(n)
    earned = orders.total_cents // 100
    paying = ~np.isin(fulfilment.status, (_CANCELLED, _RETURNED))
    previous = _previous_order(orders.customer)
    before = np.maximum(previous, 0)
    spends = (
        (previous >= 0)
        & paying[before]
        & (earned[before] > 0)
        & (orders.t - orders.t[before] < _USE_WITHIN)
        & (use < _USE_SHARE)
    )
    order = np.flatnonzero(spends)
    spent = np.maximum(1, np.floor(earned[before[order]] * share[order]).astype(np.int64))

    undone = order[~paying[order]]  # the status it ended in came after the order: the points come back then
    back_at = fulfilment.at[undone, fulfilment.status[undone]]
    back = spent[~paying[order]]

    delivered = fulfilment.at[:, _DELIVERED]
    credit_at = delivered + DAY
    late = paying & (delivered > fulfilment.promised) & (credit_at < span) & (goodwill < _GOODWILL_SHARE)
    credited = np.flatnonzero(late)

    parts = (
        (order, orders.t[order], SPENT, -spent),
        (undone, back_at, ADJUSTED, back),
        (credited, credit_at[credited], ADJUSTED, np.full(credited.size, _GOODWILL_POINTS, dtype=np.int64)),
    )
    all_order = np.concatenate([p[0] for p in parts])
    all_t = np.concatenate([p[1] for p in parts]).astype(np.int64)
    all_kind = np.concatenate([np.full(p[0].size, p[2], dtype=np.int64) for p in parts])
    all_points = np.concatenate([p[3] for p in parts]).astype(np.int64)
    by_time = np.lexsort((all_kind, all_order, all_t))
    return _Movements(all_order[by_time], all_t[by_time], all_kind[by_time], all_points[by_time])
