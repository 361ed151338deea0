"""`loyalty serve` and `prefect deploy` against a real Prefect server (a subprocess on 127.0.0.1).

Slow: one server for the module, on a fresh SQLite database (12-15 s to healthy here; ~40 s in all).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.prefect_servers import PrefectServer, exited, running_prefect_server, spawn, stop, wait_for

pytestmark = pytest.mark.timeout(400)

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVE = "from flows.serve import serve_all; from tasks.kernel.settings import Settings; serve_all(Settings())"
DEPLOYMENT = "daily-run/daily-run"


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect server with a fresh SQLite database; the scheduler looks for work every 5 s."""
    home = tmp_path_factory.mktemp("prefect-home")
    with running_prefect_server(
        home, PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5", PREFECT_SERVER_UI_ENABLED="false"
    ) as server:
        print(f"\nPrefect server healthy after {server.startup_seconds:.1f} s")
        yield server


@contextmanager
def _client(server: PrefectServer) -> Iterator[Any]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
        yield client


def _deployment(server: PrefectServer, predicate: Callable[[Any], bool] = lambda d: True) -> Any | None:
    from prefect.exceptions import ObjectNotFound

    with _client(server) as client:
        try:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            return None
    return deployment if predicate(deployment) else None


def _forget_deployment(server: PrefectServer) -> None:
    """Start each test from no deployment: both tests register the same daily-run/daily-run."""
    if (deployment := _deployment(server)) is not None:
        with _client(server) as client:
            client.delete_deployment(deployment.id)


def _scheduled_runs(server: PrefectServer, deployment_id: Any) -> list[Any] | None:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with _client(server) as client:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
    scheduled = [r for r in runs if r.state and r.state.is_scheduled()]
    return scheduled or None


def _assert_daily_at_six(deployment: Any, timezone: str) -> None:
    [schedule] = deployment.schedules
    assert schedule.active
    assert schedule.schedule.cron == "0 6 * * *"
    assert schedule.schedule.timezone == timezone


def _assert_runs_at_six_local(runs: list[Any], timezone: str) -> None:
    starts = sorted(r.expected_start_time for r in runs)
    local = [s.astimezone(ZoneInfo(timezone)) for s in starts]
    assert all((t.hour, t.minute) == (6, 0) for t in local), local
    assert all((b.date() - a.date()).days == 1 for a, b in pairwise(local)), local
    now = datetime.now(UTC)
    assert now < starts[0] <= now + timedelta(days=1, minutes=1)


def test_loyalty_serve_schedules_daily_run_at_six_in_the_shops_timezone(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    # given: a shop in Warsaw, and `loyalty serve`'s function running against the server
    _forget_deployment(prefect_server)
    timezone = "Europe/Warsaw"
    env = prefect_server.env(LOYALTY_SHOP_TIMEZONE=timezone)
    log = tmp_path / "serve.log"
    started = time.monotonic()
    with spawn([sys.executable, "-c", SERVE], env, log, cwd=REPO_ROOT) as serve:
        # when: the deployment is registered
        deployment = wait_for(f"deployment {DEPLOYMENT}", lambda: _deployment(prefect_server), 120, exited(serve, log))
        registered = time.monotonic() - started
        # then: daily at 06:00 in the shop's zone, dry_run off, parameters typed for the UI form
        _assert_daily_at_six(deployment, timezone)
        assert deployment.parameters == {"dry_run": False}
        assert deployment.entrypoint == "flows/daily_run.py:deployed_daily_run"
        assert not deployment.paused
        props = deployment.parameter_openapi_schema["properties"]
        assert props["dry_run"]["type"] == "boolean"
        assert {"type": "string", "format": "date"} in props["as_of"]["anyOf"]
        assert props["data"]["description"]
        # and: the server's scheduler has put tomorrow's run(s) at 06:00 Warsaw time
        runs = wait_for(
            "scheduled runs", lambda: _scheduled_runs(prefect_server, deployment.id), 60, exited(serve, log)
        )
        _assert_runs_at_six_local(runs, timezone)
        scheduled = time.monotonic() - started
        # when: the operator stops it (Ctrl-C), its runner started or not; pausing can take a while on a loaded
        # machine (CI runs the whole suite), longer than the usual 20 s grace, and a kill would leave it running
        stop(serve, signal.SIGINT, grace=90)
    # then: the schedule is paused, so runs do not pile up with nobody to execute them
    paused = wait_for(
        "the schedule to be paused", lambda: _deployment(prefect_server, lambda d: d.paused), 30, lambda: None
    )
    assert paused.paused
    print(
        f"\nserve: deployment registered {registered:.1f} s, runs scheduled {scheduled:.1f} s after start "
        f"(server startup {prefect_server.startup_seconds:.1f} s)"
    )


def test_loyalty_serve_stopped_while_it_registers_leaves_no_schedule_running(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    # given: `loyalty serve` registering its deployments, daily-run first
    _forget_deployment(prefect_server)
    log = tmp_path / "serve.log"
    with spawn([sys.executable, "-c", SERVE], prefect_server.env(), log, cwd=REPO_ROOT) as serve:
        wait_for(f"deployment {DEPLOYMENT}", lambda: _deployment(prefect_server), 120, exited(serve, log))
        # when: the operator stops it at once, before Prefect's runner has started (it pauses only once started)
        stop(serve, signal.SIGINT, grace=90)
    # then: every deployment it registered with a schedule is paused, so no runs pile up for nobody
    with _client(prefect_server) as client:
        registered = [d for d in client.read_deployments() if d.schedules and "loyalty-flows" in d.tags]
    assert any(d.name == "daily-run" for d in registered)
    assert all(d.paused for d in registered), [(d.name, d.paused) for d in registered]


def test_prefect_deploy_of_prefect_yaml_schedules_the_same_run(prefect_server: PrefectServer, tmp_path: Path) -> None:
    # given: a process work pool named as in prefect.yaml, and a shop in Novosibirsk
    _forget_deployment(prefect_server)
    timezone = "Asia/Novosibirsk"
    env = prefect_server.env(LOYALTY_SHOP_TIMEZONE=timezone, PREFECT_CLI_PROMPT="false")
    prefect = [sys.executable, "-m", "prefect"]
    pool = subprocess.run(
        [*prefect, "work-pool", "create", "loyalty-process", "--type", "process", "--overwrite"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert pool.returncode == 0, pool.stdout + pool.stderr
    # when: an operator deploys prefect.yaml from the repository root
    started = time.monotonic()
    deploy = subprocess.run(
        [*prefect, "deploy", "--all"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180
    )
    took = time.monotonic() - started
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    # then: the same deployment as `loyalty serve` builds, on the work pool, at 06:00 Novosibirsk time
    deployment = _deployment(prefect_server, lambda d: d.work_pool_name == "loyalty-process")
    assert deployment is not None, deploy.stdout
    _assert_daily_at_six(deployment, timezone)
    assert deployment.parameters == {"dry_run": False}
    assert deployment.entrypoint == "flows/daily_run.py:deployed_daily_run"
    assert deployment.description == "Run a shop's day: load, validate, profile, plan, render and send, then report."
    assert sorted(deployment.tags) == ["daily", "loyalty-flows"]
    assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO_ROOT)}}]
    print(f"\nprefect deploy --all took {took:.1f} s")
