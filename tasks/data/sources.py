"""Read the contract tables from a folder or ``s3://bucket/prefix``, CSV or Parquet.

A table that is not there is a ``ContractError`` naming its file, unless the contract says it is optional
(``point_movements``): then it is left out, and the shop is taken to keep no such records.
"""

from __future__ import annotations

import csv
import gzip as gzip_module
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tasks.data.contract import LOAD_ORDER, SPECS, ContractError, check_columns
from tasks.data.validation import ROW, RawTable
from tasks.kernel.enums import Table

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Looked for in this order; the first that exists is read.
SUFFIXES = (".parquet", ".csv", ".csv.gz")

S3ClientFactory = Callable[[], "S3Client"]


def load_raw(source: str, s3_client: S3ClientFactory | None = None) -> dict[Table, RawTable]:
    """Read every contract table from ``source`` with cells as text and row numbers added (an absent optional
    table is left out)."""
    if source.startswith("s3://"):
        if s3_client is None:
            raise ContractError(f"{source}: an S3 source needs AWS settings")
        return _load_s3(source, s3_client())
    folder = Path(source)
    if not folder.is_dir():
        raise ContractError(f"{source}: no such folder")
    found = {table: _find_file(folder, table) for table in LOAD_ORDER}
    return {table: _read(table, path.name, path) for table, path in found.items() if path is not None}


def _find_file(folder: Path, table: Table) -> Path | None:
    """The table's file, or None for an optional table the shop does not give."""
    for suffix in SUFFIXES:
        if (path := folder / f"{table.value}{suffix}").exists():
            return path
    if SPECS[table].optional:
        return None
    raise ContractError(f"{folder / table.value}.csv: file not found (nor .parquet, .csv.gz)")


def _load_s3(source: str, client: S3Client) -> dict[Table, RawTable]:
    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(obj["Key"] for obj in page.get("Contents", []))
    tables: dict[Table, RawTable] = {}
    for table in LOAD_ORDER:
        key = next((f"{prefix}{table.value}{s}" for s in SUFFIXES if f"{prefix}{table.value}{s}" in keys), None)
        if key is None and SPECS[table].optional:
            continue
        if key is None:
            raise ContractError(f"s3://{bucket}/{prefix}{table.value}.csv: file not found (nor .parquet, .csv.gz)")
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        tables[table] = _read(table, f"s3://{bucket}/{key}", io.BytesIO(body), key)
    return tables


def _read(table: Table, name: str, data: Path | io.BytesIO, key: str | None = None) -> RawTable:
    suffix = key or str(data)
    try:
        if suffix.endswith(".parquet"):
            frame = pd.read_parquet(data)
        else:
            frame = _read_csv_as_text(data, gzip=suffix.endswith(".gz"))
    except (ValueError, OSError, pd.errors.ParserError, pa.ArrowException) as exc:
        raise ContractError(f"{name}: cannot be read ({type(exc).__name__})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    check_columns(SPECS[table], list(frame.columns), name)
    frame[ROW] = range(1, len(frame) + 1)
    return RawTable(table=table, frame=frame, source=name)


def _read_csv_as_text(data: Path | io.BytesIO, gzip: bool) -> pd.DataFrame:
    """Read every cell as text (empty stays empty) with Arrow's multithreaded reader and Arrow strings.

    Every column is read as a string: the contract, not type inference, decides what a cell means
    (an id "0012" stays "0012").
    """
    raw = data.getvalue() if isinstance(data, io.BytesIO) else data.read_bytes()
    if gzip:
        raw = gzip_module.decompress(raw)
    first_line = raw.split(b"\n", 1)[0].decode("utf-8-sig")
    names = next(csv.reader([first_line]))
    table = pacsv.read_csv(
        pa.BufferReader(raw),
        read_options=pacsv.ReadOptions(block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )
    frame: pd.DataFrame = table.to_pandas(types_mapper=lambda _: pd.StringDtype("pyarrow"))
    return frame


def check_source(source: str, s3_client: S3ClientFactory | None = None) -> None:
    """Check that every table (but an absent optional one) exists with its required columns, reading headers only."""
    if source.startswith("s3://"):
        return  # objects are read whole by the run itself, which reports the same errors
    folder = Path(source)
    if not folder.is_dir():
        raise ContractError(f"{source}: no such folder")
    for table in LOAD_ORDER:
        path = _find_file(folder, table)
        if path is None:
            continue
        if path.name.endswith(".parquet"):
            columns = list(pq.read_schema(path).names)
        else:
            columns = list(pd.read_csv(path, nrows=0, compression="infer").columns)
        check_columns(SPECS[table], [str(c).strip() for c in columns], str(path))
