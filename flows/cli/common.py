"""Helpers several command groups share: Prefect's defaults, date options, the progress bars."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from flows.cli.console import err
from flows.cli.console import fail as _fail

# Safe defaults for Prefect on this project: no telemetry, patient first start (migrations take ~25 s).
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # our own loggers ("loyalty.profile", ...) show in the flow run's logs in the UI
    "PREFECT_LOGGING_EXTRA_LOGGERS": "loyalty",
}


def _prefect_env(verbose: bool) -> None:
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if verbose:
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"


def _parse_moment(value: str, flag: str = "--now") -> datetime:
    """A date-time option (naive: UTC), or one line naming the option and exit 2."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"{flag} {value!r} is not an ISO date-time (e.g. 2026-11-20T06:00:00+03:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_date(value: str, flag: str = "--as-of") -> date:
    """A date option, or one line naming the option and exit 2."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(f"{flag} {value!r} is not a date (YYYY-MM-DD)") from None


@contextmanager
def _progress_bars(skip: set[str]) -> Iterator[Progress | None]:
    """Show a bar per step on a terminal while the flow runs (yields the bars, to pause them); silent otherwise."""
    from tasks.kernel import progress

    if not err.is_terminal:
        yield None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bars:
        ids: dict[str, TaskID] = {}
        lock = threading.Lock()

        def on_progress(step: str, amount: int, total: int | None) -> None:
            if step in skip:
                return
            with lock:
                if step not in ids:
                    for other in ids.values():  # an earlier step without a size is done now
                        if bars.tasks[other].total is None:
                            bars.update(other, total=1, completed=1)
                    ids[step] = bars.add_task(step, total=total)
                if total is not None:
                    bars.update(ids[step], total=total)
                bars.advance(ids[step], amount)

        progress.listen(on_progress)
        try:
            yield bars
        finally:
            progress.listen(None)
