"""Benchmark the daily run: synthesise N customers, then time each step of a dry run, with peak RSS.

    uv run python bench/daily_run.py --customers 100000

Each step runs through its task's ``.fn`` (the same code the flow runs, without
Prefect's bookkeeping; render through ``render_plan`` in its worker processes, as the
flow does), then the whole flow runs under Prefect (``--no-steps``: only the flow).
Every line gives wall and CPU seconds (with the worker processes') and the peak of the
whole process tree during that step (sampled by psutil: workers and Prefect's
temporary server included). Writes JSON to bench/results/daily_run-<customers>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import tempfile
import threading
import time as clock
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TreeMemory:
    """The peak of the summed RSS of this process and all its descendants, sampled every ``every`` seconds.

    Rendering runs in worker processes: ``getrusage(RUSAGE_SELF)`` does not see them, and ``RUSAGE_CHILDREN``
    gives one reaped child's peak, not what the processes held together. psutil walks the process tree.
    """

    def __init__(self, every: float = 0.2) -> None:
        self._every, self._stop = every, threading.Event()
        self._me = psutil.Process()
        self.peak_mb = 0.0
        self.flow_run_peak_mb = 0.0  # the biggest single flow-run process a worker started (a partition's run)
        # CPU seconds (user + system) of each process of the tree as last sampled, with its kind and lifetime;
        # ``start_cpu_window`` sets the baseline that ``cpu_window`` counts from
        self._cpu: dict[int, tuple[str, float, float, float]] = {}  # pid: kind, cpu, created, last seen
        self._base: dict[int, float] = {}
        self._thread = threading.Thread(target=self._sample, name="tree-memory", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self._every):
            self.peak_mb = max(self.peak_mb, self.now_mb())

    def now_mb(self) -> float:
        total = 0
        for process in [self._me, *self._me.children(recursive=True)]:
            try:
                rss = process.memory_info().rss
                kind = self._kind(process)
                if kind == "flow runs":
                    self.flow_run_peak_mb = max(self.flow_run_peak_mb, rss / 2**20)
                times = process.cpu_times()  # its own, not its reaped children's: every descendant is sampled
                self._cpu[process.pid] = (kind, times.user + times.system, process.create_time(), clock.time())
                total += rss
            except psutil.Error:  # ended between the listing and the reading
                continue
        return total / 2**20

    def _kind(self, process: psutil.Process) -> str:
        if process.pid == self._me.pid:
            return "this process"
        command = " ".join(process.cmdline())
        for marker, kind in (
            ("prefect.engine", "flow runs"),
            ("worker start", "workers"),
            ("server start", "server"),
            ("prefect.server.api.server", "temporary server"),  # Prefect's own, started by the first step
            ("multiprocessing.spawn", "this process's pools"),  # the load step's validation processes
        ):
            if marker in command:
                return kind
        return "other"

    def start_cpu_window(self) -> None:
        """Count CPU seconds from now (``cpu_window``)."""
        self._cpu.clear()  # processes that ended before now are not counted
        self.now_mb()
        self._base = {pid: cpu for pid, (_, cpu, _, _) in self._cpu.items()}

    def cpu_window(self) -> tuple[dict[str, float], list[tuple[float, float]]]:
        """CPU seconds since ``start_cpu_window`` by kind of process (to the last sample: up to ``every`` seconds
        of a process that ended are not seen), and each flow run's (CPU seconds, seconds it lived)."""
        self.now_mb()
        by_kind: dict[str, float] = {}
        runs: list[tuple[float, float]] = []
        for pid, (kind, cpu, created, seen) in self._cpu.items():
            used = cpu - self._base.get(pid, 0.0)
            by_kind[kind] = by_kind.get(kind, 0.0) + used
            if kind == "flow runs" and pid not in self._base:
                runs.append((used, seen - created))
        return by_kind, sorted(runs)

    def reset(self) -> float:
        """Return the peak since the last reset, and start a new one."""
        peak, self.peak_mb = max(self.peak_mb, self.now_mb()), self.now_mb()
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


TREE: TreeMemory | None = None


