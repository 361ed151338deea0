"""Order updates: order-status messages and back-in-stock notices, every few minutes, from a watermark.

Each run looks at a window of time, ``(start, now]``, and plans the messages the events in it call for:

* **order status** (transactional) - every ``order_events`` row whose status the campaign's trigger lists:
  one message about that order and status (key ``order/<order>/<status>/<channel>``). With
  ``delay_notice``, an order whose ``promised_delivery_at`` (an optional column of ``orders``) passed in
  the window and that was not delivered, cancelled or returned by now gets an apology (status ``late``:
  once per order). An order whose life is not in ``order_events`` at all is judged by its status column;
* **back in stock** (marketing) - a ``stock_events`` row that puts a product back in stock (its previous
  row said out of stock) in the window, the product still in stock now: the customers who showed
  interest in it (the trigger's ``signals``) while it was out and within ``lookback_days`` hear about
  it, one message per customer and day listing every product of the day they wanted.

Candidates go through the planner's one list of gates (``tasks.plan.planner.plan_candidates``: contact,
consent - an SMS copy of an order update needs SMS opt-in - suppression, the send time below, lateness
counted from the event's moment ``at``, pauses, the frequency budget, holdout, the ledger's duplicates).
What only this job passes: its candidates and its send time (``at_the_moment``); its budget counts what
the daily run and earlier order-update runs send today, except this run's own messages, which the
overlap plans again (``not_itself``).

**When messages go out.** The send time is now, not a daily hour. Quiet hours, read at this moment in the
customer's zone: *transactional email goes out at any hour* (the customer expects it and email does not
ring; delivery lets it through quiet hours too); an SMS copy and every marketing message inside quiet
hours are ``deferred`` (``quiet_hours``) to their end, never dropped.

**The watermark** (on the state backend: ``<state_dir>/order_updates.json``, or an item of the DynamoDB state
table shared by every host) holds ``processed_until``, the end of the last
run's window, and ``pending_from``, the earliest event whose message is still owed (deferred, or held,
retried or parked by delivery). A run's window starts ``overlap`` before the earlier of the two (first
run: ``first_lookback`` before now), so late-arriving rows and owed messages are looked at again; the
ledger makes the second look harmless. It is replaced atomically, only after the run's sends are
finished (a crash re-processes the window) and never by a dry run, and never moved backwards (a
conditional write: a host that finishes an older window later cannot undo another's progress). One run at
a time holds it.

Each run writes under ``<output_dir>/updates/<shop date>/<HHMMSS>-<run id>/`` (shop time): plan, shards,
outbox, delivery outcomes and ``summary.json``. The snapshot of the tables is removed after the run (the
shop's tables are read whole every few minutes), and so is the folder of a run that planned nothing.

**Replaying a window** (``replay_window``; ``loyalty order-updates --from ... --to ...``): the events of a
given window of the past, planned through the same gates and sent now (quiet hours, lateness and what the
tables show judged at the real moment). It neither reads nor moves the watermark, so the scheduled runs go
on where they were; the ledger keeps it exactly-once: what a run sent is a ``duplicate``, what was parked,
retried or held (its claim released) goes now.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from tasks.consent.suppression import SuppressionList
from tasks.data.contract import SPECS
from tasks.data.snapshot import read_table
from tasks.kernel.enums import Channel, Decision, DeliveryOutcome, MessageKind, OrderStatus, Table
from tasks.kernel.errors import CatalogError
from tasks.kernel.paths import UPDATES_FOLDER, UPDATES_MARKETING_FILE, RunPaths
from tasks.kernel.settings import Settings
from tasks.plan.campaigns import BackInStockTrigger, Campaign, OrderStatusTrigger, load_catalog
from tasks.plan.gates import DeliveryRules, delivery_rules, quiet_until
from tasks.plan.history import marketing_history, record_history
from tasks.plan.planner import (
    PLAN_COLUMNS,
    Planning,
    PlanSummary,
    Suppressed,
    commit_shards,
    current_suppressions,
    ledger_lookup,
    message_people,
    plan_candidates,
)
from tasks.render.outbox import write_index
from tasks.report.run_report import collect_outbox, sent_by_channel
from tasks.state.backend import open_state
from tasks.state.protocol import WatermarkStore
from tasks.state.sqlite import FileWatermarks

WATERMARK_FILE = "order_updates.json"
MARKETING_FILE = UPDATES_MARKETING_FILE  # per run: the marketing messages it planned, for later runs' budget
DELAY_STATUS = "late"  # the delay notice's status in its detail and idempotency key
# Delivery outcomes that leave a message owed to a later run (the claim was released or never taken).
OWED_OUTCOMES = frozenset({DeliveryOutcome.HELD_QUIET_HOURS, DeliveryOutcome.RETRY_LATER, DeliveryOutcome.PARKED})
# An order in one of these statuses by now gets no delay notice.
SETTLED = frozenset({OrderStatus.DELIVERED.value, OrderStatus.CANCELLED.value, OrderStatus.RETURNED.value})
CANDIDATE_COLUMNS = ("customer_id", "step", "occurrence", "due", "detail", "at")


# --- the watermark ------------------------------------------------------------------------------------------


class Watermark(BaseModel):
    """Where order updates stopped: the end of the last window, and the earliest event still owed a message."""

    model_config = ConfigDict(frozen=True)

    processed_until: datetime
    pending_from: datetime | None = None


class UpdateWindow(BaseModel):
    """The events one run looks at: ``start < at <= end``; ``as_of`` is the shop's date when it sends.

    A replay (``replay_window``) looks at a window of the past and sends now (``sending_at``); a scheduled
    run sends at its window's end.
    """

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime
    as_of: date
    before: Watermark | None = None
    sending_at: datetime | None = None

    @property
    def replay(self) -> bool:
        """Whether this is a replayed window: the watermark is neither read nor moved."""
        return self.sending_at is not None

    @property
    def sends_at(self) -> datetime:
        """When the run sends: quiet hours, lateness and what the tables show are judged at this moment."""
        return self.sending_at or self.end


def as_utc(moment: datetime) -> datetime:
    """Return an aware moment in UTC (a naive one is taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _watermarks(where: WatermarkStore | Path) -> tuple[WatermarkStore, str]:
    # a path is the state folder's file (how tests and tools name it); else the backend's mark of that name
    if isinstance(where, Path):
        return FileWatermarks(where.parent), where.name
    return where, WATERMARK_FILE


def read_watermark(where: WatermarkStore | Path) -> Watermark | None:
    """Read the watermark from the state backend (or a file); None before the first run."""
    store, name = _watermarks(where)
    text = store.read_mark(name)
    return None if text is None else Watermark.model_validate_json(text)


def write_watermark(where: WatermarkStore | Path, mark: Watermark) -> bool:
    """Store the watermark unless a later one is stored (another host got further): it never moves backwards.

    Return whether it was stored. On SQLite a file replaced atomically; on DynamoDB a conditional write.
    """
    store, name = _watermarks(where)
    order = as_utc(mark.processed_until).isoformat(timespec="microseconds")
    return store.write_mark(name, mark.model_dump_json(indent=2) + "\n", order)


def update_window(
    before: Watermark | None, now: datetime, overlap: timedelta, first_lookback: timedelta, shop_timezone: str
) -> UpdateWindow:
    """Return the window a run at ``now`` looks at: from ``overlap`` before where the last run stopped (or
    before the earliest owed message, if earlier) to now; the first run looks ``first_lookback`` back."""
    end = as_utc(now)
    if before is None:
        start = end - first_lookback
    else:
        start = as_utc(before.processed_until) - overlap
        if before.pending_from is not None:
            start = min(start, as_utc(before.pending_from) - overlap)
    return UpdateWindow(
        start=min(start, end), end=end, as_of=end.astimezone(ZoneInfo(shop_timezone)).date(), before=before
    )


def replay_window(start: datetime | None, end: datetime | None, now: datetime, shop_timezone: str) -> UpdateWindow:
    """Return a replayed window ``(start, end]`` (end: now) that sends at ``now``, whatever the watermark says.

    Raises ValueError for a window without a start, ending before it starts, or ending after now.
    """
    if start is None:
        raise ValueError("a replayed window needs its start (--from)")
    moment = as_utc(now)
    first, last = as_utc(start), as_utc(end) if end is not None else moment
    if last <= first:
        raise ValueError(f"the window ends ({last:%Y-%m-%d %H:%M} UTC) before it starts ({first:%Y-%m-%d %H:%M} UTC)")
    if last > moment:
        raise ValueError(f"the window ends ({last:%Y-%m-%d %H:%M} UTC) after now ({moment:%Y-%m-%d %H:%M} UTC)")
    local_day = moment.astimezone(ZoneInfo(shop_timezone)).date()
    return UpdateWindow(start=first, end=last, as_of=local_day, sending_at=moment)


def owed_since(plan: pd.DataFrame, outcomes: pd.DataFrame) -> datetime | None:
    """Return the earliest event whose message is still owed: deferred, or held, retried or parked by delivery.

    A transactional message whose answer was lost (``unknown``) is owed too: the next run's claim takes it
    over and sends it again (at least once: an order update may arrive twice, never not at all). A marketing
    one is not: it is never resent.
    """
    owed_keys = set(outcomes.loc[outcomes["outcome"].isin(OWED_OUTCOMES), "key"].astype(str))
    unknown = set(outcomes.loc[outcomes["outcome"] == DeliveryOutcome.UNKNOWN.value, "key"].astype(str))
    transactional = plan["kind"] == MessageKind.TRANSACTIONAL.value
    owed = (
        (plan["decision"] == Decision.DEFERRED.value)
        | plan["idempotency_key"].isin(owed_keys)
        | (transactional & plan["idempotency_key"].isin(unknown))
    )
    if not owed.any():
        return None
    return as_utc(pd.Timestamp(plan.loc[owed, "at"].min()).to_pydatetime())


def next_watermark(window: UpdateWindow, owed: datetime | None) -> Watermark:
    """Return the watermark after a run: the window's end (never earlier than before) and what is still owed.

    A run with a ``now`` before the last one's did not look at the owed messages after its window: they stay owed.
    """
    before = window.before
    until = window.end if before is None else max(window.end, as_utc(before.processed_until))
    earlier = before.pending_from if before is not None else None
    if earlier is not None and as_utc(earlier) > window.end:
        owed = min(owed, as_utc(earlier)) if owed is not None else as_utc(earlier)
    return Watermark(processed_until=until, pending_from=owed)


# --- what the tables say, at a moment ------------------------------------------------------------------------


def visible_at(frames: dict[Table, pd.DataFrame], moment: datetime) -> dict[Table, pd.DataFrame]:
    """Return the tables as they were at ``moment``: rows timed after it are invisible (order lines go with their order)."""
    stamp = pd.Timestamp(as_utc(moment))
    out: dict[Table, pd.DataFrame] = {}
    for table, frame in frames.items():
        column = SPECS[table].time_column
        if column is None:
            out[table] = frame
            continue
        seen = (pd.to_datetime(frame[column], utc=True) <= stamp).to_numpy(dtype=bool, na_value=False)
        out[table] = frame.loc[seen].reset_index(drop=True)
    if Table.ORDER_ITEMS in out and Table.ORDERS in out:
        items = out[Table.ORDER_ITEMS]
        out[Table.ORDER_ITEMS] = items.loc[items["order_id"].isin(set(out[Table.ORDERS]["order_id"]))]
    return out


def _in_window(at: pd.Series, window: UpdateWindow) -> npt.NDArray[np.bool_]:
    stamps = pd.to_datetime(at, utc=True)
    inside = (stamps > pd.Timestamp(window.start)) & (stamps <= pd.Timestamp(window.end))
    return np.asarray(inside.to_numpy(dtype=bool, na_value=False), dtype=bool)


def _candidates(customers: object, detail: object, at: pd.Series, step: int) -> pd.DataFrame:
    stamps = pd.to_datetime(at, utc=True)
    day = stamps.dt.strftime("%Y-%m-%d").to_numpy(dtype=object)  # the event's UTC date
    return pd.DataFrame(
        {
            "customer_id": pd.Series(customers, dtype=object).astype(str).to_numpy(dtype=object),
            "step": np.full(len(stamps), step, dtype="int64"),
            "occurrence": day,
            "due": day,
            "detail": pd.Series(detail, dtype=object).to_numpy(dtype=object),
            "at": stamps.reset_index(drop=True),
        },
        columns=list(CANDIDATE_COLUMNS),
    )


def _empty_candidates() -> pd.DataFrame:
    return _candidates([], [], pd.Series([], dtype="datetime64[ns, UTC]"), 1)


def order_status_candidates(
    trigger: OrderStatusTrigger, orders: pd.DataFrame, order_events: pd.DataFrame, window: UpdateWindow, step: int = 1
) -> pd.DataFrame:
    """One candidate per order event in the window whose status the trigger lists: detail ``"<order> <status>"``.

    An order reaching the same status twice is told once (the first time).
    """
    wanted = {s.value for s in trigger.statuses}
    events = order_events.loc[_in_window(order_events["at"], window)]
    events = events.loc[events["status"].astype(str).isin(wanted).to_numpy()]
    events = events.assign(order_id=events["order_id"].astype(str), status=events["status"].astype(str))
    events = events.sort_values(["at", "order_id", "status"], kind="stable").drop_duplicates(["order_id", "status"])
    owners = orders[["order_id", "customer_id"]].assign(order_id=orders["order_id"].astype(str))
    found = events.merge(owners, on="order_id", how="inner")
    if found.empty:
        return _empty_candidates()
    return _candidates(found["customer_id"], found["order_id"] + " " + found["status"], found["at"], step)


def delay_candidates(
    orders: pd.DataFrame, order_events: pd.DataFrame, window: UpdateWindow, step: int = 1
) -> pd.DataFrame:
    """One candidate per order whose promised delivery passed in the window, not settled by now: ``"<order> late"``.

    Settled: delivered, cancelled or returned by an event up to now; an order without any event by its status.
    """
    if "promised_delivery_at" not in orders.columns or orders.empty:
        return _empty_candidates()
    raw = orders["promised_delivery_at"]
    promised = (
        pd.to_datetime(raw, utc=True)
        if pd.api.types.is_datetime64_any_dtype(raw)
        else pd.to_datetime(raw.astype(object).where(raw.notna(), None), utc=True, format="ISO8601", errors="coerce")
    )
    broken = orders.loc[_in_window(promised, window) & (promised < pd.Timestamp(window.end)).to_numpy()]
    broken = broken.assign(promised=promised.loc[broken.index])
    seen = order_events.loc[(pd.to_datetime(order_events["at"], utc=True) <= pd.Timestamp(window.sends_at)).to_numpy()]
    settled = set(seen.loc[seen["status"].astype(str).isin(SETTLED), "order_id"].astype(str))
    tracked = set(order_events["order_id"].astype(str))
    ids = broken["order_id"].astype(str)
    by_status = ~ids.isin(tracked) & broken["status"].astype(str).isin(SETTLED)
    late = broken.loc[(~ids.isin(settled) & ~by_status).to_numpy()]
    if late.empty:
        return _empty_candidates()
    return _candidates(late["customer_id"], late["order_id"].astype(str) + f" {DELAY_STATUS}", late["promised"], step)


def back_in_stock_candidates(
    trigger: BackInStockTrigger,
    stock_events: pd.DataFrame,
    events: pd.DataFrame,
    window: UpdateWindow,
    step: int = 1,
) -> pd.DataFrame:
    """Customers who wanted a product while it was out of stock, when it comes back in the window.

    A restock is a ``stock_events`` row in stock after one out of stock, the product still in stock now.
    Interest counts from the product going out of stock (the first of a run of out-of-stock rows) and
    at most ``lookback_days`` before the restock. One candidate per customer and restock day: detail is
    the day's products, space-separated.
    """
    if stock_events.empty or events.empty:
        return _empty_candidates()
    stock = stock_events.loc[(pd.to_datetime(stock_events["at"], utc=True) <= pd.Timestamp(window.end)).to_numpy()]
    stock = stock.assign(
        product_id=stock["product_id"].astype(str),
        at=pd.to_datetime(stock["at"], utc=True),
        in_stock=stock["in_stock"].astype(bool),
    ).sort_values(["product_id", "at"], kind="stable")
    by_product = stock.groupby("product_id", sort=False)
    previous = by_product["in_stock"].shift()
    # runs of equal stock state per product: a restock's interest counts from the start of the run before it
    run = (stock["in_stock"] != previous).astype(int).groupby(stock["product_id"], sort=False).cumsum()
    run_start = stock.groupby([stock["product_id"], run], sort=False)["at"].transform("min")
    out_since = run_start.groupby(stock["product_id"], sort=False).shift()
    still_in = by_product["in_stock"].transform("last").astype(bool)
    restocked = (
        stock["in_stock"]
        & previous.eq(False)
        & still_in
        & pd.Series(_in_window(stock["at"], window), index=stock.index)
    )
    restocks = pd.DataFrame(
        {
            "product_id": stock.loc[restocked, "product_id"],
            "back_at": stock.loc[restocked, "at"],
            "out_since": out_since.loc[restocked],
        }
    )
    if restocks.empty:
        return _empty_candidates()
    wanted = events.loc[
        events["type"].astype(str).isin(set(trigger.signals)).to_numpy(), ["customer_id", "product_id", "at"]
    ]
    wanted = wanted.assign(
        customer_id=wanted["customer_id"].astype(str),
        product_id=wanted["product_id"].astype(str),
        at=pd.to_datetime(wanted["at"], utc=True),
    )
    pairs = restocks.merge(wanted, on="product_id", how="inner")
    since = np.maximum(
        pd.to_datetime(pairs["out_since"], utc=True).to_numpy(dtype="datetime64[ns]"),
        (pairs["back_at"] - pd.Timedelta(days=trigger.lookback_days)).to_numpy(dtype="datetime64[ns]"),
    )
    stamps = pairs["at"].to_numpy(dtype="datetime64[ns]")
    pairs = pairs.loc[(stamps >= since) & (stamps <= pairs["back_at"].to_numpy(dtype="datetime64[ns]"))]
    if pairs.empty:
        return _empty_candidates()
    pairs = pairs.assign(day=pairs["back_at"].dt.strftime("%Y-%m-%d"))
    pairs = pairs.drop_duplicates(["customer_id", "day", "product_id"]).sort_values(
        ["customer_id", "day", "product_id"]
    )
    grouped = pairs.groupby(["customer_id", "day"], sort=True)
    found = grouped.agg(detail=("product_id", " ".join), at=("back_at", "min")).reset_index()
    return _candidates(found["customer_id"], found["detail"], found["at"], step)


def update_campaigns(catalog: dict[str, Campaign]) -> dict[str, Campaign]:
    """The campaigns order updates plan: order-status and back-in-stock triggers.

    Their audience would need the daily profile, which these runs do not build: one is refused, not ignored.
    """
    chosen = {n: c for n, c in catalog.items() if isinstance(c.trigger, OrderStatusTrigger | BackInStockTrigger)}
    for name, campaign in chosen.items():
        if campaign.audience or any(s.audience for s in campaign.steps):
            raise CatalogError(f"{name}: order updates have no customer profile, so an audience cannot apply")
    return chosen


def update_candidates(campaign: Campaign, frames: dict[Table, pd.DataFrame], window: UpdateWindow) -> pd.DataFrame:
    """Return a campaign's candidates for the window (its first step; known customers only)."""
    trigger, step = campaign.trigger, campaign.steps[0].step
    if isinstance(trigger, OrderStatusTrigger):
        found = [order_status_candidates(trigger, frames[Table.ORDERS], frames[Table.ORDER_EVENTS], window, step)]
        if trigger.delay_notice:
            found.append(delay_candidates(frames[Table.ORDERS], frames[Table.ORDER_EVENTS], window, step))
        out = pd.concat(found, ignore_index=True)
    elif isinstance(trigger, BackInStockTrigger):
        out = back_in_stock_candidates(trigger, frames[Table.STOCK_EVENTS], frames[Table.EVENTS], window, step)
    else:
        raise ValueError(f"{campaign.name}: order updates do not plan {trigger.type} triggers")
    known = set(frames[Table.CUSTOMERS]["customer_id"].astype(str))
    return out.loc[out["customer_id"].isin(known).to_numpy()].reset_index(drop=True)


def window_counts(frames: dict[Table, pd.DataFrame], window: UpdateWindow) -> dict[str, int]:
    """Count the rows in the window the run read: order events and stock events."""
    return {
        Table.ORDER_EVENTS.value: int(_in_window(frames[Table.ORDER_EVENTS]["at"], window).sum()),
        Table.STOCK_EVENTS.value: int(_in_window(frames[Table.STOCK_EVENTS]["at"], window).sum()),
    }


# --- gates at a moment ---------------------------------------------------------------------------------------


def at_the_moment(campaign: Campaign, rows: pd.DataFrame, planning: Planning) -> tuple[pd.Series, np.ndarray]:
    """The order-updates send time (gate 4): now; inside the customer's quiet hours, deferred to their end.

    Transactional email goes at any hour; an SMS copy and marketing wait (``deferred``, ``quiet_hours``).
    """
    stamp = pd.Timestamp(as_utc(planning.sending_at))
    ends = quiet_until(stamp.to_pydatetime(), rows["timezone"], rows["country"], planning.rules)
    exempt = campaign.kind is MessageKind.TRANSACTIONAL
    defer = ~(exempt & (rows["channel"] == Channel.EMAIL.value)).to_numpy() & (ends > stamp).to_numpy()
    send_at = ends.where(pd.Series(defer, index=rows.index), stamp)
    return send_at, np.asarray(defer, dtype=bool)


def not_itself(history: pd.DataFrame, own: pd.DataFrame) -> pd.DataFrame:
    """Drop the history entries that are this run's own messages, planned by an earlier run (the overlap)."""
    columns = ["customer_id", "campaign", "occurrence"]
    keys = own[columns].astype(str).drop_duplicates()
    marked = history.merge(keys, on=columns, how="left", indicator=True)
    return history.loc[(marked["_merge"] == "left_only").to_numpy()].reset_index(drop=True)


def plan_updates(
    campaigns: dict[str, Campaign],
    frames: dict[Table, pd.DataFrame],
    window: UpdateWindow,
    suppressed: Suppressed,
    rules: DeliveryRules,
    already: Callable[[pd.Series], set[str]],
    history: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Plan the window through the planner's gates. Returns the plan and the candidates per campaign.

    The plan has the planner's columns plus ``at``, the moment of the event behind each row (the planned
    moment lateness is judged from). ``already``: the keys the ledger holds as sent or failed for good.
    Order updates run many times a day: the budget counts what earlier runs planned today, except this
    run's own messages (the overlap plans them again; the ledger makes them duplicates).
    """
    batches = [(campaign, update_candidates(campaign, frames, window)) for campaign in campaigns.values()]
    counts = {campaign.name: len(candidates) for campaign, candidates in batches}
    own = [c[["customer_id", "occurrence"]].assign(campaign=campaign.name) for campaign, c in batches]
    planning = Planning(
        as_of=window.as_of,
        sending_at=window.sends_at,
        rules=rules,
        catalog=campaigns,
        suppressed=suppressed,
        history=not_itself(history, pd.concat(own, ignore_index=True)) if own else history,
        already=already,
        schedule=at_the_moment,
    )
    plan = plan_candidates(batches, frames[Table.CUSTOMERS], planning)
    if "at" not in plan.columns:
        plan = plan.assign(at=pd.Series(dtype="datetime64[ns, UTC]"))
    return plan, counts


# --- where runs keep their files -----------------------------------------------------------------------------


def updates_paths(output_dir: Path, now: datetime, run_id: str, shop_timezone: str) -> RunPaths:
    """Return one run's folder: ``<output>/updates/<shop date>/<HHMMSS shop time>-<run id, 8 chars>/``."""
    local = as_utc(now).astimezone(ZoneInfo(shop_timezone))
    return RunPaths(output_dir / UPDATES_FOLDER / local.date().isoformat() / f"{local:%H%M%S}-{run_id[:8]}")


def updates_lock(settings: Settings, on_wait: Callable[[], None] = lambda: None) -> AbstractContextManager[None]:
    """Hold order updates for one run at a time: the watermark is read and written under this lock."""
    return RunPaths(settings.output_dir / UPDATES_FOLDER).exclusive(on_wait)


class UpdatesPlan(BaseModel):
    """What a run planned: events read, candidates, decisions, and the shards to render and send."""

    events_read: dict[str, int]
    candidates: dict[str, int]
    decisions: PlanSummary

    @property
    def shards(self) -> list[int]:
        """Every shard, in sending order."""
        return self.decisions.shards


class UpdatesSummary(BaseModel):
    """What one order-updates run did, in counts: never an address or a name."""

    now: datetime
    window_start: datetime
    dry_run: bool
    replay: bool = False
    events_read: dict[str, int]
    candidates: dict[str, int]
    planned: int
    to_send: int
    sent: int
    sent_by_channel: dict[str, int]
    delivery: dict[str, int]
    deferred_by_reason: dict[str, int]
    skipped_by_reason: dict[str, int]
    watermark_before: datetime | None
    watermark_after: datetime | None
    pending_from: datetime | None
    run_dir: str | None

    def headline(self) -> str:
        """Return the one line that says what happened."""
        events = sum(self.events_read.values())
        if self.dry_run:
            return f"DRY RUN: nothing was sent. {self.to_send} messages rendered from {events} events."
        owed = f"; owed from {self.pending_from:%Y-%m-%d %H:%M} UTC" if self.pending_from else ""
        deferred = sum(self.deferred_by_reason.values())
        if self.replay:
            return f"Replayed the window: sent {self.sent} order updates from {events} events ({deferred} deferred)."
        return f"Sent {self.sent} order updates from {events} events ({deferred} deferred){owed}."


@task(cache_policy=NO_CACHE)
def open_window(settings: Settings, now: datetime, overlap_minutes: int, first_lookback_hours: int) -> UpdateWindow:
    """Read the watermark and return the window of events this run looks at."""
    before = read_watermark(open_state(settings).watermarks)
    return update_window(
        before, now, timedelta(minutes=overlap_minutes), timedelta(hours=first_lookback_hours), settings.shop_timezone
    )


@task(cache_policy=NO_CACHE)
def open_replay_window(settings: Settings, start: datetime | None, end: datetime | None, now: datetime) -> UpdateWindow:
    """Return a replayed window of events, sending now; the watermark is not read."""
    return replay_window(start, end, now, settings.shop_timezone)


@task(cache_policy=NO_CACHE)
def plan_order_updates(paths: RunPaths, window: UpdateWindow, settings: Settings, dry_run: bool) -> UpdatesPlan:
    """Decide which order updates and back-in-stock notices go out now, and cut them into shards."""
    campaigns = update_campaigns(load_catalog(settings.campaigns_dir))
    tables = (Table.CUSTOMERS, Table.ORDERS, Table.ORDER_EVENTS, Table.EVENTS, Table.STOCK_EVENTS)
    frames = visible_at({t: read_table(paths, t) for t in tables}, window.sends_at)
    plan, candidates = plan_updates(
        campaigns,
        frames,
        window,
        current_suppressions(SuppressionList.for_settings(settings)),
        delivery_rules(settings),
        ledger_lookup(settings),
        marketing_history(settings.output_dir, window.as_of, store=open_state(settings).history),
    )
    people = message_people(frames[Table.CUSTOMERS], None)
    # the history keeps only the marketing a real run sends (below), as the run folder's marketing file does
    decisions = commit_shards(plan, people, paths, settings, campaigns, history=False)
    marketing = plan.loc[(plan["decision"] == Decision.SEND.value) & (plan["kind"] == MessageKind.MARKETING.value)]
    if not dry_run and not marketing.empty:
        sent = marketing.drop_duplicates(["customer_id", "campaign", "step", "occurrence"])
        sent[["customer_id", "campaign", "occurrence"]].assign(day=pd.Timestamp(window.as_of)).to_parquet(
            paths.plan.parent / MARKETING_FILE, index=False
        )
        # the same rows as the marketing file reads as (step 1, on the run's day), so one counts once
        kept = sent[["customer_id", "campaign", "occurrence"]].assign(
            step=1, kind=MessageKind.MARKETING.value, decision=Decision.SEND.value
        )
        record_history(open_state(settings).history, kept, paths.plan.parent / MARKETING_FILE, window.as_of)
    events = window_counts(frames, window)
    get_run_logger().info(
        "order updates: %d order events and %d stock events in the window, %d candidates, %d to send",
        events[Table.ORDER_EVENTS.value],
        events[Table.STOCK_EVENTS.value],
        sum(candidates.values()),
        int((plan["decision"] == Decision.SEND.value).sum()),
    )
    return UpdatesPlan(
        events_read=events,
        candidates=candidates,
        decisions=decisions,
    )


@task(cache_policy=NO_CACHE)
def advance_watermark(paths: RunPaths, plan: UpdatesPlan, window: UpdateWindow, settings: Settings) -> Watermark:
    """Move the watermark to the window's end, keeping the earliest event still owed a message."""
    files = [paths.delivery_shard(s) for s in plan.shards if paths.delivery_shard(s).exists()]
    outcomes = (
        pd.concat([pd.read_parquet(f, columns=["key", "outcome"]) for f in files], ignore_index=True)
        if files
        else pd.DataFrame({"key": pd.Series(dtype=object), "outcome": pd.Series(dtype=object)})
    )
    planned = pd.read_parquet(paths.plan) if paths.plan.exists() else pd.DataFrame(columns=[*PLAN_COLUMNS, "at"])
    mark = next_watermark(window, owed_since(planned, outcomes))
    write_watermark(open_state(settings).watermarks, mark)
    return mark


@task(cache_policy=NO_CACHE)
def summarise_updates(
    paths: RunPaths,
    plan: UpdatesPlan,
    window: UpdateWindow,
    after: Watermark | None,
    delivery: dict[str, int],
    dry_run: bool,
) -> UpdatesSummary:
    """Count what the run did, write ``summary.json`` and the outbox index, and drop the run's copy of the tables."""
    before = window.before
    mark = after or before  # a dry run leaves the watermark where it was
    summary = UpdatesSummary(
        now=window.end,
        window_start=window.start,
        dry_run=dry_run,
        replay=window.replay,
        events_read=plan.events_read,
        candidates=plan.candidates,
        planned=plan.decisions.planned,
        to_send=plan.decisions.to_send,
        sent=delivery.get(DeliveryOutcome.SENT, 0),
        sent_by_channel=sent_by_channel(paths, plan.shards),
        delivery=dict(sorted(delivery.items())),
        deferred_by_reason=plan.decisions.deferred_by_reason,
        skipped_by_reason=plan.decisions.skipped_by_reason,
        watermark_before=before.processed_until if before else None,
        watermark_after=mark.processed_until if mark else None,
        pending_from=mark.pending_from if mark else None,
        run_dir=str(paths.root),
    )
    shutil.rmtree(paths.table(Table.CUSTOMERS).parent, ignore_errors=True)
    if plan.decisions.planned == 0:
        shutil.rmtree(paths.root, ignore_errors=True)  # nothing to audit: no folder every few minutes
        summary = summary.model_copy(update={"run_dir": None})
    else:
        if plan.shards:
            write_index(
                paths.outbox, collect_outbox(paths, plan.shards), f"Order updates at {window.end:%Y-%m-%d %H:%M} UTC"
            )
        paths.summary.write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return summary
