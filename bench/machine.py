"""How much more work this machine does with its cores busy side by side, by kind of work.

    uv run python bench/machine.py

A partition's run is one process; workers on one machine run partitions side by side. How much faster two
workers finish a day depends on the machine as much as on the engine: work that computes scales with the
cores, work that streams memory scales with the memory bandwidth. Three kinds, each run alone, then as many
at once as the machine has CPUs (each its own process, one thread each):

- ``python``: an interpreter loop (computes, touches no memory);
- ``numpy streams``: element-wise passes over 400 MB arrays (reads and writes memory at full speed);
- ``pandas groupby + sort``: group sums and a sort of 20 million rows (what a partition's planning does most).

For each, the throughput gain = CPUs x (seconds alone) / (seconds side by side): 2.0 on two cores means two
processes did twice the work in the same time; 1.0 means they shared one core's worth. A shared virtual machine
varies from minute to minute: each is measured ``--repeat`` times (alone, then side by side) and the medians
are compared; the JSON keeps every round. Writes JSON to bench/results/machine.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one thread per process: the processes are the parallelism
os.environ.setdefault("OMP_NUM_THREADS", "1")


def python_loop(scale: float) -> float:
    """Seconds of an interpreter loop."""
    start, total = time.perf_counter(), 0
    for i in range(int(30_000_000 * scale)):
        total += i * i
    return time.perf_counter() - start


def numpy_streams(scale: float) -> float:
    """Seconds of 20 element-wise passes over a 400 MB array (each reads one array and writes another)."""
    import numpy as np

    values = np.random.default_rng(7).random(int(50_000_000 * scale))
    start = time.perf_counter()
    for _ in range(20):
        values = values * 1.0001
    return time.perf_counter() - start


def pandas_groupby_sort(scale: float) -> float:
    """Seconds of three rounds of a group sum over 2 million keys and a sort, on 20 million rows."""
    import numpy as np
    import pandas as pd

    rows = int(20_000_000 * scale)
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"key": rng.integers(0, rows // 10, rows), "value": rng.random(rows)})
    start = time.perf_counter()
    for _ in range(3):
        frame.groupby("key")["value"].sum()
        frame.sort_values("key")
    return time.perf_counter() - start


KINDS: dict[str, Callable[[float], float]] = {
    "python": python_loop,
    "numpy streams": numpy_streams,
    "pandas groupby + sort": pandas_groupby_sort,
}


def measure(work: Callable[[float], float], scale: float, processes: int) -> list[float]:
    """Each process's seconds, ``processes`` of them started together (fresh processes: ``spawn``)."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        return [run.result() for run in [pool.submit(work, scale) for _ in range(processes)]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size of each kind's work (1.0: a few seconds)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="side by side (default: CPUs)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each kind (medians compared)")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "machine.json")
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPUs; each kind alone, then {args.processes} side by side (one thread each), "
        f"medians of {args.repeat} rounds"
    )
    print(f"{'kind':<24} {'alone':>8} {'side by side':>14} {'throughput gain':>16}")
    results = []
    for name, work in KINDS.items():
        alone, together = [], []
        for _ in range(args.repeat):
            alone.append(measure(work, args.scale, 1)[0])
            together.append(max(measure(work, args.scale, args.processes)))  # the round ends with the slowest
        median_alone, median_together = statistics.median(alone), statistics.median(together)
        gain = args.processes * median_alone / median_together
        results.append(
            {
                "kind": name,
                "seconds_alone": [round(s, 2) for s in alone],
                "seconds_side_by_side": [round(s, 2) for s in together],
                "throughput_gain": round(gain, 2),
                "throughput_gain_per_round": [
                    round(args.processes * a / t, 2) for a, t in zip(alone, together, strict=True)
                ],
            }
        )
        print(f"{name:<24} {median_alone:7.2f}s {median_together:13.2f}s {gain:15.2f}x", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "machine", "cpus": os.cpu_count(), "processes": args.processes, "kinds": results}
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {args.json}")


if __name__ == "__main__":
    main()
