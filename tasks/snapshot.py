"""Load the shop's tables as of a date: read, validate, write clean Parquet and the quarantine."""

from __future__ import annotations

from datetime import date

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks import progress
from tasks.aws import s3_client
from tasks.contract import LOAD_ORDER
from tasks.enums import Table
from tasks.paths import RunPaths
from tasks.settings import Settings
from tasks.sources import load_raw
from tasks.validation import TableCounts, ValidatedSnapshot, validate_snapshot


class SnapshotSummary(BaseModel):
    """What loading found: rows per table and why rows were quarantined."""

    rows: dict[str, dict[str, int]]
    quarantined_by_reason: dict[str, dict[str, int]]

    @property
    def quarantined(self) -> int:
        return sum(r["quarantined"] for r in self.rows.values())


def summarise(snapshot: ValidatedSnapshot) -> SnapshotSummary:
    """Count rows per table and quarantine reasons per table."""

    def as_dict(c: TableCounts) -> dict[str, int]:
        return {"input": c.input, "clean": c.clean, "quarantined": c.quarantined, "future": c.future}

    by_reason: dict[str, dict[str, int]] = {}
    sizes = snapshot.quarantine.groupby(["table", "reason"]).size()
    for table, reason, n in zip(
        sizes.index.get_level_values(0), sizes.index.get_level_values(1), sizes.to_numpy(), strict=True
    ):
        by_reason.setdefault(str(table), {})[str(reason)] = int(n)
    return SnapshotSummary(
        rows={t.value: as_dict(c) for t, c in snapshot.counts.items()}, quarantined_by_reason=by_reason
    )


def write_snapshot(snapshot: ValidatedSnapshot, paths: RunPaths) -> None:
    """Write clean tables as Parquet and the quarantine as CSV under the run folder."""
    for table in LOAD_ORDER:
        path = paths.table(table)
        path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.frames[table].to_parquet(path, index=False)
    snapshot.quarantine.to_csv(paths.quarantine, index=False)


def read_table(paths: RunPaths, table: Table, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one clean table of the run."""
    return pd.read_parquet(paths.table(table), columns=columns)


@task(cache_policy=NO_CACHE)
def load_snapshot(source: str, as_of: date, paths: RunPaths, settings: Settings) -> SnapshotSummary:
    """Load and validate the shop's tables as of a date; quarantine bad rows."""
    progress.advance("load and validate")
    raw = load_raw(source, lambda: s3_client(settings))
    paths.reset()
    snapshot = validate_snapshot(raw, as_of)
    write_snapshot(snapshot, paths)
    return summarise(snapshot)
