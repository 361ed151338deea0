"""The simulator: birthdays, holidays and the frequency budget played day by day, as ``loyalty simulate`` does."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.data.contract import SPECS
from tasks.data.sources import load_raw
from tasks.kernel.enums import Table
from tasks.kernel.settings import PROJECT_ROOT, Settings
from tasks.plan.campaigns import Campaign, ScheduleTrigger, load_catalog
from tasks.plan.offers import coupon_code
from tasks.plan.simulate import simulate
from tests.shops import add_rows, tiny_shop, write_shop

CATALOG = load_catalog(PROJECT_ROOT / "campaigns")
KEY = b"simulation-test-key"


def _person(customer_id: str, **fields: str) -> dict[str, str]:
    base = {
        "customer_id": customer_id,
        "email": f"{customer_id.lower()}@example.com",
        "first_name": "Test",
        "gender": "f",
        "locale": "ru",
        "timezone": "Europe/Moscow",
        "country": "RU",
        "created_at": "2024-01-01T10:00:00Z",
        "email_opt_in": "true",
        "email_opt_in_at": "2024-01-01T10:00:00Z",
        "sms_opt_in": "false",
    }
    return base | fields


def _shop(people: list[dict[str, str]]) -> dict[Table, pd.DataFrame]:
    """The tiny shop's catalog with only these customers (and none of its orders or events)."""
    frames = {t: f.iloc[0:0] if t is not Table.PRODUCTS else f for t, f in tiny_shop().items()}
    frames[Table.CUSTOMERS] = pd.DataFrame(columns=[c.name for c in SPECS[Table.CUSTOMERS].columns])
    return add_rows(frames, Table.CUSTOMERS, people)


def _simulate(tmp_path: Path, frames: dict[Table, pd.DataFrame], start: date, end: date, *names: str) -> pd.DataFrame:
    raw = load_raw(str(write_shop(frames, tmp_path / "shop")))
    return simulate(raw, {n: CATALOG[n] for n in names}, start, end, Settings(), KEY)


