"""The campaigns of the segments with a purpose, played day by day on small shops as ``loyalty simulate`` does:
``first_order`` (never_bought), ``at_risk_nudge`` (at_risk) and ``champions_review`` (champions).

Each reaches the right customer on the right day, once per occurrence, and nobody on the days after.
Holdouts are switched off so that the hash of a test's customer id decides nothing.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from tasks.data.contract import SPECS
from tasks.data.sources import load_raw
from tasks.data.validation import validate_snapshot
from tasks.kernel.enums import Table
from tasks.kernel.settings import PROJECT_ROOT, Settings
from tasks.plan.campaigns import load_catalog
from tasks.plan.simulate import simulate
from tasks.plan.triggers import ShopData, occurrences
from tasks.profile.features import build_profile
from tests.shops import add_rows, tiny_shop, write_shop

CATALOG = {n: c.model_copy(update={"holdout_share": 0.0}) for n, c in load_catalog(PROJECT_ROOT / "campaigns").items()}
KEY = b"segment-campaigns-test-key"


def _person(customer_id: str, signed_up: str = "2025-06-01") -> dict[str, str]:
    return {
        "customer_id": customer_id,
        "email": f"{customer_id.lower()}@example.com",
        "first_name": "Test",
        "gender": "f",
        "locale": "pl",
        "timezone": "Europe/Warsaw",
        "country": "PL",
        "created_at": f"{signed_up}T10:00:00Z",
        "email_opt_in": "true",
        "email_opt_in_at": f"{signed_up}T10:00:00Z",
        "sms_opt_in": "false",
    }


def _orders(customer_id: str, *days: str, status: str = "delivered") -> list[dict[str, str]]:
    return [
        {
            "order_id": f"{customer_id}-{n}",
            "customer_id": customer_id,
            "created_at": f"{day}T12:00:00Z",
            "status": status,
            "total": "20",
            "currency": "PLN",
        }
        for n, day in enumerate(days)
    ]


def _shop(people: list[dict[str, str]], orders: list[dict[str, str]] | None = None) -> dict[Table, pd.DataFrame]:
    """The tiny shop's catalog with only these customers and orders."""
    frames = {t: f.iloc[0:0] if t is not Table.PRODUCTS else f for t, f in tiny_shop().items()}
    frames[Table.CUSTOMERS] = pd.DataFrame(columns=[c.name for c in SPECS[Table.CUSTOMERS].columns])
    frames = add_rows(frames, Table.CUSTOMERS, people)
    return add_rows(frames, Table.ORDERS, orders) if orders else frames


def _sent(
    tmp_path: Path,
    frames: dict[Table, pd.DataFrame],
    start: date,
    end: date,
    *names: str,
    settings: Settings | None = None,
) -> list[tuple[str, str, str, int]]:
    """(customer, campaign, day, step) of every message sent from ``start`` to ``end``, in order."""
    raw = load_raw(str(write_shop(frames, tmp_path / "shop")))
    rows = simulate(raw, {n: CATALOG[n] for n in names}, start, end, settings or Settings(), KEY)
    sent = rows.loc[rows["decision"] == "send"]
    return sorted(zip(sent["customer_id"], sent["campaign"], sent["date"], sent["step"], strict=True))


# --- first_order -----------------------------------------------------------------------------------------------


def test_a_sign_up_without_an_order_gets_the_coupon_a_week_later_and_one_reminder_a_week_after(
    tmp_path: Path,
) -> None:
    frames = _shop([_person("N1", signed_up="2026-03-02")])

    sent = _sent(tmp_path, frames, date(2026, 3, 6), date(2026, 3, 20), "first_order")

    assert sent == [("N1", "first_order", "2026-03-09", 1), ("N1", "first_order", "2026-03-16", 2)]


def test_first_order_and_welcome_never_reach_a_customer_on_one_day(tmp_path: Path) -> None:
    # E1 orders on day 3 (welcome only); L1 orders on day 10, after the coupon and before the reminder;
    # X1's only order is cancelled: welcomed on it, so no first-order coupon either
    frames = _shop(
        [_person(c, signed_up="2026-03-02") for c in ("E1", "L1", "X1")],
        [*_orders("E1", "2026-03-05"), *_orders("L1", "2026-03-12"), *_orders("X1", "2026-03-04", status="cancelled")],
    )

    sent = _sent(tmp_path, frames, date(2026, 3, 1), date(2026, 3, 17), "first_order", "welcome")

    assert [s for s in sent if s[3] == 1] == [
        ("E1", "welcome", "2026-03-05", 1),
        ("L1", "first_order", "2026-03-09", 1),
        ("L1", "welcome", "2026-03-12", 1),
        ("X1", "welcome", "2026-03-04", 1),
    ]
    assert ("L1", "first_order", "2026-03-16", 2) not in sent  # the order ended the series


