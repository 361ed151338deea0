"""Support's call list end to end: the daily run lists a VIP's incident, support records "wants no contact"
with ``loyalty calls record``, and the next day's run sends them no marketing (a service message still goes)."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.daily_run import daily_run
from tasks.kernel.enums import Table
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.state.backend import open_state
from tests.conftest import REPO_ROOT
from tests.shops import add_rows, tiny_shop, write_shop

DAY_1, DAY_2 = date(2024, 6, 1), date(2024, 6, 2)

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def recovery_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The win-back (marketing) and service recovery (a service message) alone."""
    folder = tmp_path / "campaigns"
    folder.mkdir()
    for name in ("win_back.yaml", "service_recovery.yaml", "segments.yaml"):
        shutil.copy(REPO_ROOT / "campaigns" / name, folder / name)
    monkeypatch.setenv("LOYALTY_CAMPAIGNS_DIR", str(folder))
    return folder


def _shop_with_an_unhappy_vip() -> dict[Table, pd.DataFrame]:
    """The tiny shop plus V1, its best customer (four big orders, lapsed since 22 February), who rated a product 1
    of 5 on 25 May and another on the morning of 2 June."""
    frames = add_rows(
        tiny_shop(),
        Table.CUSTOMERS,
        [
            {
                "customer_id": "V1",
                "email": "vip@example.com",
                "phone": "512 345 679",
                "first_name": "Zofia",
                "last_name": "Kowalska",
                "gender": "f",
                "locale": "pl",
                "timezone": "Europe/Warsaw",
                "country": "PL",
                "created_at": "2023-01-01T00:00:00Z",
                "email_opt_in": "true",
                "email_opt_in_at": "2023-01-01T00:00:00Z",
                "sms_opt_in": "false",
            }
        ],
    )
    days = ("2024-01-10", "2024-01-25", "2024-02-08", "2024-02-22")
    orders = [
        {
            "order_id": f"V1-{n}",
            "customer_id": "V1",
            "created_at": f"{d}T10:00:00Z",
            "status": "delivered",
            "total": "300",
            "currency": "EUR",
        }
        for n, d in enumerate(days)
    ]
    frames = add_rows(frames, Table.ORDERS, orders)
    reviews = [
        {"customer_id": "V1", "product_id": "P1", "type": "review", "at": "2024-05-25T09:00:00Z", "rating": "1"},
        {"customer_id": "V1", "product_id": "P2", "type": "review", "at": "2024-06-02T01:00:00Z", "rating": "1"},
    ]
    return add_rows(frames, Table.EVENTS, reviews)


def _plan(day: date) -> pd.DataFrame:
    plan = pd.read_parquet(RunPaths.for_day(Settings().output_dir, day).plan)
    return plan.loc[plan["customer_id"] == "V1", ["campaign", "decision", "reason"]].drop_duplicates()


def test_a_call_outcome_wants_no_contact_stops_marketing_but_not_service_messages(
    aws: str, tmp_path: Path, recovery_catalog: Path
) -> None:
    shop = write_shop(_shop_with_an_unhappy_vip(), tmp_path / "shop")

    # day 1: the VIP's low rating puts them on the call list, with their phone; they get the win-back too
    daily_run(as_of=DAY_1, data=str(shop), now=datetime(2024, 6, 1, 3, 0, tzinfo=UTC))
    listed = pd.read_csv(RunPaths.for_day(Settings().output_dir, DAY_1).call_list, dtype=str, keep_default_na=False)
    vip = listed.loc[listed["customer_id"] == "V1"]
    assert len(vip) == 1 and "vip" in vip["why"].iloc[0]
    assert vip[["reason", "at", "incident"]].iloc[0].tolist() == [
        "low_rating",
        "2024-05-25",
        "2024-05-25:low_rating:P1",
    ]
    assert vip["phone"].iloc[0] != ""
    assert set(_plan(DAY_1)["campaign"]) == {"win_back"}

    # support calls; the customer wants no contact; the list goes back with the outcome
    returned = tmp_path / "called.csv"
    listed.assign(outcome=listed["customer_id"].map({"V1": "wants no contact"}).fillna("")).to_csv(
        returned, index=False
    )
    runner = CliRunner()
    recorded = runner.invoke(app, ["calls", "record", str(returned)])
    again = runner.invoke(app, ["calls", "record", str(returned)])
    assert recorded.exit_code == 0, recorded.output
    assert "1 customers newly suppressed from marketing" in recorded.output
    assert "(0 new or changed)" in again.output and "0 customers newly suppressed" in again.output

    # day 2: no marketing for them (suppressed), the apology for the new low rating still goes; off the list
    daily_run(as_of=DAY_2, data=str(shop), now=datetime(2024, 6, 2, 3, 0, tzinfo=UTC))
    plan = _plan(DAY_2)
    win_back = plan.loc[plan["campaign"] == "win_back"]
    assert win_back[["decision", "reason"]].values.tolist() == [["skipped", "suppressed"]]
    recovery = plan.loc[plan["campaign"] == "service_recovery"]
    assert recovery["decision"].tolist() == ["send"]
    shown = runner.invoke(app, ["calls", "list", "--as-of", DAY_2.isoformat()])
    assert shown.exit_code == 0, shown.output
    assert "V1" not in shown.output


def test_forgetting_a_customer_erases_their_calls_and_their_rows_of_the_call_lists(tmp_path: Path) -> None:
    settings = Settings()
    call_list = RunPaths.for_day(settings.output_dir, DAY_1).call_list
    call_list.parent.mkdir(parents=True)
    call_list.write_text(
        "list_day,customer_id,phone,incident,outcome\n"
        "2024-06-01,V1,+48512345679,2024-05-25:low_rating:P1,resolved\n"
        "2024-06-01,V2,+48512345670,2024-05-26:returned:O9,no answer\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    assert runner.invoke(app, ["calls", "record", str(call_list)]).exit_code == 0

    forgot = runner.invoke(app, ["forget", "V1", "--yes"])

    assert forgot.exit_code == 0, forgot.output
    assert "support call records erased: 1" in forgot.output
    assert [r.customer_id for r in open_state(settings).calls.outcomes()] == ["V2"]
    assert pd.read_csv(call_list, dtype=str)["customer_id"].tolist() == ["V2"]
