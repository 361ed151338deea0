"""Rendering in worker processes: the daily run writes the same outbox with two processes as with one."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from flows.daily_run import daily_run
from tasks.demo.synth import DEFAULT_END, generate_shop, write_shop
from tasks.kernel.settings import Settings

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _dry_run(shop: Path, folder: Path, processes: int, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the day rendering with ``processes`` into its own output and state folders; return the run folder."""
    monkeypatch.setenv("LOYALTY_OUTPUT_DIR", str(folder / "out"))
    monkeypatch.setenv("LOYALTY_STATE_DIR", str(folder / "state"))
    monkeypatch.setenv("LOYALTY_RENDER_PROCESSES", str(processes))
    morning = datetime.combine(DEFAULT_END, time(6), ZoneInfo(Settings().shop_timezone))
    summary = daily_run(as_of=DEFAULT_END, data=str(shop), dry_run=True, now=morning)
    return Path(summary.run_dir)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_render_processes_write_the_same_outbox_and_messages_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the same secret for both runs (else each state folder keeps its own key: other coupon codes and links)
    monkeypatch.setenv("LOYALTY_SIGNING_SECRET", "render-workers-test-secret-0123456789")
    monkeypatch.setenv("LOYALTY_SHARD_SIZE", "25")  # several shards, so two processes share them
    shop = tmp_path / "shop"
    write_shop(generate_shop(300, 200, 7, DEFAULT_END), shop)

    one = _dry_run(shop, tmp_path / "one", 1, monkeypatch)
    two = _dry_run(shop, tmp_path / "two", 2, monkeypatch)

    shards = sorted((two / "render").glob("rendered-*.parquet"))
    assert len(shards) >= 4
    outbox = _files(one / "outbox")
    assert sum(name.endswith(".html") for name in outbox) >= 50
    assert outbox == _files(two / "outbox")
    for shard in shards:
        pd.testing.assert_frame_equal(pd.read_parquet(one / "render" / shard.name), pd.read_parquet(shard))
