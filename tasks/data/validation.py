"""Validate raw contract tables: typed clean frames plus a quarantine with reasons.

Per table, every input row lands in exactly one place:

* ``future`` - its time column is after the end of ``as_of`` (point-in-time:
  invisible, neither clean nor quarantined, so a backfill sees what the day saw);
  rows of a table without a time column inherit this from their parent;
* ``quarantine`` - the first failing required or key column in contract order, with a reason; a row
  the CSV reader could not split into the header's fields is ``malformed_row`` (no column);
* ``clean`` - typed, normalised (E.164 phones, ASCII email addresses, lower-case enums, UTC times).

A bad cell of an optional (nullable) column does not cost the row: the cell is emptied (or takes the
column's default, e.g. ``gender`` ``unknown``) and counted in ``nulled`` (table, row, column, reason), so a
customer with a good email and the phone ``123`` still gets their emails. Text is made safe for message
headers: a tab or line break in free text becomes one space; any other control character (NUL,
U+0001-U+001F, DEL, U+2028/2029) is ``control_characters``. Links (``url``, ``image_url``) are
http(s) only: ``javascript:`` or ``data:`` is ``invalid_url``.

The time column is checked first, so a row from the future never shows up in
today's quarantine.

A foreign key resolves against every parent row present in the input, clean or
quarantined: a customer whose sign-up time is not a date is quarantined (campaigns
never see them) but must not erase their order history from analytics.  Only
keys that no parent row has are ``dangling_foreign_key``; an empty optional link (points moved
without an order) links nothing.

An optional table the shop does not give (no file) is absent from the snapshot, not empty.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import zoneinfo
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from tasks.data.contacts import normalise_email as _normalise_email
from tasks.data.contacts import normalise_phone as _normalise_phone
from tasks.data.contract import LOAD_ORDER, QUARANTINE_COLUMNS, SPECS, Column, Kind, TableSpec
from tasks.kernel.enums import QuarantineReason as R
from tasks.kernel.enums import Table

ROW = "_row"  # 1-based data row number in the source file, added by the loader
VALIDATION_THREADS = 2  # tables validated at once (``validate_snapshot``)

_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


@dataclass(frozen=True)
class RawTable:
    """One table as read from its file: every cell as text, plus the row number."""

    table: Table
    frame: pd.DataFrame
    source: str  # file name shown to the user
    malformed_rows: tuple[int, ...] = ()  # data row numbers the reader set aside: wrong number of fields


@dataclass(frozen=True)
class TableCounts:
    input: int
    clean: int
    quarantined: int
    future: int


@dataclass(frozen=True)
class ValidatedSnapshot:
    """Clean typed frames as of a date, the quarantine, and per-table counts."""

    as_of: date
    frames: dict[Table, pd.DataFrame]
    quarantine: pd.DataFrame
    counts: dict[Table, TableCounts]
    # cells of clean rows emptied for a bad optional value: columns QUARANTINE_COLUMNS, never the value
    nulled: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(QUARANTINE_COLUMNS)))

    def quarantine_by_reason(self) -> dict[str, int]:
        """Count quarantined rows per reason, most frequent first."""
        counts = self.quarantine["reason"].value_counts()
        return {str(k): int(v) for k, v in counts.items()}

    def nulled_by_column(self) -> dict[str, dict[str, dict[str, int]]]:
        """Count emptied cells per table, column and reason."""
        sizes = self.nulled.groupby(["table", "column", "reason"]).size()
        counts: dict[str, dict[str, dict[str, int]]] = {}
        levels = [sizes.index.get_level_values(i).astype(str) for i in range(3)]
        for table, column, reason, n in zip(*levels, sizes.to_numpy(), strict=True):
            counts.setdefault(table, {}).setdefault(column, {})[reason] = int(n)
        return counts


def visible_until(as_of: date) -> pd.Timestamp:
    """Return the first instant after ``as_of``: the day is visible in full (UTC)."""
    return pd.Timestamp(datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=UTC))


def validate_snapshot(
    raw: dict[Table, RawTable] | Iterable[tuple[Table, RawTable]],
    as_of: date,
    keep: Callable[[Table, pd.DataFrame], None] | None = None,
    threads: int = VALIDATION_THREADS,
) -> ValidatedSnapshot:
    """Validate every table given, each once the tables its foreign keys point at are done, as of the end of
    ``as_of`` (an absent optional table stays absent).

    ``raw``: the tables read, or the reader's ``(table, raw table)`` pairs in ``LOAD_ORDER`` (``iter_raw``): then
    the next table is read in a thread of its own while those already read are validated, so the customers are
    being checked while the events are still being read.
    ``threads``: tables (or parts of one, ``PART_ROWS``) validated at once. A table's checks are mostly Arrow
    compute, which runs without the GIL: the events (the biggest table: it needs only customers and products)
    are checked beside the orders and their items.
    ``keep``: takes each table's clean frame as soon as it is validated (the daily run writes it), and the
    snapshot's ``frames`` stay empty; each raw table is then let go once validated, so only the tables read and
    not yet validated are in memory.
    """
    cutoff = visible_until(as_of)
    frames: dict[Table, pd.DataFrame] = {}
    future_keys: dict[Table, pd.Index] = {}
    known_keys: dict[Table, pd.Index] = {}
    quarantines: dict[Table, pd.DataFrame] = {}
    nulled: dict[Table, pd.DataFrame] = {}
    counts: dict[Table, TableCounts] = {}
    given = raw if isinstance(raw, dict) else None  # a dict given loses each table once it is validated
    pairs = iter(raw) if given is None else ((t, given[t]) for t in LOAD_ORDER if t in given)
    read: dict[Table, RawTable] = {}  # read, not yet handed to a validation thread
    order: list[Table] = []  # every table read so far, in LOAD_ORDER
    running: dict[Future[Any], tuple[Table, int] | None] = {}  # validation jobs (table, part), the next read (None)
    parts: dict[Table, list[_TableResult | None]] = {}  # each table's parts' results as they come
    finished = False  # the reader has read every table

    def settled(table: Table) -> bool:
        """Validated, or known absent: the reader has finished, or gone past it (it reads in LOAD_ORDER)."""
        if table in counts or table in order:
            return table in counts
        return finished or (bool(order) and LOAD_ORDER.index(table) < LOAD_ORDER.index(order[-1]))

    with (
        ThreadPoolExecutor(1, thread_name_prefix="read") as reader,
        ThreadPoolExecutor(max(1, threads), thread_name_prefix="validate") as pool,
    ):
        running[reader.submit(next, pairs, None)] = None
        while running or read:
            # ready: read, and every table its keys point at is done (one the shop did not give fails in its check)
            for ready in [t for t in read if all(settled(fk.table) for fk in SPECS[t].foreign_keys)]:
                # a parent's keys are final once it is done: the worker reads them, nobody writes them again
                pieces = _row_parts(SPECS[ready], read.pop(ready))
                parts[ready] = [None] * len(pieces)
                for n, piece in enumerate(pieces):
                    running[pool.submit(_validate_table, SPECS[ready], piece, cutoff, known_keys, future_keys)] = (
                        ready,
                        n,
                    )
                del pieces, piece  # the jobs hold them until they are validated
            assert running, f"tables waiting on tables never read: {sorted(read)}"  # LOAD_ORDER is topological
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for ended in done:
                job = running.pop(ended)
                if job is None:  # the reader: a table more, or the end (its error, if any, is raised here)
                    pair: tuple[Table, RawTable] | None = ended.result()
                    if pair is None:
                        finished = True
                    else:
                        read[pair[0]] = pair[1]
                        order.append(pair[0])
                        running[reader.submit(next, pairs, None)] = None
                    continue
                table, n = job
                parts[table][n] = ended.result()
                del ended
                if any(part is None for part in parts[table]):
                    continue
                result = _joined([part for part in parts.pop(table) if part is not None])
                if keep is None:
                    frames[table] = result.clean
                else:
                    keep(table, result.clean)
                    if given is not None:
                        del given[table]
                future_keys[table] = result.future_keys
                known_keys[table] = result.known_keys
                quarantines[table] = result.quarantine
                nulled[table] = result.nulled
                assert result.counts.clean + result.counts.quarantined + result.counts.future == result.counts.input
                counts[table] = result.counts
                del result  # its clean frame is not held while the next tables are validated
                if keep is not None:
                    pa.default_memory_pool().release_unused()  # give the freed Arrow buffers back
    quarantine = pd.concat([quarantines[t] for t in order], ignore_index=True)
    return ValidatedSnapshot(
        as_of=as_of,
        frames={t: frames[t] for t in order if t in frames},
        quarantine=quarantine,
        counts={t: counts[t] for t in order},
        nulled=pd.concat([nulled[t] for t in order], ignore_index=True),
    )


# A table without a key longer than this is checked in parts of about this many rows, side by side: its rows are
# judged one by one (no duplicates to find across them), and the biggest table (the events) would otherwise be
# checked by one thread while the other has finished.
PART_ROWS = 4_000_000


def _row_parts(spec: TableSpec, raw: RawTable) -> list[RawTable]:
    """The table in parts of consecutive rows to check side by side (``PART_ROWS``), or whole if it has a key."""
    rows = len(raw.frame)
    if spec.key or rows <= PART_ROWS:
        return [raw]
    bounds = np.linspace(0, rows, -(-rows // PART_ROWS) + 1).astype(int)
    return [
        RawTable(raw.table, raw.frame.iloc[start:end], raw.source, raw.malformed_rows if start == 0 else ())
        for start, end in itertools.pairwise(bounds)
    ]


def _joined(parts: list[_TableResult]) -> _TableResult:
    """One table's result from its parts' (in row order): what checking it whole gives."""
    if len(parts) == 1:
        return parts[0]
    counts = TableCounts(
        *(sum(getattr(p.counts, f) for p in parts) for f in ("input", "clean", "quarantined", "future"))
    )
    return _TableResult(
        clean=pd.concat([p.clean for p in parts], ignore_index=True),
        # the rows set aside by the reader are in the first part's: sorted among all by row, as whole
        quarantine=pd.concat([p.quarantine for p in parts], ignore_index=True).sort_values(
            "row", kind="stable", ignore_index=True
        ),
        # a part without emptied cells has an untyped empty frame: left out, as whole it adds nothing
        nulled=pd.concat([p.nulled for p in parts if len(p.nulled)] or [parts[0].nulled], ignore_index=True),
        future_keys=parts[0].future_keys,  # a table checked in parts has no key
        known_keys=parts[0].known_keys,
        counts=counts,
    )


@dataclass(frozen=True)
class _TableResult:
    clean: pd.DataFrame
    quarantine: pd.DataFrame
    nulled: pd.DataFrame
    future_keys: pd.Index
    known_keys: pd.Index  # keys of every visible row, clean or quarantined
    counts: TableCounts


class _Rows:
    """Tracks, per row, the first reason it failed (empty string: still good)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.reason = np.full(len(frame), "", dtype=object)
        self.column = np.full(len(frame), "", dtype=object)

    @property
    def good(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.reason == "", dtype=bool)

    def fail(self, mask: np.ndarray | pd.Series, column: str, reason: R) -> None:
        hit = np.asarray(mask, dtype=bool) & self.good
        self.reason[hit] = reason.value
        self.column[hit] = column


