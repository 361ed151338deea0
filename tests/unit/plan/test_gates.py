"""Holdout, quiet hours, the frequency budget and lateness: decisions a marketer can predict."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd

from tasks.plan.gates import (
    DeliveryRules,
    QuietHours,
    allocate_budget,
    holdout_period,
    in_holdout,
    local_send_time,
    quiet_now,
    too_late,
)

DAY = date(2026, 3, 6)


def _send(hour: int, zone: str = "Europe/Warsaw", country: str = "PL", rules: DeliveryRules | None = None):  # type: ignore[no-untyped-def]
    send_at, moved = local_send_time(DAY, hour, pd.Series([zone]), pd.Series([country]), rules or DeliveryRules())
    return send_at[0].tz_convert(zone), bool(moved[0])


def test_a_send_inside_the_day_is_not_moved() -> None:
    at, moved = _send(10)

    assert (at.date(), at.hour, moved) == (DAY, 10, False)


def test_an_evening_send_moves_to_nine_next_morning() -> None:
    at, moved = _send(22)

    assert (at.date(), at.hour, moved) == (date(2026, 3, 7), 9, True)


def test_an_early_send_waits_for_nine_the_same_day() -> None:
    at, moved = _send(7, zone="Asia/Vladivostok", country="RU")

    assert (at.date(), at.hour, moved) == (DAY, 9, True)


def test_country_override_applies_only_to_that_country() -> None:
    rules = DeliveryRules(quiet_by_country={"PL": QuietHours(start=20, end=8)})

    pl_at, pl_moved = _send(20, rules=rules)
    ru_at, ru_moved = _send(20, zone="Europe/Moscow", country="RU", rules=rules)

    assert (pl_at.date(), pl_at.hour, pl_moved) == (date(2026, 3, 7), 8, True)
    assert (ru_at.hour, ru_moved) == (20, False)


def test_who_is_in_quiet_hours_at_a_moment_follows_their_own_clock_and_country() -> None:
    zones = pd.Series(["Europe/Moscow", "Europe/London", "Asia/Vladivostok", "Europe/Warsaw", None])
    countries = pd.Series(["RU", "GB", "RU", "PL", ""])
    rules = DeliveryRules(quiet_by_country={"PL": QuietHours(start=22, end=6)})
    # 19:30 UTC in March: Moscow 22:30, London 19:30, Vladivostok 05:30, Warsaw 20:30 (PL quiet from 22), UTC 19:30
    moment = datetime(2026, 3, 6, 19, 30, tzinfo=UTC)

    assert quiet_now(moment, zones, countries, rules).tolist() == [True, False, True, False, False]


def test_holdout_is_stable_and_near_its_share() -> None:
    customers = pd.Series([f"C{i}" for i in range(20_000)])
    period = holdout_period(pd.Series(["2026-03-01"] * len(customers)))

    first = in_holdout(customers, "win_back", period, 0.1)
    again = in_holdout(customers, "win_back", period, 0.1)
    other_campaign = in_holdout(customers, "birthday", period, 0.1)

    assert (first == again).all()
    assert 0.09 < first.mean() < 0.11
    assert (first != other_campaign).any()  # each campaign draws its own control group


def _messages(rows: list[tuple[str, str, int]], day: date = DAY) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"customer_id": c, "campaign": n, "occurrence": "2026-03-01", "priority": p, "day": pd.Timestamp(day)}
            for c, n, p in rows
        ]
    )


def _taken(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [c for c, _ in rows], "day": pd.to_datetime([d for _, d in rows])})


NOTHING = _taken([])
NOTHING_SCHEDULED = pd.DataFrame(columns=["customer_id", "campaign", "priority", "day"])


def test_highest_priority_wins_the_day() -> None:
    messages = _messages([("C1", "weekly_sale", 10), ("C1", "birthday", 90), ("C2", "weekly_sale", 10)])

    budget = allocate_budget(messages, NOTHING, NOTHING_SCHEDULED, DeliveryRules())

    assert list(budget.over) == [True, False, False]


def test_a_lone_message_fits_unless_the_shop_allows_no_marketing() -> None:
    messages = _messages([("C1", "weekly_sale", 10), ("C2", "weekly_sale", 10)])

    budgets = [
        allocate_budget(messages, NOTHING, NOTHING_SCHEDULED, DeliveryRules(marketing_per_day=d, marketing_per_week=w))
        for d, w in ((1, 3), (0, 3), (1, 0))
    ]
    weekly = allocate_budget(messages, NOTHING, NOTHING_SCHEDULED, DeliveryRules(), weekly=frozenset({"C1"}))

    assert [list(b.over) for b in budgets] == [[False, False], [True, True], [True, True]]
    assert list(weekly.over) == [False, False]


def test_weekly_cap_counts_the_six_days_before() -> None:
    taken = _taken([("C1", "2026-03-01"), ("C1", "2026-03-03"), ("C1", "2026-03-05"), ("C2", "2026-02-27")])
    messages = _messages([("C1", "win_back", 60), ("C2", "win_back", 60)])

    budget = allocate_budget(
        messages, taken, NOTHING_SCHEDULED, DeliveryRules(marketing_per_day=1, marketing_per_week=3)
    )

    assert list(budget.over) == [True, False]  # C1 had 3 in the window; C2's message was 7 days ago


def test_the_budget_counts_the_day_a_message_goes_out_later_days_included() -> None:
    # a backfill of 5 March sends on 6 March: the 6 March run already sent one that day, and three went
    # out from 7 March on (windows holding 6 March count days after it too)
    today_taken = _taken([("C1", "2026-03-06")])
    later_taken = _taken([("C2", "2026-03-07"), ("C2", "2026-03-08"), ("C2", "2026-03-09")])
    messages = _messages([("C1", "win_back", 60), ("C2", "win_back", 60)])

    budget = allocate_budget(messages, pd.concat([today_taken, later_taken]), NOTHING_SCHEDULED, DeliveryRules())

    assert list(budget.over) == [True, True]


def test_budget_does_not_depend_on_row_order() -> None:
    messages = _messages([("C1", "a", 50), ("C1", "b", 50), ("C1", "c", 70)])

    forward = allocate_budget(messages, NOTHING, NOTHING_SCHEDULED, DeliveryRules())
    backward = allocate_budget(messages.iloc[::-1].reset_index(drop=True), NOTHING, NOTHING_SCHEDULED, DeliveryRules())

    assert list(forward.over) == [True, True, False]
    assert list(backward.over) == [False, True, True]


def _scheduled(rows: list[tuple[str, str, int, date]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"customer_id": c, "campaign": n, "priority": p, "day": pd.Timestamp(d)} for c, n, p, d in rows]
    )


def test_a_message_yields_when_it_would_leave_no_room_for_a_higher_priority_step_scheduled_this_week() -> None:
    # two went out this week; the birthday reminder (90) is due in two days: the weekly sale (20) would be
    # the third in the window and leave the reminder none
    taken = _taken([("C1", "2026-03-02"), ("C1", "2026-03-04")])
    scheduled = _scheduled([("C1", "birthday", 90, DAY + timedelta(days=2))])
    messages = _messages([("C1", "weekly_sale", 20)])

    budget = allocate_budget(messages, taken, scheduled, DeliveryRules())

    assert list(budget.yields_to) == ["birthday"]
    assert not budget.over.any()


def test_room_is_kept_only_for_a_higher_priority_step_and_only_when_it_is_short() -> None:
    taken = _taken([("C1", "2026-03-04")])
    scheduled = _scheduled(
        [("C1", "birthday", 90, DAY + timedelta(days=2)), ("C2", "weekly_sale", 10, DAY + timedelta(days=1))]
    )
    messages = _messages([("C1", "win_back", 60), ("C2", "win_back", 60)])

    budget = allocate_budget(
        messages, pd.concat([taken, _taken([("C2", "2026-03-04"), ("C2", "2026-03-05")])]), scheduled, DeliveryRules()
    )

    # C1: 1 + win-back + birthday = 3 in the window, room for both; C2: the weekly sale is lower: win-back goes
    assert list(budget.yields_to) == ["", ""]
    assert not budget.over.any()


def test_a_backfill_past_the_campaigns_delay_is_too_late() -> None:
    send_at = pd.Series(pd.to_datetime(["2026-03-08T07:00:00Z", "2026-03-08T07:00:00Z"]))
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)

    late = too_late(send_at, now, pd.Series([2, 30]))

    assert list(late) == [True, False]  # a birthday greeting a week late: no; a win-back: yes


def test_a_message_whose_hour_passed_before_the_run_still_goes_the_same_day() -> None:
    vladivostok_ten = pd.Series(pd.to_datetime(["2026-03-08T00:00:00Z"]))  # 10:00 in UTC+10
    moscow_six = datetime(2026, 3, 8, 3, tzinfo=UTC)  # the daily run, 06:00 in Moscow

    assert list(too_late(vladivostok_ten, moscow_six, pd.Series([0]))) == [False]
    assert list(too_late(vladivostok_ten, moscow_six + timedelta(days=1), pd.Series([0]))) == [True]
