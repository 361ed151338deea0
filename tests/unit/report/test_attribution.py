"""Holdout attribution: which messages count, which orders count, and the uplift's interval."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.data.contract import SPECS
from tasks.kernel.enums import Table
from tasks.report.attribution import (
    CampaignAttribution,
    attribute,
    attribution_records,
    newcombe_interval,
    read_coupons,
    read_plans,
)
from tests.shops import tiny_shop, write_shop

SENT_AT = pd.Timestamp("2026-03-02 10:00", tz="UTC")
DAY = pd.Timedelta(days=1)
Z = 1.959963984540054


def _plan(
    customers: list[str],
    decision: str = "send",
    at: pd.Timestamp = SENT_AT,
    campaign: str = "win_back",
    step: int = 1,
    channel: str = "email",
    kind: str = "marketing",
    occurrence: str = "2026-03-02",
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "idempotency_key": [f"{campaign}/{step}/{channel}/{c}/{occurrence}" for c in customers],
            "customer_id": customers,
            "campaign": campaign,
            "step": step,
            "channel": channel,
            "kind": kind,
            "occurrence": occurrence,
            "decision": decision,
            "reason": "holdout" if decision == "holdout" else "",
            "send_at": pd.Series([at] * len(customers), dtype="datetime64[ns, UTC]"),
            "priority": 60,
        }
    )


def _orders(*rows: tuple[str, pd.Timestamp, float] | tuple[str, pd.Timestamp, float, str]) -> pd.DataFrame:
    """Orders as (customer, created_at, total[, status]); every order is delivered unless told."""
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "order_id": [f"O{i}" for i in range(len(rows))],
            "created_at": pd.Series([r[1] for r in rows], dtype="datetime64[ns, UTC]"),
            "status": [r[3] if len(r) == 4 else "delivered" for r in rows],
            "total": [r[2] for r in rows],
        }
    )


def _one(plans: pd.DataFrame, orders: pd.DataFrame, **kwargs) -> CampaignAttribution:  # type: ignore[no-untyped-def]
    rows = attribution_records(attribute(plans, orders, **kwargs))
    assert len(rows) == 1
    return rows[0]


def _wilson(x: int, n: int) -> tuple[float, float]:
    # Newcombe 1998, method 3: (2np + z² ± z√(z² + 4np(1-p))) / (2(n + z²))
    p = x / n
    root = Z * math.sqrt(Z * Z + 4 * n * p * (1 - p))
    return (2 * n * p + Z * Z - root) / (2 * (n + Z * Z)), (2 * n * p + Z * Z + root) / (2 * (n + Z * Z))


def test_uplift_is_the_sent_rate_minus_the_holdout_rate_with_newcombes_interval() -> None:
    # given 100 sent messages of which 30 lead to an order two days later, and 50 held out of which 10 do
    treated, held = [f"T{i}" for i in range(100)], [f"H{i}" for i in range(50)]
    plans = pd.concat([_plan(treated), _plan(held, "holdout")], ignore_index=True)
    orders = _orders(*[(c, SENT_AT + 2 * DAY, 10.0) for c in treated[:30] + held[:10]])

    # when
    row = _one(plans, orders)

    # then
    assert (row.sent, row.conversions, row.holdout, row.holdout_conversions) == (100, 30, 50, 10)
    assert row.conversion_rate == pytest.approx(0.30)
    assert row.holdout_rate == pytest.approx(0.20)
    assert row.uplift == pytest.approx(0.10)
    (l1, u1), (l2, u2) = _wilson(30, 100), _wilson(10, 50)
    assert row.uplift_low == pytest.approx(0.10 - math.sqrt((0.30 - l1) ** 2 + (u2 - 0.20) ** 2))
    assert row.uplift_high == pytest.approx(0.10 + math.sqrt((u1 - 0.30) ** 2 + (0.20 - l2) ** 2))
    assert (round(row.uplift_low or 0, 4), round(row.uplift_high or 0, 4)) == (-0.0535, 0.2298)
    assert row.relative_uplift == pytest.approx(0.5)
    assert row.incremental_conversions == pytest.approx(10.0)
    assert (row.revenue, row.revenue_per_message) == pytest.approx((300.0, 3.0))
    assert (row.holdout_revenue, row.holdout_revenue_per_message) == pytest.approx((100.0, 2.0))


def test_newcombe_interval_reproduces_the_papers_worked_examples() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10 (score, no continuity correction)
    assert newcombe_interval(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    assert newcombe_interval(9, 10, 3, 10) == pytest.approx((0.1705, 0.8090), abs=5e-5)


def test_an_order_on_day_six_does_not_count_but_one_at_the_end_of_day_five_does() -> None:
    # given two customers sent a message; one orders exactly 5 days later, the other an hour after that
    plans = _plan(["A", "B"])
    orders = _orders(("A", SENT_AT + 5 * DAY, 20.0), ("B", SENT_AT + 5 * DAY + pd.Timedelta(hours=1), 30.0))

    # when
    row = _one(plans, orders, window_days=5)

    # then
    assert (row.conversions, row.revenue) == (1, 20.0)


def test_a_cancelled_order_is_no_conversion_and_no_revenue() -> None:
    plans = _plan(["A", "B"])
    orders = _orders(
        ("A", SENT_AT + DAY, 20.0, "cancelled"), ("B", SENT_AT + DAY, 30.0), ("B", SENT_AT + DAY, 5.0, "cancelled")
    )

    row = _one(plans, orders)

    assert (row.conversions, row.revenue) == (1, 30.0)


def test_an_order_before_or_at_the_send_does_not_count() -> None:
    plans = _plan(["A", "B"])
    orders = _orders(("A", SENT_AT - pd.Timedelta(minutes=1), 20.0), ("B", SENT_AT, 30.0))

    row = _one(plans, orders)

    assert (row.conversions, row.revenue) == (0, 0.0)


def test_revenue_is_every_order_in_the_window_but_a_message_converts_once() -> None:
    plans = _plan(["A"])
    orders = _orders(("A", SENT_AT + DAY, 20.0), ("A", SENT_AT + 3 * DAY, 5.0), ("A", SENT_AT + 9 * DAY, 99.0))

    row = _one(plans, orders)

    assert (row.sent, row.conversions, row.revenue) == (1, 1, 25.0)


def test_email_and_sms_copies_are_one_message_exposed_at_the_earlier_send() -> None:
    # given the SMS copy goes out a day after the email; the order comes 5 days after the SMS
    plans = pd.concat([_plan(["A"]), _plan(["A"], channel="sms", at=SENT_AT + DAY)], ignore_index=True)
    orders = _orders(("A", SENT_AT + 5 * DAY + pd.Timedelta(hours=1), 20.0))

    row = _one(plans, orders)

    assert (row.sent, row.conversions) == (1, 0)


def test_a_holdout_recorded_on_three_days_counts_once_from_the_first() -> None:
    # given a holdout re-recorded on three daily plans and an order 5.5 days after the first
    plans = pd.concat([_plan(["H"], "holdout", at=SENT_AT + n * DAY) for n in range(3)], ignore_index=True)
    plans = pd.concat([plans, _plan(["T"])], ignore_index=True)
    orders = _orders(("H", SENT_AT + 5 * DAY + pd.Timedelta(hours=12), 20.0))

    row = _one(plans, orders)

    # then it is one control message, and the order is outside its window
    assert (row.holdout, row.holdout_conversions, row.holdout_rate) == (1, 0, 0.0)


def test_a_message_sent_and_held_out_is_treatment() -> None:
    plans = pd.concat([_plan(["A"], "holdout"), _plan(["A"], at=SENT_AT + DAY)], ignore_index=True)

    row = _one(plans, _orders(("A", SENT_AT + 5 * DAY + pd.Timedelta(hours=1), 20.0)))

    assert (row.sent, row.holdout, row.conversions) == (1, 0, 1)


def test_a_deferred_message_is_exposed_when_it_is_finally_sent() -> None:
    # given a message deferred on one day and sent the next; the order is 5.5 days after the deferral
    plans = pd.concat([_plan(["A"], "deferred"), _plan(["A"], at=SENT_AT + DAY)], ignore_index=True)

    row = _one(plans, _orders(("A", SENT_AT + 5 * DAY + pd.Timedelta(hours=12), 20.0)))

    assert (row.sent, row.conversions) == (1, 1)


def test_deferred_skipped_and_transactional_messages_are_in_neither_group() -> None:
    plans = pd.concat(
        [
            _plan(["A"]),
            _plan(["B"], "deferred"),
            _plan(["C"], "skipped"),
            _plan(["D"], kind="transactional"),
            _plan(["E"], "holdout", kind="transactional"),
        ],
        ignore_index=True,
    )

    row = _one(plans, _orders(*[(c, SENT_AT + DAY, 10.0) for c in "ABCDE"]))

    assert (row.sent, row.conversions, row.holdout) == (1, 1, 0)


def test_without_a_holdout_there_is_no_uplift_not_zero() -> None:
    frame = attribute(_plan(["A", "B"]), _orders(("A", SENT_AT + DAY, 10.0)))

    row = attribution_records(frame)[0]

    assert row.conversion_rate == 0.5
    assert row.holdout == 0
    assert (row.holdout_rate, row.uplift, row.uplift_low, row.uplift_high) == (None, None, None, None)
    assert (row.relative_uplift, row.incremental_conversions) == (None, None)
    assert frame["uplift"].isna().all()


def test_a_holdout_that_never_converted_has_an_uplift_but_no_relative_uplift() -> None:
    plans = pd.concat([_plan(["A", "B"]), _plan(["H"], "holdout")], ignore_index=True)

    row = _one(plans, _orders(("A", SENT_AT + DAY, 10.0)))

    assert row.uplift == 0.5
    assert row.relative_uplift is None


def test_each_campaign_gets_its_own_row_and_steps_on_request() -> None:
    plans = pd.concat(
        [
            _plan(["A"], campaign="win_back", step=1),
            _plan(["B"], campaign="win_back", step=2),
            _plan(["C"], "holdout", campaign="win_back", step=2),
            _plan(["D"], campaign="birthday"),
        ],
        ignore_index=True,
    )
    orders = _orders(("B", SENT_AT + DAY, 10.0))

    per_campaign = attribution_records(attribute(plans, orders))
    per_step = attribution_records(attribute(plans, orders, by_step=True))

    assert [(r.campaign, r.step, r.sent, r.holdout) for r in per_campaign] == [
        ("birthday", None, 1, 0),
        ("win_back", None, 2, 1),
    ]
    assert [(r.campaign, r.step, r.sent, r.conversions, r.holdout) for r in per_step] == [
        ("birthday", 1, 1, 0, 0),
        ("win_back", 1, 1, 0, 0),
        ("win_back", 2, 1, 1, 1),
    ]


def test_coupon_redemptions_are_counted_per_campaign() -> None:
    # given two campaigns' codes; orders use them (in any case), cancel one, and use an unknown code
    plans = pd.concat([_plan(["A", "B"], campaign="win_back"), _plan(["C"], campaign="birthday")], ignore_index=True)
    coupons = pd.DataFrame(
        {
            "code": ["BACK-AAAA", "BACK-BBBB", "BDAY-CCCC"],
            "customer_id": ["A", "B", "C"],
            "campaign": ["win_back", "win_back", "birthday"],
            "step": ["1", "1", "1"],
            "occurrence": "2026-03-02",
        }
    )
    orders = _orders(
        ("A", SENT_AT + DAY, 10.0),
        ("B", SENT_AT + DAY, 10.0),
        ("B", SENT_AT + 2 * DAY, 10.0, "cancelled"),
        ("C", SENT_AT + DAY, 10.0),
        ("C", SENT_AT + 2 * DAY, 10.0),
    ).assign(coupon_code=pd.Series([" back-aaaa", "BACK-BBBB", "BACK-BBBB", "NOPE-0000", None], dtype="string"))

    rows = {r.campaign: r for r in attribution_records(attribute(plans, orders, coupons=coupons))}
    without_registry = {r.campaign: r for r in attribution_records(attribute(plans, orders))}

    assert (rows["win_back"].redemptions, rows["birthday"].redemptions) == (2, 0)
    assert (without_registry["win_back"].redemptions, without_registry["birthday"].redemptions) == (None, None)


def test_a_period_counts_only_messages_its_runs_exposed_first() -> None:
    # given a holdout first recorded the day before the period, and messages of the period's day
    before, first = pd.Timestamp("2026-03-01"), pd.Timestamp("2026-03-02")
    plans = pd.concat(
        [
            _plan(["OLD"], "holdout", at=SENT_AT - DAY).assign(day=before),
            _plan(["OLD", "NEW"], "holdout").assign(day=first),
            _plan(["A"]).assign(day=first),
        ],
        ignore_index=True,
    )

    row = _one(plans, _orders(), period=(date(2026, 3, 2), date(2026, 3, 2)))

    assert (row.sent, row.holdout) == (1, 1)


def _write_plan(output: Path, day: str, plan: pd.DataFrame, earlier: int | None = None) -> None:
    folder = output / day / ("earlier/" + str(earlier) if earlier else "") / "plan"
    folder.mkdir(parents=True, exist_ok=True)
    plan.to_parquet(folder / "plan.parquet", index=False)


def test_read_plans_takes_each_days_current_plan_and_ignores_earlier_runs(tmp_path: Path) -> None:
    _write_plan(tmp_path, "2026-03-02", _plan(["A"]))
    _write_plan(tmp_path, "2026-03-02", _plan(["X", "Y"]), earlier=1)
    _write_plan(tmp_path, "2026-03-04", _plan(["B"]))

    plans = read_plans(tmp_path, date(2026, 3, 1), date(2026, 3, 4))

    assert list(plans["customer_id"]) == ["A", "B"]
    assert list(plans["day"].dt.date) == [date(2026, 3, 2), date(2026, 3, 4)]


def test_without_any_coupon_registry_read_coupons_says_none(tmp_path: Path) -> None:
    _write_plan(tmp_path, "2026-03-02", _plan(["A"]))

    assert read_coupons(tmp_path, date(2026, 3, 1), date(2026, 3, 4)) is None


runner = CliRunner()


def _shop_output(tmp_path: Path) -> Path:
    """Two days of win-back plans (C1 sent, C2 and C3 held out over both days) and day two's orders snapshot."""
    output = tmp_path / "out"
    day1 = pd.Timestamp("2026-03-01 10:00", tz="UTC")
    _write_plan(output, "2026-03-01", pd.concat([_plan(["C1"], at=day1), _plan(["C2", "C3"], "holdout", at=day1)]))
    _write_plan(output, "2026-03-02", _plan(["C2", "C3"], "holdout", at=day1 + DAY))
    snapshot = output / "2026-03-02" / "snapshot"
    snapshot.mkdir(parents=True)
    orders = _orders(("C1", day1 + 2 * DAY, 40.0), ("C2", day1 + 3 * DAY, 15.0), ("C3", day1 - DAY, 15.0))
    orders.assign(coupon_code=["BACK-C1CODE", "", ""]).to_parquet(snapshot / "orders.parquet", index=False)
    offers = output / "2026-03-01" / "offers"
    offers.mkdir(parents=True)
    pd.DataFrame(
        [["BACK-C1CODE", "C1", "win_back", 1, "2026-03-02", 15, "2026-03-02", "2026-03-15"]],
        columns=["code", "customer_id", "campaign", "step", "occurrence", "percent_off", "valid_from", "valid_until"],
    ).to_csv(offers / "coupons.csv", index=False)
    return output


