"""``loyalty server start`` (a lasting Prefect server on PostgreSQL) and ``loyalty server local-postgres``."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import suppress
from typing import Annotated

import typer

from flows.cli.console import err, out
from flows.cli.console import fail as _fail

server_app = typer.Typer(
    help="A lasting Prefect server on PostgreSQL (the demo keeps Prefect's SQLite default).", no_args_is_help=True
)


@server_app.command("start")
def start(
    database: Annotated[
        str | None,
        typer.Option(
            help="postgresql+asyncpg://user:pass@host:5432/db; default: PREFECT_API_DATABASE_CONNECTION_URL.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 for the API and the UI.")] = 4200,
) -> None:
    """Check the database answers, run Prefect's migrations, then run the Prefect server on 127.0.0.1."""
    from flows.prefect_server import DATABASE_URL_ENV, ServerError, redact, start_server

    url = database or os.environ.get(DATABASE_URL_ENV)
    if not url:
        raise _fail(
            f"no database: pass --database postgresql+asyncpg://user:pass@host:5432/db or set {DATABASE_URL_ENV}"
        )
    err.print(
        f"Prefect server on {redact(url)}: checking, migrating, starting on 127.0.0.1:{port}",
        highlight=False,
        soft_wrap=True,
    )
    try:
        start_server(url, port)
    except ServerError as exc:
        raise _fail(str(exc)) from None


@server_app.command("local-postgres")
def local_postgres_command() -> None:
    """Run a throwaway PostgreSQL on 127.0.0.1 for development; print its URL; Ctrl-C stops and deletes it."""
    from flows.prefect_server import ServerError, local_postgres

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with local_postgres() as url:
            out.print(url, highlight=False, soft_wrap=True)
            err.print("Stop with Ctrl-C: the cluster and its folder are deleted.", highlight=False)
            with suppress(KeyboardInterrupt):
                stop.wait()
    except ServerError as exc:
        raise _fail(str(exc)) from None
