"""Operator alerts: ``loyalty setup-ops`` against a real Prefect server, a webhook receiver on 127.0.0.1.

Slow: one server for the module (its triggers, actions and event persister services on), ~15 s to healthy here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from flows import alerts, waves
from flows.alerts import EVENT_LATE_WAVE, EVENT_PARKED, EVENT_TRAFFIC, EVENT_UNKNOWN, emit_run_events, setup_ops
from flows.notify import sns_subject
from flows.waves import deliver_waves
from tasks.demo.local_aws import _free_port
from tasks.kernel.calendar import SendClock
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.plan.planner import Wave
from tasks.profile.kpis import TrafficAlert
from tasks.report.run_report import RunSummary
from tests.conftest import REGION
from tests.prefect_servers import PrefectServer, exited, running_prefect_server, spawn, wait_for

pytestmark = pytest.mark.timeout(400)

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTIFIED_WITHIN = 60.0

FAILING_FLOW = """
from prefect import flow

@flow(name="daily-run")
def daily_run() -> None:
    raise RuntimeError("the shop's data folder is gone")

daily_run()
"""

PARKED_RUN = """
from datetime import date
from flows.alerts import emit_run_events
from tasks.report.run_report import RunSummary

summary = RunSummary.model_construct(as_of=date(2026, 12, 6), parked=3, unknown=0, unknown_in_ledger=0, kpis=None)
print(emit_run_events(summary))
"""


# --- what a run's summary emits ------------------------------------------------------------------------------------


def _summary(**counts: Any) -> RunSummary:
    fields: dict[str, Any] = {"as_of": date(2026, 12, 6), "parked": 0, "unknown": 0, "unknown_in_ledger": 0}
    fields["kpis"] = None
    return RunSummary.model_construct(**(fields | counts))


def test_a_summary_emits_parked_unknown_and_traffic_events_with_counts_only(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(alerts, "emit_event", lambda name, resource, payload: sent.append((name, payload)))
    kpis = type(
        "K", (), {"traffic": TrafficAlert(day=date(2026, 12, 6), views=40, baseline=100.0, change=-0.6, alert=True)}
    )

    assert emit_run_events(_summary()) == []
    assert emit_run_events(_summary(parked=3, unknown_in_ledger=2, kpis=kpis)) == [
        EVENT_PARKED,
        EVENT_UNKNOWN,
        EVENT_TRAFFIC,
    ]
    assert sent[0] == (EVENT_PARKED, {"day": "2026-12-06", "count": 3})
    assert sent[1] == (EVENT_UNKNOWN, {"day": "2026-12-06", "count": 2})
    assert sent[2] == (EVENT_TRAFFIC, {"day": "2026-12-06", "views": 40, "baseline": 100.0})


@pytest.mark.usefixtures("prefect_harness")
def test_a_wave_that_goes_out_more_than_half_an_hour_late_emits_an_event(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(alerts, "emit_event", lambda name, resource, payload: sent.append((name, payload)))
    monkeypatch.setattr(waves, "check_lease", lambda settings: None)
    at = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)

    @flow
    def send(now: datetime) -> None:
        clock = SendClock(now=lambda: now)
        deliver_waves(
            RunPaths.for_day(tmp_path, at.date()), [Wave(at=at, shards=[])], Settings(), "run-1", None, 0, clock
        )

    send(at + timedelta(minutes=10))
    assert sent == []
    send(at + timedelta(minutes=45))
    assert sent == [(EVENT_LATE_WAVE, {"day": "2026-12-06", "minutes_late": 45, "shards": 0})]


def test_setup_ops_needs_a_channel_and_a_real_topic_arn() -> None:
    with pytest.raises(ValueError, match="--sns-topic ARN, --webhook URL, or both"):
        setup_ops()
    with pytest.raises(ValueError, match="not an SNS topic ARN"):
        setup_ops(sns_topic="ops-alerts")


def test_an_sns_subject_is_one_line_of_printable_ascii_within_100_characters() -> None:
    assert (
        sns_subject("Loyalty Flows: daily-run\nrun «тихий-кот» is Crashed")
        == "Loyalty Flows: daily-run run - is Crashed"
    )
    assert len(sns_subject("x" * 300)) == 100
    assert sns_subject("\n") == "Loyalty Flows alert"


# --- a real server notifies the webhook ----------------------------------------------------------------------------


class Receiver:
    """A webhook on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", _free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ops"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def texts(self) -> list[str]:
        return [str(b.get("text", "")) for b in list(self.bodies)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect server whose automations fire: event persister, triggers and actions on; nothing else."""
    with running_prefect_server(
        tmp_path_factory.mktemp("prefect-ops-home"),
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED="true",
        PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED="true",
        PREFECT_SERVER_SERVICES_ACTIONS_ENABLED="true",
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED="false",
        PREFECT_SERVER_SERVICES_FOREMAN_ENABLED="false",
    ) as server:
        yield server


def _run(args: list[str], server: PrefectServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=server.env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)


def _notified(receiver: Receiver, needle: str) -> str | None:
    return next((t for t in receiver.texts() if needle in t), None)


def test_setup_ops_notifies_the_webhook_of_a_failed_run_and_of_parked_sends(
    ops_server: PrefectServer, receiver: Receiver, tmp_path: Path
) -> None:
    loyalty = [sys.executable, "-m", "flows.cli"]
    # given: the operators' automations pointed at our webhook, set up twice (the second run updates, no duplicates)
    for _ in range(2):
        setup = _run([*loyalty, "setup-ops", "--webhook", receiver.url], ops_server)
        assert setup.returncode == 0, setup.stderr
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: ops_server.api_url}), get_client(sync_client=True) as client:
        names = sorted(a.name for a in client.read_automations())
    assert names == sorted([alerts.ATTENTION_AUTOMATION, alerts.FAILED_AUTOMATION])
    time.sleep(2.0)  # the triggers service loads the automations it was told of

    # when: a daily run fails
    failed = _run([sys.executable, "-c", FAILING_FLOW], ops_server)
    assert failed.returncode != 0

    # then: the operators hear of it within a minute
    def nobody() -> str | None:
        return None

    text = wait_for("the failure notification", lambda: _notified(receiver, "daily-run"), NOTIFIED_WITHIN, nobody)
    assert "Failed" in text

    # when: a run reports parked sends
    parked = _run([sys.executable, "-c", PARKED_RUN], ops_server)
    assert parked.returncode == 0, parked.stderr
    assert EVENT_PARKED in parked.stdout

    # then: they hear of that too, with the day and the count only
    text = wait_for("the parked notification", lambda: _notified(receiver, EVENT_PARKED), NOTIFIED_WITHIN, nobody)
    assert "2026-12-06" in text
    assert "3" in text


SERVE_NOTIFY = """
from flows.notify import notify_operators

notify_operators.serve(name="notify-operators")
"""


def test_setup_ops_publishes_alerts_to_the_operators_sns_topic(
    ops_server: PrefectServer, aws: str, tmp_path: Path
) -> None:
    import boto3

    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="loyalty-operators")["TopicArn"]
    queue = sqs.create_queue(QueueName="operators-inbox")["QueueUrl"]
    inbox = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox)
    loyalty = [sys.executable, "-m", "flows.cli"]

    # the deployment that publishes is not there yet: setup-ops says what to do instead of half-configuring
    refused = _run([*loyalty, "setup-ops", "--sns-topic", topic], ops_server)
    assert refused.returncode != 0
    assert "no notify-operators/notify-operators deployment" in refused.stderr + refused.stdout

    log = tmp_path / "serve-notify.log"
    with spawn([sys.executable, "-c", SERVE_NOTIFY], ops_server.env(), log, REPO_ROOT) as served:
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        def deployed() -> bool | None:
            with temporary_settings(updates={PREFECT_API_URL: ops_server.api_url}), get_client(sync_client=True) as c:
                return True if any(d.name == "notify-operators" for d in c.read_deployments()) else None

        wait_for("the notify-operators deployment", deployed, 90, exited(served, log))
        setup = _run([*loyalty, "setup-ops", "--sns-topic", topic], ops_server)
        assert setup.returncode == 0, setup.stderr
        assert "publishes to the SNS topic" in setup.stdout
        time.sleep(2.0)  # the triggers service loads the automations it was told of

        # when: a run reports parked sends
        parked = _run([sys.executable, "-c", PARKED_RUN], ops_server)
        assert parked.returncode == 0, parked.stderr

        # then: the operators' topic carries the alert, with the day and the count only
        def published() -> dict[str, Any] | None:
            for message in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []):
                return dict(json.loads(message["Body"]))
            return None

        alert = wait_for("the alert on the operators' topic", published, NOTIFIED_WITHIN, exited(served, log))
    assert alert["Subject"] == f"Loyalty Flows: {EVENT_PARKED}"
    assert "2026-12-06" in alert["Message"] and "'count': 3" in alert["Message"]