def test_cli_prints_the_table_and_writes_json_and_csv_reports(tmp_path: Path) -> None:
    # given two days of plans and the last day's orders snapshot
    output = _shop_output(tmp_path)

    # when
    result = runner.invoke(app, ["attribution", "--output", str(output), "--from", "2026-03-01", "--to", "2026-03-02"])

    # then
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "win_back" in result.stdout
    assert "+50.0 [-39.1, +90.5]" in result.stdout  # 1/1 sent converted, 1/2 held out did
    for customer in ("C1", "C2", "C3"):
        assert customer not in result.stdout + result.stderr
    # the last messages' windows run past the snapshot's day
    assert "orders are known until the end of 2026-03-02: messages from 2026-03-01 on" in result.stderr
    report = json.loads((output / "reports" / "attribution-2026-03-01-2026-03-02.json").read_text())
    assert [(r["campaign"], r["sent"], r["holdout"], r["holdout_conversions"], r["redemptions"]) for r in report] == [
        ("win_back", 1, 2, 1, 1)
    ]
    csv = pd.read_csv(output / "reports" / "attribution-2026-03-01-2026-03-02.csv")
    assert list(csv["campaign"]) == ["win_back"]


def test_cli_json_is_the_list_of_campaign_rows(tmp_path: Path) -> None:
    output = _shop_output(tmp_path)

    result = runner.invoke(
        app, ["attribution", "--output", str(output), "--from", "2026-03-01", "--to", "2026-03-02", "--json"]
    )

    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows[0]["campaign"] == "win_back"
    assert rows[0]["uplift"] == pytest.approx(0.5)
    assert rows[0]["uplift_low"] < 0 < rows[0]["uplift_high"]  # three messages prove nothing


