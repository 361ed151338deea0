"""Shared array types, time units, constants and string helpers of the demo shop generator."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from tasks.kernel.enums import Table

DEFAULT_END = date(2026, 11, 20)
"""The demo's last day (a Friday); fixed so that the output is deterministic."""

EXTRA_COLUMNS: dict[Table, tuple[str, ...]] = {Table.ORDERS: ("promised_delivery_at",)}
"""Columns beyond the contract that the generator adds (the contract keeps them)."""

IntA = npt.NDArray[np.int64]
FloatA = npt.NDArray[np.float64]
BoolA = npt.NDArray[np.bool_]
StrA = npt.NDArray[Any]  # numpy StringDType arrays (no precise stub type yet)
Rng = np.random.Generator

DAY = 86_400
HOUR = 3_600
CURRENCY = "EUR"
SHOP_URL = "https://shop.example.com"
_BIG = 1 << 36  # key multiplier: (entity, time) pairs as one sortable int64
_NEVER = np.int64(1) << 60  # "this status never happens" in fulfilment times
_CHUNK = 1 << 20
_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas 3's default string dtype
_SD = np.dtypes.StringDType()


def _join(*parts: str | StrA) -> StrA:
    """Element-wise concatenation of string arrays and scalars."""
    joined: StrA = np.asarray(parts[0], dtype=_SD)
    for part in parts[1:]:
        joined = np.strings.add(joined, part)
    return joined


def _strings(values: Any, missing: BoolA | None = None) -> pd.Series:
    """A pandas string column (pyarrow-backed) from a numpy or arrow string array."""
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=pa.large_string(), mask=missing)
    series: pd.Series = arr.to_pandas(types_mapper={pa.large_string(): _STR, pa.string(): _STR}.get)
    return series
