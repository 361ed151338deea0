"""Read the contract tables from a folder or ``s3://bucket/prefix``, CSV or Parquet.

A table that is not there is a ``ContractError`` naming its file, unless the contract says it is optional
(``point_movements``): then it is left out, and the shop is taken to keep no such records.

A CSV row with more or fewer fields than the header is set aside with its row number (quarantined as
``malformed_row`` by validation); the rest of the file loads. A quoted field may hold a line break.

Every error is one ``ContractError`` line naming the file or bucket, the line where known, and the
problem, never a cell: the reader's own exception (whose text may quote a customer's row) is neither
chained nor kept as context.
"""

from __future__ import annotations

import csv
import gzip as gzip_module
import io
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as S3ConnectionError

from tasks.data.contract import LOAD_ORDER, SPECS, ContractError, check_columns
from tasks.data.validation import ROW, RawTable
from tasks.kernel.enums import Table

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Looked for in this order; the first that exists is read.
SUFFIXES = (".parquet", ".csv", ".csv.gz")

S3ClientFactory = Callable[[], "S3Client"]

# S3's bucket naming rules, in short: 3-63 small letters, digits, dots and dashes
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def load_raw(source: str, s3_client: S3ClientFactory | None = None) -> dict[Table, RawTable]:
    """Read every contract table from ``source`` with cells as text and row numbers added (an absent optional
    table is left out)."""
    return dict(iter_raw(source, s3_client))


def iter_raw(source: str, s3_client: S3ClientFactory | None = None) -> Iterator[tuple[Table, RawTable]]:
    """``load_raw``'s tables one at a time, in ``LOAD_ORDER``: a folder's file is read when the next table is
    asked for, so validation can start on the customers while the events are read. A missing table is refused
    before any is read."""
    if source.startswith("s3://"):
        location = _s3_location(source)
        if s3_client is None:
            raise ContractError(f"{source}: an S3 source needs AWS settings")
        yield from _load_s3(location, s3_client()).items()
        return
    folder = Path(source)
    if not folder.is_dir():
        raise ContractError(f"{source}: no such folder")
    found = {table: _find_file(folder, table) for table in LOAD_ORDER}
    for table, path in found.items():
        if path is not None:
            yield table, _read(table, path.name, path.read_bytes(), path.name)


def _s3_location(source: str) -> tuple[str, str]:
    """Return the bucket and the key prefix (empty or ending in ``/``) of ``s3://bucket/prefix``."""
    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise ContractError(f"{source}: not an S3 location; write s3://bucket or s3://bucket/prefix")
    return bucket, prefix.rstrip("/") + "/" if prefix.strip("/") else ""


def _find_file(folder: Path, table: Table) -> Path | None:
    """The table's file, or None for an optional table the shop does not give."""
    for suffix in SUFFIXES:
        if (path := folder / f"{table.value}{suffix}").exists():
            return path
    if SPECS[table].optional:
        return None
    raise ContractError(f"{folder / table.value}.csv: file not found (nor .parquet, .csv.gz)")


def _load_s3(location: tuple[str, str], client: S3Client) -> dict[Table, RawTable]:
    bucket, prefix = location
    keys: set[str] = set()
    problem: str | None
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.update(obj["Key"] for obj in page.get("Contents", []))
    except (BotoCoreError, ClientError) as exc:
        problem = _s3_problem(exc)
    else:
        problem = None
    if problem is not None:  # raised here, not in the handler: the botocore error stays out of the chain
        raise ContractError(f"{f's3://{bucket}/{prefix}'.rstrip('/')}: {problem}")
    tables: dict[Table, RawTable] = {}
    for table in LOAD_ORDER:
        key = next((f"{prefix}{table.value}{s}" for s in SUFFIXES if f"{prefix}{table.value}{s}" in keys), None)
        if key is None and SPECS[table].optional:
            continue
        if key is None:
            raise ContractError(f"s3://{bucket}/{prefix}{table.value}.csv: file not found (nor .parquet, .csv.gz)")
        name = f"s3://{bucket}/{key}"
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            problem = _s3_problem(exc)
        else:
            problem = None
        if problem is not None:
            raise ContractError(f"{name}: {problem}")
        tables[table] = _read(table, name, body, key)
    return tables


def _s3_problem(exc: BotoCoreError | ClientError) -> str:
    """Say in a few words what went wrong with an S3 request (botocore's text names no customer data, but is long)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        known = {
            "NoSuchBucket": "no such bucket",
            "NoSuchKey": "file not found",
            "AccessDenied": "access denied (check the AWS credentials and the bucket's policy)",
            "403": "access denied (check the AWS credentials and the bucket's policy)",
            "404": "not found",
        }
        return known.get(code, f"S3 refused the request ({code or 'no error code'})")
    if isinstance(exc, S3ConnectionError):  # refused, timed out, no such host
        return (
            f"cannot reach S3 at {exc.kwargs.get('endpoint_url', 'its endpoint')} (check the network and AWS settings)"
        )
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials (set them in the environment or an AWS profile)"
    return f"the S3 request failed ({type(exc).__name__})"


def _read(table: Table, name: str, raw: bytes, file_name: str) -> RawTable:
    """Read one file's bytes (``file_name`` tells the format) into text cells with data row numbers."""
    malformed: list[int] = []
    if file_name.endswith(".parquet"):
        frame = _read_parquet(raw, name)
    else:
        frame, malformed = _read_csv_as_text(_gunzip(raw, name) if file_name.endswith(".gz") else raw, name)
    frame.columns = [str(c).strip() for c in frame.columns]
    check_columns(SPECS[table], list(frame.columns), name)
    rows = np.arange(1, len(frame) + len(malformed) + 1, dtype=np.int64)
    frame[ROW] = np.setdiff1d(rows, np.asarray(malformed, dtype=np.int64), assume_unique=True)
    return RawTable(table=table, frame=frame, source=name, malformed_rows=tuple(malformed))


