"""``loyalty send-wave``: one wave of a planned day sent again by hand, through the same flow as its scheduled run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table as RichTable

from flows.cli.common import _parse_date, _prefect_env
from flows.cli.console import fail as _fail
from flows.cli.console import out


def send_wave_command(
    as_of: Annotated[str, typer.Option("--as-of", help="The planned day (YYYY-MM-DD) whose wave to send.")],
    at: Annotated[str, typer.Option("--at", help="The wave's send time, HH:MM in UTC, as the run's log names it.")],
    adhoc: Annotated[
        str | None, typer.Option("--adhoc", help="The ad-hoc campaign's name, for a wave of an ad-hoc campaign.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
) -> None:
    """Send one wave of a planned and rendered day again (a wave whose run failed or whose worker died).

    It sends what the day's plan holds for that wave and has not gone yet: the ledger sends nothing twice,
    and the day's summary counts each message once.
    """
    _prefect_env(verbose)
    from flows.send_wave import send_wave
    from flows.waves import ShardsFailedError
    from tasks.jobs.adhoc import adhoc_paths
    from tasks.kernel.paths import RunPaths
    from tasks.kernel.settings import Settings
    from tasks.plan.waves import WaveNotFoundError, planned_waves, wave_at_minute

    day = _parse_date(as_of)
    settings = Settings()
    paths = adhoc_paths(settings.output_dir, adhoc, day) if adhoc else RunPaths.for_day(settings.output_dir, day)
    if not paths.summary.exists():
        raise _fail(f"{paths.root} holds no planned run (no summary.json): run the day first")
    try:
        wave = wave_at_minute(planned_waves(paths), at)
    except WaveNotFoundError as exc:
        raise _fail(str(exc)) from None
    try:
        # no flow retries at a terminal: the person who typed the command sees the failure and decides
        delivery = send_wave.with_options(retries=0)(as_of=day, at=wave.at, adhoc=adhoc)
    except ShardsFailedError as exc:
        raise _fail(f"wave at {at} UTC: {exc}") from None
    table = RichTable("outcome", "messages", title=f"Wave at {at} UTC, {day}", title_justify="left")
    for name, n in sorted(delivery.items()):
        table.add_row(name.replace("_", " "), str(n))
    out.print(table)
    out.print(f"Summary: {paths.summary}")
