"""Loyalty points: earned per purchase by a configurable rule, spent and adjusted as the shop reports, each
lot expiring after a while.

Earning: ``per_unit`` points per unit of the order total, rounded down, earned on the day of the order
(the customer's day); cancelled and returned orders earn nothing. A lot expires ``valid_days`` after it was
earned (on that day).

Spending and adjustments come from the shop's optional ``point_movements`` table (signed points, on the
customer's day of ``at``): a negative movement (spent at checkout, an adjustment down) takes points, oldest
lot first; a positive adjustment is a lot of its own, earned that day and lasting ``valid_days`` like any
other. Expiry takes only what is left of a lot.

The balance on a day is earned - taken - expired, over what happened before it: a lot earned on the day
counts from the next, one expiring on the day is gone. Every lot lasts the same ``valid_days``, so lots
expire in the order they were earned, which is the order spending takes them: a customer's lots are one
queue eaten from the front by spending and by expiry (a lot's expiry moves the front to the lot's end if it
is not past it already). The expired total is therefore a running maximum, computed for every customer at
once: expired(t) = max(0, max over the lots k expired by t of (points earned up to the end of k - points
taken before k's expiry)). More taken than earned (points from before the data, a rule that differs from
the shop's): the excess is paid from the next lots earned, so a balance is never overstated.

Without ``point_movements`` the shop gives no spending data and no balance is known: the points messages
then say what was earned (``PointsBasis.EARNED``), never what is held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from tasks.kernel.enums import PointsBasis
from tasks.profile.features import NOT_PURCHASES, customers_local_day

LOT_COLUMNS = ("customer_id", "order_id", "points", "earned_on", "expires_on")
TAKEN_COLUMNS = ("customer_id", "points", "taken_on")
LAPSE_COLUMNS = ("customer_id", "day", "points")

# the order of one day's events: what expires on a day is gone before that day's earning and spending
_EXPIRES, _EARNS, _TAKES = 0, 1, 2
_NO_LOT = np.iinfo(np.int64).min  # the running maximum of a row that is no expiry


@dataclass(frozen=True)
class PointsRules:
    """How points are earned and how long they last."""

    per_unit: float = 1.0
    valid_days: int = 365


def points_ledger(
    orders: pd.DataFrame, customers: pd.DataFrame, rules: PointsRules, movements: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Return the lots, (customer_id, order_id, points, earned_on, expires_on): one per paying order, and one
    per positive movement of ``movements`` (an adjustment up; ``order_id`` the movement's, if any)."""
    paying = orders.loc[~orders["status"].astype(str).isin(NOT_PURCHASES)]
    # rounded to a millionth before flooring: 90.0 * 0.7 is 62.99999999999999 in binary floating point
    points = np.floor(np.round(paying["total"].astype(float).to_numpy() * rules.per_unit, 6)).astype("int64")
    earned = customers_local_day(pd.to_datetime(paying["created_at"], utc=True), paying["customer_id"], customers)
    lots = pd.DataFrame(
        {
            "customer_id": paying["customer_id"].to_numpy(dtype=object),
            "order_id": paying["order_id"].astype(str).to_numpy(dtype=object),
            "points": points,
            "earned_on": earned.to_numpy(),
        }
    )
    if movements is not None:
        credited = movements.loc[_signed(movements) > 0]
        day = customers_local_day(pd.to_datetime(credited["at"], utc=True), credited["customer_id"], customers)
        order = credited["order_id"].astype(object)
        credits = pd.DataFrame(
            {
                "customer_id": credited["customer_id"].to_numpy(dtype=object),
                "order_id": order.where(order.notna(), None).to_numpy(dtype=object),
                "points": _signed(credited),
                "earned_on": day.to_numpy(),
            }
        )
        lots = pd.concat([lots, credits], ignore_index=True) if len(credits) else lots
    lots["expires_on"] = lots["earned_on"] + pd.Timedelta(days=rules.valid_days)
    return lots.loc[lots["points"] > 0, list(LOT_COLUMNS)].reset_index(drop=True)


