"""The ``loyalty`` command: the demo, the daily run, the generator, importers and serving."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table as RichTable

from flows.cli_campaigns import campaigns_app
from flows.cli_campaigns import simulate as simulate_command
from flows.cli_recommend import recommend_app
from flows.console import err, out
from flows.console import fail as _fail

if TYPE_CHECKING:
    from tasks.profile.kpis import Kpis
    from tasks.report.run_report import RunSummary

app = typer.Typer(help="Loyalty Flows: a retention engine for online shops, on Prefect.", no_args_is_help=True)
import_app = typer.Typer(help="Map real shop exports onto the data contract.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(recommend_app, name="recommend")
app.add_typer(campaigns_app, name="campaigns")
app.command("simulate")(simulate_command)


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


def _run_daily(data: str, as_of: date, dry_run: bool, now: datetime | None = None) -> RunSummary:
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.daily_run import daily_run
    from tasks.data.contract import ContractError
    from tasks.data.sources import check_source
    from tasks.kernel.aws import s3_client
    from tasks.kernel.settings import Settings

    settings = Settings()
    try:
        check_source(data, lambda: s3_client(settings))
    except ContractError as exc:
        raise _fail(str(exc)) from None
    runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=settings.task_workers)
    with _progress_bars(skip={"send"} if dry_run or settings.dry_run else set()):
        try:
            return daily_run.with_options(task_runner=runner)(  # type: ignore[arg-type]  # Prefect's runner generics
                as_of=as_of, dry_run=dry_run, data=data, now=now
            )
        except ContractError as exc:
            raise _fail(str(exc)) from None


@contextmanager
def _progress_bars(skip: set[str]) -> Iterator[None]:
    """Show a bar per step on a terminal while the flow runs; stay silent otherwise."""
    from tasks.kernel import progress

    if not err.is_terminal:
        yield
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
            yield
        finally:
            progress.listen(None)


def _print_summary(summary: RunSummary) -> None:
    out.print(f"\n[bold]Daily run for {summary.as_of}[/]" + ("  [bold yellow](DRY RUN)[/]" if summary.dry_run else ""))
    data = RichTable("data", "rows", title="Data", title_justify="left")
    customers = summary.rows["customers"]
    data.add_row("customers loaded", str(summary.customers_loaded))
    data.add_row("customers quarantined", str(customers["quarantined"]))
    data.add_row("rows quarantined, all tables", str(summary.quarantined))
    for table, reasons in summary.quarantined_by_reason.items():
        for reason, n in reasons.items():
            data.add_row(f"  {table}: {reason}", str(n))
    data.add_row("rows after as_of (not yet visible)", str(sum(r["future"] for r in summary.rows.values())))
    out.print(data)
    segments = RichTable("segment", "customers", title="Segments", title_justify="left")
    for name, n in summary.segments.items():
        segments.add_row(name, str(n))
    out.print(segments)
    if summary.kpis is not None:
        _print_kpis(summary.kpis)
    messages = RichTable("messages", "count", title="Messages", title_justify="left")
    for name, n in summary.message_counts():
        messages.add_row(("  " if ":" in name else "") + name.replace("_", " "), str(n))
    out.print(messages)
    out.print(f"[bold]{summary.headline()}[/]")
    out.print(f"Outbox: {summary.outbox_index}\nRun folder: {summary.run_dir}")


def _print_kpis(kpis: Kpis) -> None:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    table = RichTable("KPI", "value", title="Loyalty KPIs", title_justify="left")
    table.add_row("buyers", f"{kpis.buyers} of {kpis.customers} customers")
    table.add_row("repeat purchase rate", pct(kpis.repeat_purchase_rate))
    table.add_row("active customers", str(kpis.active_customers))
    table.add_row("churn (90 days)", pct(kpis.churn_rate))
    table.add_row("average days between purchases", str(kpis.avg_interpurchase_days or "n/a"))
    table.add_row("revenue per customer, 365 days", str(kpis.revenue_per_customer_365d or "n/a"))
    traffic = kpis.traffic
    change = "n/a" if traffic.change is None else f"{traffic.change:+.0%}"
    flag = "  [bold red]TRAFFIC DROP[/]" if traffic.alert else ""
    table.add_row("views today vs 28-day mean", f"{traffic.views} vs {traffic.baseline} ({change}){flag}")
    out.print(table)


def _emit(summary: RunSummary, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(summary.model_dump(mode="json"), ensure_ascii=False) + "\n")
    else:
        _print_summary(summary)


@app.command()
def run(
    as_of: Annotated[str, typer.Option("--as-of", help="Business date, YYYY-MM-DD.")],
    data: Annotated[str | None, typer.Option(help="Folder or s3://bucket/prefix with the contract tables.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Render and record, send nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
    now: Annotated[
        str | None, typer.Option(help="Pretend the run sends at this ISO time (simulations); default: now.")
    ] = None,
) -> None:
    """Run the daily flow on any contract folder for one date."""
    _prefect_env(verbose)
    from tasks.kernel.settings import Settings

    day = _parse_date(as_of)
    moment = _parse_moment(now) if now else None
    _emit(_run_daily(data or Settings().data, day, dry_run, moment), as_json)


def _parse_moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"--now {value!r} is not an ISO date-time (e.g. 2026-11-20T06:00:00+03:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(f"--as-of {value!r} is not a date (YYYY-MM-DD)") from None


@app.command()
def demo(
    customers: Annotated[int, typer.Option(min=50, help="How many customers the demo shop has.")] = 2000,
    days: Annotated[int, typer.Option(min=30, help="Days of history.")] = 365,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed makes the same shop.")] = 7,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Render and record, send nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
) -> None:
    """Generate a demo shop, start a local AWS, and run the daily flow for its last day."""
    _prefect_env(verbose)
    from tasks.demo.local_aws import local_aws
    from tasks.demo.synth import DEFAULT_END, generate_shop, write_shop
    from tasks.kernel.settings import Settings

    # The local SES takes what the demo sends as fast as it comes.
    os.environ.setdefault("LOYALTY_EMAIL_RATE", "200")
    os.environ.setdefault("LOYALTY_SMS_RATE", "50")
    settings = Settings()
    shop = settings.output_dir / "demo-shop" / f"c{customers}-d{days}-s{seed}"
    if not (shop / "stock_events.csv").exists():
        with err.status(f"Generating a demo shop: {customers} customers, {days} days…"):
            write_shop(generate_shop(customers=customers, days=days, seed=seed, end=DEFAULT_END), shop)
    with err.status("Starting a local AWS (moto on 127.0.0.1)…"):
        aws = local_aws(settings.aws_region, settings.sender)
        aws.__enter__()
    try:
        # the demo lives on its last day: it sends at 06:00 that morning, shop time
        morning = datetime.combine(DEFAULT_END, time(6), tzinfo=ZoneInfo(settings.shop_timezone))
        summary = _run_daily(str(shop), DEFAULT_END, dry_run, morning)
    finally:
        aws.__exit__(None, None, None)
    _emit(summary, as_json)


@app.command()
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
    last = _parse_date(end) if end else DEFAULT_END
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


@app.command()
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


@app.command()
def backfill(
    start: Annotated[str, typer.Option("--from", help="First date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", help="Last date (included), YYYY-MM-DD.")],
    data: Annotated[str | None, typer.Option(help="Folder or s3://bucket/prefix with the contract tables.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Render and record, send nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary per day.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
) -> None:
    """Replay the daily run for every date in a range, in order; the ledger skips what was sent."""
    _prefect_env(verbose)
    from flows.backfill import backfill as backfill_flow
    from flows.backfill import days_between
    from tasks.data.contract import ContractError
    from tasks.data.sources import check_source
    from tasks.kernel.aws import s3_client
    from tasks.kernel.settings import Settings

    settings = Settings()
    first, last = _parse_date(start), _parse_date(end)
    try:
        days_between(first, last)
        check_source(data or settings.data, lambda: s3_client(settings))
        summaries = backfill_flow(start=first, end=last, data=data or settings.data, dry_run=dry_run)
    except (ContractError, ValueError) as exc:
        raise _fail(str(exc)) from None
    for summary in summaries:
        if as_json:
            sys.stdout.write(json.dumps(summary.model_dump(mode="json"), ensure_ascii=False) + "\n")
        else:
            out.print(f"{summary.as_of}: {summary.headline()}")


@app.command("serve-unsubscribe")
def serve_unsubscribe_command(
    host: Annotated[str, typer.Option(help="Address to bind; loopback unless behind a proxy.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Run the one-click unsubscribe endpoint (POST suppresses, GET only shows a confirmation page)."""
    from tasks.consent.unsubscribe import serve_unsubscribe
    from tasks.kernel.settings import Settings

    serve_unsubscribe(Settings(), host=host, port=port)


