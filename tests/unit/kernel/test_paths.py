"""A day's run folder: a re-run of the day keeps what the earlier runs decided and did."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import date
from pathlib import Path

import pandas as pd

from tasks.kernel.paths import RunPaths, private_files


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


def test_a_run_folder_and_what_a_run_writes_in_it_are_private(tmp_path: Path) -> None:
    before = os.umask(0o022)  # the usual umask: files 0644, readable by every user of the machine
    paths = RunPaths.for_day(tmp_path / "out", date(2024, 6, 1))
    state = tmp_path / "state"
    try:
        with private_files(), paths.exclusive():
            paths.plan.parent.mkdir(parents=True)
            pd.DataFrame({"customer_id": ["C1"]}).to_parquet(paths.plan)
            paths.summary.write_text("{}")
            state.mkdir()  # what the state's stores do on first use
            with closing(sqlite3.connect(state / "suppressions.sqlite")) as db:
                db.execute("CREATE TABLE t (x)")
                db.commit()
        assert os.umask(0o022) == 0o022  # the run's umask is gone with the run
    finally:
        os.umask(before)

    for folder in (tmp_path / "out", paths.root, paths.plan.parent, state):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    for file in (paths.plan, paths.summary, state / "suppressions.sqlite"):
        assert file.stat().st_mode & 0o777 == 0o600, file
