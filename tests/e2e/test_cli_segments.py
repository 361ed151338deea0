"""``loyalty segments check`` and ``loyalty segments migration`` as a user runs them."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from flows.cli import app
from tasks.kernel.paths import RunPaths
from tasks.profile.segments import ABSENT, OTHER, write_snapshot

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["segments", *args])
    return result.exit_code, result.stdout, result.stderr


def test_check_passes_on_the_shipped_segments_file() -> None:
    code, stdout, stderr = _invoke("check")

    assert code == 0, stdout + stderr
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("ok    unhappy: unhappy and days_since_unhappy <= 30")
    assert all(line.startswith("ok ") for line in lines[:-1])
    assert lines[-1].startswith(f"{len(lines) - 1} segments ok in ")


def test_check_names_segment_expression_and_column_of_each_bad_segment(tmp_path: Path) -> None:
    broken = tmp_path / "segments.yaml"
    broken.write_text(
        "segments:\n"
        "  - {name: vip, description: VIPs., expression: vip and email_opt_in}\n"
        "  - {name: lapsed, description: Lapsed., expression: 'lifecyle == \"lapsed\"'}\n"
        '  - {name: sneaky, description: Sneaky., expression: \'__import__("os").system("id")\'}\n',
        encoding="utf-8",
    )

    code, stdout, stderr = _invoke("check", "--file", str(broken))

    assert code == 1
    lines = stdout.strip().splitlines()
    assert lines[0] == "ok    vip: vip and email_opt_in"
    assert lines[1] == (
        "error segment 'lapsed' (`lifecyle == \"lapsed\"`): unknown column 'lifecyle' (did you mean 'lifecycle'?)"
    )
    assert lines[2].startswith('error segment \'sneaky\' (`__import__("os").system("id")`):')
    assert "calling a function is not allowed" in lines[2]
    assert stderr.strip() == f"error: 2 of 3 segments are wrong in {broken}"
    assert "Traceback" not in stdout + stderr


def test_check_as_json_lists_every_segment_and_its_error(tmp_path: Path) -> None:
    broken = tmp_path / "segments.yaml"
    broken.write_text(
        "segments:\n  - {name: vip, description: VIPs., expression: vip}\n"
        "  - {name: typed, description: Typed., expression: rfm_segment > 3}\n",
        encoding="utf-8",
    )

    code, stdout, _ = _invoke("check", "--file", str(broken), "--json")

    assert code == 1
    report = json.loads(stdout)
    assert report["ok"] is False
    assert [(s["name"], s["error"] is None) for s in report["segments"]] == [("vip", True), ("typed", False)]
    assert report["segments"][0]["columns"] == ["vip"]
    assert "`rfm_segment` is text and `3` is a number" in report["segments"][1]["error"]


def test_check_refuses_a_malformed_file_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "segments.yaml"
    broken.write_text("segments:\n  - {name: vip, description: VIPs.}\n", encoding="utf-8")

    code, stdout, stderr = _invoke("check", "--file", str(broken))

    assert code == 1
    assert stderr.strip() == f"error: {broken}: segments[0] 'vip'.expression: Field required"
    assert "Traceback" not in stdout + stderr


def test_check_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    code, _, stderr = _invoke("check", "--file", str(tmp_path / "nope.yaml"))

    assert code == 2
    assert stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: no such file"


def _snapshot(day: date, segments: dict[str, str]) -> Path:
    paths = RunPaths.for_day(Path(os.environ["LOYALTY_OUTPUT_DIR"]), day)
    frame = pd.DataFrame({"customer_id": list(segments), "segment": list(segments.values())})
    return write_snapshot(paths, frame)


def test_migration_prints_the_matrix_between_two_daily_snapshots() -> None:
    _snapshot(date(2024, 6, 1), {"A": "vip", "B": "vip", "C": "at_risk", "D": OTHER})
    _snapshot(date(2024, 6, 2), {"A": "vip", "B": "at_risk", "C": "lapsed_valuable", "E": "new"})

    code, stdout, stderr = _invoke("migration", "--from", "2024-06-01", "--to", "2024-06-02", "--json")

    assert code == 0, stderr
    report = json.loads(stdout)
    assert (report["from"], report["to"]) == ("2024-06-01", "2024-06-02")
    matrix = report["matrix"]
    assert matrix["vip"]["vip"] == 1 and matrix["vip"]["at_risk"] == 1
    assert matrix["at_risk"]["lapsed_valuable"] == 1
    assert matrix[OTHER][ABSENT] == 1 and matrix[ABSENT]["new"] == 1
    assert sum(n for row in matrix.values() for n in row.values()) == 5
    assert {"from": "vip", "to": "at_risk", "customers": 1} in report["moves"]
    assert all(move["customers"] > 0 for move in report["moves"])


def test_migration_as_a_table_shows_segments_and_changes() -> None:
    _snapshot(date(2024, 6, 1), {"A": "vip", "B": "vip"})
    _snapshot(date(2024, 6, 2), {"A": "vip", "B": "at_risk"})

    code, stdout, stderr = _invoke("migration", "--from", "2024-06-01", "--to", "2024-06-02")

    assert code == 0, stderr
    assert "Segments 2024-06-01 → 2024-06-02" in stdout
    assert "1 of 2 customers changed segment." in stdout
    assert "vip → at_risk: 1" in stdout


def test_migration_without_a_snapshot_names_the_date_and_the_daily_run() -> None:
    _snapshot(date(2024, 6, 1), {"A": "vip"})
    missing = RunPaths.for_day(Path(os.environ["LOYALTY_OUTPUT_DIR"]), date(2024, 6, 9)).segments

    code, stdout, stderr = _invoke("migration", "--from", "2024-06-01", "--to", "2024-06-09")

    assert code == 2
    assert stderr.strip() == (
        f"error: no segment snapshot for 2024-06-09 at {missing}: "
        "the daily run for 2024-06-09 writes it (loyalty run --as-of 2024-06-09)"
    )
    assert "Traceback" not in stdout + stderr


def test_migration_refuses_a_bad_date() -> None:
    code, _, stderr = _invoke("migration", "--from", "1.6.2024", "--to", "2024-06-02")

    assert code == 2
    assert stderr.strip() == "error: --from '1.6.2024' is not a date (YYYY-MM-DD)"
