"""A day's customers in partitions, each planned and rendered by its own flow run: the ``daily-partition`` deployment.

With ``LOYALTY_PARTITIONS=N`` (N > 1) the daily run computes what is global once (snapshot, profile, KPIs,
the recommendation model), then hands each partition of its customers (a stable hash of the id,
``tasks/plan/partitions.py``) to a ``daily-partition`` flow run, which picks their products, plans them through
every gate and renders their messages. Two ways, one body (``plan_partition``):

- as runs (the deployed daily run, ``bench/daily_run.py --workers``): one run of the ``daily-partition``
  deployment per partition, submitted to its work pool: any number of workers take them (process workers
  here, the ECS pool in production). Each reads the day's folder (S3 in production) and writes its parts
  back; the daily run waits for all, then merges;
- on this host (the CLI, the demo, backfills): the same flow, one run per partition in a pool of processes (as
  many as the host has CPUs); with one CPU, subflows one after another.

Either way the daily run then merges the parts into the day's plan (``merge_partitions``) and picks, and sends the waves
as before: the plan is the single-process plan, row for row. A partition run again (its worker died, or by
hand) first removes what its earlier attempt wrote; nothing is sent before every partition is merged, and the
ledger sends nothing twice.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.kernel.enums import Table
from tasks.kernel.memory import give_back_memory
from tasks.kernel.paths import RunPaths, private_files
from tasks.kernel.runstore import RunFolder, run_folder
from tasks.kernel.settings import Settings
from tasks.plan.partitions import Partition, PartitionResult
from tasks.plan.planner import PlanSummary, merge_partitions, plan_day
from tasks.plan.replay import ReplayFilter
from tasks.recommend.picks import merge_picks, recommend_partition
from tasks.render.workers import api_url, render_plan, render_processes

# The deployment a partition runs as, ``flow-name/deployment-name``.
PARTITION_DEPLOYMENT = "daily-partition/daily-partition"
# How often the daily run looks at its partitions' runs while it waits for them.
POLL_SECONDS = 2.0


class PartitionNotDeployedError(RuntimeError):
    """The ``daily-partition`` deployment is not on the Prefect server, so no partition could run."""

    def __init__(self) -> None:
        super().__init__(
            f"the {PARTITION_DEPLOYMENT} deployment is not on the Prefect server: start `loyalty serve` "
            "or run `prefect deploy --all` first, or set LOYALTY_PARTITIONS=1; nothing was planned"
        )


class PartitionsFailedError(RuntimeError):
    """Some partitions' runs did not complete: nothing of the day was merged or sent."""

    def __init__(self, failed: dict[int, str]) -> None:
        listed = ", ".join(f"{p} ({state})" for p, state in sorted(failed.items()))
        super().__init__(
            f"{len(failed)} partition runs did not complete: {listed}; nothing was sent. Run the day again"
        )
        self.failed = failed


def plan_partition(
    paths: RunPaths,
    as_of: date,
    settings: Settings,
    partition: Partition,
    sending_at: datetime,
    only: ReplayFilter | None = None,
) -> PartitionResult:
    """Pick products for, plan and render one partition's customers into the run folder; write and return what it
    made (its picks from the day's fitted model, which the daily run merges with the others')."""
    summary = plan_day(paths, as_of, settings, sending_at, only, partition)  # first: it clears an earlier attempt's
    picks = partition.picks_file(paths)
    recommend_partition(paths, settings, partition.arrow_rows(paths.table(Table.CUSTOMERS)), picks)
    rendered = render_plan(paths, summary.shards, as_of, settings, picks)
    result = PartitionResult(
        index=partition.index,
        count=partition.count,
        rendered=sum(rendered),
        shards=summary.shards,
        waves={w.at: w.shards for w in summary.waves},
    )
    partition.summary_file(paths).write_text(result.model_dump_json())
    return result


@flow(name="daily-partition", task_runner=ThreadPoolTaskRunner(max_workers=2))  # type: ignore[arg-type]  # Prefect's runner generics
def daily_partition(
    as_of: date,
    partition: int,
    partitions: int,
    sending_at: datetime,
    dry_run: bool = False,
    only: ReplayFilter | None = None,
) -> PartitionResult:
    """Plan and render one partition of a day's customers (the daily run starts these and merges them).

    Args:
        as_of: The business date of the day (its run folder, with its snapshot, profile and picks).
        partition: Which partition, from 0.
        partitions: How many partitions the day is split into.
        sending_at: When the day sends, as the daily run judges quiet hours and lateness.
        dry_run: The day is a rehearsal: issue no coupon.
        only: A filtered replay's filter (a backfill), as the daily run was given it.
    """
    settings = Settings()
    settings = settings.model_copy(update={"dry_run": dry_run or settings.dry_run})
    part = Partition(partition, partitions)
    mirror: Path | None = None
    if settings.output_s3 is not None:  # a mirror of its own: another run on this host may mirror the same day
        mirror = Path(tempfile.mkdtemp(prefix="loyalty-partition-"))
        settings = settings.model_copy(update={"output_dir": mirror})
    paths = RunPaths.for_day(settings.output_dir, as_of)
    try:
        with private_files(), run_folder(paths, settings):
            result = plan_partition(paths, as_of, settings, part, sending_at, only)
    finally:
        if mirror is not None:
            shutil.rmtree(mirror, ignore_errors=True)
    get_run_logger().info(
        "Partition %d of %d: %d messages rendered in %d shards",
        partition,
        partitions,
        result.rendered,
        len(result.shards),
    )
    return result


