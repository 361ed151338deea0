"""Customers split into partitions by a stable hash of their id: what a partition's flow run plans and renders.

The daily run computes what is global once (snapshot, profile with its CLV fit and RFM scores, KPIs, the
recommendation model, the keys); what is per customer (picking products, planning through every gate,
rendering) runs once per partition, each its own flow run (``flows/partition.py``). Every gate decides per customer
(consent, suppression by address, preferences, the budget over a customer's own days, the holdout hash), so
a partition's plan is exactly the single-process plan's rows of its customers. A partition reads each table's
rows of its customers only (the tables keyed by order: its customers' orders' rows), filtered in Arrow before
they become a frame; one column is read whole, because other customers' rows decide it: the codes redeemed on
orders (a coupon can be passed on to a friend).

A partition writes its plan and coupon registry under its own names and its send shards under numbers no
other partition uses (``partition + 1 + k * count``); the daily run then merges the parts into the day's plan
and registry (``merge_partitions``), and sends the waves as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel

from tasks.kernel.enums import Table
from tasks.kernel.paths import RunPaths
from tasks.plan.offers import redeemed_codes

# SipHash-2-4 under pandas' fixed key: the same partition for an id in every process, on every host.
_HASH_KEY = "loyalty-flows-16"


def partition_numbers(customer_ids: pd.Series | Sequence[str], count: int) -> npt.NDArray[np.int64]:
    """Each customer id's partition in ``0 .. count-1``: a stable hash of the id (its text), modulo ``count``."""
    ids = pd.Series(customer_ids, dtype=object).astype(str)
    hashes = pd.util.hash_pandas_object(ids, index=False, hash_key=_HASH_KEY).to_numpy(dtype=np.uint64)
    return (hashes % np.uint64(count)).astype(np.int64)


class PartitionError(ValueError):
    """A partition that cannot exist (its index outside ``0 .. count-1``)."""


@dataclass(frozen=True)
class Partition:
    """One partition of a day's customers: ``index`` of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise PartitionError(f"partition {self.index} of {self.count} does not exist: 0 <= index < count")

    def members(self, customer_ids: pd.Series) -> npt.NDArray[np.bool_]:
        """Which of the ids are this partition's customers."""
        return np.asarray(partition_numbers(customer_ids, self.count) == self.index, dtype=bool)

    def only_mine(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of this partition's customers (a frame without ``customer_id`` is everyone's: kept whole)."""
        if "customer_id" not in frame.columns or self.count == 1:
            return frame
        return frame.loc[self.members(frame["customer_id"])].reset_index(drop=True)

    def arrow_rows(self, customers: Path) -> Callable[[pa.Table], pa.Table]:
        """A filter of Arrow tables to this partition's customers' rows (``customers``: the run's customers table):
        applied before a table becomes a frame, so a partition never holds the other partitions' rows as objects."""
        ids = pq.read_table(customers, columns=["customer_id"]).column("customer_id").to_pandas()
        mine = pa.array(ids.loc[self.members(ids)].astype(str).to_numpy(dtype=object), type=pa.string())
        return self._rows_with("customer_id", mine)

    def arrow_order_rows(self, orders: Path, mine: Callable[[pa.Table], pa.Table]) -> Callable[[pa.Table], pa.Table]:
        """A filter of the tables keyed by order (order items, order events: no ``customer_id``) to the orders of
        this partition's customers (``mine``: ``arrow_rows``), so a partition's order triggers work on its share
        of the shop's order history, not on every customer's."""
        ids = mine(pq.read_table(orders, columns=["order_id", "customer_id"])).column("order_id").combine_chunks()
        return self._rows_with("order_id", ids)

    def _rows_with(self, key: str, values: pa.Array) -> Callable[[pa.Table], pa.Table]:
        """A filter of Arrow tables to the rows whose ``key`` is one of ``values`` (a table without it: whole)."""

        def keep(table: pa.Table) -> pa.Table:
            if key not in table.column_names or self.count == 1:
                return table
            column = table.column(key)
            return table.filter(pc.is_in(column, value_set=values.cast(column.type)))

        return keep

    def shard_number(self, k: int) -> int:
        """The number of the partition's ``k``-th send shard (from 0): no other partition has it."""
        return self.index + 1 + k * self.count

    def owns_shard(self, number: int) -> bool:
        return (number - 1) % self.count == self.index

    def plan_file(self, paths: RunPaths) -> Path:
        return paths.plan.with_name(f"part-{self.index:03d}-of-{self.count:03d}.parquet")

    def coupons_file(self, paths: RunPaths) -> Path:
        return paths.coupons.with_name(f"coupons-part-{self.index:03d}-of-{self.count:03d}.csv")

    def summary_file(self, paths: RunPaths) -> Path:
        return paths.plan.with_name(f"part-{self.index:03d}-of-{self.count:03d}.json")

    def picks_file(self, paths: RunPaths) -> Path:
        """The partition's customers' picks (``recommend_partition``), merged into the day's by the daily run."""
        return paths.recommendations.with_name(f"recommendations-part-{self.index:03d}-of-{self.count:03d}.parquet")

    def clear(self, paths: RunPaths) -> None:
        """Remove what an earlier attempt of this partition wrote (a worker that died): its shards and parts."""
        render = paths.rendered_shard(1).parent
        for folder, prefix in ((paths.plan.parent, "send-"), (render, "rendered-"), (render, "picks-")):
            for file in folder.glob(f"{prefix}*.parquet") if folder.exists() else ():
                if self.owns_shard(int(file.stem.removeprefix(prefix))):
                    file.unlink(missing_ok=True)
        for file in (self.plan_file(paths), self.coupons_file(paths), self.summary_file(paths), self.picks_file(paths)):
            file.unlink(missing_ok=True)


def redeemed_anywhere(paths: RunPaths) -> frozenset[str]:
    """The codes redeemed on any customer's order: a coupon passed on to a friend still ends its series."""
    orders = paths.table(Table.ORDERS)
    if "coupon_code" not in pq.read_schema(orders).names:
        return frozenset()
    return redeemed_codes(pd.read_parquet(orders, columns=["coupon_code"]))


class PartitionResult(BaseModel):
    """What one partition's run planned and rendered: the parent merges these."""

    index: int
    count: int
    rendered: int
    shards: list[int]
    waves: dict[datetime, list[int]]
