"""Sending a plan's waves: each send time waits for its moment, then its shards go through the ledger.

Two ways, one wave body (``deliver_wave``):

- inline (``deliver_waves``): the run waits for each wave in its own process. The CLI, the demo (whose
  clock is simulated and never waits) and backfills of past days send this way;
- as runs (``schedule_waves``): a deployed run plans and renders, then schedules one ``send-wave``
  deployment run per wave at its time and ends. Each wave is its own flow run: Scheduled in the UI,
  retried by Prefect, safe to run again by hand; the ledger sends nothing twice. The idempotency key
  (``send-wave/<day>/<HH:MM>``, ``send-wave/adhoc/<name>/<day>/<HH:MM>``) makes a re-run of the day
  schedule no second set.

Shared by the flows that send a plan (``daily_run``, ``adhoc_campaign``, ``send_wave``); call it inside a flow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from uuid import UUID

from prefect import get_run_logger, unmapped
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.states import Scheduled

from flows.alerts import LATE_AFTER, emit_late_wave
from tasks.deliver.delivery import check_lease, deliver_shard
from tasks.kernel.calendar import SendClock
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.plan.planner import Wave
from tasks.report.run_report import FAILED_SHARDS, WaveRecord, write_wave_record

# The deployment a scheduled wave runs (``flows/send_wave.py``), as ``flow-name/deployment-name``.
SEND_WAVE_DEPLOYMENT = "send-wave/send-wave"


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
    after_shard: Callable[[], object] = lambda: None,
) -> Counter[str]:
    """Send wave by wave (a send time per zone): wait for each, then one delivery task per shard; return outcomes.

    A shard that fails does not stop the others, nor later waves: once every wave went, ``ShardsFailedError``
    carries the outcomes (its ``failed_shards`` counted), so the caller can still report the run.
    A ledger lease too short for the send timeouts is refused before anything is sent.
    """
    check_lease(settings)
    delivery: Counter[str] = Counter()
    for wave in waves:
        sent = deliver_wave(paths, wave, settings, run_id, progress, total, clock, after_shard)
        # the wave's record: a wave run again by hand (``send-wave``) replaces it in the day's summary
        write_wave_record(paths, WaveRecord(at=wave.at, shards=wave.shards, delivery=dict(sent)))
        delivery.update(sent)
    if delivery[FAILED_SHARDS]:
        raise ShardsFailedError(delivery)
    return delivery


def deliver_wave(
    paths: RunPaths,
    wave: Wave,
    settings: Settings,
    run_id: str,
    progress: str | None,
    total: int,
    clock: SendClock,
    after_shard: Callable[[], object] = lambda: None,
) -> Counter[str]:
    """Send one wave: wait for its time, say if it goes late, then one delivery task per shard; return outcomes.

    A shard that fails is logged and counted (``failed_shards``); the others still go. ``after_shard`` runs as
    each shard finishes (a run folder in S3 pushes its outcomes: a worker lost mid-wave leaves them behind).
    """
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
    delivery: Counter[str] = Counter()
    for shard, future in zip(wave.shards, shards, strict=True):
        try:
            delivery.update(future.result())
        except Exception as exc:
            get_run_logger().error("Delivery shard %d failed (%s)", shard, type(exc).__name__)
            delivery[FAILED_SHARDS] += 1
        after_shard()
    return delivery


class SendWaveNotDeployedError(RuntimeError):
    """The ``send-wave`` deployment is not on the Prefect server, so no wave could run: nothing was scheduled."""

    def __init__(self) -> None:
        super().__init__(
            f"the {SEND_WAVE_DEPLOYMENT} deployment is not on the Prefect server: start `loyalty serve` "
            "or run `prefect deploy --all` first; nothing was scheduled"
        )


@dataclass(frozen=True)
class ScheduledWave:
    """A wave's ``send-wave`` run: its time, its flow run and the idempotency key that keeps it one."""

    at: datetime
    flow_run_id: UUID
    state: str
    key: str


def send_wave_deployment() -> UUID:
    """Return the id of the ``send-wave`` deployment; ``SendWaveNotDeployedError`` when it is missing."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(SEND_WAVE_DEPLOYMENT).id
        except ObjectNotFound:
            raise SendWaveNotDeployedError() from None


def wave_run_key(as_of: date, at: datetime, adhoc: str | None = None) -> str:
    """The idempotency key of a wave's run: one run per day (per ad-hoc campaign) and wave time (UTC)."""
    utc = at.astimezone(UTC)
    when = f"{utc:%H:%M}" if utc.date() == as_of else f"{utc:%Y-%m-%dT%H:%M}"
    scope = f"adhoc/{adhoc}/{as_of}" if adhoc else f"{as_of}"
    return f"send-wave/{scope}/{when}"


def schedule_waves(
    deployment_id: UUID, as_of: date, waves: list[Wave], adhoc: str | None = None
) -> list[ScheduledWave]:
    """Schedule one ``send-wave`` run per wave at its time; a wave already scheduled (same key) is not scheduled again.

    A wave whose time has passed is scheduled at that time all the same: the worker starts it at once.
    """
    logger = get_run_logger()
    scheduled: list[ScheduledWave] = []
    with get_client(sync_client=True) as client:
        for wave in waves:
            key = wave_run_key(as_of, wave.at, adhoc)
            run = client.create_flow_run_from_deployment(
                deployment_id,
                parameters={"as_of": as_of.isoformat(), "at": wave.at.isoformat(), "adhoc": adhoc},
                state=Scheduled(scheduled_time=wave.at),
                idempotency_key=key,
            )
            state = run.state_name or "unknown"
            scheduled.append(ScheduledWave(at=wave.at, flow_run_id=run.id, state=state, key=key))
            logger.info(
                "Wave at %s UTC, shards: %d: send-wave run %s is %s",
                f"{wave.at:%H:%M}",
                len(wave.shards),
                run.id,
                state,
            )
    return scheduled


def _log_wait(at: datetime, shards: int, seconds: float) -> None:
    get_run_logger().info(
        "Waiting %s for the wave at %s UTC (shards: %d)", timedelta(seconds=round(seconds)), f"{at:%H:%M}", shards
    )
