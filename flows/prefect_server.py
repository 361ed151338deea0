"""A lasting Prefect server on PostgreSQL, and a throwaway PostgreSQL cluster for local development.

``loyalty server start`` checks the database answers, runs Prefect's migrations, then becomes
``prefect server start --host 127.0.0.1`` on that database. ``local_postgres`` runs ``initdb`` and
``pg_ctl`` in a temporary folder on a free loopback port (as the ``postgres`` user when run as root:
PostgreSQL refuses to run as root) and removes it all on the way out.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DATABASE_URL_ENV = "PREFECT_API_DATABASE_CONNECTION_URL"
POSTGRES_BIN_DIRS = Path("/usr/lib/postgresql")
SYSTEM_USER = "postgres"


class ServerError(RuntimeError):
    """Something stops the server from starting; the message is one line and never holds a password."""


def redact(url: str) -> str:
    """The connection URL with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _asyncpg_dsn(url: str) -> str:
    """SQLAlchemy's ``postgresql+asyncpg://`` URL as the plain DSN asyncpg takes."""
    scheme, _, rest = url.partition("://")
    if not rest or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ServerError(f"not a PostgreSQL URL: {redact(url)} (expected postgresql+asyncpg://user:pass@host/db)")
    return "postgresql://" + rest


def check_database(url: str, timeout: float = 5.0) -> None:
    """Connect once and run ``select 1``; a ``ServerError`` naming the database (no password) if it fails."""
    import asyncpg  # type: ignore[import-untyped]

    dsn = _asyncpg_dsn(url)

    async def probe() -> None:
        connection = await asyncpg.connect(dsn, timeout=timeout)
        try:
            await connection.fetchval("select 1")
        finally:
            await connection.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # asyncpg raises OSError, its own errors and timeouts: all mean "not reachable"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        password = urlsplit(url).password
        if password:
            reason = reason.replace(password, "***")
        raise ServerError(f"database {redact(url)} is not reachable: {reason}") from None


def server_env(url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a Prefect server on ``url``: no telemetry; migrations are run before, not on start."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            DATABASE_URL_ENV: url,
            "PREFECT_API_DATABASE_MIGRATE_ON_START": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    return env


def migrate(url: str) -> None:
    """Run Prefect's migrations up to head on ``url`` (idempotent); a ``ServerError`` with the output's tail."""
    args = [sys.executable, "-m", "prefect", "server", "database", "upgrade", "--yes"]
    done = subprocess.run(args, env=server_env(url), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        password = urlsplit(url).password
        line = tail[0].replace(password, "***") if password else tail[0]
        raise ServerError(f"Prefect's migrations failed on {redact(url)}: {line}")


def start_server(url: str, port: int) -> None:
    """Check the database, migrate it, then replace this process with the Prefect server on 127.0.0.1."""
    check_database(url)
    migrate(url)
    args = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    os.execve(sys.executable, args, server_env(url))


def postgres_bin(name: str) -> Path:
    """A PostgreSQL program (``initdb``, ``pg_ctl``): on PATH or under Debian's /usr/lib/postgresql/<ver>/bin."""
    if found := shutil.which(name):
        return Path(found)
    candidates = sorted(POSTGRES_BIN_DIRS.glob(f"*/bin/{name}"), key=lambda p: p.parent.parent.name)
    if candidates:
        return candidates[-1]
    raise ServerError(
        f"PostgreSQL's {name} is not installed: apt-get install postgresql (or put its bin folder on PATH)"
    )


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(args: list[str]) -> list[str]:
    """Run as the ``postgres`` system user when we are root (postgres refuses root), else as ourselves."""
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", SYSTEM_USER, "--", *args]


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(_as_owner(args), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise ServerError(f"{what} failed: {' / '.join(tail) or 'no output'}")


def _create_database(port: int, user: str, name: str) -> None:
    import asyncpg

    async def create() -> None:
        connection = await asyncpg.connect(host="127.0.0.1", port=port, user=user, database="postgres")
        try:
            await connection.execute(f'create database "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())


@contextmanager
def local_postgres(user: str = "prefect", database: str = "prefect") -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, loopback only); yields its asyncpg URL.

    The cluster is stopped and its folder deleted on the way out, even after a failure.
    """
    initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
    root = Path(tempfile.mkdtemp(prefix="loyalty-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, SYSTEM_USER, SYSTEM_USER)
    data, port = root / "data", _free_port()
    started = False
    try:
        _run([str(initdb), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync"], "initdb")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off"
        start = [str(pg_ctl), "-D", str(data), "-l", str(root / "postgres.log"), "-w", "-o", options, "start"]
        _run(start, "pg_ctl start")
        started = True
        _create_database(port, user, database)
        yield f"postgresql+asyncpg://{user}@127.0.0.1:{port}/{database}"
    finally:
        if started:
            with suppress(ServerError):  # the folder goes anyway
                _run([str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"], "pg_ctl stop")
        shutil.rmtree(root, ignore_errors=True)
