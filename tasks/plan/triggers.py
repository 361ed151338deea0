"""Triggers: which customers a campaign's trigger fires for, and on which day (the occurrence).

``occurrences(trigger, data, start, end)`` returns one row per (customer, occurrence day) with the
occurrence inside ``[start, end]`` and a ``detail`` the message shows (an order id, product ids, the
incident's reason, a number of points). The planner asks for the days whose steps are due today,
so one function serves the daily run, a backfill and the simulator alike.

Days are the customer's own calendar days (their time zone), as the profile counts them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from tasks.kernel.enums import EventType, OrderStatus, PointsBasis, Table
from tasks.plan.campaigns import (
    WEEKDAYS,
    BirthdayTrigger,
    CartTrigger,
    HolidayTrigger,
    IncidentTrigger,
    LapseTrigger,
    OrderTrigger,
    OverdueTrigger,
    PointsTrigger,
    ReplenishmentTrigger,
    ScheduleTrigger,
    SignupTrigger,
    SurveyTrigger,
    Trigger,
)
from tasks.plan.points import (
    PointsRules,
    balance,
    points_detail,
    points_earned,
    points_expiring,
    points_ledger,
    points_taken,
)
from tasks.profile.birthdays import birthday_in_year
from tasks.profile.features import NOT_PURCHASES, customers_local_day, purchases_by_day
from tasks.profile.interests import text_equals
from tasks.state.calls import incident_key

OCCURRENCE_COLUMNS = ("customer_id", "occurrence", "detail")


@dataclass
class ShopData:
    """The day's tables a trigger may read, loaded on first use: the contract tables, ``profile`` and its details."""

    as_of: date
    load: Callable[[str], pd.DataFrame]
    points: PointsRules = field(default_factory=PointsRules)
    # (customer id, incident key) of incidents support resolved on a call: no trigger fires for them again
    closed_incidents: frozenset[tuple[str, str]] = frozenset()
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._cache:
            self._cache[name] = self.load(name)
        return self._cache[name]

    def optional(self, name: str) -> pd.DataFrame | None:
        """An optional contract table (``point_movements``), or None where the shop does not give it (``load``
        raises KeyError)."""
        try:
            return self[name]
        except KeyError:
            return None

    @classmethod
    def from_frames(cls, as_of: date, frames: dict[str, pd.DataFrame], points: PointsRules | None = None) -> ShopData:
        return cls(as_of=as_of, load=frames.__getitem__, points=points or PointsRules())


def occurrences(trigger: Trigger, data: ShopData, start: date, end: date) -> pd.DataFrame:
    """Return (customer_id, occurrence, detail) for every firing of ``trigger`` on a day in ``[start, end]``."""
    if end < start:
        return _frame([], [], [])
    found = _TRIGGERS[type(trigger)](trigger, data, start, end)
    days = pd.to_datetime(found["occurrence"])
    inside = (days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))
    out = found.loc[inside.to_numpy()].assign(occurrence=days[inside.to_numpy()].dt.normalize().to_numpy())
    return out.drop_duplicates(["customer_id", "occurrence"], keep="last").reset_index(drop=True)


def _frame(customers: object, days: object, detail: object) -> pd.DataFrame:
    out = pd.DataFrame({"customer_id": customers, "occurrence": days, "detail": detail})
    out["customer_id"] = out["customer_id"].astype(object)
    out["occurrence"] = pd.to_datetime(out["occurrence"]).astype("datetime64[ns]")
    out["detail"] = out["detail"].astype(object)
    return out


def _lapse(trigger: LapseTrigger, data: ShopData, start: date, end: date) -> pd.DataFrame:
    """The day the customer crossed ``days`` since their last purchase (today minus the excess)."""
    profile = data["profile"]
    days = profile["days_since_last_order"]
    lapsed = profile.loc[(days >= trigger.days).fillna(False).astype(bool)]
    excess = lapsed["days_since_last_order"].astype("int64") - trigger.days
    occurrence = pd.Timestamp(data.as_of) - pd.to_timedelta(excess.to_numpy(), unit="D")
    return _frame(lapsed["customer_id"].to_numpy(), occurrence.to_numpy(), pd.NA)


