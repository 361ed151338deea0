"""``loyalty audiences export``: one segment's hashed customer list for an ad platform, from a day's run folder."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from flows.cli.common import _parse_date
from flows.cli.console import err, out
from flows.cli.console import fail as _fail

audiences_app = typer.Typer(help="Hashed audiences for ad platforms (Meta, Google, VK, Yandex).", no_args_is_help=True)


@audiences_app.command("export")
def export(
    segment: Annotated[
        str, typer.Option("--segment", help="A segment of campaigns/segments.yaml, e.g. lapsed_valuable.")
    ],
    platform: Annotated[str, typer.Option("--platform", help="meta, google, vk or yandex.")],
    out_file: Annotated[Path, typer.Option("--out", help="The CSV file to write (hashed identifiers only).")],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="The day whose run folder to read, YYYY-MM-DD. Default: today.")
    ] = None,
) -> None:
    """Write a segment's ad audience for one platform: opted-in customers' hashed email and phone, nothing raw.

    It reads the day's profile and customers from its run folder (S3 too): run the day first. Counts only are
    printed.
    """
    from tasks.kernel.calendar import business_date
    from tasks.kernel.errors import CatalogError
    from tasks.kernel.paths import RunPaths, private_files
    from tasks.kernel.runstore import run_folder
    from tasks.kernel.settings import Settings
    from tasks.report.audiences import AudienceError, day_audiences, platform_named, write_audience

    settings = Settings()
    day = _parse_date(as_of) if as_of else business_date(settings.shop_timezone)
    paths = RunPaths.for_day(settings.output_dir, day)
    try:
        pair = (segment, platform_named(platform))
        with private_files(), run_folder(paths, settings):
            (audience,) = day_audiences(paths, day, settings, [pair])
            write_audience(audience, out_file)
    except (AudienceError, CatalogError) as exc:
        raise _fail(str(exc)) from None
    counts = audience.counts
    table = RichTable(
        "", "customers", title=f"{counts.segment} for {counts.platform.value}, {day}", title_justify="left"
    )
    table.add_row("in the segment", str(counts.members))
    for reason, n in counts.excluded.items():
        table.add_row(f"left out: {reason.replace('_', ' ')}", str(n))
    table.add_row("left out: duplicate identifiers", str(counts.duplicates))
    table.add_row("rows written", str(counts.exported))
    out.print(table)
    out.print(f"Written: {out_file}")


# The audience the demo writes when LOYALTY_AUDIENCES names none: the win-back segment, for Meta.
DEMO_AUDIENCES = "lapsed_valuable:meta"


def demo_audiences(as_of: date) -> None:
    """Write the demo day's ad audiences into its run folder (``LOYALTY_AUDIENCES``, else ``DEMO_AUDIENCES``)."""
    from tasks.kernel.paths import RunPaths, private_files
    from tasks.kernel.runstore import run_folder
    from tasks.kernel.settings import Settings
    from tasks.report.audiences import audience_file, parse_audiences, write_day_audiences

    settings = Settings()
    paths = RunPaths.for_day(settings.output_dir, as_of)
    with private_files(), run_folder(paths, settings):
        written = write_day_audiences.fn(paths, as_of, settings, parse_audiences(settings.audiences or DEMO_AUDIENCES))
    for counts in written:
        # on stderr: `loyalty demo --json` keeps stdout for its JSON
        err.print(f"Ad audience: {audience_file(paths, counts.segment, counts.platform)} ({counts.exported} rows)")
