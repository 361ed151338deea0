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
from tasks.plan.campaigns import load_catalog
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
        set(r) == {"date", "customer_id", "campaign", "step", "channel", "decision", "reason"} for r in rows
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