def points_taken(movements: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    """Return (customer_id, points, taken_on): what each negative movement took (spent, adjusted down), as a
    positive number, on the customer's day."""
    debited = movements.loc[_signed(movements) < 0]
    day = customers_local_day(pd.to_datetime(debited["at"], utc=True), debited["customer_id"], customers)
    return pd.DataFrame(
        {
            "customer_id": debited["customer_id"].to_numpy(dtype=object),
            "points": -_signed(debited),
            "taken_on": day.to_numpy(),
        },
        columns=list(TAKEN_COLUMNS),
    )


def balance(lots: pd.DataFrame, day: date, taken: pd.DataFrame | None = None) -> pd.Series:
    """Points each customer holds on ``day``: earned - taken - expired before it (``taken`` None: nothing taken).

    Customers who hold none (or had more taken than they earned) are left out.
    """
    events = _timeline(lots, taken)
    at = pd.Timestamp(day)
    before = (events["day"] < at) | ((events["day"] == at) & (events["rank"] == _EXPIRES))
    last = events.loc[before.to_numpy()].groupby("code", sort=False).tail(1)
    held = pd.Series(
        (last["earned"] - last["taken"] - last["expired"]).to_numpy(),
        index=pd.Index(last["customer_id"].to_numpy(), name="customer_id"),
        name="points",
    )
    return held.loc[held > 0]


def points_expiring(lots: pd.DataFrame, taken: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return (customer_id, day, points): how many points lapse on each day, per customer. Only what is left of
    the lots expiring that day after everything ``taken`` before it (``taken`` None: the lots in full)."""
    events = _timeline(lots, taken)
    before = events.groupby("code", sort=False)["expired"].shift(1, fill_value=0)
    lapses = events.assign(points=events["expired"] - before)
    lapses = lapses.loc[((lapses["rank"] == _EXPIRES) & (lapses["points"] > 0)).to_numpy()]
    out = lapses.groupby(["customer_id", "day"], sort=True)["points"].sum().reset_index()
    return out.loc[:, list(LAPSE_COLUMNS)]


def points_earned(lots: pd.DataFrame, first: date, last: date) -> pd.Series:
    """Points each customer earned from ``first`` to ``last`` (both included); who earned none is left out."""
    earned_on = lots["earned_on"]
    inside = (earned_on >= pd.Timestamp(first)) & (earned_on <= pd.Timestamp(last))
    return lots.loc[inside.to_numpy()].groupby("customer_id", sort=True)["points"].sum()


def points_detail(points: pd.Series, basis: PointsBasis) -> npt.NDArray[np.object_]:
    """The ``detail`` of points occurrences: ``"<points> <basis>"`` ("1250 balance", "120 earned")."""
    return (points.astype("int64").astype(str) + f" {basis.value}").to_numpy(dtype=object)


def read_points_detail(detail: str) -> tuple[int, PointsBasis]:
    """The points and their basis of an occurrence's ``detail``; a bare number (a plan made before the basis was
    written) is a balance."""
    number, _, basis = detail.strip().partition(" ")
    return int(number), PointsBasis(basis or PointsBasis.BALANCE.value)


def _signed(movements: pd.DataFrame) -> npt.NDArray[np.int64]:
    return np.asarray(pd.to_numeric(movements["points"]).fillna(0).astype("int64").to_numpy(), dtype=np.int64)


def _timeline(lots: pd.DataFrame, taken: pd.DataFrame | None) -> pd.DataFrame:
    """Every customer's points events in order (day, then expiry, earning, spending), each with the running
    totals earned, taken and expired after it; ``code`` numbers the customers."""
    taken = taken if taken is not None else pd.DataFrame({c: [] for c in TAKEN_COLUMNS})
    # customers as integers: sorting and grouping millions of text ids is what would take the time
    codes, names = pd.factorize(pd.concat([lots["customer_id"], taken["customer_id"]], ignore_index=True))
    n, m = len(lots), len(taken)
    lot_code, take_code = codes[:n], codes[n:]
    earned_on, expires_on = _ns(lots["earned_on"]), _ns(lots["expires_on"])
    first = np.lexsort((earned_on, lot_code))  # each customer's lots in the order they were earned
    lot_code, earned_on, expires_on = lot_code[first], earned_on[first], expires_on[first]
    points = lots["points"].to_numpy(dtype=np.int64)[first]
    # where each lot ends in its customer's queue: the points earned up to and including it
    end = pd.Series(points).groupby(lot_code, sort=False).cumsum().to_numpy(dtype=np.int64)
    none_n, none_m = np.zeros(n, dtype=np.int64), np.zeros(m, dtype=np.int64)
    code = np.concatenate([lot_code, lot_code, take_code])
    day = np.concatenate([earned_on, expires_on, _ns(taken["taken_on"])])
    rank = np.concatenate([np.full(n, _EARNS), np.full(n, _EXPIRES), np.full(m, _TAKES)]).astype(np.int64)
    earn = np.concatenate([points, none_n, none_m])
    take = np.concatenate([none_n, none_n, taken["points"].to_numpy(dtype=np.int64)])
    ends = np.concatenate([np.full(n, _NO_LOT), end, np.full(m, _NO_LOT)])
    order = np.lexsort((rank, day, code))
    code, rank, ends = code[order], rank[order], ends[order]
    events = pd.DataFrame(
        {
            "code": code,
            "customer_id": np.asarray(names, dtype=object)[code],
            "day": day[order].view("datetime64[ns]"),
            "rank": rank,
        }
    )
    events["earned"] = pd.Series(earn[order]).groupby(code, sort=False).cumsum().to_numpy()
    events["taken"] = pd.Series(take[order]).groupby(code, sort=False).cumsum().to_numpy()
    # an expiry moves the queue's front to the lot's end unless it is past it; spending moves it on, so the
    # expired total is a running maximum of (the lot's end - taken so far)
    reach = np.where(rank == _EXPIRES, ends - events["taken"].to_numpy(), _NO_LOT)
    events["expired"] = pd.Series(reach).groupby(code, sort=False).cummax().clip(lower=0).to_numpy()
    return events


def _ns(days: pd.Series) -> npt.NDArray[np.int64]:
    """Days as int64 nanoseconds, for sorting."""
    return np.asarray(pd.to_datetime(days).to_numpy(dtype="datetime64[ns]").view("int64"), dtype=np.int64)
