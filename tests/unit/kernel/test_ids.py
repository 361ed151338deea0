"""Integer codes for ids: one code per id across tables, sorted for customers and products, missing stays missing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.kernel.enums import Table
from tasks.kernel.ids import encode_ids


def _shop() -> dict[Table, pd.DataFrame]:
    return {
        Table.CUSTOMERS: pd.DataFrame({"customer_id": ["C10", "C2", "C1"], "email": ["a@x", "b@x", "c@x"]}),
        Table.ORDERS: pd.DataFrame(
            {"order_id": ["O-2", "O-1", None], "customer_id": ["C2", "C99", None], "total": [1.0, 2.0, 3.0]}
        ),
        Table.ORDER_ITEMS: pd.DataFrame({"order_id": ["O-1", "O-1"], "product_id": ["P2", "P1"]}),
        Table.EVENTS: pd.DataFrame({"customer_id": ["C1"], "product_id": ["P2"], "type": ["view"]}),
    }


def test_one_id_has_one_code_in_every_table_it_appears_in() -> None:
    coded, _ = encode_ids(_shop())

    c2 = coded[Table.CUSTOMERS]["customer_id"].iloc[1]
    assert coded[Table.ORDERS]["customer_id"].iloc[0] == c2
    o1 = coded[Table.ORDERS]["order_id"].iloc[1]
    assert coded[Table.ORDER_ITEMS]["order_id"].tolist() == [o1, o1]
    assert coded[Table.EVENTS]["product_id"].iloc[0] == coded[Table.ORDER_ITEMS]["product_id"].iloc[0]
    assert all(coded[t][c].dtype == np.int32 for t, c in [(Table.ORDERS, "order_id"), (Table.EVENTS, "customer_id")])


def test_customer_codes_follow_the_ids_text_order_and_ids_known_only_from_orders_get_codes_too() -> None:
    coded, codes = encode_ids(_shop())

    assert list(codes.ids["customer_id"]) == ["C1", "C10", "C2", "C99"]  # text order: C10 before C2
    assert coded[Table.CUSTOMERS]["customer_id"].tolist() == [1, 2, 0]


def test_decoding_gives_back_every_id_and_a_missing_id_stays_missing() -> None:
    shop = _shop()
    coded, codes = encode_ids(shop)

    decoded = codes.decode_frame(coded[Table.ORDERS])

    assert coded[Table.ORDERS]["order_id"].iloc[2] == -1
    assert decoded["order_id"].tolist() == ["O-2", "O-1", None]
    assert decoded["customer_id"].tolist() == ["C2", "C99", None]
    assert decoded["total"].tolist() == [1.0, 2.0, 3.0]  # other columns untouched
    assert codes.decode("customer_id", pd.Series([0, pd.NA], dtype="Int64")).tolist() == ["C1", None]


def test_encoding_leaves_the_callers_tables_as_they_were() -> None:
    shop = _shop()

    encode_ids(shop)

    assert shop[Table.CUSTOMERS]["customer_id"].tolist() == ["C10", "C2", "C1"]
    assert shop[Table.ORDERS]["order_id"].tolist() == ["O-2", "O-1", None]


def test_ids_that_look_like_numbers_keep_their_leading_zeros() -> None:
    coded, codes = encode_ids({Table.PRODUCTS: pd.DataFrame({"product_id": ["0012", "12", "012"]})})

    assert codes.decode("product_id", coded[Table.PRODUCTS]["product_id"]).tolist() == ["0012", "12", "012"]


def test_no_tables_give_empty_codes_for_every_kind_of_id() -> None:
    coded, codes = encode_ids({})

    assert coded == {}
    assert {kind: len(ids) for kind, ids in codes.ids.items()} == {"customer_id": 0, "order_id": 0, "product_id": 0}
    assert codes.decode("customer_id", np.array([], dtype=np.int32)).tolist() == []
