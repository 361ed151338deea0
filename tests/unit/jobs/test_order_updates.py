"""Order updates without Prefect or AWS: the window, candidates, the delay notice, back in stock, quiet hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tasks.data.sources import load_raw
from tasks.data.validation import validate_snapshot
from tasks.jobs.order_updates import (
    WATERMARK_FILE,
    UpdateWindow,
    Watermark,
    next_watermark,
    owed_since,
    plan_updates,
    read_watermark,
    update_campaigns,
    update_window,
    visible_at,
    write_watermark,
)
from tasks.kernel.enums import Table
from tasks.kernel.settings import PROJECT_ROOT
from tasks.plan.campaigns import load_campaign
from tasks.plan.gates import DeliveryRules
from tasks.plan.history import marketing_history, sent_history
from tasks.plan.planner import Suppressed
from tests.shops import add_rows, tiny_shop, write_shop

ORDER_STATUS = load_campaign(PROJECT_ROOT / "campaigns" / "order_status.yaml")
BACK_IN_STOCK = load_campaign(PROJECT_ROOT / "campaigns" / "back_in_stock.yaml")
CAMPAIGNS = update_campaigns({c.name: c for c in (ORDER_STATUS, BACK_IN_STOCK)})
SHOP_TZ = "Europe/Moscow"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _window(start: str, end: str) -> UpdateWindow:
    return UpdateWindow(start=_at(start), end=_at(end), as_of=_at(end).date())


def _shop(
    order_events: list[dict[str, str]] = (),  # type: ignore[assignment]
    orders: list[dict[str, str]] = (),  # type: ignore[assignment]
    events: list[dict[str, str]] = (),  # type: ignore[assignment]
    stock: list[dict[str, str]] = (),  # type: ignore[assignment]
) -> dict[Table, pd.DataFrame]:
    """The tiny shop (C1 ru, C2 pl with SMS opt-in, C3 en without a phone) plus rows; orders may carry a promise."""
    frames = tiny_shop()
    frames[Table.ORDERS] = frames[Table.ORDERS].assign(promised_delivery_at="")
    placed = [
        {"order_id": o, "customer_id": c, "created_at": "2024-05-30T08:00:00Z", "status": "processing"}
        for o, c in (("O10", "C2"), ("O11", "C3"), ("O12", "C1"), ("O13", "C3"), ("O14", "C2"))
    ]
    frames = add_rows(frames, Table.ORDERS, [{"total": "9", "currency": "EUR", **o} for o in [*placed, *orders]])
    frames = add_rows(frames, Table.ORDER_EVENTS, list(order_events))
    frames = add_rows(frames, Table.EVENTS, list(events))
    return add_rows(frames, Table.STOCK_EVENTS, list(stock))


def _tables(tmp_path: Path, frames: dict[Table, pd.DataFrame], now: str) -> dict[Table, pd.DataFrame]:
    """Validate the shop as the flow does (the UTC day of now) and cut it at now."""
    snapshot = validate_snapshot(load_raw(str(write_shop(frames, tmp_path / "shop"))), _at(now).date())
    assert snapshot.quarantine.empty, snapshot.quarantine
    return visible_at(snapshot.frames, _at(now))


def _plan(
    tmp_path: Path,
    frames: dict[Table, pd.DataFrame],
    window: UpdateWindow,
    already: set[str] = frozenset(),  # type: ignore[assignment]
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    tables = _tables(tmp_path, frames, window.end.isoformat())
    if history is None:
        history = marketing_history(tmp_path / "out", window.as_of)
    plan, _ = plan_updates(CAMPAIGNS, tables, window, Suppressed(), DeliveryRules(), lambda keys: set(already), history)
    return plan


def _decisions(plan: pd.DataFrame) -> dict[str, str]:
    return {str(k): f"{d}:{r}" if r else str(d) for k, d, r in plan[["idempotency_key", "decision", "reason"]].values}


# --- the window -----------------------------------------------------------------------------------------------


def test_first_run_looks_back_a_day_and_later_runs_from_the_watermark_less_the_overlap() -> None:
    now = _at("2024-06-01T10:15:00")
    day, overlap = timedelta(hours=24), timedelta(minutes=10)

    first = update_window(None, now, overlap, day, SHOP_TZ)
    later = update_window(Watermark(processed_until=_at("2024-06-01T10:05:00")), now, overlap, day, SHOP_TZ)
    owed = update_window(
        Watermark(processed_until=_at("2024-06-01T10:05:00"), pending_from=_at("2024-05-31T22:30:00")),
        now,
        overlap,
        day,
        SHOP_TZ,
    )

    assert (first.start, first.end) == (now - day, now)
    assert later.start == _at("2024-06-01T09:55:00")
    assert owed.start == _at("2024-05-31T22:20:00")  # a message still owed is looked at again
    assert later.as_of == date(2024, 6, 1)
    assert update_window(None, _at("2024-06-01T22:00:00"), overlap, day, SHOP_TZ).as_of == date(2024, 6, 2)  # Moscow


def test_candidates_are_the_listed_statuses_of_events_inside_the_window_and_not_after_now(tmp_path: Path) -> None:
    frames = _shop(
        order_events=[
            {"order_id": "O10", "status": "paid", "at": "2024-06-01T09:30:00Z"},  # before the window
            {"order_id": "O10", "status": "shipped", "at": "2024-06-01T09:58:00Z"},  # in the overlap
            {"order_id": "O11", "status": "delivered", "at": "2024-06-01T10:07:00Z"},
            {"order_id": "O12", "status": "cancelled", "at": "2024-06-01T10:08:00Z"},  # not a listed status
            {"order_id": "O13", "status": "paid", "at": "2024-06-01T10:20:00Z"},  # after now: not yet seen
        ]
    )
    window = update_window(
        Watermark(processed_until=_at("2024-06-01T10:05:00")),
        _at("2024-06-01T10:15:00"),
        timedelta(minutes=10),
        timedelta(hours=24),
        SHOP_TZ,
    )

    plan = _plan(tmp_path, frames, window)

    assert _decisions(plan) == {
        "order/O10/shipped/email": "send",
        "order/O10/shipped/sms": "send",  # C2 agreed to SMS
        "order/O11/delivered/email": "send",
        "order/O11/delivered/sms": "skipped:invalid_phone",  # C3 has no phone
    }
    assert set(plan.loc[plan["decision"] == "send", "send_at"]) == {pd.Timestamp(window.end)}  # now, not 10:00 local
    assert set(plan["occurrence"]) == {"2024-06-01"}


def test_an_sms_copy_needs_sms_consent_and_suppression_wins(tmp_path: Path) -> None:
    frames = _shop(order_events=[{"order_id": "O12", "status": "paid", "at": "2024-06-01T10:01:00Z"}])
    frames[Table.CUSTOMERS].loc[0, "phone"] = "+79123456700"  # C1 has a phone but no SMS opt-in

    plan = _plan(tmp_path, frames, _window("2024-06-01T10:00:00", "2024-06-01T10:15:00"))

    assert _decisions(plan) == {"order/O12/paid/email": "send", "order/O12/paid/sms": "skipped:no_consent"}


# --- the delay notice -----------------------------------------------------------------------------------------


def test_a_broken_promise_gets_one_delay_notice_unless_the_order_is_settled(tmp_path: Path) -> None:
    frames = _shop(
        order_events=[
            {"order_id": "O10", "status": "shipped", "at": "2024-05-31T09:00:00Z"},
            {"order_id": "O11", "status": "delivered", "at": "2024-06-01T10:10:00Z"},  # late, but here by now
        ]
    )
    promises = {"O10": "2024-06-01T10:03:00Z", "O11": "2024-06-01T10:04:00Z", "O12": "2024-06-01T10:20:00Z"}
    orders = frames[Table.ORDERS]
    orders["promised_delivery_at"] = orders["order_id"].map(promises).fillna("")
    first = _window("2024-06-01T10:00:00", "2024-06-01T10:15:00")
    overlapping = _window("2024-06-01T10:02:00", "2024-06-01T10:16:00")
    later = _window("2024-06-01T10:06:00", "2024-06-01T10:19:00")

    def late(plan: pd.DataFrame) -> pd.DataFrame:
        return plan.loc[plan["detail"].str.endswith(" late")]

    sent = late(_plan(tmp_path, frames, first))
    again = late(
        _plan(tmp_path, frames, overlapping, already=set(sent.loc[sent["decision"] == "send", "idempotency_key"]))
    )
    after = late(_plan(tmp_path, frames, later))

    assert _decisions(sent) == {"order/O10/late/email": "send", "order/O10/late/sms": "send"}
    assert sent["detail"].unique().tolist() == ["O10 late"]
    assert _decisions(again) == {
        "order/O10/late/email": "skipped:duplicate",
        "order/O10/late/sms": "skipped:duplicate",
    }
    assert after.empty  # the promise was broken before this window; O12's is not broken yet


# --- back in stock -----------------------------------------------------------------------------------------


def _restock(extra_stock: list[dict[str, str]] = ()) -> dict[Table, pd.DataFrame]:  # type: ignore[assignment]
    """P2 is out of stock from 1 March (tiny shop) and back on 1 June 10:05; who wanted it, and when."""
    return _shop(
        events=[
            {"customer_id": "C1", "product_id": "P2", "type": "view", "at": "2024-05-20T12:00:00Z"},  # yes
            {"customer_id": "C2", "product_id": "P2", "type": "wishlist_add", "at": "2024-02-15T12:00:00Z"},
            {"customer_id": "C2", "product_id": "P2", "type": "review", "at": "2024-05-25T12:00:00Z", "rating": "4"},
            {"customer_id": "C3", "product_id": "P2", "type": "cart_add", "at": "2024-04-10T12:00:00Z"},
            {"customer_id": "C3", "product_id": "P1", "type": "view", "at": "2024-05-28T12:00:00Z"},
        ],
        stock=[{"product_id": "P2", "in_stock": "true", "at": "2024-06-01T10:05:00Z"}, *extra_stock],
    )


def test_back_in_stock_reaches_who_wanted_it_while_it_was_out_and_recently(tmp_path: Path) -> None:
    plan = _plan(tmp_path, _restock(), _window("2024-06-01T10:00:00", "2024-06-01T10:15:00"))

    # C2 wished for it before it ran out, and only reviewed it since; C3 carted it 52 days before it came back
    assert _decisions(plan) == {"back_in_stock/1/email/C1/2024-06-01": "send"}
    assert plan["detail"].tolist() == ["P2"]  # the message shows the product


def test_back_in_stock_says_nothing_if_it_sold_out_again_or_came_back_outside_the_window(tmp_path: Path) -> None:
    gone = _restock([{"product_id": "P2", "in_stock": "false", "at": "2024-06-01T10:10:00Z"}])

    assert _plan(tmp_path, gone, _window("2024-06-01T10:00:00", "2024-06-01T10:15:00")).empty
    assert _plan(tmp_path, _restock(), _window("2024-06-01T10:06:00", "2024-06-01T10:20:00")).empty


def test_back_in_stock_waits_when_the_customer_had_todays_marketing_message(tmp_path: Path) -> None:
    window = _window("2024-06-01T10:00:00", "2024-06-01T10:15:00")
    daily = pd.DataFrame(
        [["C1", "win_back", 1, "2024-05-01", "marketing", "send"]],
        columns=["customer_id", "campaign", "step", "occurrence", "kind", "decision"],
    )
    todays = sent_history(daily, window.as_of).assign(occurrence="")
    own = pd.DataFrame(
        [["C1", "back_in_stock", 1, "2024-06-01", "marketing", "send", pd.Timestamp("2024-06-01")]],
        columns=["customer_id", "campaign", "step", "occurrence", "kind", "decision", "day"],
    )

    capped = _plan(tmp_path, _restock(), window, history=todays)
    itself = _plan(tmp_path, _restock(), window, history=own)  # planned by an earlier run: not its own rival

    assert _decisions(capped) == {"back_in_stock/1/email/C1/2024-06-01": "deferred:frequency_cap"}
    assert _decisions(itself) == {"back_in_stock/1/email/C1/2024-06-01": "send"}


# --- quiet hours at the moment of sending -----------------------------------------------------------------


def test_at_night_order_email_goes_now_and_sms_and_marketing_wait_for_the_morning(tmp_path: Path) -> None:
    # P2 sells out again at noon; C1 looks at it in the afternoon; it is back at night
    frames = _restock(
        [
            {"product_id": "P2", "in_stock": "false", "at": "2024-06-01T12:00:00Z"},
            {"product_id": "P2", "in_stock": "true", "at": "2024-06-01T22:31:00Z"},
        ]
    )
    frames = add_rows(
        frames, Table.EVENTS, [{"customer_id": "C1", "product_id": "P2", "type": "view", "at": "2024-06-01T15:00:00Z"}]
    )
    frames = add_rows(frames, Table.ORDER_EVENTS, [{"order_id": "O10", "status": "paid", "at": "2024-06-01T22:30:00Z"}])
    night = _window("2024-06-01T22:00:00", "2024-06-01T22:35:00")  # Warsaw 00:35, Moscow 01:35

    plan = _plan(tmp_path, frames, night).set_index("idempotency_key")

    assert plan.loc["order/O10/paid/email", "decision"] == "send"
    assert plan.loc["order/O10/paid/email", "send_at"] == pd.Timestamp(night.end)
    sms = plan.loc["order/O10/paid/sms"]
    assert (sms["decision"], sms["reason"]) == ("deferred", "quiet_hours")
    assert sms["send_at"] == pd.Timestamp("2024-06-02T07:00:00Z")  # 09:00 in Warsaw (CEST)
    marketing = plan.loc["back_in_stock/1/email/C1/2024-06-01"]
    assert (marketing["decision"], marketing["send_at"]) == ("deferred", pd.Timestamp("2024-06-02T06:00:00Z"))


# --- the watermark ------------------------------------------------------------------------------------------


def test_the_watermark_is_replaced_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / WATERMARK_FILE
    assert read_watermark(path) is None

    write_watermark(path, Watermark(processed_until=_at("2024-06-01T10:00:00")))
    write_watermark(
        path, Watermark(processed_until=_at("2024-06-01T10:05:00"), pending_from=_at("2024-06-01T09:00:00"))
    )

    assert read_watermark(path) == Watermark(
        processed_until=_at("2024-06-01T10:05:00"), pending_from=_at("2024-06-01T09:00:00")
    )
    # the mark and its order (what a later write is compared with), no temporary file
    assert sorted(p.name for p in path.parent.iterdir()) == [f".{WATERMARK_FILE}.order", WATERMARK_FILE]


def test_a_watermark_never_moves_backwards(tmp_path: Path) -> None:
    path = tmp_path / "state" / WATERMARK_FILE
    write_watermark(path, Watermark(processed_until=_at("2024-06-01T10:05:00")))

    # another host, with a window it opened earlier, finishes later
    stored = write_watermark(path, Watermark(processed_until=_at("2024-06-01T10:00:00")))

    assert stored is False
    assert read_watermark(path) == Watermark(processed_until=_at("2024-06-01T10:05:00"))


@pytest.mark.parametrize(
    ("decision", "outcome", "kind", "owed"),
    [
        ("send", "sent", "transactional", None),
        ("send", "held_quiet_hours", "transactional", "2024-06-01T09:58:00"),
        ("send", "retry_later", "transactional", "2024-06-01T09:58:00"),
        ("deferred", None, "transactional", "2024-06-01T09:58:00"),
        ("skipped", None, "transactional", None),
        # a lost answer: an order update is sent again (at least once), a back-in-stock offer never is
        ("send", "unknown", "transactional", "2024-06-01T09:58:00"),
        ("send", "unknown", "marketing", None),
    ],
)
def test_a_message_still_owed_keeps_its_event_in_the_next_window(
    decision: str, outcome: str | None, kind: str, owed: str | None
) -> None:
    plan = pd.DataFrame(
        {
            "idempotency_key": ["order/O1/paid/sms", "order/O2/paid/email"],
            "decision": [decision, "send"],
            "kind": [kind, "transactional"],
            "at": pd.to_datetime(["2024-06-01T09:58:00Z", "2024-06-01T10:01:00Z"], utc=True),
        }
    )
    outcomes = pd.DataFrame(
        {"key": ["order/O1/paid/sms", "order/O2/paid/email"], "outcome": [outcome or "none", "sent"]}
    )
    window = _window("2024-06-01T09:55:00", "2024-06-01T10:05:00")

    mark = next_watermark(window, owed_since(plan, outcomes))

    assert mark.processed_until == window.end
    assert mark.pending_from == (_at(owed) if owed else None)


def test_a_run_with_an_earlier_now_never_moves_the_watermark_back() -> None:
    before = Watermark(processed_until=_at("2024-06-01T10:05:00"), pending_from=_at("2024-06-01T10:04:00"))
    window = update_window(before, _at("2024-06-01T09:00:00"), timedelta(minutes=10), timedelta(hours=1), SHOP_TZ)

    assert window.start == window.end  # nothing to look at
    assert next_watermark(window, None) == before


def test_a_replayed_window_looks_at_the_past_and_sends_now_whatever_the_watermark() -> None:
    from tasks.jobs.order_updates import replay_window

    now = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
    window = replay_window(datetime(2024, 6, 1, 8, 0), datetime(2024, 6, 1, 12, 0, tzinfo=UTC), now, "Europe/Warsaw")

    assert (window.start, window.end) == (
        datetime(2024, 6, 1, 8, 0, tzinfo=UTC),
        datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
    )
    assert window.replay and window.sends_at == now and window.before is None
    assert window.as_of == date(2024, 6, 3)  # the budget counts the day it sends on
    assert replay_window(datetime(2024, 6, 3, 8, 0, tzinfo=UTC), None, now, "Europe/Warsaw").end == now
    with pytest.raises(ValueError, match="before it starts"):
        replay_window(now, now - timedelta(hours=1), now, "Europe/Warsaw")
    with pytest.raises(ValueError, match="after now"):
        replay_window(now - timedelta(hours=1), now + timedelta(hours=1), now, "Europe/Warsaw")
    with pytest.raises(ValueError, match="needs its start"):
        replay_window(None, now, now, "Europe/Warsaw")
