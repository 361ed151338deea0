"""Load the shop's tables as of a date: read, validate, write clean Parquet and the quarantine."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.data.contract import LOAD_ORDER
from tasks.data.sources import iter_raw
from tasks.data.validation import TableCounts, ValidatedSnapshot, validate_snapshot
from tasks.kernel import progress
from tasks.kernel.aws import s3_client
from tasks.kernel.enums import Table
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings


class SnapshotSummary(BaseModel):
    """What loading found: rows per table, why rows were quarantined, and which optional cells were emptied."""

    rows: dict[str, dict[str, int]]
    quarantined_by_reason: dict[str, dict[str, int]]
    # table -> column -> reason -> cells emptied (the row kept), e.g. {"customers": {"phone": {"invalid_phone": 3}}}
    nulled_by_column: dict[str, dict[str, dict[str, int]]] = {}

    @property
    def nulled(self) -> int:
        return sum(
            n for columns in self.nulled_by_column.values() for reasons in columns.values() for n in reasons.values()
        )

    @property
    def customers(self) -> int:
        """Customers loaded clean."""
        return self.rows.get("customers", {}).get("clean", 0)

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
        rows={t.value: as_dict(c) for t, c in snapshot.counts.items()},
        quarantined_by_reason=by_reason,
        nulled_by_column=snapshot.nulled_by_column(),
    )


def write_snapshot(snapshot: ValidatedSnapshot, paths: RunPaths) -> None:
    """Write clean tables as Parquet, the quarantine and the emptied cells as CSV under the run folder (an absent
    optional table: no file)."""
    for table in (t for t in LOAD_ORDER if t in snapshot.frames):
        write_table(paths, table, snapshot.frames[table])
    snapshot.quarantine.to_csv(paths.quarantine, index=False)
    snapshot.nulled.to_csv(paths.nulled, index=False)


def write_table(paths: RunPaths, table: Table, clean: pd.DataFrame) -> None:
    """Write one clean table of the run as Parquet."""
    path = paths.table(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean.to_parquet(path, index=False)


def read_table(
    paths: RunPaths,
    table: Table,
    columns: list[str] | None = None,
    arrow_strings: bool = False,
    rows: Callable[[pa.Table], pa.Table] | None = None,
) -> pd.DataFrame:
    """Read one clean table of the run.

    ``arrow_strings``: text columns as ``string[pyarrow]`` (one buffer per column, about a quarter of
    the memory of Python strings) for readers of the big tables that only compare and hash text.
    ``rows``: keep only some rows, chosen on the Arrow table before it becomes a frame (a partition's customers).
    """
    return read_parquet(paths.table(table), columns, arrow_strings, rows)


def read_parquet(
    file: Path,
    columns: list[str] | None = None,
    arrow_strings: bool = False,
    rows: Callable[[pa.Table], pa.Table] | None = None,
) -> pd.DataFrame:
    """Read a Parquet file as pandas does; with ``arrow_strings``, text as ``string[pyarrow]``."""
    if not arrow_strings and rows is None:
        return pd.read_parquet(file, columns=columns)
    as_arrow = pd.StringDtype("pyarrow")
    mapping = {pa.string(): as_arrow, pa.large_string(): as_arrow}
    table = pq.read_table(file, columns=columns)
    if rows is not None:
        table = rows(table)
    # the Arrow table is ours alone: let the conversion free its columns as it goes
    frame: pd.DataFrame = table.to_pandas(
        types_mapper=mapping.get if arrow_strings else None, split_blocks=True, self_destruct=True
    )
    return frame


@task(cache_policy=NO_CACHE)
def load_snapshot(source: str, as_of: date, paths: RunPaths, settings: Settings) -> SnapshotSummary:
    """Load and validate the shop's tables as of a date; quarantine bad rows."""
    progress.advance("load and validate")
    # the source is found (every file or object there) and its first table read before the day's folder is
    # touched: a wrong location leaves the earlier run's folder as it was
    tables = iter_raw(source, lambda: s3_client(settings))
    first = next(tables, None)
    paths.reset()
    # each table is validated as soon as it and the tables it points at are read (the next is read meanwhile),
    # its clean frame written, then let go with its raw table
    read = itertools.chain([first] if first is not None else [], tables)
    snapshot = validate_snapshot(read, as_of, keep=lambda table, clean: write_table(paths, table, clean))
    write_snapshot(snapshot, paths)  # the quarantine and the emptied cells
    return summarise(snapshot)
