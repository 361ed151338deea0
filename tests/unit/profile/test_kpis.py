"""The loyalty KPIs of a day, the traffic alert's threshold and the KPI markdown."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tasks.profile.kpis import compute_kpis, daily_counts, kpi_markdown, retention_cohorts, traffic_alert

AS_OF = date(2026, 6, 30)  # 90 days before: 1 April; 180 days before: 1 January
NO_VIEWS = pd.Series([], dtype="datetime64[ns, UTC]")


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _profile(rows: list[tuple[str, int, float | None, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "orders": pd.Series([r[1] for r in rows], dtype="int64"),
            "avg_interpurchase_days": pd.Series([r[2] for r in rows], dtype="Float64"),
            "lifecycle": pd.Series([r[3] for r in rows], dtype="string"),
        }
    )


def _days(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="object"),
            "day": pd.Series([pd.Timestamp(r[1]) for r in rows], dtype="datetime64[ns]"),
            "total": pd.Series([r[2] for r in rows], dtype="float64"),
        }
    )


def test_the_kpis_of_a_small_shop_match_their_definitions() -> None:
    profile = _profile(
        [
            ("A", 2, 89.0, "active"),
            ("B", 1, None, "at_risk"),
            ("C", 1, None, "new"),
            ("D", 0, None, "prospect"),
            ("E", 1, None, "lost"),
        ]
    )
    days = _days(
        [
            ("A", "2026-02-10", 100.0),  # A bought in both 90-day windows: stayed
            ("A", "2026-05-10", 50.0),
            ("B", "2026-03-15", 30.0),  # B bought only in the earlier window: churned
            ("C", "2026-06-20", 20.0),  # C is new: not in the earlier window, not churn
            ("E", "2025-03-01", 500.0),  # more than a year ago: no part of the year's revenue
        ]
    )

    kpis = compute_kpis(profile, days, NO_VIEWS, AS_OF)

    assert (kpis.customers, kpis.buyers, kpis.active_customers) == (5, 4, 2)
    assert kpis.repeat_purchase_rate == 0.25  # A of four buyers
    assert kpis.churn_rate == 0.5  # B of A and B
    assert kpis.avg_interpurchase_days == 89.0
    assert kpis.revenue_per_customer_365d == pytest.approx(200 / 3, abs=0.005)  # A 150, B 30, C 20
    assert kpis.traffic.change is None and not kpis.traffic.alert


def test_a_shop_without_purchases_has_no_rates_rather_than_zeros() -> None:
    kpis = compute_kpis(_profile([("D", 0, None, "prospect")]), _days([]), NO_VIEWS, AS_OF)

    assert (kpis.buyers, kpis.active_customers) == (0, 0)
    assert kpis.repeat_purchase_rate is None
    assert kpis.churn_rate is None
    assert kpis.avg_interpurchase_days is None
    assert kpis.revenue_per_customer_365d is None


def test_a_fall_of_exactly_the_threshold_raises_the_alert_and_quiet_days_count_as_zero() -> None:
    # 20 views on every other day of the 28 before: a baseline of 10 a day
    usual = [_utc(f"2026-06-{d:02d} 12:00") for d in range(2, 30, 2) for _ in range(20)]
    today = [_utc("2026-06-30 08:00")] * 6

    alert = traffic_alert(pd.Series(usual + today), AS_OF, drop_threshold=0.4)

    assert (alert.views, alert.baseline, alert.change, alert.alert) == (6, 10.0, -0.4, True)
    assert not traffic_alert(pd.Series(usual + today), AS_OF, drop_threshold=0.5).alert


def test_views_are_counted_per_utc_day_with_zeros_for_days_without_any() -> None:
    stamps = pd.Series([_utc("2026-06-28 23:30"), _utc("2026-06-30 00:10"), _utc("2026-06-30 12:00")])
    outside = pd.Series([_utc("2026-06-27 23:59"), _utc("2026-07-01 00:00")])  # a minute before, the first after

    counts = daily_counts(pd.concat([stamps, outside], ignore_index=True), date(2026, 6, 28), date(2026, 6, 30))

    assert counts.to_dict() == {
        pd.Timestamp("2026-06-28"): 1,
        pd.Timestamp("2026-06-29"): 0,
        pd.Timestamp("2026-06-30"): 2,
    }


def test_a_shop_without_purchases_has_an_empty_cohort_table_with_every_month_column() -> None:
    table = retention_cohorts(_days([]), AS_OF, months=3)

    assert table.empty
    assert list(table.columns) == ["customers", "m0", "m1", "m2"]


def test_the_markdown_names_missing_numbers_and_flags_a_traffic_drop(tmp_path: Path) -> None:
    usual = [_utc(f"2026-06-{d:02d} 12:00") for d in range(1, 29) for _ in range(10)]
    kpis = compute_kpis(
        _profile([("D", 0, None, "prospect")]), _days([]), pd.Series([*usual, _utc("2026-06-29 08:00")]), AS_OF
    )

    markdown = kpi_markdown(kpis, tmp_path / "kpis")

    assert markdown.startswith("# Loyalty KPIs 2026-06-30\n")
    assert "| repeat purchase rate | n/a |" in markdown
    assert "| churn (90 days) | n/a |" in markdown
    assert (
        "**TRAFFIC DROP**: views on 2026-06-29 (the last complete day) 1 against a 28-day mean of 10.0 (-90%)."
        in markdown
    )
    assert str(tmp_path / "kpis" / "cohorts.png") in markdown


def test_a_run_early_in_the_morning_judges_traffic_on_yesterday_not_on_the_day_just_begun() -> None:
    # 10 views a day for four weeks and yesterday; the run at 06:00 has seen only one view of today so far
    usual = [_utc(f"2026-06-{d:02d} 12:00") for d in range(1, 30) for _ in range(10)]
    views = pd.Series([*usual, _utc("2026-06-30 05:30")])

    kpis = compute_kpis(_profile([("D", 0, None, "prospect")]), _days([]), views, AS_OF)

    assert kpis.traffic.day == date(2026, 6, 29)
    assert kpis.traffic.views == 10 and kpis.traffic.change == 0.0
    assert not kpis.traffic.alert