def _gunzip(raw: bytes, name: str) -> bytes:
    try:
        return gzip_module.decompress(raw)
    except (OSError, EOFError, zlib.error):
        pass  # raised below, out of the handler
    raise ContractError(f"{name}: not a readable gzip file (truncated or corrupt)")


def _read_parquet(raw: bytes, name: str) -> pd.DataFrame:
    if not raw:
        raise ContractError(f"{name}: empty file")
    try:
        frame: pd.DataFrame = pd.read_parquet(io.BytesIO(raw))
    except (ValueError, OSError, pa.ArrowException):
        pass  # raised below, out of the handler
    else:
        return frame
    raise ContractError(f"{name}: not a readable Parquet file (truncated or corrupt)")


def _read_csv_as_text(raw: bytes, name: str) -> tuple[pd.DataFrame, list[int]]:
    """Read every cell as text (empty stays empty) with Arrow's multithreaded reader and Arrow strings; return
    the frame and the data row numbers of the rows set aside for a wrong number of fields.

    Every column is read as a string: the contract, not type inference, decides what a cell means
    (an id "0012" stays "0012").
    """
    names = _csv_header(raw, name)
    table, malformed = _parse_csv(raw, names, threads=True)
    if malformed:  # only a single-threaded read knows where the rows are
        table, malformed = _parse_csv(raw, names, threads=False)
    if table is None:
        _refuse_text(raw, name)
        raise ContractError(f"{name}: not a readable CSV file")
    frame: pd.DataFrame = table.to_pandas(types_mapper=lambda _: pd.StringDtype("pyarrow"))
    # the reader counts the header as row 1; data rows are numbered from 1 in the quarantine
    return frame, sorted(n - 1 for n in malformed if n is not None)


def _parse_csv(raw: bytes, names: list[str], threads: bool) -> tuple[pa.Table | None, list[int | None]]:
    """Parse with Arrow; a row with the wrong number of fields is skipped and its number (None if unknown) kept."""
    malformed: list[int | None] = []

    def skip(row: pacsv.InvalidRow) -> str:
        malformed.append(row.number)  # never row.text: it is the customer's data
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(raw),
            read_options=pacsv.ReadOptions(block_size=1 << 24, use_threads=threads),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=skip),
            convert_options=pacsv.ConvertOptions(
                # large strings: what pandas' Arrow strings hold, so the frame takes the columns without a copy
                column_types={n: pa.large_string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (ValueError, pa.ArrowException):  # the message may quote a row: it goes no further
        return None, malformed
    return table, malformed


def _csv_header(raw: bytes, name: str) -> list[str]:
    """Return the header's column names, or refuse an empty or non-UTF-8 file naming it."""
    if not raw or raw.isspace():  # no copy of the file (strip and split would make one)
        raise ContractError(f"{name}: empty file; the first line must name the table's columns")
    end = raw.find(b"\n")
    first = raw if end < 0 else raw[:end]
    _refuse_text(first, name)
    names = next(csv.reader([first.decode("utf-8-sig")]), [])
    if not any(n.strip() for n in names):
        raise ContractError(f"{name}: line 1: empty; the first line must name the table's columns")
    return names


def _refuse_text(raw: bytes, name: str) -> None:
    """Raise naming the first line that is not UTF-8 (a spreadsheet saved as Windows-1251 or Latin-1)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
    else:
        return
    raise ContractError(f"{name}: line {line}: not UTF-8 text (save the file as UTF-8)")


def check_source(source: str, s3_client: S3ClientFactory | None = None) -> None:
    """Check that every table (but an absent optional one) exists with its required columns, reading headers only."""
    if source.startswith("s3://"):
        _s3_location(source)
        return  # objects are read whole by the run itself, which reports the same errors
    folder = Path(source)
    if not folder.is_dir():
        raise ContractError(f"{source}: no such folder")
    for table in LOAD_ORDER:
        path = _find_file(folder, table)
        if path is None:
            continue
        columns = _parquet_columns(path) if path.name.endswith(".parquet") else _csv_columns(path)
        check_columns(SPECS[table], [str(c).strip() for c in columns], str(path))


def _parquet_columns(path: Path) -> list[str]:
    if path.stat().st_size == 0:
        raise ContractError(f"{path}: empty file")
    try:
        return list(pq.read_schema(path).names)
    except (ValueError, OSError, pa.ArrowException):
        pass  # raised below, out of the handler
    raise ContractError(f"{path}: not a readable Parquet file (truncated or corrupt)")


def _csv_columns(path: Path) -> list[str]:
    """Read the header line only (of a gzipped file too)."""
    try:
        with gzip_module.open(path) if path.name.endswith(".gz") else path.open("rb") as file:
            first = file.readline(1 << 20)
    except (OSError, EOFError, zlib.error):
        first = None
    if first is None:
        raise ContractError(f"{path}: not a readable gzip file (truncated or corrupt)")
    return _csv_header(first, str(path))
