"""Writing: the tables as CSV or Parquet files, one per table."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tasks.data.contract import LOAD_ORDER
from tasks.demo.synth.common import DAY
from tasks.kernel.enums import Table


@cache
def _times_of_day() -> Any:
    """Arrow array of "THH:MM:SSZ" for every second of a day."""
    clock = np.datetime_as_string(np.arange(DAY).astype("datetime64[s]"))
    return pa.array(np.strings.add(np.strings.slice(clock, 10, 19), "Z").astype(str))


def _iso_utc(column: Any) -> Any:
    """ISO-8601 UTC text (2026-03-05T14:03:00Z) for a timestamp column; nulls stay null.

    Much faster than strftime: the date and the time of day come from small tables.
    """
    seconds = pc.cast(pc.cast(column, pa.timestamp("s", tz="UTC"), safe=False), pa.int64())
    seconds = seconds.combine_chunks() if isinstance(seconds, pa.ChunkedArray) else seconds
    missing = seconds.is_null().to_numpy(zero_copy_only=False)
    day, second = np.divmod(seconds.fill_null(0).to_numpy(), DAY)
    first = int(day[~missing].min()) if (~missing).any() else 0
    last = int(day[~missing].max()) if (~missing).any() else 0
    dates = pa.array(np.arange(first, last + 1).astype("datetime64[D]").astype(str))
    date_part = pc.take(dates, pa.array(day - first, mask=missing))
    return pc.binary_join_element_wise(date_part, pc.take(_times_of_day(), pa.array(second)), "")


def _arrow_table(frame: pd.DataFrame) -> Any:
    """The frame as an Arrow table; naive datetimes (birth dates) become calendar dates."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            column = pc.cast(pc.cast(table.column(i), pa.timestamp("s"), safe=False), pa.date32())
        elif pa.types.is_null(field.type):  # an all-empty column is text, not "null"
            column = table.column(i).cast(pa.large_string())
        else:
            continue
        table = table.set_column(i, field.name, column)
    return table


def _csv_batch(batch: Any, schema: Any) -> Any:
    """A record batch with timestamps as ISO-8601 UTC text, ready for the CSV writer."""
    columns = [_iso_utc(c) if pa.types.is_timestamp(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _needs_quotes(table: Any) -> bool:
    """Whether any column name or text cell holds a comma, quote or line break."""
    pattern = r'[,"\r\n]'
    if any(pc.match_substring_regex(pa.array(table.column_names), pattern).to_pylist()):
        return True
    for field, column in zip(table.schema, table.columns, strict=True):
        text = pa.types.is_string(field.type) or pa.types.is_large_string(field.type)
        if text and pc.any(pc.match_substring_regex(column, pattern)).as_py():
            return True
    return False


def _write_csv(table: Any, path: Path) -> None:
    """Write a table as CSV in batches, so memory stays flat for big tables."""
    # Unquoted unless a value needs it: easier to read, and Arrow refuses to write
    # an unquoted value that would break the CSV.
    quoting = "needed" if _needs_quotes(table) else "none"
    options = pa_csv.WriteOptions(quoting_style=quoting, quoting_header=quoting)
    schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_timestamp(f.type) else f for f in table.schema])
    with pa_csv.CSVWriter(str(path), schema, write_options=options) as writer:
        for batch in table.to_batches(max_chunksize=1 << 20):
            writer.write_batch(_csv_batch(batch, schema))


def write_shop(
    frames: dict[Table, pd.DataFrame], out_dir: Path, fmt: Literal["csv", "parquet"] = "csv"
) -> dict[Table, Path]:
    """Write one file per table (``customers.csv`` etc.) into ``out_dir``; return the paths."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown format {fmt!r}: use 'csv' or 'parquet'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[Table, Path] = {}
    for table_name in [t for t in LOAD_ORDER if t in frames]:
        path = out_dir / f"{table_name.value}.{fmt}"
        table = _arrow_table(frames[table_name])
        if fmt == "parquet":
            pq.write_table(table, str(path))
        else:
            _write_csv(table, path)
        paths[table_name] = path
    return paths