@app.command("process-feedback")
def process_feedback_command(
    max_messages: Annotated[int, typer.Option(help="Most queue messages to read in this run.")] = 10_000,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
) -> None:
    """Read SES bounces and complaints (SQS) and SMS opt-outs into the suppression list."""
    _prefect_env(verbose)
    from flows.process_feedback import process_feedback

    out.print(process_feedback(max_messages=max_messages).headline())


@app.command()
def why(
    customer_id: Annotated[str, typer.Argument(help="The customer's id in the shop's data.")],
    as_of: Annotated[str, typer.Option("--as-of", help="The run's date, YYYY-MM-DD.")],
) -> None:
    """Explain why a customer did or did not get each message on a day, from that day's plan."""
    import pandas as pd

    from tasks.kernel.paths import RunPaths
    from tasks.kernel.settings import Settings
    from tasks.plan.planner import explain

    paths = RunPaths.for_day(Settings().output_dir, _parse_date(as_of))
    if not paths.plan.exists():
        raise _fail(f"no plan for {as_of} under {paths.root}: run `loyalty run --as-of {as_of}` first")
    rows = explain(pd.read_parquet(paths.plan), customer_id)
    if rows.empty:
        profile = pd.read_parquet(paths.profile) if paths.profile.exists() else pd.DataFrame(columns=["customer_id"])
        known = profile.loc[profile["customer_id"].astype(str) == customer_id]
        if known.empty:
            out.print(
                f"{customer_id} is not a (clean) customer on {as_of}: see {paths.quarantine} if their row was quarantined."
            )
        else:
            days = known.iloc[0]["days_since_last_order"]
            facts = "never ordered" if pd.isna(days) else f"last order {int(days)} days before"
            out.print(f"{customer_id} was no campaign's candidate on {as_of} ({facts}).")
        return
    table = RichTable(
        "campaign", "step", "channel", "decision", "reason", "send at (UTC)", title=f"{customer_id} on {as_of}"
    )
    for r in rows.itertuples(index=False):
        table.add_row(
            str(r.campaign), str(r.step), str(r.channel), str(r.decision), str(r.reason or "-"), str(r.send_at)[:16]
        )
    out.print(table)


