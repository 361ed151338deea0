"""Reading the contract tables from a folder: every cell as text, any of three formats, errors naming the file."""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pandas as pd
import pytest
from botocore.config import Config as BotoConfig
from moto import mock_aws

from tasks.data.contract import SPECS, ContractError
from tasks.data.sources import check_source, load_raw
from tasks.data.validation import ROW
from tasks.kernel.enums import Table
from tests.shops import tiny_shop, write_shop

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return write_shop(tiny_shop(), tmp_path / "shop")


def test_cells_are_text_as_written_with_row_numbers_from_one(shop: Path) -> None:
    (shop / "stock_events.csv").write_text(
        "product_id,in_stock,at\n0012,false,2024-03-01T00:00:00Z\nP2,,2024-03-02T00:00:00Z\n", encoding="utf-8"
    )

    frame = load_raw(str(shop))[Table.STOCK_EVENTS].frame

    assert frame["product_id"].tolist() == ["0012", "P2"]  # not the number 12
    assert frame["in_stock"].tolist() == ["false", ""]  # an empty cell stays empty, not NaN
    assert frame[ROW].tolist() == [1, 2]


def test_a_spreadsheet_export_with_bom_crlf_and_padded_headers_reads_the_same(shop: Path) -> None:
    plain = load_raw(str(shop))[Table.ORDERS].frame
    text = (shop / "orders.csv").read_text(encoding="utf-8")
    header, body = text.split("\n", 1)
    padded = ",".join(f" {name} " for name in header.split(","))
    (shop / "orders.csv").write_bytes(b"\xef\xbb\xbf" + f"{padded}\n{body}".replace("\n", "\r\n").encode("utf-8"))

    exported = load_raw(str(shop))[Table.ORDERS].frame

    pd.testing.assert_frame_equal(exported, plain, check_dtype=False)
    check_source(str(shop))  # the header check agrees


def test_a_gzipped_csv_is_read_and_parquet_is_preferred_when_a_table_has_several_files(shop: Path) -> None:
    events = shop / "events.csv"
    (shop / "events.csv.gz").write_bytes(gzip.compress(events.read_bytes()))
    events.unlink()
    pd.DataFrame({"product_id": ["P1"], "in_stock": ["true"], "at": ["2024-04-01T00:00:00Z"]}).to_parquet(
        shop / "stock_events.parquet", index=False
    )  # beside the CSV with P2

    raw = load_raw(str(shop))

    assert raw[Table.EVENTS].source == "events.csv.gz"
    assert raw[Table.EVENTS].frame["rating"].tolist() == ["5"]
    assert raw[Table.STOCK_EVENTS].source == "stock_events.parquet"
    assert raw[Table.STOCK_EVENTS].frame["product_id"].tolist() == ["P1"]
    check_source(str(shop))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("events.csv.gz", b"not gzip at all", r"^events\.csv\.gz: not a readable gzip file \(truncated or corrupt\)$"),
        ("orders.parquet", b"garbage", r"^orders\.parquet: not a readable Parquet file \(truncated or corrupt\)$"),
        ("events.csv", b"", r"^events\.csv: empty file; the first line must name the table's columns$"),
        ("events.csv", b"\n\n", r"^events\.csv: empty file; the first line must name the table's columns$"),
    ],
    ids=["corrupt-gzip", "corrupt-parquet", "empty-file", "blank-lines"],
)
def test_an_unreadable_file_is_refused_naming_it(shop: Path, name: str, content: bytes, message: str) -> None:
    if name == "events.csv.gz":
        (shop / "events.csv").unlink()
    (shop / name).write_bytes(content)

    with pytest.raises(ContractError, match=message):
        load_raw(str(shop))


@pytest.mark.parametrize(
    ("name", "content"),
    [("events.csv", b""), ("orders.parquet", b"garbage"), ("orders.parquet", b""), ("events.csv", b"\xff\xfe,\n")],
    ids=["empty-csv", "corrupt-parquet", "empty-parquet", "not-utf8-header"],
)
def test_the_header_check_refuses_an_unreadable_file_naming_it(shop: Path, name: str, content: bytes) -> None:
    (shop / name).write_bytes(content)

    with pytest.raises(ContractError, match=name.replace(".", r"\.")):
        check_source(str(shop))


def test_a_source_that_is_not_a_folder_or_an_s3_source_without_aws_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"nowhere: no such folder$"):
        load_raw(str(tmp_path / "nowhere"))
    with pytest.raises(ContractError, match=r"nowhere: no such folder$"):
        check_source(str(tmp_path / "nowhere"))
    with pytest.raises(ContractError, match=r"^s3://exports/daily: an S3 source needs AWS settings$"):
        load_raw("s3://exports/daily")


CUSTOMER_COLUMNS = [c.name for c in SPECS[Table.CUSTOMERS].columns if c.required]  # no optional ads_opt_in
PII = ("ivan.petrov@example.com", "+79123456700", "Petrov", "Иван")


def _customer_line(customer_id: str, first_name: str = "Ivan", extra: str = "") -> str:
    cells = [customer_id, "ivan.petrov@example.com", "+79123456700", first_name, "Petrov", "m", "", "en", "UTC", "GB"]
    return ",".join([*cells, "2023-01-01T00:00:00Z", "true", "", "false", ""]) + extra


