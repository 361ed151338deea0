"""A committed plan's waves, read back from its send shards: what a ``send-wave`` run sends.

``commit_shards`` writes the send shards wave by wave (a shard never mixes two send times) into the run
folder's ``plan/``; the waves are read back from those files, never planned again, so a wave sent hours
after its day was planned (or re-run by hand days later) sends exactly what the day decided.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow.parquet as pq

from tasks.kernel.paths import RunPaths
from tasks.plan.planner import Wave

SEND_SHARD_GLOB = "send-*.parquet"


class PlannedWave(Wave):
    """A wave of a committed plan, and how many messages its shards hold."""

    messages: int


class WaveNotFoundError(LookupError):
    """The run folder's plan has no wave at the asked time (or two that match it)."""


def planned_waves(paths: RunPaths) -> list[PlannedWave]:
    """Return the committed plan's waves in sending order, from its send shards' ``send_at``."""
    waves: dict[datetime, PlannedWave] = {}
    for file in sorted((paths.root / "plan").glob(SEND_SHARD_GLOB)):
        number = int(file.stem.removeprefix("send-"))
        rows = pq.ParquetFile(file).metadata.num_rows
        if rows == 0:
            continue
        first = pd.Timestamp(pd.read_parquet(file, columns=["send_at"])["send_at"].iloc[0])
        at = (first.tz_localize(UTC) if first.tzinfo is None else first.tz_convert(UTC)).to_pydatetime()
        wave = waves.setdefault(at, PlannedWave(at=at, shards=[], messages=0))
        wave.shards.append(number)
        wave.messages += rows
    return [waves[at] for at in sorted(waves)]


def find_wave(waves: list[PlannedWave], at: datetime) -> PlannedWave:
    """Return the wave planned for ``at`` (UTC; the minute is enough)."""
    target = at.astimezone(UTC).replace(second=0, microsecond=0)
    matches = [w for w in waves if w.at.astimezone(UTC).replace(second=0, microsecond=0) == target]
    if len(matches) != 1:
        known = ", ".join(f"{w.at.astimezone(UTC):%Y-%m-%d %H:%M}" for w in waves) or "none"
        raise WaveNotFoundError(f"the plan has no wave at {target:%Y-%m-%d %H:%M} UTC (its waves: {known})")
    return matches[0]


def wave_at_minute(waves: list[PlannedWave], hhmm: str) -> PlannedWave:
    """Return the one wave whose UTC time of day is ``hhmm`` (``HH:MM``), as ``loyalty send-wave --at`` names it."""
    matches = [w for w in waves if f"{w.at.astimezone(UTC):%H:%M}" == hhmm]
    if len(matches) != 1:
        known = ", ".join(f"{w.at.astimezone(UTC):%Y-%m-%d %H:%M}" for w in waves) or "none"
        why = "two waves" if matches else "no wave"
        raise WaveNotFoundError(f"the plan has {why} at {hhmm} UTC (its waves: {known})")
    return matches[0]
