"""The Online Retail importer: real sample outcomes and one tiny CSV per rule."""

from __future__ import annotations

import csv
import json
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tasks.data.contract import QUARANTINE_COLUMNS, SPECS, ContractError
from tasks.data.importers import (
    ONLINE_RETAIL_COLUMNS,
    ImportResult,
    SourceFormatError,
    SourceNotFoundError,
    import_online_retail,
)
from tasks.kernel.enums import OrderStatus, QuarantineReason, Table

SAMPLE = "online_retail_lines_sample.csv"
# the tables an export gives: all but the optional point_movements (the export records no loyalty points)
GIVEN = {table: spec for table, spec in SPECS.items() if not spec.optional}
PRODUCT_CODE = re.compile(r"\d{5}[A-Z]*")
NON_PRODUCT_CODES = (
    "POST", "DOT", "M", "m", "D", "C2", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS",
    "gift_0001_20", "gift_0001_40", "DCGSSBOY", "DCGS0070",
)  # fmt: skip


@pytest.fixture(scope="module")
def sample_path(online_retail: Path) -> Path:
    return online_retail / SAMPLE


@pytest.fixture(scope="module")
def retail(sample_path: Path) -> ImportResult:
    return import_online_retail(sample_path)


@pytest.fixture(scope="module")
def raw(sample_path: Path) -> pd.DataFrame:
    return pd.read_csv(sample_path, dtype=str, keep_default_na=False)


def _physical_line(path: Path, row: int) -> dict[str, str]:
    """Data row ``row`` (1-based, header not counted) read straight from the file."""
    with path.open(newline="", encoding="utf-8") as f:
        for i, record in enumerate(csv.DictReader(f), start=1):
            if i == row:
                return dict(record)
    raise AssertionError(f"no data row {row} in {path}")


# --- the real sample ----------------------------------------------------------


def test_sample_missing_customer_lines_are_quarantined(retail: ImportResult) -> None:
    by_reason = retail.summary()["quarantined_by_reason"]
    assert isinstance(by_reason, dict)
    assert by_reason[QuarantineReason.MISSING_CUSTOMER.value] == 10_057


def test_sample_every_line_ends_in_exactly_one_place(retail: ImportResult) -> None:
    summary = retail.summary()
    assert summary["input_rows"] == retail.input_rows == 40_000
    assert summary["imported_rows"] == len(retail.frames[Table.ORDER_ITEMS])
    assert summary["quarantined_rows"] == len(retail.quarantine)
    assert len(retail.frames[Table.ORDER_ITEMS]) + len(retail.quarantine) == 40_000
    by_reason = summary["quarantined_by_reason"]
    assert isinstance(by_reason, dict)
    assert sum(by_reason.values()) == len(retail.quarantine)
    rows = retail.quarantine["row"]
    assert rows.is_unique
    assert rows.between(1, 40_000).all()
    assert list(retail.quarantine.columns) == list(QUARANTINE_COLUMNS)
    assert set(retail.quarantine["table"]) == {"online_retail"}
    assert set(retail.quarantine["reason"]) <= {r.value for r in QuarantineReason}
    json.dumps(summary)  # the CLI prints it with --json


def test_sample_quarantine_rows_point_at_the_real_lines(
    retail: ImportResult, sample_path: Path, raw: pd.DataFrame
) -> None:
    q = retail.quarantine.set_index("row")
    first_missing = int(q.index[q["reason"] == QuarantineReason.MISSING_CUSTOMER.value][0])
    assert _physical_line(sample_path, first_missing)["CustomerID"] == ""
    assert first_missing == 3  # line 4 of the file: 578065,23169,CLASSIC GLASS COOKIE JAR,...,,

    non_product = int(q.index[q["reason"] == QuarantineReason.NON_PRODUCT_CODE.value][0])
    line = _physical_line(sample_path, non_product)
    assert line["CustomerID"] != ""
    assert not PRODUCT_CODE.fullmatch(line["StockCode"].upper())
    assert q.loc[non_product, "column"] == "StockCode"

    # The lines not quarantined are the order items, in file order.
    kept = raw.drop(index=q.index - 1)
    items = retail.frames[Table.ORDER_ITEMS]
    assert kept["InvoiceNo"].tolist() == items["order_id"].tolist()
    assert kept["StockCode"].str.upper().tolist() == items["product_id"].tolist()
    assert kept["Quantity"].astype(int).abs().tolist() == items["quantity"].tolist()


