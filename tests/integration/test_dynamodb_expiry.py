"""What the DynamoDB tables keep and for how long, and how a run report reads one run (a local moto server).

The ledger, the send history and the coupon registry would otherwise grow forever: every item that is
only history carries ``expires_at`` (epoch seconds, the tables' TTL attribute, as infra/loyalty.yaml sets
them), ``state_keep_days`` after its last use. Suppressions and watermarks never expire. Because an
expired ledger entry can no longer stop a second send, a replay of a day past that window is refused.
moto stores the TTL setting but never deletes expired items: the test checks what is written, not
DynamoDB's sweeper.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from flows.backfill import check_replayable
from tasks.consent.suppression import SuppressionList, SuppressionReason
from tasks.kernel.aws import client
from tasks.kernel.enums import Channel, MessageKind
from tasks.kernel.settings import Settings
from tasks.ledger.backend import open_ledger
from tasks.ledger.dynamodb import RUN_INDEX, create_ledger_table
from tasks.ledger.protocol import Claim
from tasks.state.backend import open_state
from tasks.state.dynamodb import create_state_table
from tasks.state.protocol import CouponRow, HistoryRow

T0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
DAY = date(2024, 5, 1)
KEEP = 400


@pytest.fixture
def tables(aws: str) -> Settings:
    """A fresh ledger table and state table on the moto server, as the settings of a DynamoDB deployment."""
    settings = Settings(
        state_backend="dynamodb",
        ledger_table=f"ledger-{uuid4().hex[:8]}",
        state_table=f"state-{uuid4().hex[:8]}",
        state_keep_days=KEEP,
    )
    create_ledger_table(client("dynamodb", settings), settings.ledger_table)
    create_state_table(client("dynamodb", settings), settings.state_table)
    return settings


def _items(settings: Settings, table: str) -> list[dict[str, Any]]:
    return list(client("dynamodb", settings).scan(TableName=table)["Items"])


def _epoch(moment: datetime) -> str:
    return str(int(moment.timestamp()))


def _claim(key: str, run_id: str, kind: MessageKind = MessageKind.MARKETING) -> Claim:
    return Claim(key=key, campaign="win_back", channel="email", customer_id="C1", kind=kind.value, run_id=run_id)


def test_both_tables_are_made_with_expiry_on_and_the_ledger_with_its_run_index(tables: Settings) -> None:
    dynamodb = client("dynamodb", tables)
    for table in (tables.ledger_table, tables.state_table):
        ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    indexes = dynamodb.describe_table(TableName=tables.ledger_table)["Table"]["GlobalSecondaryIndexes"]
    assert [i["IndexName"] for i in indexes] == [RUN_INDEX]
    # made again (a second host starting up): nothing changes, nothing fails
    create_ledger_table(dynamodb, tables.ledger_table)
    create_state_table(dynamodb, tables.state_table)


def test_a_ledger_entry_expires_its_keep_after_the_claim_that_last_took_it(tables: Settings) -> None:
    ledger = open_ledger(tables, lambda s: client("dynamodb", s))
    assert ledger.claim(_claim("order/O1/shipped/email", "run-1", MessageKind.TRANSACTIONAL), now=T0)
    [item] = _items(tables, tables.ledger_table)
    assert item["expires_at"] == {"N": _epoch(T0 + timedelta(days=KEEP))}

    # the first run died; a run an hour past the lease takes the transactional message over
    later = T0 + timedelta(hours=2)
    assert ledger.claim(_claim("order/O1/shipped/email", "run-2", MessageKind.TRANSACTIONAL), now=later)
    [item] = _items(tables, tables.ledger_table)
    assert (item["run_id"]["S"], item["expires_at"]) == ("run-2", {"N": _epoch(later + timedelta(days=KEEP))})


def test_a_run_report_reads_one_run_through_the_index_without_a_scan(tables: Settings) -> None:
    dynamodb = client("dynamodb", tables)
    scans: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb.Scan", lambda **_: scans.append("scan"))
    ledger = open_ledger(tables, lambda _: dynamodb)
    for n in range(5):
        assert ledger.claim(_claim(f"win_back/1/email/C{n}/2024-05-01", "run-a" if n < 3 else "run-b"), now=T0)
        ledger.mark_sent(f"win_back/1/email/C{n}/2024-05-01", f"p-{n}", run_id="run-a" if n < 3 else "run-b")

    assert ledger.count("run-a") == {"sent": 3}
    assert sorted(e.provider_id or "" for e in ledger.entries("run-b")) == ["p-3", "p-4"]
    assert scans == []


def test_history_and_coupons_expire_after_their_day_suppressions_and_watermarks_never(tables: Settings) -> None:
    state = open_state(tables)
    state.history.record_plan("p", [HistoryRow("C1", "win_back", 1, "2024-05-01", "marketing", "send", DAY)])
    valid_until = "2024-05-15"
    state.coupons.record([CouponRow("WB-AAA", "C1", "win_back", 1, "2024-05-01", 10.0, "2024-05-01", valid_until, DAY)])
    SuppressionList(store=state.suppressions, key=b"k" * 32).add(
        Channel.EMAIL, "someone@example.com", SuppressionReason.UNSUBSCRIBE
    )
    state.watermarks.write_mark("order-updates", "2024-05-01T06:00:00+00:00", "2024-05-01T06:00:00+00:00")

    def end_of(day: date) -> str:
        return _epoch(datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC) + timedelta(days=KEEP))

    expiry = {item["pk"]["S"].split("#")[0]: item.get("expires_at") for item in _items(tables, tables.state_table)}
    assert expiry["HIST"] == {"N": end_of(DAY)}
    assert expiry["PLAN"] == {"N": end_of(date(2024, 5, 31))}  # the plan's version in May lives as long as May's rows
    assert expiry["COUPON"] == {"N": end_of(date(2024, 5, 15))}  # from the coupon's last valid day
    assert expiry["SUPP"] is None
    assert expiry["MARK"] is None


def test_a_replay_older_than_the_ledger_keeps_is_refused_on_dynamodb_only(tables: Settings) -> None:
    now = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
    oldest = now.date() - timedelta(days=KEEP - 1)
    check_replayable(oldest, tables, now)

    with pytest.raises(ValueError, match="older than the ledger keeps its entries"):
        check_replayable(oldest - timedelta(days=1), tables, now)

    check_replayable(oldest - timedelta(days=1), tables.model_copy(update={"state_keep_days": 0}), now)
    on_sqlite = tables.model_copy(update={"state_backend": "sqlite", "ledger_backend": "sqlite"})
    check_replayable(date(2020, 1, 1), on_sqlite, now)