def _validate_table(
    spec: TableSpec,
    raw: RawTable,
    cutoff: pd.Timestamp,
    parent_keys: dict[Table, pd.Index],
    parent_future: dict[Table, pd.Index],
) -> _TableResult:
    frame = raw.frame
    rows = _Rows(frame)
    out = pd.DataFrame(index=frame.index)
    future = np.zeros(len(frame), dtype=bool)
    nulled: list[tuple[str, npt.NDArray[np.object_]]] = []  # per optional column: the reason per row, or ""

    # Point-in-time first: rows from the future are invisible, not bad.
    # Then countries before phones, which are read in the customer's country.
    ordered = sorted(spec.columns, key=lambda c: (c.name != spec.time_column, c.kind is not Kind.COUNTRY))
    for column in ordered:
        if column.name not in frame.columns:  # optional column absent from the file
            out[column.name] = pd.Series(pd.NA, index=frame.index, dtype=object)
            continue
        values, failures = _parse(column, frame[column.name], out)
        if column.nullable and failures:  # a bad optional cell is emptied, the row kept
            values, reasons = _null_bad_cells(column, values, failures)
            nulled.append((column.name, reasons))
            failures = []
        out[column.name] = values
        for reason, mask in failures:
            rows.fail(mask, column.name, reason)
        if column.name == spec.time_column:
            future = rows.good & (values >= cutoff).to_numpy(dtype=bool, na_value=False)
            rows.reason[future] = "future"

    for bound in spec.bounds_when:  # e.g. spent points are not positive
        when = (out[bound.when_column] == bound.when_value).to_numpy(dtype=bool, na_value=False)
        above = (out[bound.column] > bound.max_value).to_numpy(dtype=bool, na_value=False)
        rows.fail(when & above, bound.column, R.OUT_OF_RANGE)

    for fk in spec.foreign_keys:
        if spec.time_column is None and fk.table in parent_future:
            # e.g. order_items of an order placed after as_of: invisible with it
            inherited = rows.good & _isin(out[fk.column], parent_future[fk.table])
            rows.reason[inherited] = "future"
            future |= inherited
        known = _isin(out[fk.column], parent_keys[fk.table])
        linked = out[fk.column].notna().to_numpy(dtype=bool)  # an empty optional link links nothing
        rows.fail(~known & linked, fk.column, R.DANGLING_FOREIGN_KEY)

    if spec.key:
        candidates = out.loc[rows.good, list(spec.key)]
        dup = candidates.duplicated(keep="first")
        mask = np.zeros(len(frame), dtype=bool)
        mask[np.flatnonzero(rows.good)[dup.to_numpy()]] = True
        rows.fail(mask, spec.key[0], R.DUPLICATE_ID)

    out = out[[c.name for c in spec.columns]]
    good = rows.good
    bad = ~good & ~future
    extras = [c for c in frame.columns if c not in out.columns and c != ROW]
    clean = pd.concat([out.loc[good], frame.loc[good, extras]], axis=1).reset_index(drop=True)
    malformed = np.asarray(raw.malformed_rows, dtype=np.int64)
    quarantine = pd.DataFrame(
        {
            "table": spec.table.value,
            "row": np.concatenate([frame.loc[bad, ROW].to_numpy(dtype=np.int64), malformed]),
            "column": np.concatenate([rows.column[bad], np.full(len(malformed), "", dtype=object)]),
            "reason": np.concatenate([rows.reason[bad], np.full(len(malformed), R.MALFORMED_ROW.value, dtype=object)]),
        },
        columns=list(QUARANTINE_COLUMNS),
    ).sort_values("row", kind="stable", ignore_index=True)
    cells = [
        pd.DataFrame(
            {
                "table": spec.table.value,
                "row": frame.loc[good & (reasons != ""), ROW].to_numpy(dtype=np.int64),
                "column": name,
                "reason": reasons[good & (reasons != "")],
            },
            columns=list(QUARANTINE_COLUMNS),
        )
        for name, reasons in nulled
    ]
    nulled_cells = (
        pd.concat(cells, ignore_index=True).sort_values("row", kind="stable", ignore_index=True)
        if cells
        else pd.DataFrame(columns=list(QUARANTINE_COLUMNS))
    )
    key_col = spec.key[0] if spec.key else None
    future_keys = pd.Index(out.loc[future, key_col].unique()) if key_col else pd.Index([])
    visible = ~future & (out[key_col].fillna("") != "").to_numpy(dtype=bool) if key_col else future
    known_keys = pd.Index(out.loc[visible, key_col].unique()) if key_col else pd.Index([])
    counts = TableCounts(
        input=len(frame) + len(malformed),
        clean=int(good.sum()),
        quarantined=int(bad.sum()) + len(malformed),
        future=int(future.sum()),
    )
    return _TableResult(
        clean=clean,
        quarantine=quarantine,
        nulled=nulled_cells,
        future_keys=future_keys,
        known_keys=known_keys,
        counts=counts,
    )