def test_sample_quarantine_reasons_match_the_raw_lines(retail: ImportResult, raw: pd.DataFrame) -> None:
    with_customer = raw[raw["CustomerID"] != ""]
    non_product = with_customer[~with_customer["StockCode"].str.fullmatch(PRODUCT_CODE.pattern, case=False)]
    q = retail.quarantine
    flagged = q.loc[q["reason"] == QuarantineReason.NON_PRODUCT_CODE.value, "row"] - 1
    assert sorted(flagged) == sorted(non_product.index)
    zero_price = with_customer.drop(index=non_product.index)
    zero_price = zero_price[zero_price["UnitPrice"].astype(float) <= 0]
    flagged = q.loc[q["reason"] == QuarantineReason.ZERO_PRICE.value, "row"] - 1
    assert sorted(flagged) == sorted(zero_price.index)


def test_sample_products_are_products(retail: ImportResult) -> None:
    products = retail.frames[Table.PRODUCTS]
    assert products["product_id"].is_unique
    assert products["product_id"].map(lambda c: bool(PRODUCT_CODE.fullmatch(c))).all()
    assert not set(products["product_id"]) & {c.upper() for c in NON_PRODUCT_CODES}
    assert (products["price"] > 0).all()
    assert set(products["currency"]) == {"GBP"}
    assert products["in_stock"].all()
    assert (products["name"].str.strip() == products["name"]).all()
    assert (products["name"] != "").all()
    used = set(retail.frames[Table.ORDER_ITEMS]["product_id"])
    assert used == set(products["product_id"])


def test_sample_cancellations_become_returned_orders(retail: ImportResult, raw: pd.DataFrame) -> None:
    orders = retail.frames[Table.ORDERS]
    items = retail.frames[Table.ORDER_ITEMS]
    events = retail.frames[Table.ORDER_EVENTS]
    is_c = orders["order_id"].str.startswith("C")
    assert set(orders.loc[is_c, "status"]) == {OrderStatus.RETURNED.value}
    assert set(orders.loc[~is_c, "status"]) == {OrderStatus.DELIVERED.value}

    returned = orders[is_c]
    expected = raw[
        raw["InvoiceNo"].str.startswith("C")
        & (raw["CustomerID"] != "")
        & raw["StockCode"].str.fullmatch(PRODUCT_CODE.pattern, case=False)
        & (raw["UnitPrice"].astype(float) > 0)
    ]["InvoiceNo"].unique()
    assert sorted(returned["order_id"]) == sorted(expected)
    assert len(returned) > 400

    returned_items = items[items["order_id"].isin(returned["order_id"])]
    assert (returned_items["quantity"] > 0).all()
    assert (items["quantity"] > 0).all()
    assert (returned["total"] > 0).all()

    # exactly one ``returned`` event per returned order, at its time; nothing invented
    assert set(events["status"]) == {OrderStatus.RETURNED.value}
    merged = events.merge(returned, on="order_id", validate="one_to_one")
    assert len(merged) == len(returned)
    assert (merged["at"] == merged["created_at"]).all()


def test_sample_order_totals_are_the_sum_of_their_items(retail: ImportResult) -> None:
    orders = retail.frames[Table.ORDERS].set_index("order_id")
    items = retail.frames[Table.ORDER_ITEMS]
    sums = (items["quantity"] * items["unit_price"]).groupby(items["order_id"]).sum()
    assert set(sums.index) == set(orders.index)
    diff = (orders["total"] - sums.reindex(orders.index).round(2)).abs()
    assert (diff < 0.005).all()
    assert (orders["total"] >= 0).all()
    assert set(orders["currency"]) == {"GBP"}


