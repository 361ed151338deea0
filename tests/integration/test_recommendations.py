"""The daily run picks products for every customer and the win-back message shows them with their reason."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from flows.daily_run import daily_run
from tasks.kernel.enums import Table
from tests.shops import add_rows, tiny_shop, write_shop

AS_OF = date(2024, 6, 1)
MORNING = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)

pytestmark = pytest.mark.usefixtures("prefect_harness", "win_back_only")

PRODUCTS = [
    # product_id, name, category, in stock
    ("P3", "Cat toy mouse", "cat_toys", "true"),
    ("P4", "Dog food 10kg", "dog_food", "true"),
    ("P5", "Cat litter 5kg", "cat_food", "false"),  # bought with cat food more than anything, but sold out
]


def _customer(cid: str, locale: str = "en") -> dict[str, str]:
    return {
        "customer_id": cid,
        "email": f"{cid.lower()}@example.com",
        "first_name": "Kim",
        "gender": "f",
        "locale": locale,
        "timezone": "Europe/London",
        "country": "GB",
        "created_at": "2023-01-01T00:00:00Z",
        "email_opt_in": "true",
        "sms_opt_in": "false",
    }


def _order(oid: str, cid: str, at: str) -> dict[str, str]:
    return {
        "order_id": oid,
        "customer_id": cid,
        "created_at": at,
        "status": "delivered",
        "total": "10",
        "currency": "EUR",
    }


def _shop() -> dict[Table, pd.DataFrame]:
    """Cat people buy cat food with a toy mouse (and litter, sold out), dog people a ball with dog food;
    ten lapsed cat customers bought cat food alone 100 days ago."""
    customers, orders, items = [], [], []
    for i in range(12):
        cat = i % 2 == 0
        cid = f"H{i:02d}"
        customers.append(_customer(cid))
        orders.append(_order(f"OH{i:02d}", cid, "2024-05-20T10:00:00Z"))
        basket = ["P1", "P3", "P5"] if cat else ["P2", "P4"]
        items += [{"order_id": f"OH{i:02d}", "product_id": p, "quantity": "1", "unit_price": "5"} for p in basket]
    for i in range(10):
        cid = f"L{i:02d}"
        customers.append(_customer(cid))
        orders.append(_order(f"OL{i:02d}", cid, "2024-02-22T10:00:00Z"))
        items.append({"order_id": f"OL{i:02d}", "product_id": "P1", "quantity": "1", "unit_price": "12.50"})
    products = [
        {
            "product_id": pid,
            "name": name,
            "category": category,
            "price": "7.00",
            "currency": "EUR",
            "in_stock": stock,
            "created_at": "2023-01-01T00:00:00Z",
        }
        for pid, name, category, stock in PRODUCTS
    ]
    frames = add_rows(tiny_shop(), Table.PRODUCTS, products)
    frames = add_rows(frames, Table.CUSTOMERS, customers)
    frames = add_rows(frames, Table.ORDERS, orders)
    return add_rows(frames, Table.ORDER_ITEMS, items)


def test_the_daily_run_picks_products_and_the_win_back_shows_them(aws: str, tmp_path: Path) -> None:
    shop = write_shop(_shop(), tmp_path / "shop")

    summary = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)

    run_dir = Path(summary.run_dir)
    picks = pd.read_parquet(run_dir / "profile" / "recommendations.parquet")
    lapsed = picks.loc[picks["customer_id"].str.startswith("L")]
    assert set(lapsed["customer_id"]) == {f"L{i:02d}" for i in range(10)}  # every lapsed customer has picks
    first = lapsed.loc[lapsed["rank"] == 1]
    assert set(first["product_id"]) == {"P3"}  # the toy mouse, because they bought cat food
    assert set(first["reason"]) == {"because_of"} and set(first["reason_product_id"]) == {"P1"}
    assert not lapsed["product_id"].isin(["P1"]).any()  # not what they already have
    assert not lapsed["product_id"].isin(["P5"]).any()  # sold out
    assert not lapsed["product_id"].isin(["P2", "P4"]).any()  # cat people are not shown dog products
    for _, mine in lapsed.groupby("customer_id"):
        assert list(mine["rank"]) == list(range(1, len(mine) + 1))  # ranked 1, 2, ... without gaps

    sent = [p for p in (run_dir / "outbox" / "win_back").glob("L*-email.txt")]
    assert sent, "the lapsed customers got a win-back"
    text = sent[0].read_text(encoding="utf-8")
    assert "Picked for you:" in text and "Cat toy mouse" in text and "Because you liked Cat food 2kg" in text
    html = sent[0].with_suffix(".html").read_text(encoding="utf-8")
    assert "Cat toy mouse" in html and "Dog food" not in html