def plan_in_partitions(
    paths: RunPaths,
    as_of: date,
    settings: Settings,
    sending_at: datetime,
    only: ReplayFilter | None = None,
    *,
    as_runs: bool = False,
    folder: RunFolder | None = None,
) -> tuple[PlanSummary, int]:
    """Plan and render the day partition by partition, then merge the parts; return the plan and messages rendered.

    ``as_runs``: each partition a ``daily-partition`` deployment run (workers take them); else each a flow run in a
    pool of this host's processes (as many as it has CPUs, or ``LOYALTY_RENDER_PROCESSES``), each rendering in its
    own process; with one CPU, subflows one after another.
    ``folder``: the day's folder, pushed before the runs read it and pulled after they wrote their parts.
    """
    count = settings.partitions or 1
    if folder is not None:  # the runs read the day's folder as S3 holds it
        folder.push()
    processes = min(count, render_processes(settings))
    if as_runs:
        _run_deployments(as_of, count, sending_at, settings.dry_run, only)
    elif processes > 1:
        _run_in_processes(processes, as_of, count, sending_at, settings.dry_run, only)
    else:
        for p in range(count):
            daily_partition(as_of, p, count, sending_at, settings.dry_run, only)
    if folder is not None:
        folder.pull(("plan/", "render/", "offers/", "outbox/", "profile/recommendations-part-"))
    results = [
        PartitionResult.model_validate_json(Partition(p, count).summary_file(paths).read_text()) for p in range(count)
    ]
    summary = merge_partitions(paths, settings, results)
    merge_picks([Partition(p, count).picks_file(paths) for p in range(count)], paths.recommendations)
    return summary, sum(r.rendered for r in results)


def _run_in_processes(
    processes: int, as_of: date, count: int, sending_at: datetime, dry_run: bool, only: ReplayFilter | None
) -> None:
    """Run the partitions' flows in a pool of ``processes`` processes (``spawn``), reporting to this run's API."""
    api = PREFECT_API_URL.value() or api_url()  # without it each process would start a server of its own
    give_back_memory()  # the day's global steps' freed pages, before the partitions' processes start
    # a process per partition (max_tasks_per_child=1): a partition's memory goes back when it ends, not held
    # by a pool process for the next partition
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=spawn, max_tasks_per_child=1) as pool:
        runs = [pool.submit(_partition_process, api, as_of, p, count, sending_at, dry_run, only) for p in range(count)]
        for run in runs:
            run.result()  # a failed partition fails the day here, the others finished or cancelled with the pool


def _partition_process(
    api: str, as_of: date, partition: int, count: int, sending_at: datetime, dry_run: bool, only: ReplayFilter | None
) -> None:
    """One partition's flow run in a pool process: it renders in this process (the pool is the parallelism)."""
    os.environ["LOYALTY_RENDER_PROCESSES"] = "1"
    with temporary_settings(updates={PREFECT_API_URL: api}):
        daily_partition(as_of, partition, count, sending_at, dry_run, only)


def _run_deployments(as_of: date, count: int, sending_at: datetime, dry_run: bool, only: ReplayFilter | None) -> None:
    """Start one ``daily-partition`` run per partition, wait for every one; ``PartitionsFailedError`` if any failed."""
    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(PARTITION_DEPLOYMENT)
        except ObjectNotFound:
            raise PartitionNotDeployedError() from None
    runs = [
        run_deployment(
            PARTITION_DEPLOYMENT,
            parameters={
                "as_of": as_of.isoformat(),
                "partition": p,
                "partitions": count,
                "sending_at": sending_at.isoformat(),
                "dry_run": dry_run,
                "only": None if only is None else only.model_dump(mode="json"),
            },
            timeout=0,  # start them all, then wait below
        )
        for p in range(count)
    ]
    logger.info("Partitions: %d runs of %s submitted to its work pool", count, PARTITION_DEPLOYMENT)
    states: dict[int, str] = {}
    with get_client(sync_client=True) as client:
        while True:
            current = [client.read_flow_run(r.id).state for r in runs]  # type: ignore[union-attr]  # run_deployment(timeout=0) returns the run
            if all(s is not None and s.is_final() for s in current):
                break
            time.sleep(POLL_SECONDS)
    for p, state in enumerate(current):
        if state is None or not state.is_completed():
            states[p] = (state.name if state is not None else None) or "unknown"
    if states:
        raise PartitionsFailedError(states)
