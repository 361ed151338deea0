"""Reading the contract tables from a folder: every cell as text, any of three formats, errors naming the file."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from tasks.data.contract import ContractError
from tasks.data.sources import check_source, load_raw
from tasks.data.validation import ROW
from tasks.kernel.enums import Table
from tests.shops import tiny_shop, write_shop


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
        ("events.csv.gz", b"not gzip at all", r"^events\.csv\.gz: cannot be read \(BadGzipFile\)$"),
        ("orders.parquet", b"garbage", r"^orders\.parquet: cannot be read \(ArrowInvalid\)$"),
        ("events.csv", b"", r"^events\.csv: cannot be read"),
    ],
    ids=["corrupt-gzip", "corrupt-parquet", "empty-file"],
)
def test_an_unreadable_file_is_refused_naming_it(shop: Path, name: str, content: bytes, message: str) -> None:
    if name == "events.csv.gz":
        (shop / "events.csv").unlink()
    (shop / name).write_bytes(content)

    with pytest.raises(ContractError, match=message):
        load_raw(str(shop))


@pytest.mark.xfail(
    strict=True,
    reason="check_source reads headers with pandas/pyarrow unguarded: an empty CSV raises pandas' EmptyDataError "
    "('No columns to parse from file'), a corrupt Parquet pyarrow's ArrowInvalid, neither naming the file",
)
@pytest.mark.parametrize(
    ("name", "content"), [("events.csv", b""), ("orders.parquet", b"garbage")], ids=["empty-csv", "corrupt-parquet"]
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
