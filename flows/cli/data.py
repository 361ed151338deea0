"""``loyalty import online-retail`` and ``loyalty synth``: real shop exports and a generated shop as contract tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import _parse_date
from flows.cli.console import err, out
from flows.cli.console import fail as _fail

import_app = typer.Typer(help="Map real shop exports onto the data contract.", no_args_is_help=True)


def synth(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the contract tables to.")],
    customers: Annotated[int, typer.Option(min=1)] = 10_000,
    days: Annotated[int, typer.Option(min=1)] = 365,
    seed: Annotated[int, typer.Option()] = 7,
    end: Annotated[str | None, typer.Option(help="Last day of the history, YYYY-MM-DD.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
) -> None:
    """Generate a believable demo shop (deterministic by seed) as contract tables."""
    from tasks.demo.synth import DEFAULT_END, generate_shop, write_shop

    if fmt not in ("csv", "parquet"):
        raise _fail(f"--format must be csv or parquet, not {fmt!r}")
    last = _parse_date(end, "--end") if end else DEFAULT_END
    with err.status(f"Generating {customers} customers over {days} days…"):
        frames = generate_shop(customers=customers, days=days, seed=seed, end=last)
        written = write_shop(frames, out_dir, fmt="csv" if fmt == "csv" else "parquet")
    for table, path in written.items():
        out.print(f"{table.value:<13} {len(frames[table]):>10,} rows  {path}")


@import_app.command("online-retail")
def import_online_retail(
    file: Annotated[Path, typer.Argument(help="The UCI Online Retail CSV export.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the contract tables to.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print counts as JSON.")] = False,
) -> None:
    """Import the UCI Online Retail export: invoices to orders, bad lines to quarantine."""
    from tasks.data import importers

    try:
        result = importers.import_online_retail(file)
    except (importers.SourceFormatError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    result.write(out_dir)
    summary = result.summary()
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    for key, value in summary.items():
        out.print(f"{key}: {value}")
