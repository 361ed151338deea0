"""Waves as their own flow runs: the deployed daily run schedules one ``send-wave`` run per wave and ends.

Against a real Prefect server (a subprocess) with the deployments served from another (``serve_all``),
and the local AWS (moto) in this process. The daily shop has two waves: one whose send hour has passed (it
goes at once) and one one to two hours ahead (it stays Scheduled). Also: the run refused when the send-wave
deployment is missing, and an approved ad-hoc campaign's wave scheduled, then sent by ``loyalty send-wave``.
One server for the module; ~100 s in all.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from email import message_from_string
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tasks.kernel.enums import Table
from tasks.kernel.paths import RunPaths
from tasks.plan.waves import planned_waves
from tests.conftest import REGION, REPO_ROOT
from tests.prefect_servers import PrefectServer, exited, running_prefect_server, spawn, talking_to, wait_for
from tests.shops import add_rows, tiny_shop, write_shop

pytestmark = pytest.mark.timeout(400)

SERVE = "from flows.serve import serve_all; from tasks.kernel.settings import Settings; serve_all(Settings())"


def _layout(start: datetime) -> tuple[int, str, str]:
    """The win-back's send hour and the zones of the now-due and the later customers, for a test started at ``start``.

    The later wave is one to two hours ahead (it never comes due within the test) and on the same day as the
    due one, whatever the hour: from 02:00 UTC the due customers live on UTC and the later ones on UTC-2,
    before it on UTC+2 and UTC (``Etc/GMT-2`` is UTC+2: POSIX signs).
    """
    if start.hour >= 2:
        return start.hour, "Etc/UTC", "Etc/GMT+2"
    return start.hour + 2, "Etc/GMT-2", "Etc/UTC"


@contextmanager
def _client(server: PrefectServer) -> Iterator[Any]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
        yield client


def _shop(start: datetime) -> dict[Table, pd.DataFrame]:
    """Four lapsed customers (last order 100 days ago) whose send hour has come and two whose has not; all agreed."""
    as_of = start.date()
    _, due_now, later = _layout(start)
    customers, orders = [], []
    for i, zone in enumerate([due_now] * 4 + [later] * 2):
        customers.append(
            {
                "customer_id": f"W{i}",
                "email": f"w{i}@example.com",
                "first_name": "Ola",
                "gender": "f",
                "locale": "pl",
                "timezone": zone,
                "country": "PL",
                "created_at": "2023-01-01T00:00:00Z",
                "email_opt_in": "true",
                "sms_opt_in": "false",
            }
        )
        last = datetime.combine(as_of - timedelta(days=100), datetime.min.time(), UTC)
        orders.append(
            {
                "order_id": f"OW{i}",
                "customer_id": f"W{i}",
                "created_at": f"{last:%Y-%m-%dT10:00:00Z}",
                "status": "delivered",
                "total": "10",
                "currency": "EUR",
            }
        )
    return add_rows(add_rows(tiny_shop(), Table.CUSTOMERS, customers), Table.ORDERS, orders)


def _emails_per_recipient() -> dict[str, int]:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    counts: dict[str, int] = {}
    for message in list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages):
        for _, address in getaddresses(message_from_string(message.raw_data).get_all("To", [])):
            counts[address.lower()] = counts.get(address.lower(), 0) + 1
    return counts


def _wave_runs(server: PrefectServer) -> list[Any]:
    """The send-wave runs of the deployment (a wave run by hand in-process has no deployment), by start time."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with _client(server) as client:
        runs = list(
            client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["send-wave"])),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            )
        )
    return [r for r in runs if r.deployment_id is not None]


def _run_daily(server: PrefectServer, as_of: date, shop: Path) -> Any:
    from prefect.deployments import run_deployment

    with talking_to(server):
        run: Any = run_deployment(
            "daily-run/daily-run", parameters={"as_of": as_of.isoformat(), "data": str(shop)}, timeout=240
        )
    assert run.state is not None and run.state.is_completed(), run.state
    return run


