"""Sending a plan's waves: each send time waits for its moment, then its shards go through the ledger.

Shared by the flows that send a plan (``daily_run``, ``adhoc_campaign``); call it inside a flow.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from functools import partial

from prefect import get_run_logger, unmapped

from tasks.deliver.delivery import deliver_shard
from tasks.kernel.calendar import SendClock
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.plan.planner import Wave


def deliver_waves(
    paths: RunPaths,
    waves: list[Wave],
    settings: Settings,
    run_id: str,
    progress: str | None,
    total: int,
    clock: SendClock,
) -> Counter[str]:
    """Send wave by wave (a send time per zone): wait for each, then one delivery task per shard; return outcomes."""
    delivery: Counter[str] = Counter()
    for wave in waves:
        moment = clock.wait_for(wave.at, on_wait=partial(_log_wait, wave.at, len(wave.shards)))
        shards = deliver_shard.map(
            unmapped(paths),
            wave.shards,
            unmapped(settings),
            unmapped(run_id),
            unmapped(progress),
            unmapped(total),
            unmapped(moment),
        )
        for counts in shards.result():
            delivery.update(counts)
    return delivery


def _log_wait(at: datetime, shards: int, seconds: float) -> None:
    get_run_logger().info(
        "Waiting %s for the wave at %s UTC (%d shards)", timedelta(seconds=round(seconds)), f"{at:%H:%M}", shards
    )