def _overdue(trigger: OverdueTrigger, data: ShopData, start: date, end: date) -> pd.DataFrame:
    """The first day past ``factor`` x the rhythm since the last purchase day: the current gap's only, as the lapse.

    The rhythm is the median gap between the customer's local purchase days (cancelled and returned orders left
    out, as the profile and its lifecycle count them), at least ``min_rhythm_days``.
    """
    days = purchases_by_day(data[Table.CUSTOMERS], data[Table.ORDERS])
    gaps = days["day"].diff().dt.days.where(days["customer_id"].eq(days["customer_id"].shift()))
    per_customer = days.assign(gap=gaps).groupby("customer_id", sort=False, observed=True)
    rhythm = per_customer.agg(last_day=("day", "max"), median_gap=("gap", "median")).dropna(subset=["median_gap"])
    # exceeded on the first whole day past factor x rhythm; rounded to a millionth so 2.3 x 10 is 23, not 22.99...
    beyond = np.round(trigger.factor * np.maximum(rhythm["median_gap"].to_numpy(float), trigger.min_rhythm_days), 6)
    after = np.floor(beyond).astype("int64") + 1
    keep = after <= trigger.max_days if trigger.max_days is not None else np.ones(len(after), dtype=bool)
    occurrence = rhythm["last_day"].to_numpy()[keep] + pd.to_timedelta(after[keep], unit="D").to_numpy()
    return _frame(rhythm.index.to_numpy()[keep], occurrence, pd.NA)


def _birthday(trigger: BirthdayTrigger, data: ShopData, start: date, end: date) -> pd.DataFrame:
    customers = data[Table.CUSTOMERS]
    born = pd.to_datetime(customers["birth_date"], errors="coerce")
    known = customers.loc[born.notna().to_numpy()]
    months, days = born[born.notna()].dt.month.to_numpy(), born[born.notna()].dt.day.to_numpy()
    frames = [
        _frame(known["customer_id"].to_numpy(), birthday_in_year(months, days, np.full(months.size, year)), pd.NA)
        for year in range(start.year, end.year + 1)
    ]
    return pd.concat(frames, ignore_index=True)


def _holiday(trigger: HolidayTrigger, data: ShopData, start: date, end: date) -> pd.DataFrame:
    customers = data[Table.CUSTOMERS]
    country = customers["country"].fillna("").astype(str).str.upper()
    month_day = country.map(trigger.dates)
    if "default" in trigger.dates:
        month_day = month_day.fillna(trigger.dates["default"])
    having = month_day.notna().to_numpy()
    if not having.any():
        return _frame([], [], [])
    # "MM-DD" split once per distinct date (a handful), not once per customer
    codes, distinct = pd.factorize(month_day[having])
    parsed = np.array([[int(part) for part in str(md).split("-")] for md in distinct], dtype=np.int64)
    months, days = parsed[codes, 0], parsed[codes, 1]
    ids = customers.loc[having, "customer_id"].to_numpy()
    frames = [
        _frame(ids, birthday_in_year(months, days, np.full(months.size, year)), pd.NA)
        for year in range(start.year, end.year + 1)
    ]
    return pd.concat(frames, ignore_index=True)


def _order(trigger: OrderTrigger, data: ShopData, start: date, end: date) -> pd.DataFrame:
    orders = data[Table.ORDERS]
    if trigger.first_only:
        first = orders.sort_values(["created_at", "order_id"], kind="stable").drop_duplicates("customer_id")
        orders = first
    if trigger.status is OrderStatus.PLACED:
        at = orders[["order_id", "customer_id", "created_at"]].rename(columns={"created_at": "at"})
    else:
        events = data[Table.ORDER_EVENTS]
        reached = events.loc[text_equals(events["status"], trigger.status.value), ["order_id", "at"]]
        reached = reached.sort_values("at", kind="stable").drop_duplicates("order_id")
        at = reached.merge(orders[["order_id", "customer_id"]], on="order_id", how="inner")
    day = customers_local_day(pd.to_datetime(at["at"], utc=True), at["customer_id"], data[Table.CUSTOMERS])
    found = _frame(at["customer_id"].to_numpy(), day.to_numpy(), at["order_id"].astype(str).to_numpy())
    return found if trigger.once_in_days is None else _once_in(found, trigger.once_in_days)


def _once_in(found: pd.DataFrame, days: int) -> pd.DataFrame:
    """Per customer, oldest first: keep an occurrence only ``days`` or more after the last one kept.

    Decided from the whole history of the data, not from what was sent, so a backfill decides as the day did."""
    found = found.sort_values(["customer_id", "occurrence", "detail"], kind="stable").reset_index(drop=True)
    keep = np.zeros(len(found), dtype=bool)
    gap = np.timedelta64(days, "D")
    last_customer, last_day = None, None
    for i, (customer, day) in enumerate(zip(found["customer_id"], found["occurrence"].to_numpy(), strict=True)):
        if customer != last_customer or last_day is None or day - last_day >= gap:
            keep[i], last_customer, last_day = True, customer, day
    return found.loc[keep].reset_index(drop=True)