def test_sample_customers(retail: ImportResult, raw: pd.DataFrame) -> None:
    customers = retail.frames[Table.CUSTOMERS].set_index("customer_id", drop=False)
    ids = customers["customer_id"]
    assert ids.is_unique
    assert ids.str.fullmatch(r"\d+").all()
    assert "13607" in ids.index  # "13607.0" in the first line
    assert customers.loc["13607", "country"] == "GB"
    assert customers.loc["13607", "timezone"] == "Europe/London"
    assert set(customers["gender"]) == {"unknown"}
    assert set(customers["locale"]) == {"en"}
    assert not customers["email_opt_in"].any()
    assert not customers["sms_opt_in"].any()
    assert customers["email"].isna().all()
    assert customers["phone"].isna().all()
    country = customers["country"].dropna()
    assert country.str.fullmatch(r"[A-Z]{2}").all()
    assert {"GB", "DE", "FR", "IE"} <= set(country)
    # created_at is the first invoice of the customer
    orders = retail.frames[Table.ORDERS]
    first = orders.groupby("customer_id")["created_at"].min()
    assert (customers["created_at"] == first.reindex(customers.index)).all()
    # every customer with an imported line is there
    assert len(customers) == retail.summary()["tables"]["customers"]  # type: ignore[index]


def test_sample_foreign_keys_resolve(retail: ImportResult) -> None:
    frames = retail.frames
    assert set(frames) == set(GIVEN)
    for table, spec in GIVEN.items():
        frame = frames[table]
        assert list(frame.columns) == [c.name for c in spec.columns], table
        if spec.key:
            assert not frame.duplicated(list(spec.key)).any(), table
        for fk in spec.foreign_keys:
            refs = set(frames[fk.table][fk.ref_column])
            assert set(frame[fk.column]) <= refs, (table, fk.column)
    # and every order has items
    assert set(frames[Table.ORDERS]["order_id"]) == set(frames[Table.ORDER_ITEMS]["order_id"])
    assert frames[Table.EVENTS].empty
    assert frames[Table.STOCK_EVENTS].empty


