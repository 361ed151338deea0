"""A stateless worker: the daily run with its folders in S3 and its state in DynamoDB writes only to ``$TMPDIR``.

The run is ``loyalty run`` in a process whose working directory and home are read-only: anything it
wrote outside the temporary folder would fail it. A second run of the day from a fresh temporary folder
is a worker replaced mid-day: it finds what the first one left in S3 and sends nothing twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import boto3
import pytest

from flows.order_updates import order_updates
from tasks.kernel.aws import client
from tasks.kernel.settings import Settings
from tasks.ledger.dynamodb import create_ledger_table
from tasks.state.dynamodb import create_state_table
from tests.conftest import REGION, REPO_ROOT
from tests.integration.test_daily_run import _lapsed_shop, _ses_sent
from tests.integration.test_order_updates import NOON, _shop
from tests.shops import write_shop

pytestmark = pytest.mark.usefixtures("prefect_harness", "win_back_only")

RUNS, DATA = "loyalty-runs", "loyalty-data"
DAY = "2024-06-01"


@pytest.fixture
def worker_env(aws: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a worker on AWS: data in S3, run folders in S3, state and ledger in DynamoDB."""
    from prefect.settings import get_current_settings

    s3: Any = boto3.client("s3", region_name=REGION)
    for bucket in (RUNS, DATA):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    shop = write_shop(_lapsed_shop(6), tmp_path / "shop")
    for file in shop.iterdir():
        s3.upload_file(str(file), DATA, f"exports/{file.name}")
    state, ledger = f"state-{uuid4().hex[:8]}", f"ledger-{uuid4().hex[:8]}"
    create_state_table(client("dynamodb", Settings()), state)
    create_ledger_table(client("dynamodb", Settings()), ledger)
    env = {k: v for k, v in os.environ.items() if k not in {"LOYALTY_STATE_DIR", "PYTEST_CURRENT_TEST"}}
    return env | {
        "PREFECT_API_URL": str(get_current_settings().api.url),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LOYALTY_DATA": f"s3://{DATA}/exports/",
        "LOYALTY_OUTPUT_DIR": f"s3://{RUNS}/shop",
        "LOYALTY_STATE_BACKEND": "dynamodb",
        "LOYALTY_STATE_TABLE": state,
        "LOYALTY_LEDGER_TABLE": ledger,
        "LOYALTY_SIGNING_SECRET": "one-secret-every-worker-shares-0123456789",
    }


def _run_on_a_fresh_worker(env: dict[str, str], root: Path) -> dict[str, Any]:
    """``loyalty run`` for the day from a read-only working directory and home; only a new TMPDIR is writable."""
    workdir, home, tmp = root / "workdir", root / "home", root / "tmp"
    for folder in (workdir, home, tmp):
        folder.mkdir(parents=True)
    workdir.chmod(0o555)
    home.chmod(0o555)
    done = subprocess.run(
        [
            str(REPO_ROOT / ".venv" / "bin" / "loyalty"),
            "run",
            "--as-of",
            DAY,
            "--now",
            f"{DAY}T03:00:00+00:00",
            "--json",
        ],
        cwd=workdir,
        env=env | {"HOME": str(home), "TMPDIR": str(tmp), "PREFECT_HOME": str(tmp / "prefect")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    leftovers = [p for p in (tmp / "loyalty-runs").rglob("*") if p.is_file() and p.name != ".run.lock"]
    assert leftovers == []  # the worker keeps no customer data once the run is over
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _objects() -> dict[str, bytes]:
    s3: Any = boto3.client("s3", region_name=REGION)
    found = s3.list_objects_v2(Bucket=RUNS, Prefix=f"shop/{DAY}/").get("Contents", [])
    return {
        o["Key"].removeprefix(f"shop/{DAY}/"): s3.get_object(Bucket=RUNS, Key=o["Key"])["Body"].read() for o in found
    }


def test_a_daily_run_needs_only_aws_and_a_temporary_folder_and_a_replaced_worker_sends_nothing_twice(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    first = _run_on_a_fresh_worker(worker_env, tmp_path / "worker-1")

    assert first["sent"] >= 1
    assert _ses_sent() == first["sent"]
    kept = _objects()
    assert {"plan/plan.parquet", "summary.json", "delivery/outcomes-00001.parquet"} <= kept.keys()
    assert json.loads(kept["summary.json"])["sent"] == first["sent"]

    second = _run_on_a_fresh_worker(worker_env, tmp_path / "worker-2")

    assert second["sent"] == 0
    assert second["skipped_by_reason"]["duplicate"] == first["sent"]
    assert _ses_sent() == first["sent"]
    kept = _objects()
    # the first worker's plan, outcomes and summary, found in S3 and kept beside the second run's
    assert json.loads(kept["earlier/1/summary.json"])["sent"] == first["sent"]
    assert {"earlier/1/plan/plan.parquet", "earlier/1/delivery/outcomes-00001.parquet", "plan/plan.parquet"} <= set(
        kept
    )


def test_an_order_updates_run_keeps_its_folder_in_s3_and_nothing_on_the_worker(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOYALTY_CAMPAIGNS_DIR")  # the shop's catalog, with its order-status campaign
    s3: Any = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=RUNS, CreateBucketConfiguration={"LocationConstraint": REGION})
    monkeypatch.setenv("LOYALTY_OUTPUT_DIR", f"s3://{RUNS}/shop")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    shop = _shop(tmp_path / "shop", [("O11", "paid", NOON - timedelta(minutes=2))])

    summary = order_updates(data=str(shop), now=NOON)

    assert summary.sent_by_channel == {"email": 1}
    found = s3.list_objects_v2(Bucket=RUNS, Prefix=f"shop/updates/{DAY}/").get("Contents", [])
    [run] = {o["Key"].split("/")[3] for o in found}
    kept = {o["Key"].removeprefix(f"shop/updates/{DAY}/{run}/") for o in found}
    assert {"summary.json", "plan/plan.parquet", "delivery/outcomes-00001.parquet", "outbox/index.html"} <= kept
    assert not any(name.startswith("snapshot/") for name in kept)  # the run's copy of the tables went
    mirror = tmp_path / "tmp" / "loyalty-runs"
    assert [p for p in mirror.rglob("*") if p.is_file() and p.name != ".run.lock"] == []
