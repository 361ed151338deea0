"""``loyalty run``, ``backfill``, ``demo`` and ``why``: the daily run, its replay, the demo shop, a plan explained."""

from __future__ import annotations

import json
import os
import sys
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table as RichTable

from flows.cli.common import _parse_date, _parse_moment, _prefect_env, _progress_bars
from flows.cli.console import err, out
from flows.cli.console import fail as _fail

if TYPE_CHECKING:
    from tasks.profile.kpis import Kpis
    from tasks.report.run_report import RunSummary


def _run_daily(data: str, as_of: date, dry_run: bool, now: datetime | None = None) -> RunSummary:
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.daily_run import daily_run
    from tasks.consent.tokens import MissingSecret, require_signing_secret
    from tasks.data.contract import ContractError
    from tasks.data.sources import check_source
    from tasks.kernel.aws import s3_client
    from tasks.kernel.settings import Settings

    settings = Settings()
    try:
        check_source(data, lambda: s3_client(settings))
        require_signing_secret(settings, dry_run or settings.dry_run)
    except (ContractError, MissingSecret) as exc:
        raise _fail(str(exc)) from None
    runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=settings.task_workers)
    with _progress_bars(skip={"send"} if dry_run or settings.dry_run else set()):
        try:
            return daily_run.with_options(task_runner=runner)(  # type: ignore[arg-type]  # Prefect's runner generics
                as_of=as_of, dry_run=dry_run, data=data, now=now
            )
        except ContractError as exc:
            raise _fail(str(exc)) from None


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
    for table, columns in summary.nulled_by_column.items():  # the row kept, the bad optional cell emptied
        for column, reasons in columns.items():
            for reason, n in reasons.items():
                data.add_row(f"cells emptied, {table}.{column}: {reason}", str(n))
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
    table.add_row(f"views on {traffic.day} vs 28-day mean", f"{traffic.views} vs {traffic.baseline} ({change}){flag}")
    out.print(table)


def _emit(summary: RunSummary, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(summary.model_dump(mode="json"), ensure_ascii=False) + "\n")
    else:
        _print_summary(summary)


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
    from flows.cli.audiences import demo_audiences
    from tasks.demo.local_aws import local_aws
    from tasks.demo.synth import DEFAULT_END, generate_shop, write_shop
    from tasks.kernel.settings import Settings

    # The local SES takes what the demo sends as fast as it comes.
    os.environ.setdefault("LOYALTY_EMAIL_RATE", "200")
    os.environ.setdefault("LOYALTY_SMS_RATE", "50")
    # The demo shop is small and people open its outbox: every message is written there, not a sample.
    os.environ.setdefault("LOYALTY_OUTBOX_SAMPLE", "0")
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
        # and the day's hashed audience for an ad platform (``loyalty audiences export`` makes one by hand)
        demo_audiences(DEFAULT_END)
    finally:
        aws.__exit__(None, None, None)
    _emit(summary, as_json)


def backfill(
    start: Annotated[str, typer.Option("--from", help="First date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", help="Last date (included), YYYY-MM-DD.")],
    campaign: Annotated[
        list[str] | None,
        typer.Option(
            "--campaign", help="Send only these campaigns (repeat the option, or comma-separate); default: all."
        ),
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option("--channel", help="Send only these channels, email or sms (repeat, or comma-separate)."),
    ] = None,
    data: Annotated[str | None, typer.Option(help="Folder or s3://bucket/prefix with the contract tables.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Render and record, send nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary per day.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
) -> None:
    """Replay the daily run for every date in a range, in order; the ledger skips what was sent.

    With --campaign or --channel each day is still planned whole, and only the matching messages are sent:
    the rest is held back for its own replay (loyalty missed lists it).
    """
    _prefect_env(verbose)
    from flows.backfill import backfill as backfill_flow
    from flows.backfill import days_between
    from tasks.data.contract import ContractError
    from tasks.data.sources import check_source
    from tasks.kernel.aws import s3_client
    from tasks.kernel.errors import CatalogError
    from tasks.kernel.settings import Settings
    from tasks.plan.campaigns import daily_campaigns, load_catalog
    from tasks.plan.replay import replay_filter

    settings = Settings()
    first, last = _parse_date(start, "--from"), _parse_date(end, "--to")
    try:
        days_between(first, last)
        replay_filter(campaign, channel, daily_campaigns(load_catalog(settings.campaigns_dir)))
        check_source(data or settings.data, lambda: s3_client(settings))
        summaries = backfill_flow(
            start=first, end=last, campaigns=campaign, channels=channel, data=data or settings.data, dry_run=dry_run
        )
    except (ContractError, CatalogError, ValueError) as exc:
        raise _fail(str(exc)) from None
    for summary in summaries:
        if as_json:
            sys.stdout.write(json.dumps(summary.model_dump(mode="json"), ensure_ascii=False) + "\n")
        else:
            out.print(f"{summary.as_of}: {summary.headline()}")


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
            str(r.campaign),
            str(r.step),
            str(r.channel),
            str(r.decision),
            _why_reason(str(r.reason or ""), str(getattr(r, "yields_to", "") or "")),
            str(r.send_at)[:16],
        )
    out.print(table)


def _why_reason(reason: str, yields_to: str) -> str:
    """The reason as a person reads it: ``reserved`` names the campaign the message gives way to."""
    if reason == "reserved" and yields_to:
        return f"reserved for {yields_to}"
    return reason or "-"


def missed(
    start: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", help="Last day (included), YYYY-MM-DD.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the groups as a JSON list on stdout.")] = False,
) -> None:
    """List what each day planned to send and never sent, and why, with the command that replays it."""
    from flows.backfill import days_between
    from tasks.kernel.aws import dynamodb_client
    from tasks.kernel.settings import Settings
    from tasks.ledger.backend import open_ledger
    from tasks.report.missed import MissedGroup, day_runs, missed_groups, missed_messages

    settings = Settings()
    first, last = _parse_date(start, "--from"), _parse_date(end, "--to")
    try:
        days = days_between(first, last)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    groups: list[MissedGroup] = []
    unplanned: list[date] = []
    ledger = open_ledger(settings, dynamodb_client)
    try:
        for day in days:
            runs = day_runs(settings.output_dir, day)
            if not runs:
                unplanned.append(day)
                continue
            groups += missed_groups(day, missed_messages(runs, ledger.statuses))
    finally:
        ledger.close()
    if as_json:
        sys.stdout.write(json.dumps([g.model_dump(mode="json") for g in groups], ensure_ascii=False) + "\n")
        return
    if unplanned:
        err.print(
            f"note: no run planned {', '.join(map(str, unplanned))} under {settings.output_dir}: "
            f"`loyalty backfill --from {unplanned[0]} --to {unplanned[-1]}` runs them",
            highlight=False,
            soft_wrap=True,
        )
    if not groups:
        if len(unplanned) < len(days):
            out.print(f"Nothing missed from {first} to {last}: every planned message was sent.")
        return
    table = RichTable("day", "campaign", "channel", "reason", "messages", "replay with", title="Planned, never sent")
    for g in groups:
        table.add_row(
            str(g.day), g.campaign, g.channel, g.reason, str(g.messages), g.replay or "- (a replay cannot send it)"
        )
    out.print(table)
