"""Consent across runs: an unsubscribed customer hears nothing more, however they are re-imported."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import httpx
import pandas as pd
import pytest

from flows.daily_run import daily_run
from tasks.consent.unsubscribe import make_app
from tasks.kernel.enums import Table
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tests.conftest import REGION
from tests.shops import tiny_shop, write_shop

pytestmark = pytest.mark.usefixtures("prefect_harness", "win_back_only")


def _ses_sent() -> int:
    return int(boto3.client("ses", region_name=REGION).get_send_quota()["SentLast24Hours"])


async def _one_click(url: str) -> int:
    parts = urlsplit(url)
    transport = httpx.ASGITransport(app=make_app(Settings()))
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.example.com") as client:
        response = await client.post(
            f"{parts.path}?{parts.query}",
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    return response.status_code


def _reimported_shop() -> dict[Table, pd.DataFrame]:
    """C1 comes back under a new id with the same address, buys again in June, and lapses again."""
    frames = tiny_shop()
    frames[Table.CUSTOMERS].loc[0, "customer_id"] = "C1-NEW"
    frames[Table.EVENTS]["customer_id"] = "C1-NEW"
    orders = frames[Table.ORDERS]
    orders.loc[orders["customer_id"] == "C1", "customer_id"] = "C1-NEW"
    extra = pd.DataFrame(
        [["O9", "C1-NEW", "2024-06-10T12:00:00Z", "delivered", "12.50", "EUR"]], columns=orders.columns
    )
    frames[Table.ORDERS] = pd.concat([orders, extra], ignore_index=True)
    items = frames[Table.ORDER_ITEMS]
    frames[Table.ORDER_ITEMS] = pd.concat(
        [items, pd.DataFrame([["O9", "P1", "1", "12.50"]], columns=items.columns)], ignore_index=True
    )
    return frames


def test_an_unsubscribed_customer_gets_nothing_even_under_a_new_id(aws: str, tmp_path: Path) -> None:
    first = daily_run(
        as_of=date(2024, 6, 1),
        data=str(write_shop(tiny_shop(), tmp_path / "a")),
        now=datetime(2024, 6, 1, 3, tzinfo=UTC),
    )
    assert first.sent == 1  # C1, lapsed since February
    rendered = pd.read_parquet(RunPaths(Path(first.run_dir)).rendered_shard(1))

    assert asyncio.run(_one_click(str(rendered.loc[0, "unsubscribe_url"]))) == 200

    later = daily_run(
        as_of=date(2024, 9, 15),
        data=str(write_shop(_reimported_shop(), tmp_path / "b")),
        now=datetime(2024, 9, 15, 3, tzinfo=UTC),
    )
    plan = pd.read_parquet(RunPaths(Path(later.run_dir)).plan).set_index("customer_id")
    assert (plan.loc["C1-NEW", "decision"], plan.loc["C1-NEW", "reason"]) == ("skipped", "suppressed")
    assert later.sent == 1  # C2, who lapsed meanwhile, still hears from us
    assert _ses_sent() == 2
