"""Real Prefect servers for integration tests: subprocesses on 127.0.0.1, each in its own process group.

``running_prefect_server`` starts ``prefect server start`` on a fresh SQLite database in ``home`` and stops it
(and every child) on the way out; ``spawn``, ``wait_for`` and ``exited`` are the pieces, for tests that start
a server another way (``loyalty server start`` on PostgreSQL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from tasks.demo.local_aws import _free_port

SERVER_STARTUP_TIMEOUT = 180.0
T = TypeVar("T")


@dataclass
class PrefectServer:
    api_url: str
    home: Path
    startup_seconds: float

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process that talks to this server (and never sends telemetry)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env


@contextmanager
def talking_to(server: PrefectServer) -> Iterator[None]:
    """Run flows in this process against ``server``, then hand the process back to the server it had.

    Prefect keeps one events worker per process, bound to the API it first saw: drained on the way in and
    out, the next flow (here, and after: the session's test harness) gets a worker for its own server,
    instead of one still sending to a server this test has stopped (whose backlog hangs the session's end).
    """
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    EventsWorker.drain_all()
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        try:
            yield
        finally:
            EventsWorker.drain_all()


def tail(log: Path, lines: int = 40) -> str:
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else "(no output)"
    return "\n".join(text.splitlines()[-lines:])


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 20.0) -> None:
    """Signal the process group, then kill it if it is still there after the grace period."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
    # Children (uvicorn, flow-run subprocesses) may outlive the leader: clear the whole group.
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@contextmanager
def spawn(args: list[str], env: dict[str, str], log: Path, cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process in its own group, output to ``log``; always stop the group on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            stop(proc)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, alive: Callable[[], str | None]) -> T:
    """Poll ``probe`` until it returns something; fail early if a process we depend on died."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if (died := alive()) is not None:
            pytest.fail(f"{died} while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1.0)


def exited(proc: subprocess.Popen[bytes], log: Path) -> Callable[[], str | None]:
    """A check for ``wait_for``: what the process said if it has exited, else None."""

    def check() -> str | None:
        if proc.poll() is None:
            return None
        return f"{log.stem} process exited with {proc.returncode}:\n{tail(log)}"

    return check


def healthy(api_url: str) -> bool | None:
    """True once the server at ``api_url`` answers its health check, else None (for ``wait_for``)."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2.0) as response:
            return response.status == 200 or None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@contextmanager
def running_prefect_server(home: Path, **settings: str) -> Iterator[PrefectServer]:
    """``prefect server start`` on 127.0.0.1 with a fresh SQLite database in ``home`` and these ``PREFECT_*``
    settings; yields once it is healthy, stops it and its children on the way out."""
    port = _free_port()
    server = PrefectServer(f"http://127.0.0.1:{port}/api", home, startup_seconds=0.0)
    env = server.env(**settings)
    del env["PREFECT_API_URL"]
    log = home / "server.log"
    args = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    started = time.monotonic()
    with spawn(args, env, log, cwd=home) as proc:
        wait_for(
            "the Prefect server's /api/health",
            lambda: healthy(server.api_url),
            SERVER_STARTUP_TIMEOUT,
            exited(proc, log),
        )
        server.startup_seconds = time.monotonic() - started
        yield server