# --- at_risk_nudge ---------------------------------------------------------------------------------------------


def test_a_buyer_late_against_their_own_rhythm_is_nudged_once_on_the_day_they_become_at_risk(
    tmp_path: Path,
) -> None:
    # R1 buys every 20 days, floored to 30: past 45 days on 8 March; R2 does too but buys again on 5 March
    # (a new gap: overdue in April); O1 bought once and has no rhythm yet
    frames = _shop(
        [_person(c) for c in ("R1", "R2", "O1")],
        [
            *_orders("R1", "2026-01-01", "2026-01-21"),
            *_orders("R2", "2026-01-01", "2026-01-21", "2026-03-05"),
            *_orders("O1", "2026-01-21"),
        ],
    )

    sent = _sent(tmp_path, frames, date(2026, 3, 1), date(2026, 3, 15), "at_risk_nudge")

    assert sent == [("R1", "at_risk_nudge", "2026-03-08", 1)]


def test_the_nudge_day_is_the_day_the_profile_turns_the_customer_at_risk(tmp_path: Path) -> None:
    # with the default settings the trigger and the lifecycle's at_risk stage (the at_risk segment) agree
    raw = load_raw(str(write_shop(_shop([_person("R1")], _orders("R1", "2026-01-01", "2026-01-21")), tmp_path)))

    def tables(day: date) -> dict[Table, pd.DataFrame]:
        return validate_snapshot(raw, day).frames

    def stage(day: date) -> str:
        return str(build_profile(tables(day), day).profile.set_index("customer_id").loc["R1", "lifecycle"])

    as_of = date(2026, 3, 31)
    data = ShopData.from_frames(as_of, {t.value: f for t, f in tables(as_of).items()})
    found = occurrences(CATALOG["at_risk_nudge"].trigger, data, date(2026, 1, 1), date(2026, 12, 31))

    assert [d.date().isoformat() for d in found["occurrence"]] == ["2026-03-08"]
    assert (stage(date(2026, 3, 7)), stage(date(2026, 3, 8))) == ("active", "at_risk")


# --- champions_review ------------------------------------------------------------------------------------------


def test_a_champion_is_asked_for_a_review_on_the_quarters_tuesday_and_not_again_on_the_days_after(
    tmp_path: Path,
) -> None:
    # the shop's own RFM cut points: a champion bought within 7 days (R 5) on 4 days or more (F 4+);
    # ISO week 13 of 2026 has its Tuesday on 24 March. K2 bought often but not lately; K3 lately, not often
    rfm = Settings(rfm_recency_edges=(7, 14, 30, 60), rfm_frequency_edges=(2, 3, 4, 5))
    frames = _shop(
        [_person(c) for c in ("K1", "K2", "K3")],
        [
            *_orders("K1", "2026-03-02", "2026-03-09", "2026-03-16", "2026-03-22"),
            *_orders("K2", "2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26"),
            *_orders("K3", "2026-03-22"),
        ],
    )

    sent = _sent(tmp_path, frames, date(2026, 3, 22), date(2026, 4, 2), "champions_review", settings=rfm)

    assert sent == [("K1", "champions_review", "2026-03-24", 1)]


def test_champions_are_asked_once_a_quarter_thirteen_weeks_apart() -> None:
    customers = pd.DataFrame({"customer_id": ["K1"]})
    data = ShopData.from_frames(date(2026, 12, 31), {"profile": customers})

    found = occurrences(CATALOG["champions_review"].trigger, data, date(2026, 1, 1), date(2027, 12, 31))

    days = [d.date().isoformat() for d in found["occurrence"]]
    assert days == [
        "2026-03-24",
        "2026-06-23",
        "2026-09-22",
        "2026-12-22",
        "2027-03-30",
        "2027-06-29",
        "2027-09-28",
        "2027-12-28",
    ]
    assert pd.Series(pd.to_datetime(days)).diff().dt.days.dropna().min() >= 91
