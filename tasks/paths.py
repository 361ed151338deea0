"""Where a run's files live: ``<output>/<as_of>/<step>/``."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from tasks.enums import Table


@dataclass(frozen=True)
class RunPaths:
    """The folder layout of one daily run; tasks pass this, never big frames."""

    root: Path

    @classmethod
    def for_day(cls, output_dir: Path, as_of: date) -> RunPaths:
        return cls(root=output_dir / as_of.isoformat())

    def table(self, table: Table) -> Path:
        return self.root / "snapshot" / f"{table.value}.parquet"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine.csv"

    @property
    def profile(self) -> Path:
        return self.root / "profile" / "profile.parquet"

    @property
    def plan(self) -> Path:
        return self.root / "plan" / "plan.parquet"

    def send_shard(self, number: int) -> Path:
        return self.root / "plan" / f"send-{number:05d}.parquet"

    def rendered_shard(self, number: int) -> Path:
        return self.root / "render" / f"rendered-{number:05d}.parquet"

    def delivery_shard(self, number: int) -> Path:
        return self.root / "delivery" / f"outcomes-{number:05d}.parquet"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def reset(self) -> None:
        """Remove what an earlier run of the same day wrote, so nothing stale mixes in."""
        for step in ("snapshot", "profile", "plan", "render", "outbox", "delivery"):
            shutil.rmtree(self.root / step, ignore_errors=True)