def _signup(trigger: SignupTrigger, data: ShopData, start: date, end: date) -> pd.DataFrame:
    """The local day of sign-up; ``never_ordered``: of customers with no order in the data, whatever its status."""
    customers = data[Table.CUSTOMERS]
    if trigger.never_ordered:
        ordered = customers["customer_id"].isin(set(data[Table.ORDERS]["customer_id"]))
        customers = customers.loc[~ordered.to_numpy()]
    day = customers_local_day(
        pd.to_datetime(customers["created_at"], utc=True), customers["customer_id"], data[Table.CUSTOMERS]
    )
    return _frame(customers["customer_id"].to_numpy(), day.to_numpy(), pd.NA)


def _incident(trigger: IncidentTrigger, data: ShopData, start: date, end: date) -> pd.DataFrame:
    found = data["incidents"]
    if found.empty:
        return _frame([], [], [])
    day = customers_local_day(pd.to_datetime(found["at"], utc=True), found["customer_id"], data[Table.CUSTOMERS])
    if data.closed_incidents:
        keys = incident_keys(found, day)
        closed = data.closed_incidents
        still_open = np.array([(str(c), k) not in closed for c, k in zip(found["customer_id"], keys, strict=True)])
        found, day = found.loc[still_open], day.loc[still_open]
    return _frame(found["customer_id"].to_numpy(), day.to_numpy(), found["reason"].astype(str).to_numpy())


def incident_keys(found: pd.DataFrame, day: pd.Series) -> list[str]:
    """Each incident's key (``tasks/state/calls.py``), from its customer's local ``day`` of it."""
    references = found["order_id"].where(found["order_id"].notna(), found["product_id"])
    return [
        incident_key(pd.Timestamp(d).strftime("%Y-%m-%d"), str(r), None if pd.isna(o) else str(o))
        for d, r, o in zip(day, found["reason"], references, strict=True)
    ]


def _replenishment(trigger: ReplenishmentTrigger, data: ShopData, start: date, end: date) -> pd.DataFrame:
    due = data["replenishment"]
    if due.empty:
        return _frame([], [], [])
    due = due.assign(due_on=pd.to_datetime(due["due_on"]).dt.normalize(), product_id=due["product_id"].astype(str))
    joined = due.sort_values(["customer_id", "due_on", "product_id"]).groupby(["customer_id", "due_on"], sort=False)
    products = joined["product_id"].agg(" ".join).reset_index()
    return _frame(products["customer_id"].to_numpy(), products["due_on"].to_numpy(), products["product_id"].to_numpy())


def _cart(trigger: CartTrigger, data: ShopData, start: date, end: date) -> pd.DataFrame:
    """Cart adds not followed by a removal or an order of the product (up to the data's end)."""
    events = data[Table.EVENTS]
    kind = events["type"]  # compared as read (Arrow strings): no Python string per event
    adds = _cart_rows(events, kind.eq(EventType.CART_ADD.value))
    if adds.empty:
        return _frame([], [], [])
    removes = _cart_rows(events, kind.eq(EventType.CART_REMOVE.value))
    orders = data[Table.ORDERS]
    bought = data[Table.ORDER_ITEMS][["order_id", "product_id"]].merge(
        orders.loc[~orders["status"].astype(str).isin(NOT_PURCHASES), ["order_id", "customer_id", "created_at"]],
        on="order_id",
    )
    bought = bought.rename(columns={"created_at": "at"})[["customer_id", "product_id", "at"]]
    later = pd.concat([removes, bought], ignore_index=True)
    last_after = later.groupby(["customer_id", "product_id"], observed=True)["at"].max().rename("closed_at")
    adds = adds.join(last_after, on=["customer_id", "product_id"])
    open_adds = adds.loc[~(pd.to_datetime(adds["closed_at"], utc=True) >= pd.to_datetime(adds["at"], utc=True))]
    open_adds = open_adds.assign(product_id=open_adds["product_id"].astype(str))
    day = customers_local_day(
        pd.to_datetime(open_adds["at"], utc=True), open_adds["customer_id"], data[Table.CUSTOMERS]
    )
    open_adds = open_adds.assign(day=day.to_numpy()).drop_duplicates(["customer_id", "day", "product_id"])
    grouped = open_adds.sort_values(["customer_id", "day", "product_id"]).groupby(["customer_id", "day"], sort=False)
    carts = grouped["product_id"].agg(" ".join).reset_index()
    return _frame(carts["customer_id"].to_numpy(), carts["day"].to_numpy(), carts["product_id"].to_numpy())