@pytest.fixture
def shop_env(aws: str, win_back_only: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[datetime]:
    """The win-back sent at the hour ``_layout`` picks, no quiet hours; yields the moment the test starts."""
    start = datetime.now(UTC)
    send_hour, _, _ = _layout(start)
    catalog = win_back_only / "win_back.yaml"
    catalog.write_text(catalog.read_text().replace("send_hour_local: 10", f"send_hour_local: {send_hour}"))
    monkeypatch.setenv("LOYALTY_QUIET_HOURS_START", "0")
    monkeypatch.setenv("LOYALTY_QUIET_HOURS_END", "0")  # start == end: no quiet hours, whatever the hour
    monkeypatch.setenv("LOYALTY_SHOP_TIMEZONE", "UTC")
    yield start


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect server with a fresh SQLite database, for the module."""
    with running_prefect_server(tmp_path_factory.mktemp("prefect-home"), PREFECT_SERVER_UI_ENABLED="false") as server:
        yield server


@pytest.fixture
def served(prefect_server: PrefectServer, tmp_path: Path, shop_env: datetime) -> Iterator[PrefectServer]:
    """Every deployment served from a subprocess against the server (as ``loyalty serve``)."""
    log = tmp_path / "serve.log"
    with spawn([sys.executable, "-c", SERVE], prefect_server.env(), log, cwd=REPO_ROOT) as serve:
        wait_for(
            "serve to poll",
            lambda: True if "being served" in log.read_text(errors="replace") else None,
            120,
            exited(serve, log),
        )
        yield prefect_server


def test_without_the_send_wave_deployment_a_run_that_schedules_waves_stops_before_planning(
    prefect_server: PrefectServer, shop_env: datetime, tmp_path: Path
) -> None:
    from prefect.exceptions import ObjectNotFound

    from flows.daily_run import daily_run
    from flows.waves import SEND_WAVE_DEPLOYMENT, SendWaveNotDeployedError

    # given: a server without the send-wave deployment (nobody ran `loyalty serve` or `prefect deploy`)
    with _client(prefect_server) as client, suppress(ObjectNotFound):
        client.delete_deployment(client.read_deployment_by_name(SEND_WAVE_DEPLOYMENT).id)
    shop = write_shop(_shop(shop_env), tmp_path / "shop")
    # when: a run that would schedule its waves as runs starts
    with (
        talking_to(prefect_server),
        pytest.raises(SendWaveNotDeployedError) as error,
    ):
        daily_run(as_of=shop_env.date(), data=str(shop), send_waves_as_runs=True)
    # then: one line that names the way out, and nothing planned (no history, no coupons taken)
    message = str(error.value)
    assert "\n" not in message and "`loyalty serve`" in message and "`prefect deploy --all`" in message
    assert not RunPaths.for_day(tmp_path / "out", shop_env.date()).plan.exists()


def test_a_deployed_daily_run_schedules_its_waves_as_runs_that_send_once(
    served: PrefectServer, shop_env: datetime, tmp_path: Path
) -> None:

    from flows.send_wave import send_wave

    # given: a shop where four customers' send hour has come and two customers' is one to two hours ahead
    as_of = shop_env.date()
    shop = write_shop(_shop(shop_env), tmp_path / "shop")
    # when: the daily-run deployment runs (on the served process), plans, renders and ends
    _run_daily(served, as_of, shop)
    paths = RunPaths.for_day(tmp_path / "out", as_of)
    waves = planned_waves(paths)
    # then: one send-wave run per planned wave, at the wave's time, keyed by day and wave
    runs = _wave_runs(served)
    assert len(waves) == 2 and len(runs) == 2
    assert [r.expected_start_time for r in runs] == [w.at for w in waves]
    # a wave past midnight UTC (a test started after 22:00) names its date as well as its time
    assert [r.idempotency_key for r in runs] == [
        f"send-wave/{as_of}/{w.at:%H:%M}" if w.at.date() == as_of else f"send-wave/{as_of}/{w.at:%Y-%m-%dT%H:%M}"
        for w in waves
    ]
    now_wave, later_wave = waves
    assert later_wave.at > datetime.now(UTC) and runs[1].state.is_scheduled()
    # and: the due wave runs on the served process and reaches the local SES, once per customer
    due = [f"w{i}@example.com" for i in range(4)]
    done = wait_for(
        "the due wave's run to finish",
        lambda: run if (run := _wave_runs(served)[0]).state.is_final() else None,
        120,
        lambda: None,
    )
    assert done.state.is_completed(), done.state
    sent = _emails_per_recipient()
    planned_now = now_wave.messages  # the due customers but the win-back's holdout
    assert set(sent) <= set(due) and set(sent.values()) == {1} and len(sent) == planned_now > 0
    assert _wave_runs(served)[1].state.is_scheduled()  # the later wave waits on the server, not in a process
    # when: an engineer runs the due wave again by hand (``loyalty send-wave`` calls the same flow)
    with talking_to(served):
        again = send_wave.with_options(retries=0)(as_of=as_of, at=now_wave.at)
    # then: nothing went twice, and the day's summary counts each of its messages once, as sent
    assert _emails_per_recipient() == sent
    assert again == {"sent": planned_now}
    summary = pd.read_json(paths.summary, typ="series")
    assert (summary["sent"], summary["already_sent"]) == (planned_now, 0)
    # when: the day is run again
    _run_daily(served, as_of, shop)
    # then: no second set of wave runs, and still nobody got a message twice
    assert [r.id for r in _wave_runs(served)] == [r.id for r in runs]
    assert _emails_per_recipient() == sent


@pytest.fixture
def two_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The served daily run splits its customers in two (set before ``served`` starts its process)."""
    monkeypatch.setenv("LOYALTY_PARTITIONS", "2")


def test_a_deployed_daily_run_in_partitions_hands_each_to_a_daily_partition_run_of_the_pool(
    two_partitions: None, served: PrefectServer, shop_env: datetime, tmp_path: Path
) -> None:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    from tasks.plan.partitions import Partition

    # given: the shop of the test above, the deployments served (as a process worker would take them)
    as_of = shop_env.date()
    shop = write_shop(_shop(shop_env), tmp_path / "shop")
    # when: the daily-run deployment runs
    _run_daily(served, as_of, shop)
    # then: it handed its two partitions to two daily-partition deployment runs, which completed
    with _client(served) as client:
        parts = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["daily-partition"])))
    assert sorted(r.parameters["partition"] for r in parts) == [0, 1]
    assert all(r.deployment_id is not None and r.state is not None and r.state.is_completed() for r in parts)
    # and: the merged plan's shards each hold one partition's customers, its waves scheduled as before
    paths = RunPaths.for_day(tmp_path / "out", as_of)
    waves = planned_waves(paths)
    shards = [n for w in waves for n in w.shards]
    assert len(waves) == 2 and shards
    for number in shards:
        owner = Partition((number - 1) % 2, 2)
        assert owner.members(pd.read_parquet(paths.send_shard(number), columns=["customer_id"])["customer_id"]).all()
    planned = pd.read_parquet(paths.plan)["customer_id"]
    assert {f"W{i}" for i in range(6)} <= set(planned) and not planned.duplicated().any()  # each lapsed one, once