@app.command()
def serve(
    verbose: Annotated[bool, typer.Option("--verbose/--quiet", help="Show Prefect's logs.")] = True,
) -> None:
    """Serve every deployment (daily-run at 06:00 shop time) from this process against a Prefect server."""
    _prefect_env(verbose)
    from prefect.settings import get_current_settings

    from flows.serve import serve_all
    from tasks.kernel.settings import PROJECT_ROOT, Settings

    if not get_current_settings().api.url:
        raise _fail(
            "no Prefect server configured: start one (prefect server start --host 127.0.0.1) and set PREFECT_API_URL"
        )
    os.chdir(PROJECT_ROOT)  # deployment entrypoints are recorded relative to the working directory
    serve_all(Settings())


clv_app = typer.Typer(help="Customer lifetime value: BG/NBD and Gamma-Gamma on a purchase log.", no_args_is_help=True)
app.add_typer(clv_app, name="clv")


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
app.add_typer(segments_app, name="segments")


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


def _snapshot_day(flag: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(f"{flag} {value!r} is not a date (YYYY-MM-DD)") from None


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
    days = (_snapshot_day("--from", from_day), _snapshot_day("--to", to_day))
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


@app.command()
def attribution(
    start: Annotated[str, typer.Option("--from", help="First run day whose messages count, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", help="Last run day whose messages count (included), YYYY-MM-DD.")],
    output: Annotated[
        Path | None, typer.Option("--output", help="The runs' output folder; default: the LOYALTY_OUTPUT_DIR setting.")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Folder or s3://bucket/prefix with the contract tables, for the orders; "
            "default: the orders snapshot of the latest run from --to to --to + window."
        ),
    ] = None,
    window: Annotated[int, typer.Option("--window", min=1, max=90, help="Days after a message its orders count.")] = 5,
    by_step: Annotated[bool, typer.Option("--by-step", help="One row per campaign step.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as a JSON list on stdout.")] = False,
) -> None:
    """Measure each campaign against its holdout: conversions, revenue, uplift with a 95% interval, redemptions."""
    from datetime import timedelta

    from rich import box as rich_box
    from rich.markup import escape

    from tasks.data.contract import ContractError
    from tasks.kernel.aws import s3_client
    from tasks.kernel.settings import Settings
    from tasks.report import attribution as attr

    first, last = _snapshot_day("--from", start), _snapshot_day("--to", end)
    if first > last:
        raise _fail(f"--from {first} is after --to {last}")
    output_dir = output or Settings().output_dir
    if not attr.plan_days(output_dir, first, last):
        raise _fail(
            f"no plans from {first} to {last} under {output_dir}: run `loyalty run` or `loyalty backfill` for those days"
        )
    horizon = last + timedelta(days=window)
    if data:
        try:
            orders = attr.load_orders(data, horizon, lambda: s3_client(Settings()))
        except ContractError as exc:
            raise _fail(str(exc)) from None
        seen_until = horizon
    else:
        found = attr.snapshot_orders(output_dir, last, horizon)
        if found is None:
            raise _fail(
                f"no orders snapshot from {last} to {horizon} under {output_dir}: pass --data with the shop's tables"
            )
        seen_until, orders = found
    if seen_until < horizon:
        short = max(first, seen_until - timedelta(days=window - 1))
        err.print(
            f"note: orders are known until the end of {seen_until}: messages from {short} on have had fewer than "
            f"{window} days to convert (pass --data with the shop's tables for later orders)",
            highlight=False,
            soft_wrap=True,
        )
    try:
        coupons = attr.read_coupons(output_dir, first, last)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    # messages first exposed before --from belong to an earlier report: read a few days before it to know them
    plans = attr.read_plans(output_dir, first - timedelta(days=attr.LOOKBACK_DAYS), last)
    frame = attr.attribute(plans, orders, window, coupons, by_step=by_step, period=(first, last))
    name = f"attribution-{first}-{last}" + ("-by-step" if by_step else "")
    written = attr.write_reports(frame, output_dir / "reports", name)
    rows = attr.attribution_records(frame)
    if as_json:
        sys.stdout.write(json.dumps([r.model_dump(mode="json") for r in rows], ensure_ascii=False) + "\n")
        return

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    def uplift(row: attr.CampaignAttribution) -> str:
        if row.uplift is None or row.uplift_low is None or row.uplift_high is None:
            return "n/a (no holdout)" if not row.holdout else "n/a"
        return f"{row.uplift * 100:+.1f} [{row.uplift_low * 100:+.1f}, {row.uplift_high * 100:+.1f}]"

    # numbers are never cut: the columns fit 80 characters with at most the campaign name folded
    table = RichTable(
        title=f"Holdout attribution {first} → {last} (orders within {window} days)",
        title_justify="left",
        box=rich_box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 0),
    )
    table.add_column("campaign, step" if by_step else "campaign", overflow="fold")
    headers = ["sent", "conv %", "holdout", "holdout\nconv %", "uplift pp\n[95% CI]", "revenue", "redeemed"]
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(
            escape(row.campaign if row.step is None else f"{row.campaign}, {row.step}"),
            f"{row.sent:,}",
            pct(row.conversion_rate),
            f"{row.holdout:,}",
            pct(row.holdout_rate),
            uplift(row),
            f"{row.revenue:,.2f}",
            "-" if row.redemptions is None else f"{row.redemptions:,}",
        )
    out.print(table)
    if not rows:
        out.print(f"No marketing message was sent or held out by the runs from {first} to {last}.")
    out.print(f"Reports: {written[0]}, {written[1]}", highlight=False, soft_wrap=True)


