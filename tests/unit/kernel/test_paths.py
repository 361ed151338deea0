"""A day's run folder: a re-run of the day keeps what the earlier runs decided and did."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from tasks.kernel.paths import RunPaths


def _fake_run(paths: RunPaths, label: str) -> None:
    for path in (paths.plan, paths.delivery_shard(1), paths.outbox / "index.html", paths.profile, paths.summary):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(label)


def test_each_rerun_moves_the_earlier_run_aside_and_drops_what_can_be_recomputed(tmp_path: Path) -> None:
    paths = RunPaths.for_day(tmp_path, date(2024, 6, 1))
    paths.reset()  # a first run: nothing to keep
    assert not paths.earlier.exists()

    _fake_run(paths, "run 1")
    paths.reset()
    _fake_run(paths, "run 2")
    paths.reset()

    runs = sorted(p.name for p in paths.earlier.iterdir())
    assert runs == ["1", "2"]
    for number in runs:
        kept = paths.earlier / number
        assert (kept / "summary.json").read_text() == f"run {number}"
        assert (kept / "outbox" / "index.html").read_text() == f"run {number}"
        assert (kept / "delivery" / "outcomes-00001.parquet").exists()
        assert not (kept / "profile").exists()
    assert not paths.plan.exists() and not paths.profile.exists() and not paths.summary.exists()
