"""``loyalty calls``: support's call list of a day (``list``) and what support heard on the calls (``record``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from flows.cli.common import _parse_date, _prefect_env
from flows.cli.console import fail as _fail
from flows.cli.console import out

calls_app = typer.Typer(help="Support's call list: who is worth a call about what went wrong, and the outcomes.")

# What the terminal shows; the phone only with --with-phones (a shared screen, a pasted log).
_SHOWN = ("customer_id", "first_name", "locale", "why", "order_id", "reason", "at", "messages", "coupon", "attempts")


@calls_app.command("list")
def list_command(
    as_of: Annotated[str, typer.Option("--as-of", help="The day (YYYY-MM-DD) whose call list to print.")],
    with_phones: Annotated[bool, typer.Option("--with-phones", help="Show the phones too.")] = False,
) -> None:
    """Print a day's call list: the day's ``service/call_list.csv``, or built from the day's run when it has none."""
    _prefect_env(False)
    from tasks.kernel.paths import RunPaths
    from tasks.kernel.settings import Settings
    from tasks.report.calls import call_list, read_call_list, write_call_list

    day = _parse_date(as_of)
    settings = Settings()
    paths = RunPaths.for_day(settings.output_dir, day)
    if not paths.call_list.exists():
        if not paths.profile.exists():
            raise _fail(f"no run for {day} in {settings.output_dir}: run `loyalty run --as-of {day}` first")
        write_call_list(call_list(paths, day, settings), paths.call_list)
    frame = read_call_list(paths.call_list)
    columns = [*_SHOWN[:3], "phone", *_SHOWN[3:]] if with_phones else list(_SHOWN)
    table = RichTable(*columns, title=f"Call list {day}: {len(frame)} incidents", title_justify="left")
    for row in frame.to_dict("records"):
        table.add_row(*(str(row.get(c, "")) for c in columns))
    out.print(table)
    out.print(
        f"Call, then fill the outcome column of {paths.call_list} and run: loyalty calls record FILE",
        highlight=False,
        soft_wrap=True,
    )


@calls_app.command("record")
def record_command(
    file: Annotated[Path, typer.Argument(help="The call list returned with an outcome column (CSV).")],
) -> None:
    """Record what support heard: reached, no answer, resolved, wants no contact (the same file twice: no change)."""
    _prefect_env(False)
    from tasks.kernel.calendar import business_date
    from tasks.kernel.settings import Settings
    from tasks.report.calls import CallFileError, read_outcomes, record_calls

    settings = Settings()
    if not file.is_file():
        raise _fail(f"{file} is not a file")
    try:
        records = read_outcomes(file, business_date(settings.shop_timezone))
    except CallFileError as exc:
        raise _fail(str(exc)) from None
    done = record_calls(settings, records)
    out.print(
        f"Recorded {done.rows} calls ({done.recorded} new or changed): {done.resolved} incidents resolved, "
        f"{done.no_contact_suppressed} customers newly suppressed from marketing (asked for no contact).",
        highlight=False,
        soft_wrap=True,
    )
