"""`loyalty server start` on a throwaway PostgreSQL: flow runs are stored there and survive a restart.

Slow: two Prefect server starts (the first one migrates an empty database); ~30-60 s in all. Needs PostgreSQL's
binaries (initdb, pg_ctl): `.ci/run` installs them; without them the test fails and says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from flows.prefect_server import ServerError, local_postgres, postgres_bin
from tasks.demo.local_aws import _free_port
from tests.prefect_servers import SERVER_STARTUP_TIMEOUT, exited, spawn, wait_for

pytestmark = pytest.mark.timeout(300)

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE_FLOW = """
from prefect import flow


@flow(name="pg-probe")
def pg_probe() -> int:
    return 42


if __name__ == "__main__":
    state = pg_probe(return_state=True)
    print(state.state_details.flow_run_id)
"""


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback; stopped and deleted after the test."""
    try:
        postgres_bin("initdb")
        postgres_bin("pg_ctl")
    except ServerError as exc:
        pytest.fail(f"this test needs PostgreSQL (CI installs it in .ci/run): {exc}")
    with local_postgres() as url:
        yield url


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", **extra)
    return env


def _api(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5.0) as response:
        return json.loads(response.read())


def _healthy(api_url: str) -> bool | None:
    try:
        return _api(f"{api_url}/health") is True or None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _start_args(database: str, port: int) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "server", "start", "--database", database, "--port", str(port)]


def _stored_run(database: str, run_id: str) -> tuple[str, str] | None:
    """The flow's name and the run's state type, read straight from PostgreSQL's ``flow_run`` table."""
    import asyncpg  # type: ignore[import-untyped]

    async def query() -> tuple[str, str] | None:
        connection = await asyncpg.connect(database.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            row = await connection.fetchrow(
                "select f.name, r.state_type::text from flow_run r join flow f on f.id = r.flow_id where r.id = $1",
                UUID(run_id),
            )
        finally:
            await connection.close()
        return None if row is None else (row[0], row[1])

    return asyncio.run(query())


def test_flow_runs_are_stored_in_postgres_and_survive_a_server_restart(postgres_url: str, tmp_path: Path) -> None:
    # given: `loyalty server start` on an empty PostgreSQL database (it migrates it)
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    server_env = _env(tmp_path / "server-home", PREFECT_SERVER_UI_ENABLED="false")
    (tmp_path / "server-home").mkdir()
    script = tmp_path / "probe.py"
    script.write_text(PROBE_FLOW, encoding="utf-8")
    log = tmp_path / "server.log"
    with spawn(_start_args(postgres_url, port), server_env, log, cwd=REPO_ROOT) as server:
        wait_for(
            "the Prefect server on PostgreSQL", lambda: _healthy(api_url), SERVER_STARTUP_TIMEOUT, exited(server, log)
        )

        # when: a flow runs against it
        done = subprocess.run(
            [sys.executable, str(script)],
            env=_env(tmp_path / "client-home", PREFECT_API_URL=api_url),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        run_id = done.stdout.strip().splitlines()[-1]

        # then: the run is a row of PostgreSQL's flow_run table, completed
        assert _stored_run(postgres_url, run_id) == ("pg-probe", "COMPLETED")

    # and: a restarted server (same database) still lists it
    log = tmp_path / "server-restarted.log"
    with spawn(_start_args(postgres_url, port), server_env, log, cwd=REPO_ROOT) as server:
        wait_for("the restarted Prefect server", lambda: _healthy(api_url), SERVER_STARTUP_TIMEOUT, exited(server, log))
        runs = _api(f"{api_url}/flow_runs/filter", {})
        assert [(r["id"], r["state_type"]) for r in runs] == [(run_id, "COMPLETED")]


def test_start_refuses_an_unreachable_database_in_one_line_without_the_password(tmp_path: Path) -> None:
    # given: a database URL with a password on a port where nothing listens
    database = f"postgresql+asyncpg://prefect:s3cret-pw@127.0.0.1:{_free_port()}/prefect"

    # when
    done = subprocess.run(
        _start_args(database, _free_port()),
        env=_env(tmp_path),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # then: exit 2, one error line naming the database, no traceback, no password
    assert done.returncode == 2
    output = done.stdout + done.stderr
    assert "s3cret-pw" not in output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "postgresql+asyncpg://prefect:***@127.0.0.1" in errors[0], output
    assert "is not reachable" in errors[0]
