"""The day in partitions: each partition of the customers planned and rendered by its own flow run, then merged.

The merged plan is the single-process plan, row for row, on the demo shop; a partition that runs again (its
worker died) replaces what its first attempt wrote, and the day sends every message once.
"""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import boto3
import pandas as pd
import pyarrow as pa
import pytest

import flows.partition as partition_flow
from flows.daily_run import daily_run
from flows.partition import daily_partition
from tasks.demo.synth import DEFAULT_END, generate_shop, write_shop
from tasks.kernel.aws import dynamodb_client
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.ledger.backend import open_ledger
from tasks.plan.partitions import Partition, partition_numbers
from tasks.render.workers import render_plan
from tests.conftest import REGION

pytestmark = pytest.mark.usefixtures("prefect_harness")

SECRET = "partitions-test-secret-0123456789abcdef"


def _morning(day: date) -> datetime:
    return datetime.combine(day, time(6), ZoneInfo(Settings().shop_timezone))


def _in_folder(folder: Path, partitions: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_OUTPUT_DIR", str(folder / "out"))
    monkeypatch.setenv("LOYALTY_STATE_DIR", str(folder / "state"))
    monkeypatch.setenv("LOYALTY_PARTITIONS", str(partitions))


def _sorted_plan(run: Path) -> pd.DataFrame:
    plan = pd.read_parquet(run / "plan" / "plan.parquet")
    return plan.sort_values(["idempotency_key", "channel"]).reset_index(drop=True)


def _picks(run: Path) -> pd.DataFrame:
    picks = pd.read_parquet(run / "profile" / "recommendations.parquet")
    return picks.sort_values(["customer_id", "rank"]).reset_index(drop=True)


def _rendered(run: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(f) for f in sorted((run / "render").glob("rendered-*.parquet"))]
    rendered = pd.concat(frames, ignore_index=True).drop(columns=["html_file", "text_file"])
    return rendered.sort_values(["idempotency_key", "channel"]).reset_index(drop=True)


def test_the_stable_hash_splits_customers_evenly_and_the_same_way_every_time() -> None:
    ids = pd.Series([f"C{i:06d}" for i in range(30_000)])

    first, again = partition_numbers(ids, 4), partition_numbers(ids.sample(frac=1, random_state=1).sort_index(), 4)

    assert (first == again).all()
    counts = pd.Series(first).value_counts()
    assert set(counts.index) == {0, 1, 2, 3} and counts.min() > 7_000  # 7,500 each on average
    assert Partition(2, 4).members(ids).sum() == counts[2]


def test_a_partition_reads_the_order_keyed_tables_of_its_customers_orders_only(tmp_path: Path) -> None:
    # given: 3,000 customers with an order or two each, and their order items (keyed by order, no customer_id)
    customers = pd.DataFrame({"customer_id": [f"C{i:05d}" for i in range(3000)]})
    orders = pd.DataFrame(
        {"order_id": [f"O{i:05d}" for i in range(4500)], "customer_id": [f"C{i % 3000:05d}" for i in range(4500)]}
    )
    items = pd.DataFrame({"order_id": [f"O{i % 4500:05d}" for i in range(9000)], "product_id": "P1"})
    customers.to_parquet(tmp_path / "customers.parquet")
    orders.to_parquet(tmp_path / "orders.parquet")
    part = Partition(1, 3)

    # when: partition 1 of 3 filters the order items as it reads them
    mine = part.arrow_rows(tmp_path / "customers.parquet")
    kept = part.arrow_order_rows(tmp_path / "orders.parquet", mine)(pa.Table.from_pandas(items)).to_pandas()

    # then: exactly the items of its customers' orders, every one of them
    its_orders = set(orders.loc[part.members(orders["customer_id"]), "order_id"])
    assert set(kept["order_id"]) == its_orders and 1200 < len(its_orders) < 1800
    assert len(kept) == items["order_id"].isin(its_orders).sum()


def test_the_partitioned_day_plans_and_renders_exactly_what_one_process_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the demo shop (2,000 customers, a year, the demo's seed and day), one signing secret for both runs
    monkeypatch.setenv("LOYALTY_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("LOYALTY_OUTBOX_SAMPLE", "0")
    shop = tmp_path / "shop"
    write_shop(generate_shop(2000, 365, 7, DEFAULT_END), shop)

    # when: the day runs in one process, and in three partitions: the shop's size decides (700 customers each)
    _in_folder(tmp_path / "one", 1, monkeypatch)
    one = daily_run(as_of=DEFAULT_END, data=str(shop), dry_run=True, now=_morning(DEFAULT_END))
    _in_folder(tmp_path / "three", 1, monkeypatch)
    monkeypatch.delenv("LOYALTY_PARTITIONS")
    monkeypatch.setenv("LOYALTY_PARTITION_CUSTOMERS", "700")
    three = daily_run(as_of=DEFAULT_END, data=str(shop), dry_run=True, now=_morning(DEFAULT_END))

    # then: the same picks (each partition picked for its customers from the day's model), row for row
    picks = _picks(Path(one.run_dir))
    assert picks["customer_id"].nunique() > 1500 and set(picks["reason"]) == {"because_of", "due_again", "popular"}
    pd.testing.assert_frame_equal(picks, _picks(Path(three.run_dir)))
    # the same plan row for row (every decision and reason), the same coupons, the same messages
    plan = _sorted_plan(Path(one.run_dir))
    assert len(plan) > 1000 and plan["decision"].nunique() >= 3
    pd.testing.assert_frame_equal(plan, _sorted_plan(Path(three.run_dir)))
    coupons = [
        sorted(pd.read_csv(Path(s.run_dir) / "offers" / "coupons.csv").itertuples(index=False)) for s in (one, three)
    ]
    assert coupons[0] == coupons[1] and len(coupons[0]) > 100
    pd.testing.assert_frame_equal(_rendered(Path(one.run_dir)), _rendered(Path(three.run_dir)))
    assert (one.planned, one.rendered, one.to_send_by_campaign) == (
        three.planned,
        three.rendered,
        three.to_send_by_campaign,
    )
    # and each partition's shards hold only its customers; the parts are merged away
    run = Path(three.run_dir)
    for shard in sorted((run / "plan").glob("send-*.parquet")):
        number = int(shard.stem.removeprefix("send-"))
        owner = Partition((number - 1) % 3, 3)
        assert owner.members(pd.read_parquet(shard, columns=["customer_id"])["customer_id"]).all()
    assert not list((run / "plan").glob("part-*.parquet")) and not list((run / "offers").glob("coupons-part-*"))
    assert not list((run / "profile").glob("recommendations-part-*"))


def _ses_sent() -> int:
    return int(boto3.client("ses", region_name=REGION).get_send_quota()["SentLast24Hours"])


def test_a_partition_run_again_after_its_worker_died_sends_nothing_twice(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a small shop in two partitions, sending for real to the local SES
    monkeypatch.setenv("LOYALTY_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("LOYALTY_SHARD_SIZE", "20")
    monkeypatch.setenv("LOYALTY_RENDER_PROCESSES", "1")  # the partitions in this process: the fault below reaches them
    shop = tmp_path / "shop"
    write_shop(generate_shop(400, 200, 7, DEFAULT_END), shop)
    _in_folder(tmp_path, 2, monkeypatch)
    paths = RunPaths.for_day(Path(tmp_path / "out"), DEFAULT_END)
    before = _ses_sent()

    # when: partition 1's worker dies after it wrote its send shards, before it rendered them
    def dies(paths: RunPaths, shards: list[int], *args: object) -> list[int]:
        if shards and Partition(1, 2).owns_shard(shards[0]):
            raise MemoryError("the worker was killed")
        return render_plan(paths, shards, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(partition_flow, "render_plan", dies)
    with pytest.raises(MemoryError):
        daily_run(as_of=DEFAULT_END, data=str(shop), now=_morning(DEFAULT_END))
    died = sorted(f.name for f in (paths.root / "plan").glob("send-*.parquet"))

    # then: nothing of the day went out
    assert died and _ses_sent() == before

    # when: the day runs again, then partition 1 runs again by hand (a retried run), then the day once more
    monkeypatch.setattr(partition_flow, "render_plan", render_plan)
    first = daily_run(as_of=DEFAULT_END, data=str(shop), now=_morning(DEFAULT_END))
    sent_once = _ses_sent()
    stale = paths.send_shard(Partition(1, 2).shard_number(40))  # as if an attempt had cut more shards
    pd.read_parquet(paths.send_shard(2)).to_parquet(stale)
    again = daily_partition(DEFAULT_END, 1, 2, _morning(DEFAULT_END))
    rerun = daily_run(as_of=DEFAULT_END, data=str(shop), now=_morning(DEFAULT_END))

    # then: every message went once: the re-run partition found them all sent, its stale shard is gone
    assert first.sent > 20 and first.failed == 0 and sent_once - before == first.sent_by_channel["email"]
    assert not stale.exists()
    assert again.rendered == 0  # the ledger holds every message it would send as sent: duplicates
    assert rerun.sent == 0 and _ses_sent() == sent_once
    ledger = open_ledger(Settings(), dynamodb_client)
    try:
        assert ledger.count().get("sent", 0) == first.sent
    finally:
        ledger.close()
