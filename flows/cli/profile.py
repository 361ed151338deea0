"""``loyalty profile``, ``segments`` (check, migration) and ``clv`` (fit): the customer profile and what is built on it."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from flows.cli.common import _parse_date
from flows.cli.console import err, out
from flows.cli.console import fail as _fail


def profile(
    data: Annotated[str, typer.Option(help="Folder or s3://bucket/prefix with the contract tables.")],
    as_of: Annotated[str, typer.Option("--as-of", help="Business date, YYYY-MM-DD.")],
    out_file: Annotated[Path, typer.Option("--out", help="Parquet file to write the profile to.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print counts as JSON on stdout.")] = False,
) -> None:
    """Build every customer's profile as of a date (no Prefect, no sending) and write it as Parquet.

    Interests, replenishment, incidents and purchase days are written beside it (<out>.interests.parquet, ...).
    """
    from tasks.data.contract import ContractError
    from tasks.data.sources import load_raw
    from tasks.data.validation import validate_snapshot
    from tasks.kernel.settings import Settings
    from tasks.profile.features import ProfileRules, build_profile

    day = _parse_date(as_of)
    settings = Settings()
    try:
        snapshot = validate_snapshot(load_raw(data), day)
    except ContractError as exc:
        raise _fail(str(exc)) from None
    parts = build_profile(snapshot.frames, day, ProfileRules.from_settings(settings))
    parts.write(out_file)
    counts = {
        "customers": len(parts.profile),
        "prediction_basis": parts.profile["prediction_basis"].value_counts().to_dict(),
        "lifecycle": parts.profile["lifecycle"].value_counts().to_dict(),
        "rfm_segment": parts.profile["rfm_segment"].value_counts().to_dict(),
        "vip": int(parts.profile["vip"].sum()),
        "unhappy": int(parts.profile["unhappy"].sum()),
        "replenishment_pairs": len(parts.replenishment),
        "out": str(out_file),
    }
    if as_json:
        sys.stdout.write(json.dumps(counts, default=int) + "\n")
        return
    for key, value in counts.items():
        out.print(f"{key}: {value}")


clv_app = typer.Typer(help="Customer lifetime value: BG/NBD and Gamma-Gamma on a purchase log.", no_args_is_help=True)


@clv_app.command("fit")
def clv_fit(
    transactions: Annotated[
        Path, typer.Option("--transactions", help="CSV with customer_id,date,amount: one row per purchase.")
    ],
    calibration_end: Annotated[str, typer.Option("--calibration-end", help="Last day fitted on, YYYY-MM-DD.")],
    holdout_end: Annotated[
        str | None, typer.Option("--holdout-end", help="Last day of a holdout to check the forecast on, YYYY-MM-DD.")
    ] = None,
    time_unit: Annotated[str, typer.Option("--time-unit", help="days or weeks")] = "weeks",
    as_json: Annotated[bool, typer.Option("--json", help="Print the fit as JSON on stdout.")] = False,
) -> None:
    """Fit BG/NBD (purchases, dropout) and Gamma-Gamma (spend) on a purchase log; check a holdout if given."""
    import pandas as pd

    from tasks.profile import clv

    for flag, value in (("--calibration-end", calibration_end), ("--holdout-end", holdout_end)):
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise _fail(f"{flag} {value!r} is not a date (YYYY-MM-DD)") from None
    if time_unit not in clv.DAYS_PER_UNIT:
        raise _fail(f"--time-unit must be days or weeks, not {time_unit!r}")
    unit: clv.TimeUnit = "days" if time_unit == "days" else "weeks"
    try:
        frame = pd.read_csv(transactions, dtype={"customer_id": "string"})
    except FileNotFoundError:
        raise _fail(f"{transactions}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise _fail(f"{transactions}: not a readable CSV ({type(exc).__name__})") from None
    try:
        report = clv.fit_transactions(frame, calibration_end, holdout_end, unit)
    except (clv.ClvDataError, clv.ClvFitError) as exc:
        raise _fail(f"{transactions}: {exc}") from None
    if as_json:
        sys.stdout.write(json.dumps(report.model_dump(mode="json", exclude_none=True)) + "\n")
        return
    table = RichTable("model", "parameter", "value", title=f"CLV fit ({report.time_unit})", title_justify="left")
    for name, value in report.bgnbd.model_dump().items():
        table.add_row("BG/NBD", name, f"{value:,.6g}")
    for name, value in report.gamma_gamma.model_dump().items():
        table.add_row("Gamma-Gamma", name, f"{value:,.6g}")
    out.print(table)
    out.print(
        f"{report.n_customers:,} customers, {report.n_repeat_customers:,} repeat buyers, fitted in {report.fit_seconds:.2f} s"
    )
    if report.holdout is not None:
        out.print(
            f"holdout: {report.holdout.actual_purchases:,} purchases, predicted {report.holdout.predicted_purchases:,.1f}"
        )


segments_app = typer.Typer(help="Named segments over the customer profile: check, migration.", no_args_is_help=True)


@segments_app.command("check")
def segments_check(
    file: Annotated[
        Path | None, typer.Option("--file", help="The segments file; default: segments.yaml in the campaigns folder.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON on stdout.")] = False,
) -> None:
    """Load and type-check every segment; exit 1 if any is wrong, naming segment, expression and column."""
    from rich.markup import escape
    from rich.text import Text

    from tasks.kernel.settings import Settings
    from tasks.profile.segments import SegmentError, check_segments

    path = file or Settings().campaigns_dir / "segments.yaml"
    if not path.is_file():
        raise _fail(f"{path}: no such file")
    try:
        checks = check_segments(path)
    except SegmentError as exc:  # the file itself is broken: bad YAML, a missing field, a name used twice
        if as_json:
            sys.stdout.write(json.dumps({"file": str(path), "ok": False, "error": str(exc), "segments": []}) + "\n")
        else:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    failed = [check for check in checks if check.error]
    if as_json:
        report = {"file": str(path), "ok": not failed, "error": None, "segments": [c.model_dump() for c in checks]}
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
    else:
        for check in checks:
            line = (
                Text.assemble(("error ", "bold red"), check.error)
                if check.error
                else Text.assemble(("ok    ", "green"), f"{check.name}: {check.expression}")
            )
            out.print(line, highlight=False, soft_wrap=True)
        if not failed:
            out.print(f"{len(checks)} segments ok in {escape(str(path))}", highlight=False, soft_wrap=True)
    if failed:
        if not as_json:
            err.print(
                f"[bold red]error:[/] {len(failed)} of {len(checks)} segments are wrong in {escape(str(path))}",
                highlight=False,
                soft_wrap=True,
            )
        raise typer.Exit(code=1)


@segments_app.command("migration")
def segments_migration(
    from_day: Annotated[str, typer.Option("--from", help="The earlier date, YYYY-MM-DD.")],
    to_day: Annotated[str, typer.Option("--to", help="The later date, YYYY-MM-DD.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the matrix and the moves as JSON on stdout.")] = False,
) -> None:
    """Show how customers moved between primary segments from one day's snapshot to another's."""
    from rich.markup import escape

    from tasks.kernel.paths import RunPaths
    from tasks.kernel.settings import Settings
    from tasks.profile.segments import migration, migration_moves, read_snapshot

    output = Settings().output_dir
    days = (_parse_date(from_day, "--from"), _parse_date(to_day, "--to"))
    snapshots = []
    for day in days:
        path = RunPaths.for_day(output, day).segments
        if not path.is_file():
            raise _fail(
                f"no segment snapshot for {day} at {path}: the daily run for {day} writes it (loyalty run --as-of {day})"
            )
        try:
            snapshots.append(read_snapshot(path))
        except (ValueError, OSError) as exc:  # SegmentError, or a file that is not Parquet
            raise _fail(f"{path}: not a readable segment snapshot ({exc})") from None
    matrix = migration(snapshots[0], snapshots[1])
    moves = migration_moves(matrix)
    if as_json:
        report = {
            "from": days[0].isoformat(),
            "to": days[1].isoformat(),
            "matrix": {str(a): {str(b): int(n) for b, n in row.items()} for a, row in matrix.iterrows()},
            "moves": moves.to_dict(orient="records"),
        }
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
        return
    table = RichTable("from ↓ to →", title=f"Segments {days[0]} → {days[1]}", title_justify="left")
    for label in matrix.columns:
        table.add_column(escape(str(label)), justify="right")
    for source, row in matrix.iterrows():
        table.add_row(escape(str(source)), *(str(int(n)) if n else "[dim]·[/]" for n in row))
    out.print(table)
    changed = moves.loc[moves["from"] != moves["to"]]
    out.print(f"{int(changed['customers'].sum())} of {int(moves['customers'].sum())} customers changed segment.")
    for move in changed.head(10).itertuples(index=False):
        out.print(f"  {escape(str(move[0]))} → {escape(str(move[1]))}: {move[2]}", highlight=False)