def _sent(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.loc[rows["decision"] == "send"].reset_index(drop=True)


def test_a_customer_born_on_20_april_hears_on_13_17_20_and_23_april(tmp_path: Path) -> None:
    frames = _shop([_person("B1", birth_date="1990-04-20")])

    rows = _simulate(tmp_path, frames, date(2026, 4, 10), date(2026, 4, 26), "birthday")

    sent = _sent(rows)
    assert list(zip(sent["date"], sent["step"], strict=True)) == [
        ("2026-04-13", 1),
        ("2026-04-17", 2),
        ("2026-04-20", 3),
        ("2026-04-23", 4),
    ]
    assert set(sent["channel"]) == {"email"}  # no SMS consent, so no SMS


def test_the_birthday_series_stops_once_its_coupon_is_used(tmp_path: Path) -> None:
    code = coupon_code(KEY, "birthday", CATALOG["birthday"].offer, "B1", "2026-04-20")  # type: ignore[arg-type]
    frames = _shop([_person("B1", birth_date="1990-04-20")])
    # the optional coupon_code column, as a checkout might store it (lower case)
    frames[Table.ORDERS] = pd.DataFrame(
        [["O1", "B1", "2026-04-18T12:00:00Z", "paid", "40", "RUB", code.lower()]],
        columns=[*frames[Table.ORDERS].columns, "coupon_code"],
    )

    rows = _simulate(tmp_path, frames, date(2026, 4, 10), date(2026, 4, 26), "birthday")

    assert list(_sent(rows)["step"]) == [1, 2]
    redeemed = rows.loc[rows["reason"] == "redeemed"].drop_duplicates("step")  # first day each step was due
    assert list(zip(redeemed["date"], redeemed["step"], strict=True)) == [("2026-04-20", 3), ("2026-04-23", 4)]


def test_a_29_february_birthday_is_kept_on_28_february_in_a_common_year(tmp_path: Path) -> None:
    frames = _shop([_person("L1", birth_date="1992-02-29")])

    common = _sent(_simulate(tmp_path, frames, date(2027, 2, 18), date(2027, 3, 5), "birthday"))
    leap = _sent(_simulate(tmp_path, frames, date(2028, 2, 18), date(2028, 3, 5), "birthday"))

    assert list(common["date"]) == ["2027-02-21", "2027-02-25", "2027-02-28", "2027-03-03"]
    assert list(leap["date"]) == ["2028-02-22", "2028-02-26", "2028-02-29", "2028-03-03"]


def test_holiday_greetings_and_cross_reminders_reach_the_right_people_on_the_right_days(tmp_path: Path) -> None:
    frames = _shop(
        [
            _person("RU_F", gender="f"),
            _person("RU_M", gender="m"),
            _person("PL_F", gender="f", locale="pl", timezone="Europe/Warsaw", country="PL"),
            _person("PL_M", gender="m", locale="pl", timezone="Europe/Warsaw", country="PL"),
            _person("PL_U", gender="unknown", locale="pl", timezone="Europe/Warsaw", country="PL"),
            _person("GB_M", gender="m", locale="en", timezone="Europe/London", country="GB"),
        ]
    )

    rows = _simulate(tmp_path, frames, date(2027, 2, 15), date(2027, 3, 12), "womens_day", "mens_day")

    sent = _sent(rows)
    got = {(r.customer_id, r.campaign, r.step): r.date for r in sent.itertuples()}
    assert got == {
        # Russia: 23 February for men, women reminded three days before; 8 March the other way round
        ("RU_F", "mens_day", 1): "2027-02-20",
        ("RU_M", "mens_day", 2): "2027-02-23",
        ("RU_M", "womens_day", 1): "2027-03-05",
        ("RU_F", "womens_day", 2): "2027-03-08",
        # Poland: Dzień Kobiet on 8 March, Dzień Mężczyzny on 10 March
        ("PL_M", "womens_day", 1): "2027-03-05",
        ("PL_F", "womens_day", 2): "2027-03-08",
        ("PL_F", "mens_day", 1): "2027-03-07",
        ("PL_M", "mens_day", 2): "2027-03-10",
        # unknown gender: the neutral greetings on the day
        ("PL_U", "womens_day", 3): "2027-03-08",
        ("PL_U", "mens_day", 3): "2027-03-10",
        # Britain has no men's day configured; 8 March falls back to the default date
        ("GB_M", "womens_day", 1): "2027-03-05",
    }


@pytest.fixture(scope="module")
def synth_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tasks.demo.synth import generate_shop
    from tasks.demo.synth import write_shop as write_synth

    folder = tmp_path_factory.mktemp("synth")
    write_synth(generate_shop(customers=300, days=200, seed=3, end=date(2026, 3, 31)), folder)
    return folder


def test_nobody_exceeds_the_frequency_budget_with_every_campaign_running(synth_shop: Path) -> None:
    rows = simulate(load_raw(str(synth_shop)), CATALOG, date(2026, 3, 1), date(2026, 3, 21), Settings(), KEY)

    marketing = {n for n, c in CATALOG.items() if c.kind.value == "marketing"}
    sent = _sent(rows).loc[lambda r: r["campaign"].isin(marketing)]
    messages = sent.drop_duplicates(["date", "customer_id", "campaign", "step"])
    per_day = messages.groupby(["customer_id", "date"]).size()
    assert per_day.max() == 1
    daily = messages.assign(day=pd.to_datetime(messages["date"])).groupby(["customer_id", "day"]).size()
    for customer, days in daily.groupby(level="customer_id"):
        week = days.droplevel(0).resample("D").sum().rolling(7, min_periods=1).sum()
        assert week.max() <= 3, customer
    assert len(set(messages["campaign"])) >= 5  # several campaigns competed for the budget
    assert (rows["reason"] == "frequency_cap").any()


def test_simulate_prints_one_json_object_per_plan_row(tmp_path: Path) -> None:
    shop = write_shop(_shop([_person("B1", birth_date="1990-04-20")]), tmp_path / "shop")

    result = CliRunner().invoke(
        app, ["simulate", "--data", str(shop), "--from", "2026-04-12", "--to", "2026-04-14", "--json"]
    )

    assert result.exit_code == 0, result.output
    import json

    rows = json.loads(result.stdout)
    assert rows and all(
        set(r)
        == {
            "date",
            "customer_id",
            "campaign",
            "step",
            "channel",
            "kind",
            "occurrence",
            "decision",
            "reason",
            "yields_to",
            "coupon_valid_until",
        }
        for r in rows
    )
    first = [(r["date"], r["campaign"], r["step"], r["channel"]) for r in rows if r["decision"] in ("send", "holdout")]
    assert first == [("2026-04-13", "birthday", 1, "email")]
    skipped = [(r["date"], r["channel"], r["reason"]) for r in rows if r["decision"] == "skipped"]
    # no phone: the SMS copy is skipped each day it is due; the email is a duplicate the day after it went
    assert skipped == [
        ("2026-04-13", "sms", "invalid_phone"),
        ("2026-04-14", "email", "duplicate"),
        ("2026-04-14", "sms", "invalid_phone"),
    ]


def test_simulate_names_a_bad_date(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--data", str(tmp_path), "--from", "2026-13-01", "--to", "2026-04-14"]
    )

    assert result.exit_code == 2
    assert "--from '2026-13-01' is not a date" in result.stderr


# --- promises over weeks (issue 12): each with the smallest shop that shows it ------------------------------------


def _weekly(name: str, weekday: str, priority: int, max_delay_days: int = 0) -> Campaign:
    """A weekly newsletter-like campaign on ``weekday`` (the weekly sale's, with another day and priority)."""
    return CATALOG["weekly_sale"].model_copy(
        update={
            "name": name,
            "trigger": ScheduleTrigger(type="schedule", weekday=weekday),
            "priority": priority,
            "holdout_share": 0.0,
            "max_delay_days": max_delay_days,
        }
    )


def _run(
    tmp_path: Path, frames: dict[Table, pd.DataFrame], start: date, end: date, *campaigns: Campaign
) -> pd.DataFrame:
    raw = load_raw(str(write_shop(frames, tmp_path / "shop")))
    return simulate(raw, {c.name: c for c in campaigns}, start, end, Settings(), KEY)


def test_a_message_sent_yesterday_whose_window_is_open_does_not_take_todays_slot(tmp_path: Path) -> None:
    # "replenishment" (70) goes on Wednesday and may still go for 3 days; "early access" (55) is due Thursday
    frames = _shop([_person("R1")])
    wednesday, thursday = _weekly("reorder", "wednesday", 70, 3), _weekly("early_access", "thursday", 55)

    rows = _run(tmp_path, frames, date(2027, 2, 17), date(2027, 2, 18), wednesday, thursday)

    sent = _sent(rows)
    assert list(zip(sent["date"], sent["campaign"], strict=True)) == [
        ("2027-02-17", "reorder"),
        ("2027-02-18", "early_access"),
    ]
    assert "frequency_cap" not in set(rows["reason"])


def test_a_birthday_keeps_its_room_when_weekly_campaigns_of_lower_priority_fill_the_week(tmp_path: Path) -> None:
    # VIP early access on Thursdays, the sale on Fridays, a digest on Sundays: before, the birthday series
    # (90) was pushed around and the greeting on the day itself was skipped
    frames = _shop([_person("B1", birth_date="1990-04-20")])
    weekly = (_weekly("early_access", "thursday", 55), _weekly("sale", "friday", 20), _weekly("digest", "sunday", 30))

    rows = _run(tmp_path, frames, date(2026, 4, 6), date(2026, 4, 26), CATALOG["birthday"], *weekly)

    birthday = _sent(rows).loc[lambda r: r["campaign"] == "birthday"]
    assert list(zip(birthday["date"], birthday["step"], strict=True)) == [
        ("2026-04-13", 1),
        ("2026-04-17", 2),
        ("2026-04-20", 3),
        ("2026-04-23", 4),
    ]
    # the sale and the digest the weekend before give way to the birthday's first step, naming it
    yielded = rows.loc[(rows["reason"] == "reserved") & (rows["date"] < "2026-04-13")]
    assert list(zip(yielded["date"], yielded["campaign"], yielded["yields_to"], strict=True)) == [
        ("2026-04-10", "sale", "birthday"),
        ("2026-04-12", "digest", "birthday"),
    ]


def test_a_greeting_that_cannot_go_on_its_day_is_skipped_not_sent_later(tmp_path: Path) -> None:
    # a higher-priority campaign takes the birthday itself (a Monday)
    frames = _shop([_person("B1", birth_date="1990-04-20")])
    urgent = _weekly("urgent", "monday", 95)

    rows = _run(tmp_path, frames, date(2026, 4, 19), date(2026, 4, 22), CATALOG["birthday"], urgent)

    greeting = rows.loc[(rows["campaign"] == "birthday") & (rows["step"] == 3) & (rows["channel"] == "email")]
    assert list(zip(greeting["date"], greeting["decision"], greeting["reason"], strict=True)) == [
        ("2026-04-20", "skipped", "frequency_cap")
    ]


def test_a_last_call_pushed_past_its_coupons_last_day_is_skipped_as_coupon_expired(tmp_path: Path) -> None:
    # the birthday coupon is valid through the last call's day (23 April, a Thursday); a higher-priority
    # campaign takes that day, so the last call would go on the 24th with an expired code
    frames = _shop([_person("B1", birth_date="1990-04-20")])
    thursday = _weekly("urgent", "thursday", 95)

    rows = _run(tmp_path, frames, date(2026, 4, 21), date(2026, 4, 25), CATALOG["birthday"], thursday)

    last_call = rows.loc[(rows["campaign"] == "birthday") & (rows["step"] == 4) & (rows["channel"] == "email")]
    assert list(zip(last_call["date"], last_call["decision"], last_call["reason"], strict=True)) == [
        ("2026-04-23", "deferred", "frequency_cap"),
        ("2026-04-24", "skipped", "coupon_expired"),
    ]
    assert (
        _sent(rows)["coupon_valid_until"].dropna() >= _sent(rows).loc[lambda r: r["coupon_valid_until"].notna(), "date"]
    ).all()


def test_a_deferred_win_back_counts_its_coupons_days_from_the_day_it_goes(tmp_path: Path) -> None:
    # C1 lapses on 2024-05-01 (tiny shop); a higher-priority campaign takes that day (a Wednesday)
    frames = tiny_shop()
    win_back = CATALOG["win_back"].model_copy(update={"holdout_share": 0.0})
    urgent = _weekly("urgent", "wednesday", 95)

    rows = _run(tmp_path, frames, date(2024, 5, 1), date(2024, 5, 2), win_back, urgent)

    sent = _sent(rows).loc[lambda r: r["campaign"] == "win_back"]
    assert list(zip(sent["date"], sent["coupon_valid_until"], strict=True)) == [("2024-05-02", "2024-05-16")]


def test_a_holdout_is_decided_once_per_occurrence_and_takes_no_room(tmp_path: Path) -> None:
    # every customer held out of the win-back (share 0.99) for its whole 30-day window; the sale still goes
    frames = tiny_shop()
    win_back = CATALOG["win_back"].model_copy(update={"holdout_share": 0.99})
    sale = _weekly("sale", "wednesday", 20)

    rows = _run(tmp_path, frames, date(2024, 5, 1), date(2024, 5, 10), win_back, sale)

    held = rows.loc[(rows["campaign"] == "win_back") & (rows["customer_id"] == "C1")]
    assert list(zip(held["date"], held["decision"], strict=True))[:2] == [
        ("2024-05-01", "holdout"),
        ("2024-05-02", "skipped"),
    ]
    assert (held["decision"] == "holdout").sum() == 1
    assert set(held.loc[held["decision"] == "skipped", "reason"]) == {"holdout"}
    assert ("2024-05-01", "sale") in set(zip(_sent(rows)["date"], _sent(rows)["campaign"], strict=True))