@app.command("order-updates")
def order_updates_command(
    data: Annotated[str | None, typer.Option(help="Folder or s3://bucket/prefix with the contract tables.")] = None,
    now: Annotated[
        str | None, typer.Option(help="Look up to and send at this ISO time (simulations); default: now.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render and record, send nothing, keep the watermark.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
) -> None:
    """Send order-status updates and back-in-stock notices for the events since the last run (the watermark)."""
    _prefect_env(verbose)
    from flows.order_updates import order_updates
    from tasks.data.contract import ContractError
    from tasks.data.sources import check_source
    from tasks.kernel.aws import s3_client
    from tasks.kernel.errors import CatalogError
    from tasks.kernel.settings import Settings

    settings = Settings()
    source = data or settings.data
    moment = _parse_moment(now) if now else None
    try:
        check_source(source, lambda: s3_client(settings))
        summary = order_updates(data=source, now=moment, dry_run=dry_run)
    except (ContractError, CatalogError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(summary.model_dump(mode="json"), ensure_ascii=False) + "\n")
        return
    window = f"{summary.window_start:%Y-%m-%d %H:%M} - {summary.now:%Y-%m-%d %H:%M} UTC"
    out.print(f"[bold]Order updates[/] {window}" + ("  [bold yellow](DRY RUN)[/]" if summary.dry_run else ""))
    table = RichTable("messages", "count", title_justify="left")
    for name, n in (
        *((f"read: {t}", n) for t, n in summary.events_read.items()),
        *((f"candidates: {c}", n) for c, n in summary.candidates.items()),
    ):
        table.add_row(name.replace("_", " "), str(n))
    table.add_row("to send", str(summary.to_send))
    for name, n in (
        *((f"  sent: {c}", n) for c, n in summary.sent_by_channel.items()),
        *((f"deferred: {r}", n) for r, n in summary.deferred_by_reason.items()),
        *((f"skipped: {r}", n) for r, n in summary.skipped_by_reason.items()),
    ):
        table.add_row(name.replace("_", " "), str(n))
    out.print(table)
    out.print(f"[bold]{summary.headline()}[/]")
    if summary.watermark_after is not None:
        out.print(f"Watermark: {summary.watermark_after:%Y-%m-%d %H:%M:%S} UTC", highlight=False)
    if summary.run_dir:
        out.print(f"Run folder: {summary.run_dir}", highlight=False, soft_wrap=True)


if TYPE_CHECKING:
    from tasks.jobs.adhoc import AdhocPreview, Sample


def _adhoc_option_error(exc: Exception) -> str:
    """One line for the first thing wrong with the adhoc command's options (a pydantic error names a field)."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "options"
    option = {"channels": "channel"}.get(field, field).replace("_", "-")
    return f"--{option}: {first['msg'].removeprefix('Value error, ')}"


def _print_adhoc_preview(preview: AdhocPreview, samples: list[Sample]) -> None:
    from rich.markup import escape

    title = f"[bold]{escape(preview.campaign)}[/] for {escape(preview.audience_label)}, as of {preview.as_of}"
    out.print(f"{title}: [bold]{preview.audience:,} customers[/]", highlight=False, soft_wrap=True)
    segments = RichTable(
        "primary segment", "customers", *(f"{c} to send" for c in preview.channels), title_justify="left"
    )
    for name, counts in preview.by_segment.items():
        segments.add_row(escape(name), f"{counts['customers']:,}", *(f"{counts.get(c, 0):,}" for c in preview.channels))
    out.print(segments)
    decisions = RichTable("decision", *preview.channels, title_justify="left")
    reasons = sorted({r for counts in preview.by_channel.values() for r in counts} - {"send", "holdout"})
    for name in ("send", "holdout", *reasons):
        label = name if name in ("send", "holdout") else f"not sent: {name}"
        decisions.add_row(label, *(f"{preview.by_channel[c].get(name, 0):,}" for c in preview.channels))
    out.print(decisions)
    for sample in samples:
        customers = f"{sample.customers:,} customer" + ("" if sample.customers == 1 else "s")
        shown = escape(sample.subject or sample.text)
        out.print(f"sample {sample.locale} {sample.channel} ({customers}): {shown}", highlight=False, soft_wrap=True)
    if preview.send_from is not None and preview.send_until is not None:
        first, last = f"{preview.send_from:%Y-%m-%d %H:%M}", f"{preview.send_until:%Y-%m-%d %H:%M}"
        out.print(f"Sends at {first} UTC." if first == last else f"Sends from {first} to {last} UTC.")


@app.command()
def adhoc(
    name: Annotated[str, typer.Option(help="snake_case name; the campaign is adhoc_<name>.")],
    audience: Annotated[
        str, typer.Option(help='A segment of segments.yaml (vip) or an expression (lifecycle == "lapsed").')
    ],
    template: Annotated[str, typer.Option(help="A folder under templates/ (weekly_sale).")],
    channel: Annotated[
        list[str] | None, typer.Option("--channel", help="email or sms; repeat for both. Default: email.")
    ] = None,
    percent_off: Annotated[int | None, typer.Option("--percent-off", help="A personal coupon's discount.")] = None,
    coupon_prefix: Annotated[str | None, typer.Option("--coupon-prefix", help="The coupon codes' prefix.")] = None,
    valid_days: Annotated[int, typer.Option("--valid-days", help="Days the coupon stays valid after today.")] = 7,
    holdout_share: Annotated[float, typer.Option("--holdout-share", help="Share held out to measure uplift.")] = 0.0,
    send_at: Annotated[
        str | None,
        typer.Option("--send-at", help="ISO time to send (no zone: the shop's); default 10:00 customer's time."),
    ] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Business date, YYYY-MM-DD; default: today.")] = None,
    data: Annotated[str | None, typer.Option(help="Folder or s3://bucket/prefix with the contract tables.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the preview, send nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Send without asking.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
) -> None:
    """Send a one-off campaign from the terminal: preview it, confirm, then send through the ledger."""
    _prefect_env(verbose)
    # the tasks run here as plain functions, outside any flow run: their logs stay in the terminal
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    from collections import Counter
    from datetime import timedelta
    from functools import partial

    from prefect.logging import disable_run_logger
    from pydantic import ValidationError

    from tasks.data.contract import ContractError
    from tasks.data.snapshot import load_snapshot
    from tasks.data.sources import check_source
    from tasks.deliver.delivery import deliver_shard
    from tasks.jobs.adhoc import (
        AdhocError,
        AdhocRequest,
        Status,
        adhoc_paths,
        campaign_for,
        commit_plan,
        plan_adhoc,
        render_adhoc,
        render_samples,
        summarise_adhoc,
        withdraw_plan,
        write_report,
    )
    from tasks.kernel.aws import s3_client
    from tasks.kernel.calendar import SendClock, business_date, flow_run_id, sending_moment
    from tasks.kernel.settings import Settings
    from tasks.plan.campaigns import Offer
    from tasks.profile.features import profile_customers
    from tasks.profile.segments import SegmentError
    from tasks.recommend.picks import recommend_products
    from tasks.render.templating import RenderError

    if (percent_off is None) != (coupon_prefix is None):
        raise _fail("an offer needs both --percent-off and --coupon-prefix")
    try:
        offer = (
            Offer(coupon_prefix=coupon_prefix, percent_off=percent_off, valid_days=valid_days)
            if coupon_prefix is not None and percent_off is not None
            else None
        )
        request = AdhocRequest.model_validate(
            {
                "name": name,
                "audience": audience,
                "template": template,
                "channels": channel or ["email"],
                "offer": offer,
                "send_at": datetime.fromisoformat(send_at) if send_at else None,
                "holdout_share": holdout_share,
                "dry_run": dry_run,
                "as_of": _parse_date(as_of) if as_of else None,
                "data": data,
            }
        )
    except (ValidationError, ValueError) as exc:
        raise _fail(_adhoc_option_error(exc)) from None
    settings = Settings()
    day = request.as_of or business_date(settings.shop_timezone)
    source = request.data or settings.data
    try:
        campaign, resolved = campaign_for(request, settings)
        check_source(source, lambda: s3_client(settings))
    except (AdhocError, ContractError) as exc:
        raise _fail(str(exc)) from None
    paths = adhoc_paths(settings.output_dir, request.name, day)
    with paths.exclusive(on_wait=lambda: err.print(f"Another run of {campaign.name} for {day} is under way; waiting")):
        try:
            with _progress_bars(skip={"send"}):
                load_snapshot.fn(source, day, paths, settings)
                profile_customers.fn(paths, day, settings)
                if campaign.products == "picks":
                    recommend_products.fn(paths, day, settings)
                preview = plan_adhoc.fn(campaign, resolved, paths, day, settings, request.send_at, sending_moment())
                samples = render_samples.fn(campaign, preview.locales, day, settings)
        except (ContractError, SegmentError, RenderError) as exc:
            raise _fail(str(exc)) from None
        _print_adhoc_preview(preview, samples)
        if request.dry_run or settings.dry_run or preview.to_send == 0:
            status: Status = "dry_run" if request.dry_run or settings.dry_run else "nothing_to_send"
            withdraw_plan.fn(paths, status)
            out.print(f"[bold]{summarise_adhoc(preview, status, paths).headline()}[/]")
            return
        if not yes and not typer.confirm(f"Send {preview.to_send:,} messages?", default=False):
            withdraw_plan.fn(paths, "rejected")
            out.print(f"[bold]{summarise_adhoc(preview, 'rejected', paths).headline()}[/]")
            raise typer.Exit(code=1)
        plan = commit_plan.fn(campaign, paths, settings, sending_moment())
        for shard in plan.shards:
            render_adhoc.fn(campaign, paths, shard, day, settings)
        delivery: Counter[str] = Counter()
        run_id, clock = flow_run_id(), SendClock()

        def waiting(at: datetime, seconds: float) -> None:
            err.print(f"Waiting {timedelta(seconds=round(seconds))} for the wave at {at:%H:%M} UTC")

        # the tasks run as plain functions here: their run logger is off, the terminal shows progress
        with disable_run_logger(), _progress_bars(skip=set()):
            for wave in plan.waves:
                moment = clock.wait_for(wave.at, on_wait=partial(waiting, wave.at))
                for shard in wave.shards:
                    delivery.update(deliver_shard.fn(paths, shard, settings, run_id, None, plan.to_send, moment))
        summary = summarise_adhoc(preview, "sent", paths, "confirmed in the terminal", delivery)
        write_report(summary, paths, plan.shards)
    out.print(f"[bold]{summary.headline()}[/]")
    out.print(f"Run folder: {summary.run_dir}", highlight=False, soft_wrap=True)


if __name__ == "__main__":
    app()