def timed(results: list[dict[str, Any]], name: str, fn: Callable[[], Any]) -> Any:
    """Run one step; record its seconds, CPU seconds (this process and its reaped children), the process's
    peak RSS so far and the step's own peak of the whole process tree (workers included)."""
    assert TREE is not None
    TREE.reset()
    start, cpu = clock.perf_counter(), _cpu_seconds()
    value = fn()
    seconds, cpu = clock.perf_counter() - start, _cpu_seconds() - cpu
    tree = TREE.reset()
    results.append(
        {
            "step": name,
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "step_tree_peak_mb": round(tree, 1),
        }
    )
    print(
        f"{name:<28} {seconds:8.2f} s  cpu {cpu:8.2f} s   tree peak {tree:8.1f} MB   process peak {peak_rss_mb():8.1f} MB",
        flush=True,
    )
    return value


def task_seconds_of_last_flow_run() -> dict[str, float]:
    """Seconds of each task of the latest daily run (summed over a task's runs), from the Prefect API: its own
    tasks, not its partitions' (their runs' seconds are printed apart)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["daily-run"])), sort=FlowRunSort.START_TIME_DESC, limit=1
        )
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])), limit=200)
    seconds: dict[str, float] = {}
    for task in tasks:
        name = task.name.rsplit("-", 1)[0]
        seconds[name] = round(seconds.get(name, 0.0) + (task.total_run_time.total_seconds()), 2)
    return dict(sorted(seconds.items(), key=lambda kv: -kv[1]))


def _cpu_seconds() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def synthesise(customers: int, days: int, seed: int, as_of: date, shop: Path) -> dict[str, int]:
    """Generate the synthetic shop and write it as CSV files; return each table's rows."""
    from tasks.demo.synth import generate_shop, write_shop

    frames = generate_shop(customers, days, seed, as_of)
    write_shop(frames, shop)
    return {t.value: len(f) for t, f in frames.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="where to write results")
    parser.add_argument("--keep", action="store_true", help="keep the generated shop and run folder")
    parser.add_argument(
        "--no-steps", action="store_true", help="only the whole flow under Prefect, not each step's task on its own"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="then the day in its partitions (as the daily run splits it, at least one a worker), each a daily-partition "
        "deployment run on a real Prefect server: "
        "once with one process worker and once with this many, side by side",
    )
    args = parser.parse_args()
    global TREE
    TREE = TreeMemory()

    work = Path(tempfile.mkdtemp(prefix="loyalty-bench-"))
    os.environ["LOYALTY_OUTPUT_DIR"] = str(work / "out")
    os.environ["LOYALTY_STATE_DIR"] = str(work / "state")

    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner

    from tasks.data.snapshot import load_snapshot
    from tasks.demo.synth import DEFAULT_END
    from tasks.kernel.paths import RunPaths
    from tasks.kernel.settings import Settings
    from tasks.plan.pauses import read_variable
    from tasks.plan.planner import plan_day
    from tasks.profile.features import profile_customers
    from tasks.recommend.picks import recommend_products
    from tasks.render.workers import render_plan, render_processes

    results: list[dict[str, Any]] = []
    as_of: date = DEFAULT_END
    shop = work / "shop"
    print(f"daily run benchmark: {args.customers:,} customers, {args.days} days, in {work}")
    # in a process of its own: the memory the synthetic shop took is given back to the system, not left in this
    # process's heap to be counted in the run's peak
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as synth:
        rows = timed(
            results,
            "synth: generate + write csv",
            lambda: synth.submit(synthesise, args.customers, args.days, args.seed, as_of, shop).result(),
        )

    settings = Settings()
    paths = RunPaths.for_day(settings.output_dir, as_of)
    # the run sends at 06:00 in the shop's zone on its day, as the schedule does
    morning = datetime.combine(as_of, time(6), ZoneInfo(settings.shop_timezone))
    # the planner and delivery read the operators' switches: start Prefect's temporary server before timing
    timed(results, "setup: prefect api", lambda: read_variable("paused_campaigns"))
    plan = None
    if not args.no_steps:
        timed(results, "load + validate", lambda: load_snapshot.fn(str(shop), as_of, paths, settings))
        timed(results, "profile", lambda: profile_customers.fn(paths, as_of, settings))
        timed(results, "recommendations", lambda: recommend_products.fn(paths, as_of, settings))
        plan = timed(results, "plan", lambda: plan_day.fn(paths, as_of, settings, morning))
        shards = plan.shards

        @flow(name="bench-render", task_runner=ThreadPoolTaskRunner(max_workers=2))  # as the daily run's
        def render_step() -> int:
            return sum(render_plan(paths, shards, as_of, settings))

        processes = min(render_processes(settings), len(shards))
        timed(results, f"render ({processes} processes)", render_step)
        shutil.rmtree(paths.root)
    steps_total = sum(r["seconds"] for r in results if not r["step"].startswith(("synth", "setup")))

    from flows.daily_run import daily_run

    summary = timed(
        results,
        "whole flow under Prefect",
        lambda: daily_run(as_of=as_of, dry_run=True, data=str(shop), now=morning),
    )
    flow_seconds, flow_peak = results[-1]["seconds"], results[-1]["step_tree_peak_mb"]
    flow_tasks = task_seconds_of_last_flow_run()
    print("the flow's task runs (seconds, summed per task; shards run side by side):")
    for name, seconds in flow_tasks.items():
        print(f"  {name:<34} {seconds:8.2f} s")
    partitions = Settings().partitions_for(args.customers)  # as the daily run splits this shop (LOYALTY_PARTITIONS)
    workers = with_workers(args.workers, partitions, work, shop, as_of, morning, results) if args.workers else None
    TREE.stop()

    report = {
        "benchmark": "daily_run",
        "customers": args.customers,
        "days": args.days,
        "rows": rows,
        "quarantined": summary.quarantined,
        "planned": summary.planned,
        "to_send_by_campaign": summary.to_send_by_campaign,
        "rendered": summary.rendered,
        "render_processes": render_processes(settings),
        "steps": results,
        "steps_total_seconds": round(steps_total, 2),
        "flow_seconds": flow_seconds,
        "flow_task_seconds": flow_tasks,
        "flow_tree_peak_mb": flow_peak,  # the whole flow's on this host, not the worker runs' after it
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpus": os.cpu_count(),
        "workers": workers,
    }
    target = args.json or Path(__file__).parent / "results" / f"daily_run-{args.customers}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"rows: {rows}\nplanned {summary.planned}, rendered {summary.rendered}, quarantined {summary.quarantined}")
    print(f"to send by campaign: {summary.to_send_by_campaign}")
    if not args.no_steps:
        print(f"steps total {steps_total:.1f} s (each task on its own)")
    print(
        f"whole flow under Prefect {flow_seconds:.1f} s, its peak {report['flow_tree_peak_mb']:.0f} MB"
        f" (process tree); this process's peak RSS {peak_rss_mb():.0f} MB -> {target}"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


REPO = Path(__file__).resolve().parent.parent


def with_workers(
    workers: int, partitions: int, work: Path, shop: Path, as_of: date, morning: datetime, results: list[dict[str, Any]]
) -> dict[str, Any]:
    """The day in ``partitions`` partitions (at least ``workers``), each a ``daily-partition`` deployment run that
    process workers take: a real Prefect server (SQLite, 127.0.0.1), the project's ``prefect.yaml`` deployed to its process pool; once
    with one worker (the partitions one after another), once with ``workers``. Everything stops on the way out."""
    import subprocess
    import sys
    from contextlib import ExitStack

    from flows.daily_run import daily_run
    from tasks.kernel.settings import Settings
    from tests.prefect_servers import running_prefect_server, spawn, talking_to

    assert TREE is not None
    home = work / "prefect-home"
    home.mkdir()
    partitions = max(partitions, workers)  # at least one partition a worker
    os.environ["LOYALTY_PARTITIONS"] = str(partitions)
    with running_prefect_server(home, PREFECT_SERVER_UI_ENABLED="false") as server:
        # a partition's run renders in its own process: the workers are the parallelism
        # workers look for runs every 2 s (Prefect's default: 10 s), so the bench measures the work, not the polling
        env = server.env(
            LOYALTY_RENDER_PROCESSES="1",
            LOYALTY_SHOP_TIMEZONE=Settings().shop_timezone,
            PREFECT_WORKER_QUERY_SECONDS="2",
        )
        prefect = [sys.executable, "-m", "prefect"]
        subprocess.run(
            [*prefect, "work-pool", "create", "loyalty-process", "--type", "process"],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*prefect, "--no-prompt", "deploy", "--name", "daily-partition"],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        seconds: dict[int, float] = {}
        cpu: dict[int, dict[str, float]] = {}  # CPU seconds of the run by kind of process, per number of workers
        runs: dict[int, list[float]] = {}  # each partition run's seconds, per number of workers
        for n in sorted({1, workers}):
            with ExitStack() as running:
                for i in range(n):
                    start = [
                        *prefect,
                        "worker",
                        "start",
                        "--pool",
                        "loyalty-process",
                        "--limit",
                        "1",
                        "--name",
                        f"bench-{n}-{i}",
                    ]
                    running.enter_context(spawn(start, env, work / f"worker-{n}-{i}.log", cwd=REPO))
                TREE.flow_run_peak_mb = 0.0
                TREE.start_cpu_window()
                with talking_to(server):
                    timed(
                        results,
                        f"whole flow, {partitions} partitions, {n} worker{'s' if n > 1 else ''}",
                        lambda: daily_run(
                            as_of=as_of, dry_run=True, data=str(shop), now=morning, partitions_as_runs=True
                        ),
                    )
                    runs[n] = partition_seconds()
            seconds[n] = results[-1]["seconds"]
            cpu[n], processes = TREE.cpu_window()
            results[-1]["partition_run_peak_mb"] = round(TREE.flow_run_peak_mb, 1)
            results[-1]["partition_run_seconds"] = runs[n]
            results[-1]["cpu_seconds_by_process"] = {kind: round(used, 1) for kind, used in sorted(cpu[n].items())}
            # each partition's process: CPU seconds and the cores it kept busy over its life (1.0: one core)
            results[-1]["partition_processes"] = [
                {"cpu_seconds": round(used, 1), "seconds": round(alive, 1), "cores": round(used / alive, 2)}
                for used, alive in processes
                if alive > 0
            ]
            print(
                f"  partition runs: {', '.join(f'{s:.1f} s' for s in runs[n])}; biggest {TREE.flow_run_peak_mb:.0f} MB"
            )
            print(
                "  their processes, CPU s / s alive: "
                + ", ".join(f"{used:.0f}/{alive:.0f} ({used / alive:.2f} cores)" for used, alive in processes if alive)
            )
            print("  CPU seconds: " + ", ".join(f"{kind} {used:.1f}" for kind, used in sorted(cpu[n].items())))
    speedup = seconds[1] / seconds[workers]
    print(f"{workers} workers against 1: {seconds[1]:.1f} s -> {seconds[workers]:.1f} s, {speedup:.2f}x faster")
    # the one-worker run's time outside its partition runs: the day's global steps and the merge (more workers
    # do not share them), each run's process start-up and the workers' polling
    outside = seconds[1] - sum(runs[1])
    print(
        f"  outside the partition runs (one worker): {outside:.1f} s of {seconds[1]:.1f} s ({outside / seconds[1]:.0%})"
    )
    partition_cpu = cpu[1].get("flow runs", 0.0)
    print(
        f"  one worker: its partition processes used {partition_cpu:.0f} CPU s over {sum(runs[1]):.0f} s of partition "
        f"runs ({partition_cpu / sum(runs[1]):.2f} cores busy); with {workers}: {cpu[workers].get('flow runs', 0.0):.0f} CPU s"
    )
    return {
        "partitions": partitions,
        "seconds": seconds,
        "speedup": round(speedup, 2),
        "seconds_outside_partition_runs": round(outside, 1),
        "partition_run_seconds": runs,
        "partition_cpu_seconds": {n: round(c.get("flow runs", 0.0), 1) for n, c in cpu.items()},
    }


def partition_seconds() -> list[float]:
    """Seconds of each ``daily-partition`` run of the latest daily run, from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["daily-partition"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=100,
        )
    count = int(os.environ["LOYALTY_PARTITIONS"])
    return sorted(round(r.total_run_time.total_seconds(), 1) for r in runs[:count])


if __name__ == "__main__":
    main()
