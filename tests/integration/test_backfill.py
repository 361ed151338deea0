"""Backfill: each day decides what it decided then; sent messages are never sent again; late ones are dropped."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import boto3
import pytest

from flows.backfill import backfill, days_between
from tests.conftest import REGION
from tests.shops import tiny_shop, write_shop

pytestmark = pytest.mark.usefixtures("prefect_harness", "win_back_only")


def _ses_sent() -> int:
    return int(boto3.client("ses", region_name=REGION).get_send_quota()["SentLast24Hours"])


def test_a_backfilled_week_sends_each_message_once(aws: str, tmp_path: Path) -> None:
    shop = write_shop(tiny_shop(), tmp_path / "shop")
    # C1 lapses (90 days) on 2024-05-01; the week is backfilled a day later
    soon_after = datetime(2024, 5, 8, 9, tzinfo=UTC)

    week = backfill(start=date(2024, 4, 29), end=date(2024, 5, 5), data=str(shop), now=soon_after)
    again = backfill(start=date(2024, 4, 29), end=date(2024, 5, 5), data=str(shop), now=soon_after)

    assert [s.as_of for s in week] == days_between(date(2024, 4, 29), date(2024, 5, 5))
    assert [s.sent for s in week] == [0, 0, 1, 0, 0, 0, 0]
    assert [s.skipped_by_reason.get("duplicate", 0) for s in week] == [0, 0, 0, 1, 1, 1, 1]
    assert sum(s.sent for s in again) == 0
    assert _ses_sent() == 1


def test_messages_older_than_their_campaign_allows_are_skipped_too_late(aws: str, tmp_path: Path) -> None:
    shop = write_shop(tiny_shop(), tmp_path / "shop")
    months_later = datetime(2024, 9, 1, 9, tzinfo=UTC)  # win-back allows 30 days

    (day,) = backfill(start=date(2024, 5, 1), end=date(2024, 5, 1), data=str(shop), now=months_later)

    assert day.sent == 0
    assert day.skipped_by_reason == {"too_late": 1}
    assert _ses_sent() == 0