def test_cli_reads_orders_from_the_shops_tables_with_data(tmp_path: Path) -> None:
    # given the tiny shop's tables with an order by C1 two days after its message, carrying its code
    output = _shop_output(tmp_path)
    shop = tiny_shop()
    extra = pd.DataFrame(
        [["O9", "C1", "2026-03-03T10:00:00Z", "paid", "40.00", "EUR"]],
        columns=[c.name for c in SPECS[Table.ORDERS].columns],
    )
    shop[Table.ORDERS] = pd.concat([shop[Table.ORDERS], extra], ignore_index=True).assign(
        coupon_code=["", "", "back-c1code"]
    )
    data = write_shop(shop, tmp_path / "shop")

    result = runner.invoke(
        app,
        ["attribution", "--output", str(output), "--from", "2026-03-01", "--to", "2026-03-02", "--data", str(data)],
        catch_exceptions=False,
    )

    assert result.exit_code == 0, result.stderr
    report = json.loads((output / "reports" / "attribution-2026-03-01-2026-03-02.json").read_text())
    assert [(r["sent"], r["conversions"], r["revenue"], r["redemptions"]) for r in report] == [(1, 1, 40.0, 1)]
    assert "orders are known until" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-04-01", "--to", "2026-04-30"], "no plans from 2026-04-01 to 2026-04-30"),
        (["--from", "2026-03-32", "--to", "2026-04-30"], "--from '2026-03-32' is not a date (YYYY-MM-DD)"),
        (["--from", "2026-03-02", "--to", "2026-03-01"], "--from 2026-03-02 is after --to 2026-03-01"),
    ],
)
def test_cli_refuses_in_one_line_with_exit_code_2(tmp_path: Path, args: list[str], message: str) -> None:
    output = _shop_output(tmp_path)

    result = runner.invoke(app, ["attribution", "--output", str(output), *args])

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1


