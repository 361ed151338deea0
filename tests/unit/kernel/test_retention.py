"""Retention: old run folders lose their customer-level files and keep their summaries; recent ones are untouched."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.kernel.paths import RunPaths
from tasks.kernel.retention import apply_retention

TODAY = date(2026, 6, 1)
OLD, RECENT = TODAY - timedelta(days=100), TODAY - timedelta(days=10)
CUSTOMER_FILES = ("snapshot/customers.parquet", "plan/plan.parquet", "render/rendered-00001.parquet",
                  "outbox/0001.eml", "offers/coupons.csv", "delivery/outcomes-00001.parquet",
                  "quarantine.csv", "ledger.csv", "earlier/1/plan/plan.parquet")  # fmt: skip
KEPT_FILES = ("summary.json", "kpis/kpis.json", "earlier/1/summary.json")


def _run_folder(root: Path) -> Path:
    for name in (*CUSTOMER_FILES, *KEPT_FILES):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("anna@example.com" if name not in KEPT_FILES else '{"sent": 3}')
    return root


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    output = tmp_path / "out"
    for day in (OLD, RECENT):
        _run_folder(RunPaths.for_day(output, day).root)
        _run_folder(output / "updates" / day.isoformat() / "061500-abcdef12")
        _run_folder(output / "adhoc" / "spring_sale" / day.isoformat())
    (output / "demo-shop").mkdir()
    (output / "demo-shop" / "customers.csv").write_text("not a run folder")
    return output


def test_an_old_run_folder_keeps_only_its_summaries_and_a_recent_one_is_untouched(shop: Path) -> None:
    report = apply_retention(shop, TODAY, 90)

    for old in (shop / OLD.isoformat(), shop / "updates" / OLD.isoformat() / "061500-abcdef12",
                shop / "adhoc" / "spring_sale" / OLD.isoformat()):  # fmt: skip
        assert _files(old) == set(KEPT_FILES)
        assert (old / "summary.json").read_text() == '{"sent": 3}'
    for recent in (shop / RECENT.isoformat(), shop / "updates" / RECENT.isoformat() / "061500-abcdef12",
                   shop / "adhoc" / "spring_sale" / RECENT.isoformat()):  # fmt: skip
        assert _files(recent) == {*CUSTOMER_FILES, *KEPT_FILES}
    assert (shop / "demo-shop" / "customers.csv").exists()
    assert (report.days, report.folders, report.files) == ((OLD,), 3, 3 * len(CUSTOMER_FILES))


def test_the_report_says_counts_and_days_and_nothing_about_customers(shop: Path) -> None:
    line = apply_retention(shop, TODAY, 90).headline()

    assert f"deleted {3 * len(CUSTOMER_FILES)} customer-level files in 3 run folders" in line
    assert OLD.isoformat() in line and RECENT.isoformat() not in line
    assert "example.com" not in line


def test_a_dry_run_deletes_nothing_and_says_what_it_would(shop: Path) -> None:
    report = apply_retention(shop, TODAY, 90, dry_run=True)

    assert _files(shop / OLD.isoformat()) == {*CUSTOMER_FILES, *KEPT_FILES}
    assert report.headline().startswith(f"retention: would delete {3 * len(CUSTOMER_FILES)} ")


def test_zero_days_keeps_everything(shop: Path) -> None:
    report = apply_retention(shop, TODAY, 0)

    assert _files(shop / OLD.isoformat()) == {*CUSTOMER_FILES, *KEPT_FILES}
    assert "off" in report.headline()


def test_a_second_pass_finds_nothing_more_to_delete(shop: Path) -> None:
    apply_retention(shop, TODAY, 90)

    assert apply_retention(shop, TODAY, 90).files == 0


def test_a_day_another_run_holds_is_skipped(shop: Path) -> None:
    with RunPaths.for_day(shop, OLD).exclusive():
        report = apply_retention(shop, TODAY, 90)

    assert "snapshot/customers.parquet" in _files(shop / OLD.isoformat())
    assert report.skipped_busy == (OLD,)


def test_the_cli_applies_retention_with_a_dry_run_first(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_OUTPUT_DIR", str(shop))
    monkeypatch.setenv("LOYALTY_RETENTION_DAYS", "90")
    runner = CliRunner()

    preview = runner.invoke(app, ["retention", "apply", "--dry-run", "--as-of", TODAY.isoformat()])
    assert preview.exit_code == 0, preview.output
    assert "would delete" in preview.output
    assert "snapshot/customers.parquet" in _files(shop / OLD.isoformat())

    applied = runner.invoke(app, ["retention", "apply", "--as-of", TODAY.isoformat()])
    assert applied.exit_code == 0, applied.output
    assert _files(shop / OLD.isoformat()) == set(KEPT_FILES)
