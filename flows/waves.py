"""Sending a plan's waves: each send time waits for its moment, then its shards go through the ledger.

Shared by the flows that send a plan (``daily_run``, ``adhoc_campaign``); call it inside a flow.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from functools import partial

from prefect import get_run_logger, unmapped

from flows.alerts import LATE_AFTER, emit_late_wave
from tasks.deliver.delivery import check_lease, deliver_shard
from tasks.kernel.calendar import SendClock
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.plan.planner import Wave
from tasks.report.run_report import FAILED_SHARDS


class ShardsFailedError(RuntimeError):
    """Some delivery shards failed; ``delivery`` holds the outcomes of the rest (and ``failed_shards``)."""

    def __init__(self, delivery: Counter[str]) -> None:
        super().__init__(f"{delivery[FAILED_SHARDS]} delivery shards failed; the other shards and waves went out")
        self.delivery = delivery


def deliver_waves(
    paths: RunPaths,
    waves: list[Wave],
    settings: Settings,
    run_id: str,
    progress: str | None,
    total: int,
    clock: SendClock,
) -> Counter[str]:
    """Send wave by wave (a send time per zone): wait for each, then one delivery task per shard; return outcomes.

    A shard that fails does not stop the others, nor later waves: once every wave went, ``ShardsFailedError``
    carries the outcomes (its ``failed_shards`` counted), so the caller can still report the run.
    A ledger lease too short for the send timeouts is refused before anything is sent.
    """
    check_lease(settings)
    delivery: Counter[str] = Counter()
    for wave in waves:
        moment = clock.wait_for(wave.at, on_wait=partial(_log_wait, wave.at, len(wave.shards)))
        if moment - wave.at > LATE_AFTER:  # the run started late: the operators hear of it (``setup-ops``)
            emit_late_wave(wave.at.date(), (moment - wave.at).total_seconds() / 60, len(wave.shards))
        shards = deliver_shard.map(
            unmapped(paths),
            wave.shards,
            unmapped(settings),
            unmapped(run_id),
            unmapped(progress),
            unmapped(total),
            unmapped(moment),
        )
        for shard, future in zip(wave.shards, shards, strict=True):
            try:
                delivery.update(future.result())
            except Exception as exc:
                get_run_logger().error("Delivery shard %d failed (%s)", shard, type(exc).__name__)
                delivery[FAILED_SHARDS] += 1
    if delivery[FAILED_SHARDS]:
        raise ShardsFailedError(delivery)
    return delivery


def _log_wait(at: datetime, shards: int, seconds: float) -> None:
    get_run_logger().info(
        "Waiting %s for the wave at %s UTC (%d shards)", timedelta(seconds=round(seconds)), f"{at:%H:%M}", shards
    )