# --- subject variants (an ad-hoc campaign's A/B test) -------------------------------------------------------------


def test_each_subject_variant_gets_its_rate_and_its_difference_from_a_with_the_holdout_s_interval(
    tmp_path: Path,
) -> None:
    from tasks.kernel.paths import RunPaths
    from tasks.report.attribution import attribute_variants, read_adhoc_plans, wilson_interval

    a = [f"A{i:03d}" for i in range(100)]
    b = [f"B{i:03d}" for i in range(100)]
    plan = pd.concat(
        [
            _plan(a, campaign="adhoc_spring").assign(variant="A"),
            _plan(b, campaign="adhoc_spring").assign(variant="B"),
            _plan(["H1"], decision="holdout", campaign="adhoc_spring").assign(variant="A"),  # not sent: not counted
        ],
        ignore_index=True,
    )
    paths = RunPaths(root=tmp_path / "adhoc" / "spring" / "2026-03-02")  # where an ad-hoc campaign's day lives
    paths.plan.parent.mkdir(parents=True)
    plan.to_parquet(paths.plan, index=False)
    # 30 of A's customers order within the window, 12 of B's; one more of B's orders too late
    orders = _orders(
        *[(c, SENT_AT + DAY, 50.0) for c in a[:30]],
        *[(c, SENT_AT + DAY, 40.0) for c in b[:12]],
        (b[50], SENT_AT + 9 * DAY, 40.0),
    )

    rows = attribute_variants(read_adhoc_plans(tmp_path, date(2026, 3, 2), date(2026, 3, 2)), orders, 5)

    assert [(r.campaign, r.variant, r.sent, r.conversions) for r in rows] == [
        ("adhoc_spring", "A", 100, 30),
        ("adhoc_spring", "B", 100, 12),
    ]
    first, second = rows
    assert (first.rate_low, first.rate_high) == pytest.approx(wilson_interval(30, 100))
    assert first.vs_first is None and second.revenue == pytest.approx(480.0)
    assert second.vs_first == pytest.approx(0.12 - 0.30)
    assert (second.vs_first_low, second.vs_first_high) == pytest.approx(newcombe_interval(12, 100, 30, 100))
    assert second.vs_first_high is not None and second.vs_first_high < 0  # B's subject did worse, beyond chance
    assert read_adhoc_plans(tmp_path, date(2026, 3, 3), date(2026, 3, 3)).empty
