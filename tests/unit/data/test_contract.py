"""The data contract's tables: required columns named in errors, keys and links that hold together."""

from __future__ import annotations

import pytest

from tasks.data.contract import LOAD_ORDER, SPECS, ContractError, Kind, check_columns
from tasks.kernel.enums import OrderStatus, Table


def test_a_missing_column_is_named_with_the_file() -> None:
    columns = [c for c in SPECS[Table.ORDERS].required_columns if c != "total"]

    with pytest.raises(ContractError) as err:
        check_columns(SPECS[Table.ORDERS], columns, "exports/orders.csv")

    assert str(err.value) == "exports/orders.csv: missing required column 'total'"


def test_several_missing_columns_name_the_first_and_count_the_rest() -> None:
    with pytest.raises(ContractError) as err:
        check_columns(SPECS[Table.ORDER_ITEMS], ["order_id"], "order_items.csv")

    assert str(err.value) == (
        "order_items.csv: missing required column 'product_id' (and 2 more: quantity, unit_price)"
    )


def test_optional_and_extra_columns_do_not_matter() -> None:
    events = ["customer_id", "product_id", "type", "at", "campaign_source"]  # no rating, no text, one extra

    check_columns(SPECS[Table.EVENTS], events, "events.csv")

    assert "rating" not in SPECS[Table.EVENTS].required_columns


def test_every_link_points_to_the_key_of_a_table_loaded_earlier() -> None:
    assert set(LOAD_ORDER) == set(Table) == set(SPECS)
    for position, table in enumerate(LOAD_ORDER):
        spec = SPECS[table]
        for link in spec.foreign_keys:
            assert LOAD_ORDER.index(link.table) < position, (table, link)
            assert SPECS[link.table].key == (link.ref_column,), (table, link)
            assert spec.column(link.column).kind is Kind.ID
        for name in (*spec.key, *([spec.time_column] if spec.time_column else [])):
            spec.column(name)  # every key and time column is a column of the table


def test_an_order_event_cannot_say_placed_and_a_column_not_in_the_contract_is_a_key_error() -> None:
    statuses = SPECS[Table.ORDER_EVENTS].column("status").values

    assert OrderStatus.PLACED.value not in statuses
    assert set(statuses) == {s.value for s in OrderStatus} - {"placed"}
    with pytest.raises(KeyError):
        SPECS[Table.ORDERS].column("discount")
