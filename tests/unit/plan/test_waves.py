"""A committed plan's waves, read back from its send shards: what a send-wave run sends."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from tasks.kernel.paths import RunPaths
from tasks.plan.waves import WaveNotFoundError, find_wave, planned_waves, wave_at_minute

MOSCOW_TEN = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
LOS_ANGELES_TEN = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)


def _shard(paths: RunPaths, number: int, at: datetime, messages: int) -> None:
    paths.send_shard(number).parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"idempotency_key": [f"k{number}-{i}" for i in range(messages)], "send_at": [at] * messages})
    frame.to_parquet(paths.send_shard(number), index=False)


def test_the_waves_are_the_send_shards_grouped_by_their_send_time(tmp_path: Path) -> None:
    # given: a day committed as three shards, two for Moscow's 10:00 and one for Los Angeles' 10:00
    paths = RunPaths(tmp_path / "2026-03-01")
    _shard(paths, 1, MOSCOW_TEN, 3)
    _shard(paths, 2, MOSCOW_TEN, 1)
    _shard(paths, 3, LOS_ANGELES_TEN, 2)
    # when
    waves = planned_waves(paths)
    # then: in sending order, each with its shards and messages
    assert [(w.at, w.shards, w.messages) for w in waves] == [(MOSCOW_TEN, [1, 2], 4), (LOS_ANGELES_TEN, [3], 2)]
    assert find_wave(waves, LOS_ANGELES_TEN.replace(second=30)).shards == [3]
    assert wave_at_minute(waves, "07:00").shards == [1, 2]


def test_a_time_with_no_wave_names_the_waves_there_are(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "2026-03-01")
    _shard(paths, 1, MOSCOW_TEN, 1)
    with pytest.raises(WaveNotFoundError, match=r"no wave at 09:00 UTC \(its waves: 2026-03-01 07:00\)"):
        wave_at_minute(planned_waves(paths), "09:00")
    with pytest.raises(WaveNotFoundError, match="its waves: none"):
        find_wave(planned_waves(RunPaths(tmp_path / "2026-03-02")), MOSCOW_TEN)
