"""The README's first command, as a new user runs it: `make demo`, twice."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.timeout(900)


def _make_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "DEMO_ARGS": " ".join(args),
        "COLUMNS": "200",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=800,
        env=env,
        check=False,
    )


def test_demo_sends_then_the_second_run_sends_nothing_new(tmp_path: Path) -> None:
    first = _make_demo(tmp_path, "--customers", "400", "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    index = Path(summary["outbox_index"])
    # the demo writes every message to its outbox, not a sample (``LOYALTY_OUTBOX_SAMPLE=0``)
    assert index.read_text().count("<tr><td>") == summary["rendered"]
    assert f"<p>{summary['rendered']} messages rendered.</p>" in index.read_text()
    # the demo's day (a Friday) speaks through several campaigns at once, each within its budget
    assert len(summary["to_send_by_campaign"]) >= 4, summary["to_send_by_campaign"]
    assert sum(summary["to_send_by_campaign"].values()) == summary["to_send"]
    # and an ad audience beside the day's messages: hashed, never an address
    audience = (Path(summary["run_dir"]) / "audiences" / "lapsed_valuable-meta.csv").read_text()
    assert audience.splitlines()[0] == "email,phone" and "@" not in audience
    # and support's call list (``loyalty calls list``), with at least one VIP's incident
    with (Path(summary["run_dir"]) / "service" / "call_list.csv").open(encoding="utf-8", newline="") as listed:
        assert any(row["why"].startswith("vip") for row in csv.DictReader(listed))

    second = _make_demo(tmp_path, "--customers", "400", "--json")
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(second.stdout.strip().splitlines()[-1])

    assert summary["sent"] > 0
    assert (
        summary["customers_loaded"] + summary["rows"]["customers"]["quarantined"]
        == summary["rows"]["customers"]["input"]
    )
    # the demo shop has some dirty contacts: the bad email or phone is emptied, the customer kept
    assert summary["nulled_by_column"]["customers"]["email"]["invalid_email"] > 0
    assert again["sent"] == 0
    assert again["skipped_by_reason"]["duplicate"] == summary["sent"]  # the plan knows them from the ledger
    # the second run keeps what the first one sent: its outbox and outcomes move to earlier/1/
    earlier = Path(summary["run_dir"]) / "earlier" / "1"
    assert (earlier / "outbox" / "index.html").read_text().count("<tr><td>") == summary["rendered"]
    assert json.loads((earlier / "summary.json").read_text())["sent"] == summary["sent"]
    assert len(list((earlier / "delivery").glob("*.parquet"))) >= 1


def test_demo_prints_a_readable_summary(tmp_path: Path) -> None:
    result = _make_demo(tmp_path, "--customers", "200", "--dry-run")

    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for words in (
        "Daily run for 2026-11-20",
        "customers loaded",
        "quarantined",
        "Segments",
        "planned",
        "skipped",
        "Outbox:",
    ):
        assert words in out
    assert "DRY RUN: nothing was sent" in out
    assert "Traceback" not in out + result.stderr


def test_no_email_or_phone_appears_in_logs_at_debug(tmp_path: Path) -> None:
    import pandas as pd

    env_level = {"PREFECT_LOGGING_LEVEL": "DEBUG"}
    result = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=800,
        env={
            **os.environ,
            **env_level,
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "DEMO_ARGS": "--customers 300",
            "COLUMNS": "200",
        },
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logs = result.stdout + result.stderr
    assert "DEBUG" in logs  # the run really logged at DEBUG
    shop = next((Path(os.environ["LOYALTY_OUTPUT_DIR"]) / "demo-shop").iterdir())
    customers = pd.read_csv(shop / "customers.csv", dtype=str, keep_default_na=False)
    # values of five characters or more: a dirty phone "123" identifies nobody and matches any counter
    leaked = [v for col in ("email", "phone", "last_name") for v in customers[col] if len(v) >= 5 and v in logs]
    assert leaked == [], f"{len(leaked)} personal values in the logs"
    summary = json.loads((Path(os.environ["LOYALTY_OUTPUT_DIR"]) / "2026-11-20" / "summary.json").read_text())
    assert not any(v and v in json.dumps(summary) for v in customers["email"])