def _cart_rows(events: pd.DataFrame, rows: pd.Series) -> pd.DataFrame:
    """(customer_id, product_id, at) of some events, ids as Python strings (the planner reads events with Arrow
    strings: the biggest table, of which the cart trigger needs only the few cart rows)."""
    picked = events.loc[rows.to_numpy(dtype=bool, na_value=False), ["customer_id", "product_id", "at"]]
    return picked.astype({"customer_id": object, "product_id": object})


def _schedule(trigger: ScheduleTrigger, data: ShopData, start: date, end: date) -> pd.DataFrame:
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    if trigger.weekday is not None:
        weekday = WEEKDAYS.index(trigger.weekday)
        dates = [d for d in days if d.weekday() == weekday and d.isocalendar().week % trigger.every_weeks == 0]
    else:
        dates = [d for d in days if d.day == trigger.month_day]
    customers = data["profile"]["customer_id"].to_numpy()
    frames = [_frame(customers, np.full(len(customers), np.datetime64(d, "ns")), pd.NA) for d in dates]
    return pd.concat(frames, ignore_index=True) if frames else _frame([], [], [])


def _points(trigger: PointsTrigger, data: ShopData, start: date, end: date) -> pd.DataFrame:
    """The statement on the 1st of each month, the expiry on the day points lapse; ``detail`` is
    ``"<points> <basis>"`` (``points_detail``).

    With the shop's ``point_movements``: the balance held on the 1st (earned - spent - expired), and the points
    that really lapse (what spending left of the lots). Without them nothing is known of spending: the
    statement says what was earned in the month before the 1st, and the expiry what was earned on the lapsing
    lots' day (the template says "if unused").
    """
    customers, movements = data[Table.CUSTOMERS], data.optional(Table.POINT_MOVEMENTS)
    lots = points_ledger(data[Table.ORDERS], customers, data.points, movements)
    taken = points_taken(movements, customers) if movements is not None else None
    basis = PointsBasis.BALANCE if taken is not None else PointsBasis.EARNED
    if trigger.event == "expiry":
        expiring = points_expiring(lots, taken)
        details = points_detail(expiring["points"], basis)
        return _frame(expiring["customer_id"].to_numpy(), expiring["day"].to_numpy(), details)
    frames = []
    first = date(start.year, start.month, 1)
    month = first if first >= start else (first + timedelta(days=32)).replace(day=1)
    while month <= end:
        if taken is not None:
            held = balance(lots, month, taken)
        else:
            last_month = (month - timedelta(days=1)).replace(day=1)
            held = points_earned(lots, last_month, month - timedelta(days=1))
        held = held.loc[held > 0]
        at = np.full(len(held), np.datetime64(month, "ns"))
        frames.append(_frame(held.index.to_numpy(), at, points_detail(held, basis)))
        month = (month + timedelta(days=32)).replace(day=1)
    return pd.concat(frames, ignore_index=True) if frames else _frame([], [], [])


def _survey(trigger: SurveyTrigger, data: ShopData, start: date, end: date) -> pd.DataFrame:
    """The local day of each survey answer scored ``min_score``-``max_score`` (none: no answers table)."""
    answers = data.optional("survey_answers")
    if answers is None or answers.empty:
        return _frame([], [], [])
    score = answers["score"].astype(int)
    hit = answers.loc[((score >= trigger.min_score) & (score <= trigger.max_score)).to_numpy()]
    day = customers_local_day(pd.to_datetime(hit["answered_at"], utc=True), hit["customer_id"], data[Table.CUSTOMERS])
    return _frame(hit["customer_id"].to_numpy(), day.to_numpy(), hit["order_id"].astype(str).to_numpy())


_TRIGGERS: dict[type, Callable[..., pd.DataFrame]] = {
    LapseTrigger: _lapse,
    OverdueTrigger: _overdue,
    BirthdayTrigger: _birthday,
    HolidayTrigger: _holiday,
    OrderTrigger: _order,
    SignupTrigger: _signup,
    IncidentTrigger: _incident,
    ReplenishmentTrigger: _replenishment,
    CartTrigger: _cart,
    ScheduleTrigger: _schedule,
    PointsTrigger: _points,
    SurveyTrigger: _survey,
}
