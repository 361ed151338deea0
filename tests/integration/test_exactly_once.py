"""The main promise under faults: throttling, server errors, a process killed mid-shard, two runs at once.

Count what the local AWS really accepted: nobody gets a message twice, every planned recipient
gets exactly one unless a crash left their send UNKNOWN (marketing is at most once), and every
planned row is accounted for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import boto3
import pandas as pd
import pytest

from flows.daily_run import daily_run
from tasks.deliver.delivery import claim_batch
from tasks.kernel.enums import SendStatus, Table
from tasks.kernel.paths import RunPaths
from tasks.ledger.sqlite import SqliteLedger
from tests.conftest import REGION, REPO_ROOT
from tests.faults import FaultyAws
from tests.shops import add_rows, tiny_shop, write_shop

pytestmark = [pytest.mark.usefixtures("prefect_harness", "win_back_only"), pytest.mark.timeout(600)]

AS_OF = date(2024, 6, 1)
MORNING = datetime(2024, 6, 1, 3, tzinfo=UTC)
# The shortest lease delivery accepts with these send timeouts: 5 attempts x (0.5 + 5 + 2) + 6 of backoff + 10.
SEND_TIMEOUTS = {
    "LOYALTY_SEND_CONNECT_TIMEOUT": "0.5",
    "LOYALTY_SEND_READ_TIMEOUT": "5",
    "LOYALTY_SEND_TOKEN_WAIT": "2",
}
LEASE_SECONDS = 54


@pytest.fixture
def faulty_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyAws]:
    aws = FaultyAws(throttle=0.10, server_error=0.02).start()
    urllib.request.urlopen(urllib.request.Request(f"{aws.endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    monkeypatch.setenv("LOYALTY_LEDGER_LEASE_SECONDS", str(LEASE_SECONDS))
    for name, value in SEND_TIMEOUTS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOYALTY_SEND_CONCURRENCY", "4")
    monkeypatch.setenv("LOYALTY_SHARD_SIZE", "100")
    boto3.client("ses", region_name=REGION).verify_email_identity(EmailAddress="hello@shop.example.com")
    try:
        yield aws
    finally:
        aws.stop()


def _lapsed(n: int) -> dict[Table, pd.DataFrame]:
    customers = [
        {
            "customer_id": f"X{i:04d}",
            "email": f"x{i}@example.com",
            "first_name": "Ola",
            "gender": "f",
            "locale": "pl",
            "timezone": "Europe/Warsaw",
            "country": "PL",
            "created_at": "2023-01-01T00:00:00Z",
            "email_opt_in": "true",
            "sms_opt_in": "false",
        }
        for i in range(n)
    ]
    orders = [
        {
            "order_id": f"OX{i:04d}",
            "customer_id": f"X{i:04d}",
            "created_at": "2024-02-22T10:00:00Z",
            "status": "delivered",
            "total": "10",
            "currency": "EUR",
        }
        for i in range(n)
    ]
    return add_rows(add_rows(tiny_shop(), Table.CUSTOMERS, customers), Table.ORDERS, orders)


def _check_exactly_once(aws: FaultyAws, state: Path, run_dir: Path) -> dict[str, int]:
    """Every send-eligible row of the final plan: SENT once in moto, or UNKNOWN (0 or 1), never twice."""
    received = aws.emails_per_recipient(REGION)
    assert max(received.values()) == 1, "somebody got a message twice"
    plan = pd.read_parquet(RunPaths(run_dir).plan)
    eligible = plan.loc[plan["decision"].eq("send") | plan["reason"].eq("duplicate")]
    customers = pd.read_parquet(RunPaths(run_dir).table(Table.CUSTOMERS)).set_index("customer_id")["email"]
    ledger = SqliteLedger(state / "ledger.sqlite")
    statuses = {k: ledger.status(k) for k in eligible["idempotency_key"]}
    for row in eligible.itertuples(index=False):
        got = received.get(str(customers[row.customer_id]).lower(), 0)
        status = statuses[row.idempotency_key]
        if status is SendStatus.SENT:
            assert got == 1, f"{row.customer_id} is SENT in the ledger but got {got}"
        else:
            assert status is SendStatus.UNKNOWN and got <= 1, f"{row.customer_id}: {status}, got {got}"
    assert sum(received.values()) == sum(s is SendStatus.SENT for s in statuses.values()) + sum(
        received.get(str(customers[r.customer_id]).lower(), 0)
        for r in eligible.itertuples(index=False)
        if statuses[r.idempotency_key] is SendStatus.UNKNOWN
    )
    return {str(s): list(statuses.values()).count(s) for s in set(statuses.values())}


def _accounted(summary) -> None:  # type: ignore[no-untyped-def]
    delivered = summary.sent + summary.already_sent + summary.failed + summary.retry_later + summary.parked
    delivered += summary.suppressed
    assert summary.to_send == delivered + summary.unknown
    assert summary.planned == summary.to_send + summary.holdout + summary.deferred + summary.skipped


def test_faults_and_a_killed_process_still_send_everyone_at_most_once(faulty_aws: FaultyAws, tmp_path: Path) -> None:
    from prefect.settings import get_current_settings

    shop = write_shop(_lapsed(300), tmp_path / "shop")
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url), "LOYALTY_EMAIL_RATE": "60"}
    script = (
        "from datetime import date, datetime, timezone\n"
        "from flows.daily_run import daily_run\n"
        f"daily_run(as_of=date(2024, 6, 1), data={str(shop)!r}, now=datetime(2024, 6, 1, 3, tzinfo=timezone.utc))\n"
    )
    victim = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while sum(faulty_aws.emails_per_recipient(REGION).values()) < 100:  # mid-way through the send
            assert victim.poll() is None, "the run finished before it could be killed"
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)  # no cleanup, no marks: claims stay behind
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    before_rerun = sum(faulty_aws.emails_per_recipient(REGION).values())
    time.sleep(LEASE_SECONDS + 1)  # the crash-left claims outlive their lease

    again = daily_run(as_of=AS_OF, data=str(shop), now=MORNING)

    _accounted(again)
    statuses = _check_exactly_once(faulty_aws, tmp_path / "state", Path(again.run_dir))
    assert faulty_aws.injected["throttle"] > 0 and faulty_aws.injected["server_error"] > 0
    assert 100 <= before_rerun < sum(faulty_aws.emails_per_recipient(REGION).values())
    assert statuses.get("sent", 0) + statuses.get("unknown", 0) == again.to_send + again.skipped_by_reason.get(
        "duplicate", 0
    )
    # at most what was claimed and not marked when it died: 2 shards x one claim batch (60 msg/s, concurrency 4)
    assert again.unknown <= 2 * claim_batch(60, 4)


@pytest.mark.parametrize("folders", ["one output folder each", "one shared output folder"])
def test_two_runs_of_the_same_day_at_once_send_each_message_once(
    faulty_aws: FaultyAws, tmp_path: Path, folders: str
) -> None:
    from prefect.settings import get_current_settings

    shop = write_shop(_lapsed(200), tmp_path / "shop")
    script = (
        "import sys\n"
        "from datetime import date, datetime, timezone\n"
        "from flows.daily_run import daily_run\n"
        f"s = daily_run(as_of=date(2024, 6, 1), data={str(shop)!r}, now=datetime(2024, 6, 1, 3, tzinfo=timezone.utc))\n"
        "sys.stdout.write(s.model_dump_json())\n"
    )
    # two workers sharing one ledger (the state folder), with their own output folders or one (then the
    # second waits for the day's folder lock and finds everything sent)
    shared = folders == "one shared output folder"
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={
                **os.environ,
                "PREFECT_API_URL": str(get_current_settings().api.url),
                "LOYALTY_OUTPUT_DIR": str(tmp_path / ("out" if shared else f"out-{n}")),
            },
        )
        for n in range(2)
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]

    summaries = [json.loads(o) for o in outputs]
    received = faulty_aws.emails_per_recipient(REGION)
    assert max(received.values()) == 1
    assert sum(s["sent"] for s in summaries) == sum(received.values()) == max(s["to_send"] for s in summaries)
    for summary in summaries:
        assert summary["retry_later"] == summary["failed"] == 0
    if shared:  # one after the other: the later run found everything sent, and kept the earlier run's files
        assert sorted(s["sent"] for s in summaries)[0] == 0
        day = tmp_path / "out" / "2024-06-01"
        assert json.loads((day / "earlier" / "1" / "summary.json").read_text())["sent"] == sum(received.values())
