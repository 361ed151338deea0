"""Loading the contract from s3://bucket/prefix, against a local S3."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import boto3
import pandas as pd
import pytest

from tasks.data.contract import ContractError
from tasks.data.sources import load_raw
from tasks.data.validation import validate_snapshot
from tasks.kernel.aws import s3_client
from tasks.kernel.enums import Table
from tasks.kernel.settings import Settings
from tests.conftest import REGION
from tests.shops import tiny_shop, write_shop


def _upload(folder: Path, bucket: str, prefix: str) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    for path in folder.iterdir():
        s3.upload_file(str(path), bucket, f"{prefix}/{path.name}")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_s3_prefix_loads_like_a_folder(aws: str, tmp_path: Path, fmt: str) -> None:
    folder = write_shop(tiny_shop(), tmp_path / "shop", fmt=fmt)
    _upload(folder, "shop-exports", "daily/2024-06-01")
    as_of = date(2024, 6, 1)

    from_s3 = validate_snapshot(load_raw("s3://shop-exports/daily/2024-06-01", lambda: s3_client(Settings())), as_of)
    from_disk = validate_snapshot(load_raw(str(folder)), as_of)

    assert Table.POINT_MOVEMENTS not in from_s3.frames  # optional: no object, no table
    assert set(from_s3.frames) == set(from_disk.frames)
    for table in from_disk.frames:
        pd.testing.assert_frame_equal(from_s3.frames[table], from_disk.frames[table])


def test_missing_object_in_s3_names_it(aws: str, tmp_path: Path) -> None:
    folder = write_shop(tiny_shop(), tmp_path / "shop")
    (folder / "events.csv").unlink()
    _upload(folder, "shop-exports", "x")

    with pytest.raises(ContractError, match=r"^s3://shop-exports/x/events.csv: file not found"):
        load_raw("s3://shop-exports/x", lambda: s3_client(Settings()))
