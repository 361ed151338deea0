"""The ``loyalty`` command as a user runs it, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.kernel.enums import Table
from tests.shops import tiny_shop, write_shop

LOYALTY = [sys.executable, "-m", "flows.cli"]


def _run(args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "200"}
    return subprocess.run([*LOYALTY, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)


def test_missing_required_column_is_one_clear_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    frames = tiny_shop()
    frames[Table.CUSTOMERS] = frames[Table.CUSTOMERS].drop(columns=["email"])
    shop = write_shop(frames, tmp_path / "shop")

    result = _run(["run", "--data", str(shop), "--as-of", "2024-06-01"], tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {shop / 'customers.csv'}: missing required column 'email'"
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda shop: (shop / "events.csv").write_bytes(b""), "events.csv: empty file"),
        (
            lambda shop: (shop / "orders.parquet").write_bytes(b"PAR1 truncated"),
            "orders.parquet: not a readable Parquet",
        ),
    ],
    ids=["empty-csv", "truncated-parquet"],
)
def test_an_unreadable_input_file_is_one_clear_line_and_a_non_zero_exit(
    tmp_path: Path, damage: Callable[[Path], object], message: str
) -> None:
    shop = write_shop(tiny_shop(), tmp_path / "shop")
    damage(shop)

    result = _run(["run", "--data", str(shop), "--as-of", "2024-06-01"], tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {shop}/{message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout


def test_a_malformed_s3_location_is_one_clear_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    result = _run(["run", "--data", "s3://Shop_Exports/daily", "--as-of", "2024-06-01"], tmp_path)

    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "error: s3://Shop_Exports/daily: not an S3 location; write s3://bucket or s3://bucket/prefix"
    )


def test_bad_date_argument_is_refused_without_traceback(tmp_path: Path) -> None:
    result = _run(["run", "--data", str(tmp_path), "--as-of", "01.06.2024"], tmp_path)

    assert result.returncode == 2
    assert "is not a date (YYYY-MM-DD)" in result.stderr
    assert "Traceback" not in result.stderr


def test_import_online_retail_accounts_for_every_line(online_retail: Path, tmp_path: Path) -> None:
    result = _run(
        [
            "import",
            "online-retail",
            str(online_retail / "online_retail_lines_sample.csv"),
            "--out",
            str(tmp_path / "r"),
            "--json",
        ],
        tmp_path,
    )

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["quarantined_by_reason"]["missing_customer"] == 10_057
    assert summary["imported_rows"] + summary["quarantined_rows"] == 40_000
    assert sum(summary["quarantined_by_reason"].values()) == summary["quarantined_rows"]
    assert (tmp_path / "r" / "orders.csv").exists()


def test_imported_online_retail_runs_through_the_daily_flow(online_retail: Path, tmp_path: Path) -> None:
    imported = _run(
        [
            "import",
            "online-retail",
            str(online_retail / "online_retail_lines_sample.csv"),
            "--out",
            str(tmp_path / "r"),
        ],
        tmp_path,
    )
    assert imported.returncode == 0, imported.stderr

    result = _run(["run", "--data", str(tmp_path / "r"), "--as-of", "2011-12-09", "--dry-run", "--json"], tmp_path)

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["dry_run"] is True and summary["sent"] == 0
    assert summary["quarantined"] == 0
    assert summary["customers_loaded"] > 3000
    # the export has no emails or consents: every lapsed candidate is skipped with a reason
    assert summary["to_send"] == 0 and summary["skipped_by_reason"].get("no_email", 0) > 0


@pytest.mark.usefixtures("win_back_only")  # C2 is nobody's candidate in the win-back alone
def test_why_explains_each_decision_for_a_customer(tmp_path: Path) -> None:
    frames = tiny_shop()
    shop = write_shop(frames, tmp_path / "shop")
    ran = _run(
        ["run", "--data", str(shop), "--as-of", "2024-06-01", "--now", "2024-06-01T03:00:00Z", "--dry-run"], tmp_path
    )
    assert ran.returncode == 0, ran.stderr

    lapsed = _run(["why", "C1", "--as-of", "2024-06-01"], tmp_path)
    recent = _run(["why", "C2", "--as-of", "2024-06-01"], tmp_path)

    assert lapsed.returncode == 0, lapsed.stderr
    assert "win_back" in lapsed.stdout and "email" in lapsed.stdout and "send" in lapsed.stdout
    assert "no campaign's candidate" in recent.stdout and "last order 12 days before" in recent.stdout
