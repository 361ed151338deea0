"""``loyalty audiences export`` and the daily ``audiences`` flow: files from a day's run folder, local or in S3."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import boto3
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.kernel.enums import Table
from tasks.kernel.paths import RunPaths
from tests.conftest import REGION

AS_OF = date(2026, 3, 1)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _write_day(root: Path) -> None:
    """A day's run folder as the daily run leaves it: two lapsed, valuable customers, one agreed to ads."""
    paths = RunPaths.for_day(root, AS_OF)
    paths.profile.parent.mkdir(parents=True)
    paths.table(Table.CUSTOMERS).parent.mkdir(parents=True)
    pd.DataFrame(
        {
            "customer_id": pd.Series(["C1", "C2"], dtype="string"),
            "lifecycle": pd.Series(["lapsed", "lapsed"], dtype="string"),
            "predicted_clv": pd.Series([90.0, 90.0], dtype="Float64"),
            "email_opt_in": [True, True],
            "unhappy": [False, False],
            "last_order_at": pd.to_datetime(["2025-10-01", "2025-10-01"], utc=True),
        }
    ).to_parquet(paths.profile, index=False)
    pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "email": ["Ivan.Petrov@gmail.com", "ola@example.com"],
            "phone": ["+79876543210", "+48601234567"],
            "country": ["RU", "PL"],
            "ads_opt_in": [True, False],
        }
    ).to_parquet(paths.table(Table.CUSTOMERS), index=False)


def test_export_writes_the_platforms_file_and_prints_counts_but_no_address(tmp_path: Path) -> None:
    # given: the day has run
    _write_day(tmp_path / "out")
    target = tmp_path / "google.csv"

    # when
    args = ["audiences", "export", "--segment", "lapsed_valuable", "--platform", "google", "--out", str(target)]
    result = CliRunner().invoke(app, [*args, "--as-of", AS_OF.isoformat()])

    # then: the opted-in customer alone, as Google hashes them (Gmail's dots gone, the phone with its +)
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8").splitlines() == [
        "Email,Phone",
        f"{_sha('ivanpetrov@gmail.com')},{_sha('+79876543210')}",
    ]
    assert "rows written" in result.output and "not opted in" in result.output
    assert "@" not in result.output and "7987" not in result.output


def test_export_of_a_day_not_run_says_which_command_makes_it(tmp_path: Path) -> None:
    args = ["audiences", "export", "--segment", "lapsed_valuable", "--platform", "meta", "--out", str(tmp_path / "x")]

    result = CliRunner().invoke(app, [*args, "--as-of", "2026-03-02"])

    assert result.exit_code == 2
    assert "run `loyalty run --as-of 2026-03-02` first" in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("segment", "platform", "message"),
    [("lapsed", "meta", "unknown segment 'lapsed'"), ("lapsed_valuable", "tiktok", "unknown platform 'tiktok'")],
)
def test_an_unknown_segment_or_platform_is_named_with_the_known_ones(
    tmp_path: Path, segment: str, platform: str, message: str
) -> None:
    _write_day(tmp_path / "out")
    args = ["audiences", "export", "--segment", segment, "--platform", platform, "--out", str(tmp_path / "x")]

    result = CliRunner().invoke(app, [*args, "--as-of", AS_OF.isoformat()])

    assert result.exit_code == 2 and message in result.output
    assert "lapsed_valuable" in result.output or "yandex" in result.output


@pytest.mark.usefixtures("prefect_harness")
def test_the_daily_flow_writes_the_configured_audiences_into_the_days_folder_in_s3(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: run folders in S3, the day's profile and customers there, two platforms configured
    from flows.audiences import audiences

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="runs", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    _write_day(tmp_path / "local")
    for path in (tmp_path / "local").rglob("*.parquet"):
        s3.upload_file(str(path), "runs", "shop/" + path.relative_to(tmp_path / "local").as_posix())
    monkeypatch.setenv("LOYALTY_OUTPUT_DIR", "s3://runs/shop")
    monkeypatch.setenv("LOYALTY_AUDIENCES", "lapsed_valuable:meta,yandex")

    # when
    written = audiences(as_of=AS_OF)

    # then: one file per platform in the day's folder in the bucket, each with the one opted-in customer
    assert [(c.platform.value, c.exported) for c in written] == [("meta", 1), ("yandex", 1)]
    meta = s3.get_object(Bucket="runs", Key="shop/2026-03-01/audiences/lapsed_valuable-meta.csv")["Body"].read()
    assert meta.decode().splitlines() == ["email,phone", f"{_sha('ivan.petrov@gmail.com')},{_sha('79876543210')}"]
    yandex = s3.get_object(Bucket="runs", Key="shop/2026-03-01/audiences/lapsed_valuable-yandex.csv")["Body"].read()
    assert yandex.decode().splitlines()[0] == "external_id,phone,email"
