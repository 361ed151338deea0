"""Render a plan's shards in worker processes: one task run per shard, as many at once as there are CPUs.

Rendering is Python (Jinja, Babel, pydantic) and holds the GIL, so threads of one process render one
message at a time; processes render one each. The shards run under Prefect's ``ProcessPoolTaskRunner``
(``spawn``): each is still its own task run of the flow, its failure the flow's error as before, and a
worker gets only the shard's number and the run's paths and settings; it reads the shard itself.
``LOYALTY_RENDER_PROCESSES=1``, or a plan of one shard, renders in the flow's own task runner.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import cast

from prefect import get_client, unmapped
from prefect.futures import PrefectFutureList, as_completed
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ProcessPoolTaskRunner

from tasks.kernel import progress
from tasks.kernel.memory import give_back_memory
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.render.compose import render_messages, split_picks


def render_processes(settings: Settings) -> int:
    """How many processes render at once: the setting, else the CPUs this process may run on."""
    if settings.render_processes is not None:
        return settings.render_processes
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return len(usable) if usable else os.cpu_count() or 1


def render_plan(
    paths: RunPaths, shards: Sequence[int], as_of: date, settings: Settings, picks: Path | None = None
) -> list[int]:
    """Render every shard of the plan (``render_messages``, one task run each); return each shard's count.

    Called from a flow. A failed shard raises its error here, as the flow's own task runner would.
    ``picks``: the customers' picks (a partition's own file), instead of the day's.
    """
    split_picks(paths, shards, picks)  # read the day's picks once, not once per shard
    processes = min(render_processes(settings), len(shards))
    give_back_memory()  # the plan's freed pages, before the render processes start beside this one
    if processes <= 1:
        return list(render_messages.map(unmapped(paths), list(shards), unmapped(as_of), unmapped(settings)).result())
    progress.advance("render", 0, None)  # a worker's progress stays in its process: counted here per shard
    # without a configured API (a local run on Prefect's ephemeral server) each worker would start a server of
    # its own: they report to this process's instead
    api = PREFECT_API_URL.value() or api_url()
    with temporary_settings(updates={PREFECT_API_URL: api}), ProcessPoolTaskRunner(max_workers=processes) as runner:
        parameters = {
            "paths": unmapped(paths),
            "shard": list(shards),
            "as_of": unmapped(as_of),
            "settings": unmapped(settings),
        }
        # Prefect types this runner's map as futures of futures; they are futures of the task's counts
        futures = cast("PrefectFutureList[int]", runner.map(render_messages, parameters))
        for future in as_completed(list(futures)):
            if future.state.is_completed():
                progress.advance("render", future.result())
        return list(futures.result())


def api_url() -> str:
    with get_client(sync_client=True) as client:
        return str(client.api_url)