_Bad = list[tuple[R, "np.ndarray | pd.Series"]]
_Parsed = tuple[pd.Series, _Bad]
_Parser = Callable[[Column, pd.Series, pd.DataFrame], _Parsed]


def _isin(series: pd.Series, values: Iterable[object]) -> npt.NDArray[np.bool_]:
    """Return which cells are among ``values``, with Arrow's hash lookup (pandas' isin is slow on Arrow strings)."""
    if isinstance(values, pd.Index) and isinstance(values.dtype, pd.StringDtype):  # a parent's keys: no Python loop
        keys = pa.array(values.array, type=pa.string()).drop_null()
    else:
        keys = pa.array([str(v) for v in values if v is not None and v is not pd.NA], type=pa.string())
    if isinstance(series.dtype, pd.StringDtype):
        cells = pa.array(series.array, type=pa.string())
    else:
        cells = pa.array(series.astype(object).where(series.notna(), None), type=pa.string(), from_pandas=True)
    found = pc.is_in(cells, value_set=keys)
    return np.asarray(found.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _text(series: pd.Series) -> pd.Series:
    """Return cells as stripped Arrow strings, empty for missing (None, NaN, NA), whatever the file type."""
    if not isinstance(series.dtype, pd.StringDtype):  # Parquet: typed or object columns
        series = series.astype(object).where(series.notna(), "").astype(str).astype(_TEXT)
    return series.fillna("").str.strip()


_TEXT = pd.StringDtype("pyarrow")


def _parse(column: Column, series: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    """Parse one column: typed values plus (reason, mask) pairs for bad cells, in order."""
    if column.kind is Kind.DATETIME and pd.api.types.is_datetime64_any_dtype(series):
        values = pd.to_datetime(series, utc=True)
        return values, _missing(column, values.isna())
    text = _text(series)
    empty = text == ""
    if column.default is not None:
        text = text.mask(empty, column.default)
        empty = pd.Series(False, index=text.index)
    values, invalid = _PARSERS[column.kind](column, text, parsed)
    if empty.any():
        values = values.mask(empty)
    filled = ~empty.to_numpy()
    return values, _missing(column, empty) + [(r, np.asarray(m, dtype=bool) & filled) for r, m in invalid]


def _missing(column: Column, empty: pd.Series) -> _Bad:
    return [(R.MISSING_VALUE, empty.to_numpy())] if not column.nullable else []


def _null_bad_cells(column: Column, values: pd.Series, failures: _Bad) -> tuple[pd.Series, npt.NDArray[np.object_]]:
    """Empty the bad cells of an optional column (or give them its default); return the first reason per row."""
    reasons = np.full(len(values), "", dtype=object)
    for reason, mask in failures:
        reasons[np.asarray(mask, dtype=bool) & (reasons == "")] = reason.value
    bad = reasons != ""
    if bad.any():
        values = values.mask(bad, _default_value(column)) if column.default is not None else values.mask(bad)
    return values, reasons


@functools.cache
def _default_value(column: Column) -> object:
    """The column's default, parsed as its cells are ("unknown", False, "UTC")."""
    assert column.default is not None
    values, _ = _PARSERS[column.kind](column, pd.Series([column.default], dtype=_TEXT), pd.DataFrame(index=[0]))
    return values.iloc[0]


# NUL and the other C0 controls, DEL, and the Unicode line and paragraph separators: never safe in a
# message header, and invisible in a body. (Written so that both Python's re and Arrow's RE2 read it.)
_CONTROL = "[\\x00-\\x1f\\x7f\u2028\u2029]"
_LINE_BREAKS = r"[ \t\r\n]*[\t\r\n][ \t\r\n]*"
# http(s), a host, then anything but spaces and controls
_WEB_URL = "^(?i:https?)://[^\\x00-\\x20\\x7f\u2028\u2029/?#\\\\]+(?:[/?#][^\\x00-\\x20\\x7f\u2028\u2029]*)?$"


def _has_control(text: pd.Series) -> npt.NDArray[np.bool_]:
    return np.asarray(text.str.contains(_CONTROL, regex=True).to_numpy(dtype=bool, na_value=False), dtype=bool)


def _identifier(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    return text, [(R.CONTROL_CHARACTERS, _has_control(text))]


def _free_text(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    # a name with a line break would end a message's header early: tabs and line breaks become one space
    breaks = text.str.contains("[\t\r\n]", regex=True).to_numpy(dtype=bool, na_value=False)
    flat = text.copy()
    if breaks.any():  # rare: replace only there, the search is much cheaper than the replacement
        flat[breaks] = text[breaks].str.replace(_LINE_BREAKS, " ", regex=True)
    return flat, [(R.CONTROL_CHARACTERS, _has_control(flat))]


def _web_url(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    # a javascript: or data: link in an email runs in the reader's browser: http(s) only
    web = text.str.contains(_WEB_URL, regex=True).to_numpy(dtype=bool, na_value=False)
    return text, [(R.INVALID_URL, ~np.asarray(web, dtype=bool))]


def _number(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    values = pd.to_numeric(text.where(text != ""), errors="coerce")
    filled = values.fillna(0.0)
    unparseable = values.isna() | ~np.isfinite(filled)
    if column.kind is Kind.INT:
        unparseable |= filled % 1 != 0
    bad: _Bad = [(R.UNPARSEABLE_NUMBER, unparseable)]
    if column.positive:  # only quantities are strictly positive in the contract
        bad.append((R.NON_POSITIVE_QUANTITY, filled <= 0))
    if column.min_value is not None:
        reason = R.NEGATIVE_VALUE if column.min_value == 0 else R.OUT_OF_RANGE
        bad.append((reason, filled < column.min_value))
    if column.max_value is not None:
        bad.append((R.OUT_OF_RANGE, filled > column.max_value))
    return values, bad


def _integer(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    values, bad = _number(column, text, parsed)
    return values.where(~bad[0][1]).astype("Int64"), bad


def _bool(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    lower = text.str.lower()
    values = pd.Series(_isin(lower, _TRUE), index=text.index)
    return values, [(R.UNPARSEABLE_BOOL, ~values.to_numpy() & ~_isin(lower, _FALSE))]


def _datetime(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    values = utc_times(text)
    return values, [(R.UNPARSEABLE_DATE, values.isna())]


# The usual form of a time in an export, UTC to the second: Arrow parses it several times faster than pandas.
# Anything else (an offset, fractions of a second, a space for the T) goes through pandas' ISO 8601 parser.
_PLAIN_UTC = (
    "^(?:19|20)[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$"
)
_NAT = np.iinfo(np.int64).min


def utc_times(text: pd.Series) -> pd.Series:
    """The cells' instants as ``datetime64[ns, UTC]``, exactly as pandas' ISO 8601 parser reads them (naive ones
    taken as UTC); an empty or unreadable cell is NaT. ``text``: stripped Arrow strings, empty for missing."""
    cells = pa.array(text.array, type=pa.string())
    plain = np.asarray(pc.match_substring_regex(cells, _PLAIN_UTC).to_numpy(zero_copy_only=False), dtype=bool)
    nanos = np.full(len(text), _NAT, dtype=np.int64)
    if plain.any():
        picked = cells.filter(pa.array(plain))
        stamps = pc.strptime(picked, format="%Y-%m-%dT%H:%M:%SZ", unit="s", error_is_null=True)
        # strptime rolls a day the month lacks over (02-30 becomes 03-02), where pandas refuses it: pandas decides
        written_day = pc.cast(pc.utf8_slice_codeunits(picked, 8, 10), pa.int64())
        exact = np.asarray(
            pc.equal(pc.day(stamps), written_day).fill_null(False).to_numpy(zero_copy_only=False), dtype=bool
        )
        at = np.flatnonzero(plain)
        nanos[at[exact]] = stamps.cast(pa.int64()).fill_null(0).to_numpy()[exact] * 1_000_000_000
        plain[at[~exact]] = False
    rest = ~plain & (text != "").to_numpy(dtype=bool, na_value=False)
    if rest.any():
        slow = pd.to_datetime(text[rest], utc=True, format="ISO8601", errors="coerce")
        nanos[rest] = slow.to_numpy(dtype="datetime64[ns]").view(np.int64)
    return pd.Series(pd.DatetimeIndex(nanos.view("datetime64[ns]")).tz_localize("UTC"), index=text.index)


def _date(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    values = pd.to_datetime(text.where(text != ""), format="ISO8601", errors="coerce")
    return values.dt.normalize(), [(R.UNPARSEABLE_DATE, values.isna())]


def _enum(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    lower = text.str.lower()
    return lower, [(R.UNKNOWN_ENUM, ~_isin(lower, column.values))]


def _email(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    # in this process: most addresses are answered from their domain's cached check (``ascii_address``) in a few
    # microseconds, less than sending them to worker processes and back costs
    normal = _map_unique(_normalise_email, text, processes=False)
    return normal, [(R.INVALID_EMAIL, normal.isna())]


def _phone(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    # national formats ("8 (912) 345-67-89") need the row's country, parsed before this column
    country = parsed["country"].fillna("").astype(str) if "country" in parsed.columns else text.map(lambda _: "")
    pairs = pd.Series(text.astype(str) + "\x1f" + country.astype(str), index=text.index)
    normal = _map_unique(_normalise_phone, pairs)
    return normal, [(R.INVALID_PHONE, normal.isna())]


# Below this many distinct values, starting worker processes costs more than it saves.
PARALLEL_MIN_VALUES = 20_000


def _map_unique(func: Callable[[str], str | None], values: pd.Series, processes: bool = True) -> pd.Series:
    """Apply a slow per-value check once per distinct value, on every core when there are many (``processes``).

    ``func`` lives in ``tasks/data/contacts.py``: a worker imports that light module, not this one.
    """
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=False)
    distinct = [str(v) for v in uniques]
    workers = os.cpu_count() or 1
    if not processes or len(distinct) < PARALLEL_MIN_VALUES or workers < 2:
        results = [func(v) for v in distinct]
    else:
        try:
            # spawn, not fork: the flow runs threads, and forking a threaded process can deadlock
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                results = list(pool.map(func, distinct, chunksize=max(1, len(distinct) // (workers * 8))))
        except (BrokenProcessPool, OSError):
            # e.g. a calling script without an `if __name__ == "__main__"` guard: do it here instead
            results = [func(v) for v in distinct]
    answers = np.empty(len(results), dtype=object)
    answers[:] = results
    return pd.Series(answers[codes], index=values.index, dtype=object)


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    return text, [(R.UNKNOWN_TIMEZONE, ~_isin(text, _zones()))]


_COUNTRIES = frozenset(phonenumbers.SUPPORTED_REGIONS)


def _country(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    upper = text.str.upper()
    return upper, [(R.INVALID_COUNTRY, ~_isin(upper, _COUNTRIES))]


def _currency(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    upper = text.str.upper()
    return upper, [(R.UNKNOWN_ENUM, ~upper.str.fullmatch(r"[A-Z]{3}"))]


def _locale(column: Column, text: pd.Series, parsed: pd.DataFrame) -> _Parsed:
    # "ru-RU", "pl_PL" -> "ru", "pl": templates are chosen by language
    primary = text.str.lower().str.split(r"[-_]", n=1, regex=True).str[0]
    return primary, [(R.UNKNOWN_ENUM, ~primary.str.fullmatch(r"[a-z]{2,3}"))]


_PARSERS: dict[Kind, _Parser] = {
    Kind.ID: _identifier,
    Kind.STR: _free_text,
    Kind.URL: _web_url,
    Kind.INT: _integer,
    Kind.FLOAT: _number,
    Kind.BOOL: _bool,
    Kind.DATETIME: _datetime,
    Kind.DATE: _date,
    Kind.ENUM: _enum,
    Kind.EMAIL: _email,
    Kind.PHONE: _phone,
    Kind.TIMEZONE: _timezone,
    Kind.COUNTRY: _country,
    Kind.CURRENCY: _currency,
    Kind.LOCALE: _locale,
}