def _write_customers(shop: Path, *lines: str) -> None:
    (shop / "customers.csv").write_text(",".join(CUSTOMER_COLUMNS) + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


def test_a_row_with_too_many_or_too_few_fields_is_set_aside_by_number_and_the_rest_loads(shop: Path) -> None:
    _write_customers(
        shop,
        _customer_line("C1"),
        _customer_line("C2", extra=",surplus"),
        _customer_line("C3", first_name='"Iv\nan"'),  # a quoted line break is a legal value
        "C4,ivan.petrov@example.com",
        _customer_line("C5"),
    )

    raw = load_raw(str(shop))[Table.CUSTOMERS]

    assert raw.malformed_rows == (2, 4)
    assert raw.frame["customer_id"].tolist() == ["C1", "C3", "C5"]
    assert raw.frame[ROW].tolist() == [1, 3, 5]
    assert raw.frame["first_name"].tolist() == ["Ivan", "Iv\nan", "Ivan"]


def _chain(exc: BaseException | None) -> list[BaseException]:
    """The exception and everything chained to it, explicitly or as context."""
    if exc is None:
        return []
    return [exc, *_chain(exc.__cause__), *_chain(exc.__context__)]


def _truncated_parquet(shop: Path) -> None:
    (shop / "customers.csv").unlink()
    frame = pd.DataFrame([_customer_line("C1").split(",")], columns=CUSTOMER_COLUMNS)
    data = io.BytesIO()
    frame.to_parquet(data, index=False)
    (shop / "customers.parquet").write_bytes(data.getvalue()[: len(data.getvalue()) // 2])


def _truncated_gzip(shop: Path) -> None:
    (shop / "customers.csv").unlink()
    whole = gzip.compress(("\n".join([",".join(CUSTOMER_COLUMNS), _customer_line("C1")]) + "\n").encode())
    (shop / "customers.csv.gz").write_bytes(whole[: len(whole) - 12])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda shop: (shop / "customers.csv").write_bytes(
                (
                    "\n".join([",".join(CUSTOMER_COLUMNS), _customer_line("C1"), _customer_line("C2", "Иван")]) + "\n"
                ).encode("cp1251")
            ),
            r"^customers\.csv: line 3: not UTF-8 text \(save the file as UTF-8\)$",
        ),
        (_truncated_parquet, r"^customers\.parquet: not a readable Parquet file \(truncated or corrupt\)$"),
        (_truncated_gzip, r"^customers\.csv\.gz: not a readable gzip file \(truncated or corrupt\)$"),
    ],
    ids=["cp1251", "truncated-parquet", "truncated-gzip"],
)
def test_an_unreadable_file_is_one_line_naming_it_with_no_customer_data_in_the_chain(
    shop: Path, damage: Callable[[Path], object], message: str
) -> None:
    damage(shop)

    with pytest.raises(ContractError, match=message) as err:
        load_raw(str(shop))

    for exc in _chain(err.value):
        assert not any(value in str(exc) for value in PII), type(exc).__name__
    assert _chain(err.value) == [err.value]  # the reader's own error is not kept: its text may quote a row


def test_a_ragged_row_raises_nothing_that_quotes_it(shop: Path) -> None:
    _write_customers(shop, _customer_line("C1"), _customer_line("C2", extra=",surplus"), 'C3,"unclosed')

    raw = load_raw(str(shop))  # before: ArrowInvalid "Expected 15 columns, got 16: C2,ivan.petrov@..."

    assert raw[Table.CUSTOMERS].malformed_rows == (2, 3)


@pytest.mark.parametrize(
    "source", ["s3://", "s3:///daily", "s3://Exports_2024/daily", "s3://a"], ids=["no-bucket", "empty", "bad", "short"]
)
def test_a_malformed_s3_location_is_refused_before_any_request(source: str) -> None:
    def no_client() -> S3Client:
        raise AssertionError("no request for a malformed location")

    for read in (load_raw, check_source):
        with pytest.raises(ContractError, match=rf"^{re.escape(source)}: not an S3 location; write s3://bucket"):
            read(source, no_client)


def test_a_missing_bucket_is_one_line_naming_it() -> None:
    with mock_aws():
        client = boto3.client("s3")

        with pytest.raises(ContractError) as err:
            load_raw("s3://no-such-shop/daily", lambda: client)

    assert str(err.value) == "s3://no-such-shop/daily: no such bucket"
    assert _chain(err.value) == [err.value]


def test_an_unreachable_endpoint_is_one_line_naming_it() -> None:
    config = BotoConfig(connect_timeout=1, retries={"max_attempts": 1, "mode": "standard"})
    client = boto3.client("s3", endpoint_url="http://127.0.0.1:9", config=config)

    with pytest.raises(ContractError) as err:
        load_raw("s3://exports/daily", lambda: client)

    assert str(err.value).startswith("s3://exports/daily: cannot reach S3 at http://127.0.0.1:9")
    assert _chain(err.value) == [err.value]