def test_sample_write_produces_contract_csvs(retail: ImportResult, tmp_path: Path) -> None:
    retail.write(tmp_path / "out")
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted([f"{t.value}.csv" for t in GIVEN] + ["quarantine.csv"])  # no point_movements.csv
    for table, spec in GIVEN.items():
        with (tmp_path / "out" / f"{table.value}.csv").open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            assert next(reader) == [c.name for c in spec.columns], table
            assert sum(1 for _ in reader) == len(retail.frames[table]), table
    with (tmp_path / "out" / "quarantine.csv").open(newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == list(QUARANTINE_COLUMNS)

    orders = pd.read_csv(tmp_path / "out" / "orders.csv", dtype=str, keep_default_na=False)
    assert orders["created_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    customers = pd.read_csv(tmp_path / "out" / "customers.csv", dtype=str, keep_default_na=False)
    assert set(customers["email_opt_in"]) == {"false"}
    assert set(customers["email"]) == {""}
    assert set(customers["email_opt_in_at"]) == {""}
    products = pd.read_csv(tmp_path / "out" / "products.csv", dtype=str, keep_default_na=False)
    assert set(products["in_stock"]) == {"true"}
    first = orders[orders["order_id"] == "573415"].iloc[0]
    assert first["created_at"] == "2011-10-30T16:17:00Z"


# --- errors -------------------------------------------------------------------


def test_missing_column_names_the_file_and_the_column(tmp_path: Path) -> None:
    path = tmp_path / "no_customer.csv"
    path.write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,Country\n"
        "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,United Kingdom\n",
        encoding="utf-8",
    )
    with pytest.raises(SourceFormatError) as err:
        import_online_retail(path)
    assert isinstance(err.value, ContractError)
    assert str(path) in str(err.value)
    assert "'CustomerID'" in str(err.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    with pytest.raises(SourceNotFoundError) as err:
        import_online_retail(path)
    assert isinstance(err.value, FileNotFoundError)
    assert isinstance(err.value, SourceFormatError)
    assert str(path) in str(err.value)


def test_empty_file_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(SourceFormatError, match="empty"):
        import_online_retail(path)


# --- tiny hand-written exports --------------------------------------------------

HEADER = ",".join(ONLINE_RETAIL_COLUMNS)
GOOD = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom"


def _import(tmp_path: Path, *lines: str, encoding: str = "utf-8") -> ImportResult:
    path = tmp_path / "export.csv"
    path.write_bytes(("\n".join((HEADER, *lines)) + "\n").encode(encoding))
    return import_online_retail(path)


def _line(**fields: str) -> str:
    values = dict(zip(ONLINE_RETAIL_COLUMNS, next(csv.reader([GOOD])), strict=True))
    values.update(fields)
    return ",".join(f'"{v}"' if "," in v else v for v in values.values())


@pytest.mark.parametrize(
    ("fields", "reason", "column"),
    [
        ({"CustomerID": ""}, "missing_customer", "CustomerID"),
        ({"CustomerID": "  "}, "missing_customer", "CustomerID"),
        ({"StockCode": ""}, "missing_value", "StockCode"),
        ({"InvoiceNo": ""}, "missing_value", "InvoiceNo"),
        ({"InvoiceDate": "2010-13-45 08:26:00"}, "unparseable_date", "InvoiceDate"),
        ({"InvoiceDate": "yesterday"}, "unparseable_date", "InvoiceDate"),
        ({"InvoiceDate": ""}, "unparseable_date", "InvoiceDate"),
        ({"Quantity": "six"}, "unparseable_number", "Quantity"),
        ({"Quantity": "1.5"}, "unparseable_number", "Quantity"),
        ({"Quantity": ""}, "unparseable_number", "Quantity"),
        ({"UnitPrice": "£2.55"}, "unparseable_number", "UnitPrice"),
        ({"UnitPrice": "inf"}, "unparseable_number", "UnitPrice"),
        *[({"StockCode": code}, "non_product_code", "StockCode") for code in NON_PRODUCT_CODES],
        ({"StockCode": "1234"}, "non_product_code", "StockCode"),
        ({"StockCode": "123456"}, "non_product_code", "StockCode"),
        ({"UnitPrice": "0.0"}, "non_positive_price", "UnitPrice"),
        ({"UnitPrice": "-11062.06"}, "non_positive_price", "UnitPrice"),
        ({"Quantity": "-3"}, "non_positive_quantity", "Quantity"),
        ({"Quantity": "0"}, "non_positive_quantity", "Quantity"),
        ({"Quantity": "0", "InvoiceNo": "C536379"}, "non_positive_quantity", "Quantity"),
        # the first rule that applies wins
        ({"CustomerID": "", "StockCode": "POST", "UnitPrice": "0"}, "missing_customer", "CustomerID"),
        ({"InvoiceDate": "soon", "StockCode": "POST"}, "unparseable_date", "InvoiceDate"),
        ({"Quantity": "x", "UnitPrice": "y"}, "unparseable_number", "Quantity"),
        ({"StockCode": "POST", "UnitPrice": "0"}, "non_product_code", "StockCode"),
        ({"UnitPrice": "0", "Quantity": "-1"}, "non_positive_price", "UnitPrice"),
    ],
)
def test_quarantine_rule(tmp_path: Path, fields: dict[str, str], reason: str, column: str) -> None:
    result = _import(tmp_path, GOOD, _line(**fields))
    assert result.quarantine.to_dict("records") == [
        {"table": "online_retail", "row": 2, "column": column, "reason": reason}
    ]
    assert len(result.frames[Table.ORDER_ITEMS]) == 1
    assert result.summary()["quarantined_by_reason"] == {reason: 1}


def test_an_invoice_belongs_to_one_customer(tmp_path: Path) -> None:
    result = _import(tmp_path, GOOD, _line(CustomerID="13047.0"), GOOD)
    assert result.quarantine.to_dict("records") == [
        {"table": "online_retail", "row": 2, "column": "InvoiceNo", "reason": "duplicate_id"}
    ]
    orders = result.frames[Table.ORDERS]
    assert orders[["order_id", "customer_id"]].to_dict("records") == [{"order_id": "536365", "customer_id": "17850"}]
    assert len(result.frames[Table.ORDER_ITEMS]) == 2  # repeated lines are kept


def test_a_cancellation_is_a_returned_order(tmp_path: Path) -> None:
    result = _import(
        tmp_path,
        GOOD,
        _line(InvoiceNo="C536379", Quantity="-2", InvoiceDate="2010-12-01 09:41:00"),
        _line(InvoiceNo="C536379", StockCode="22423", Quantity="-1", UnitPrice="12.75",
              InvoiceDate="2010-12-01 09:41:00"),
    )  # fmt: skip
    assert result.quarantine.empty
    orders = result.frames[Table.ORDERS].set_index("order_id")
    assert orders.loc["C536379", "status"] == "returned"
    assert orders.loc["C536379", "total"] == pytest.approx(2 * 2.55 + 12.75)
    assert orders.loc["536365", "status"] == "delivered"
    items = result.frames[Table.ORDER_ITEMS]
    assert items.loc[items["order_id"] == "C536379", "quantity"].tolist() == [2, 1]
    events = result.frames[Table.ORDER_EVENTS]
    assert events["order_id"].tolist() == ["C536379"]
    assert events["status"].tolist() == ["returned"]
    assert events["at"].tolist() == [pd.Timestamp("2010-12-01 09:41:00", tz="UTC")]


def test_dates_are_iso_or_uci_and_taken_as_utc(tmp_path: Path) -> None:
    result = _import(
        tmp_path,
        _line(InvoiceDate="2011-07-01 10:00:00"),
        _line(InvoiceNo="536366", InvoiceDate="12/1/2010 8:26"),
    )
    assert result.quarantine.empty
    orders = result.frames[Table.ORDERS].set_index("order_id")["created_at"]
    assert orders["536365"] == pd.Timestamp("2011-07-01 10:00:00", tz="UTC")  # BST ignored
    assert orders["536366"] == pd.Timestamp("2010-12-01 08:26:00", tz="UTC")


def test_order_takes_its_earliest_time_and_rounds_its_total(tmp_path: Path) -> None:
    result = _import(
        tmp_path,
        _line(InvoiceDate="2010-12-01 08:27:00", Quantity="3", UnitPrice="0.1"),
        _line(InvoiceDate="2010-12-01 08:26:00", StockCode="22423", Quantity="1", UnitPrice="0.2"),
    )
    order = result.frames[Table.ORDERS].iloc[0]
    assert order["created_at"] == pd.Timestamp("2010-12-01 08:26:00", tz="UTC")
    assert order["total"] == 0.5
    assert result.frames[Table.CUSTOMERS].iloc[0]["created_at"] == order["created_at"]


@pytest.mark.parametrize(
    ("country", "iso", "zone"),
    [
        ("United Kingdom", "GB", "Europe/London"),
        ("EIRE", "IE", "Europe/Dublin"),
        ("RSA", "ZA", "Africa/Johannesburg"),
        ("USA", "US", "America/New_York"),
        ("Channel Islands", None, "Europe/London"),
        ("Unspecified", None, None),
        ("European Community", None, None),
        ("Atlantis", None, None),
    ],
)
def test_customer_country_and_timezone(tmp_path: Path, country: str, iso: str | None, zone: str | None) -> None:
    customer = _import(tmp_path, _line(Country=country)).frames[Table.CUSTOMERS].iloc[0]
    assert customer["customer_id"] == "17850"
    assert customer["country"] == iso
    assert customer["timezone"] == zone


def test_customer_country_is_the_most_frequent(tmp_path: Path) -> None:
    result = _import(
        tmp_path,
        _line(Country="Cyprus"),
        _line(InvoiceNo="536366", Country="Austria"),
        _line(InvoiceNo="536367", Country="Austria"),
    )
    assert result.frames[Table.CUSTOMERS]["country"].tolist() == ["AT"]


def test_product_name_price_and_category(tmp_path: Path) -> None:
    result = _import(
        tmp_path,
        _line(Description="HEART HOLDER ", UnitPrice="2.55"),
        _line(InvoiceNo="536366", Description="WHITE HANGING HEART T-LIGHT HOLDER", UnitPrice="2.95"),
        _line(InvoiceNo="536367", Description="WHITE HANGING HEART T-LIGHT HOLDER ", UnitPrice="3.25"),
        _line(StockCode="85123a", InvoiceNo="536368", Description="", UnitPrice="2.00"),
        _line(StockCode="21730", Description="", UnitPrice="4.25"),
        _line(StockCode="22086", Description="PAPER CHAIN KIT 50'S CHRISTMAS ", UnitPrice="2.55"),
        _line(StockCode="21034", Description="REX CASH+CARRY JUMBO SHOPPER", UnitPrice="0.95"),
        _line(StockCode="22752", Description="SET 7 BABUSHKA NESTING BOXES", UnitPrice="7.65"),
        _line(StockCode="84879", Description="ASSORTED COLOUR BIRD ORNAMENT", UnitPrice="1.69"),
        _line(StockCode="21754", Description="HOME BUILDING BLOCK WORD", UnitPrice="5.95"),
        _line(StockCode="21181", Description="PLEASE ONE PERSON METAL SIGN", UnitPrice="2.10"),
        _line(StockCode="22114", Description="DOORMAT RED RETROSPOT DESIGN", UnitPrice="7.95"),
        _line(StockCode="20725", Description="LUNCH BAG RED RETROSPOT", UnitPrice="1.65"),
        _line(StockCode="37370", Description="RETRO COFFEE MUGS ASSORTED", UnitPrice="1.06"),
        _line(StockCode="22111", Description="SCOTTIE DOG HOT WATER BOTTLE", UnitPrice="4.95"),
        _line(StockCode="22699", Description="ROSES REGENCY TEACUP AND SAUCER ", UnitPrice="2.95"),
        _line(StockCode="21507", Description="ELEPHANT, BIRTHDAY CARD, ", UnitPrice="0.42"),
        _line(StockCode="21523", Description="NOTEBOOK DESIGN", UnitPrice="0.42"),
    )
    assert result.quarantine.empty
    products = result.frames[Table.PRODUCTS].set_index("product_id")
    assert products.loc["85123A", "name"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert products.loc["85123A", "price"] == pytest.approx(2.75)  # median of 2.00 2.55 2.95 3.25
    assert products.loc["21730", "name"] == "21730"  # no description: the code
    assert products.loc["21730", "category"] == "other"
    categories = products["category"].to_dict()
    assert categories == {
        "85123A": "candles_lights",
        "21730": "other",
        "22086": "christmas",
        "21034": "other",
        "22752": "other",
        "84879": "other",
        "21754": "other",
        "21181": "signs",
        "22114": "home_decor",
        "20725": "bags",
        "37370": "kitchen",
        "22111": "other",  # a hot water bottle is not kitchenware
        "22699": "kitchen",
        "21507": "cards_wrap",
        "21523": "other",  # DESIGN is not a SIGN
    }
    assert products["created_at"].min() == pd.Timestamp("2010-12-01 08:26:00", tz="UTC")


def test_all_lines_quarantined_gives_empty_contract_tables(tmp_path: Path) -> None:
    result = _import(tmp_path, _line(CustomerID=""), _line(StockCode="POST"))
    assert result.summary()["imported_rows"] == 0
    assert result.summary()["quarantined_rows"] == 2
    for table, spec in GIVEN.items():
        assert result.frames[table].empty
        assert list(result.frames[table].columns) == [c.name for c in spec.columns]
    result.write(tmp_path / "out")
    assert (tmp_path / "out" / "orders.csv").read_text().strip() == ",".join(
        c.name for c in SPECS[Table.ORDERS].columns
    )


def test_latin1_export_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        (HEADER + ",Extra\n" + _line(Description="VOUCHER £40", StockCode="22423") + ",x\n").encode("latin-1")
    )
    result = import_online_retail(path)
    assert result.frames[Table.PRODUCTS]["name"].tolist() == ["VOUCHER £40"]


def test_sample_output_passes_the_contract_validation(retail: ImportResult, tmp_path: Path) -> None:
    sources = pytest.importorskip("tasks.data.sources")
    validation = pytest.importorskip("tasks.data.validation")
    retail.write(tmp_path / "shop")
    snapshot = validation.validate_snapshot(sources.load_raw(str(tmp_path / "shop")), date(2011, 12, 31))
    assert snapshot.quarantine.empty
    assert set(snapshot.counts) == set(GIVEN)
    for table in GIVEN:
        assert snapshot.counts[table].clean == len(retail.frames[table]), table