class _Approver:
    """A reviewer who says yes at once (the UI's approval form, answered)."""

    def show(self, preview: Any, samples: Any) -> None:
        """Nothing to look at here."""

    def approve(self, preview: Any, request: Any) -> Any:
        from tasks.jobs.adhoc import Approval

        return Approval(approved=True, comment="go")


def test_an_approved_adhoc_campaign_schedules_its_waves_and_a_wave_run_sends_them_once(
    prefect_server: PrefectServer, aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.deployments.runner import RunnerDeployment
    from typer.testing import CliRunner

    from flows.adhoc_campaign import adhoc_campaign, reviewed_by
    from flows.cli import app
    from flows.send_wave import send_wave
    from tasks.jobs.adhoc import adhoc_paths
    from tests.integration.test_adhoc_campaign import AS_OF, NEWCOMERS, NO_CONSENT, _request, _template
    from tests.integration.test_adhoc_campaign import _shop as _adhoc_shop

    # given: the send-wave deployment registered (nobody serving it), and a flash sale for the newcomers
    monkeypatch.setenv("LOYALTY_TEMPLATES_DIR", str(_template(tmp_path / "templates")))
    monkeypatch.setenv("LOYALTY_QUIET_HOURS_START", "0")
    monkeypatch.setenv("LOYALTY_QUIET_HOURS_END", "0")
    request = _request(_adhoc_shop(tmp_path), "flash_sale_waves")
    audience = 1 + NEWCOMERS - NO_CONSENT
    with talking_to(prefect_server):
        RunnerDeployment.from_flow(send_wave, name="send-wave").apply()
        # when: the campaign is approved in a run that sends its waves as runs
        with reviewed_by(_Approver()):
            summary = adhoc_campaign(request, send_waves_as_runs=True)
        # then: nothing went from the campaign's run; its wave waits as a Scheduled send-wave run of its own
        assert summary.sent == 0 and not _emails_per_recipient()
        runs = [r for r in _wave_runs(prefect_server) if (r.idempotency_key or "").startswith("send-wave/adhoc/")]
        assert len(runs) == 1 and runs[0].state.is_scheduled()
        assert runs[0].idempotency_key.startswith(f"send-wave/adhoc/flash_sale_waves/{AS_OF}/")
        assert runs[0].parameters["adhoc"] == "flash_sale_waves"
        # when: an engineer runs the wave by hand: `loyalty send-wave --as-of D --at HH:MM --adhoc NAME`
        at = datetime.fromisoformat(runs[0].parameters["at"]).astimezone(UTC)
        args = ["send-wave", "--as-of", str(AS_OF), "--at", f"{at:%H:%M}", "--adhoc", "flash_sale_waves"]
        monkeypatch.setattr("flows.cli.waves._prefect_env", lambda verbose: None)  # keep this session's env
        result = CliRunner().invoke(app, args)
    # then: the audience got the sale once, and the campaign's summary says so
    assert result.exit_code == 0, result.output
    assert re.search(rf"\bsent\s*│\s*{audience}\s*│", result.output), result.output
    sent = _emails_per_recipient()
    assert len(sent) == audience and set(sent.values()) == {1}
    written = pd.read_json(adhoc_paths(tmp_path / "out", request.name, AS_OF).summary, typ="series")
    assert written["sent"] == audience
