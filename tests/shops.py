"""Small hand-written shops in the data contract, for tests that need exact rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.data.contract import LOAD_ORDER, SPECS
from tasks.kernel.enums import Table

AS_OF = "2024-06-01"


def tiny_shop() -> dict[Table, pd.DataFrame]:
    """A clean shop: three customers (ru, pl, en), one lapsed 121 days, one recent, one never ordered."""
    customers = pd.DataFrame(
        [
            [
                "C1",
                "anna@example.com",
                "8 (912) 345-67-89",
                "Анна",
                "Иванова",
                "f",
                "1990-02-28",
                "ru",
                "Europe/Moscow",
                "RU",
                "2023-01-01T10:00:00Z",
                "true",
                "2023-01-01T10:00:00Z",
                "false",
                "",
            ],
            [
                "C2",
                "ola@example.com",
                "512 345 678",
                "Ola",
                "Nowak",
                "f",
                "1988-02-29",
                "pl",
                "Europe/Warsaw",
                "PL",
                "2023-01-01T10:00:00Z",
                "true",
                "2023-01-01T10:00:00Z",
                "true",
                "2023-01-01T10:00:00Z",
            ],
            [
                "C3",
                "bob@example.com",
                "",
                "Bob",
                "Smith",
                "m",
                "",
                "en",
                "Europe/London",
                "GB",
                "2023-01-01T10:00:00Z",
                "true",
                "",
                "false",
                "",
            ],
        ],
        # the required columns: the optional ones (ads_opt_in) are absent, as from a shop that does not ask
        columns=[c.name for c in SPECS[Table.CUSTOMERS].columns if c.required],
    )
    products = pd.DataFrame(
        [
            ["P1", "Cat food 2kg", "cat_food", "12.50", "EUR", "true", "", "", "2023-01-01T00:00:00Z"],
            ["P2", "Dog ball", "dog_toys", "4.00", "EUR", "true", "", "", "2023-01-01T00:00:00Z"],
        ],
        columns=[c.name for c in SPECS[Table.PRODUCTS].columns],
    )
    orders = pd.DataFrame(
        [
            ["O1", "C1", "2024-02-01T12:00:00Z", "delivered", "25.00", "EUR"],
            ["O2", "C2", "2024-05-20T12:00:00Z", "delivered", "4.00", "EUR"],
        ],
        columns=[c.name for c in SPECS[Table.ORDERS].columns],
    )
    items = pd.DataFrame(
        [["O1", "P1", "2", "12.50"], ["O2", "P2", "1", "4.00"]],
        columns=["order_id", "product_id", "quantity", "unit_price"],
    )
    order_events = pd.DataFrame([["O1", "delivered", "2024-02-03T09:00:00Z"]], columns=["order_id", "status", "at"])
    events = pd.DataFrame(
        [["C1", "P1", "review", "2024-02-05T09:00:00Z", "5", "great"]],
        columns=["customer_id", "product_id", "type", "at", "rating", "text"],
    )
    stock = pd.DataFrame([["P2", "false", "2024-03-01T00:00:00Z"]], columns=["product_id", "in_stock", "at"])
    return {
        Table.CUSTOMERS: customers,
        Table.PRODUCTS: products,
        Table.ORDERS: orders,
        Table.ORDER_ITEMS: items,
        Table.ORDER_EVENTS: order_events,
        Table.EVENTS: events,
        Table.STOCK_EVENTS: stock,
    }


def write_shop(frames: dict[Table, pd.DataFrame], folder: Path, fmt: str = "csv") -> Path:
    """Write a shop as one file per table (an optional table left out of ``frames``: no file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for table in (t for t in LOAD_ORDER if t in frames):
        frame = frames[table]
        if fmt == "csv":
            frame.to_csv(folder / f"{table.value}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{table.value}.parquet", index=False)
    return folder


def add_rows(frames: dict[Table, pd.DataFrame], table: Table, rows: list[dict[str, str]]) -> dict[Table, pd.DataFrame]:
    """Return a copy of the shop with rows appended to one table (missing cells empty)."""
    out = dict(frames)
    extra = pd.DataFrame(rows).reindex(columns=frames[table].columns).fillna("")
    out[table] = pd.concat([frames[table], extra], ignore_index=True)
    return out
