"""Operations: ``loyalty serve``, ``serve-unsubscribe``, ``process-feedback``, ``order-updates``, ``attribution``,
``forget``, ``retention apply``, ``setup-ops``."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table as RichTable

from flows.cli.common import _parse_date, _parse_moment, _prefect_env
from flows.cli.console import err, out
from flows.cli.console import fail as _fail

if TYPE_CHECKING:
    from tasks.report.attribution import VariantAttribution


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


def serve_unsubscribe_command(
    host: Annotated[str, typer.Option(help="Address to bind; loopback unless behind a proxy.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Run the one-click unsubscribe endpoint (POST suppresses, GET only shows a confirmation page)."""
    from tasks.consent.unsubscribe import serve_unsubscribe
    from tasks.kernel.settings import Settings

    serve_unsubscribe(Settings(), host=host, port=port)


def process_feedback_command(
    max_messages: Annotated[int, typer.Option(help="Most queue messages to read in this run.")] = 10_000,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs.")] = False,
) -> None:
    """Read SES bounces and complaints (SQS) and SMS opt-outs into the suppression list."""
    _prefect_env(verbose)
    from flows.process_feedback import process_feedback

    out.print(process_feedback(max_messages=max_messages).headline())


def order_updates_command(
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Replay a window instead: the events after this ISO time; the watermark is neither read nor moved.",
        ),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="The replayed window's end (included), ISO time; default: now.")
    ] = None,
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
    """Send order-status updates and back-in-stock notices for the events since the last run (the watermark).

    With --from (and --to) the events of that window are replayed and sent now; the ledger sends nothing twice.
    """
    _prefect_env(verbose)
    from flows.order_updates import order_updates
    from tasks.data.contract import ContractError
    from tasks.data.sources import check_source
    from tasks.jobs.order_updates import replay_window
    from tasks.kernel.aws import s3_client
    from tasks.kernel.errors import CatalogError
    from tasks.kernel.settings import Settings

    settings = Settings()
    source = data or settings.data
    moment = _parse_moment(now) if now else None
    first = _parse_moment(start, "--from") if start else None
    last = _parse_moment(end, "--to") if end else None
    try:
        if first is not None or last is not None:
            replay_window(first, last, moment or datetime.now(UTC), settings.shop_timezone)  # the window, checked
        check_source(source, lambda: s3_client(settings))
        summary = order_updates(from_=first, to=last, data=source, now=moment, dry_run=dry_run)
    except (ContractError, CatalogError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(summary.model_dump(mode="json"), ensure_ascii=False) + "\n")
        return
    window = f"{summary.window_start:%Y-%m-%d %H:%M} - {summary.now:%Y-%m-%d %H:%M} UTC"
    title = "[bold]Order updates, replayed window[/]" if summary.replay else "[bold]Order updates[/]"
    out.print(f"{title} {window}" + ("  [bold yellow](DRY RUN)[/]" if summary.dry_run else ""))
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

    first, last = _parse_date(start, "--from"), _parse_date(end, "--to")
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
    _print_variants(attr.attribute_variants(attr.read_adhoc_plans(output_dir, first, last), orders, window))
    out.print(f"Reports: {written[0]}, {written[1]}", highlight=False, soft_wrap=True)


def _print_variants(rows: list[VariantAttribution]) -> None:
    """The subject A/B tests of ad-hoc campaigns: each variant's conversion rate and its difference from A."""
    if not rows:
        return
    from rich import box as rich_box
    from rich.markup import escape

    def pp(value: float | None, low: float | None, high: float | None, sign: str = "") -> str:
        if value is None or low is None or high is None:
            return "-"
        return f"{value * 100:{sign}.1f} [{low * 100:{sign}.1f}, {high * 100:{sign}.1f}]"

    table = RichTable(
        title="Subject variants (A/B)", title_justify="left", box=rich_box.SIMPLE_HEAD, show_edge=False, padding=(0, 1)
    )
    table.add_column("campaign", overflow="fold")
    for header in ("variant", "sent", "conv %\n[95% CI]", "vs A pp\n[95% CI]"):
        table.add_column(header, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(
            escape(row.campaign),
            row.variant,
            f"{row.sent:,}",
            pp(row.conversion_rate, row.rate_low, row.rate_high),
            pp(row.vs_first, row.vs_first_low, row.vs_first_high, "+"),
        )
    out.print(table)


def forget_command(
    customer_id: Annotated[str, typer.Argument(help="The customer's id in the shop's data.")],
    yes: Annotated[bool, typer.Option("--yes", help="Erase without asking (scripts).")] = False,
) -> None:
    """Forget a customer: erase them from the run folders, the state, the ledger; suppress their addresses for good."""
    from tasks.jobs.forget import forget_customer
    from tasks.kernel.settings import Settings

    if not yes and not typer.confirm(
        f"Erase customer {customer_id} from every run folder and store? This cannot be undone"
    ):
        raise typer.Exit(1)
    summary = forget_customer(Settings(), customer_id)
    out.print(f"Forgot customer {customer_id}:", highlight=False)
    for line in summary.lines():
        out.print(f"  {line}", highlight=False)


def setup_ops_command(
    webhook: Annotated[
        str | None, typer.Option(help="URL the operators' alerts are POSTed to as JSON (Slack, Teams, a pager).")
    ] = None,
    sns_topic: Annotated[
        str | None,
        typer.Option(
            help="The operators' SNS topic ARN (the stack's OperatorsTopicArn): each alert runs the "
            "notify-operators deployment, which publishes to it."
        ),
    ] = None,
) -> None:
    """Create or update the Prefect automations that tell operators when a run fails or needs attention."""
    _prefect_env(False)
    from prefect.settings import get_current_settings

    from flows.alerts import setup_ops

    if not get_current_settings().api.url:
        raise _fail("no Prefect server configured: set PREFECT_API_URL")
    try:
        done = setup_ops(webhook=webhook, sns_topic=sns_topic)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    for name in done.automations:
        out.print(f"Automation ready: {name}", highlight=False)
    if sns_topic is not None:
        out.print("Alerts run the notify-operators deployment, which publishes to the SNS topic.", highlight=False)
    if done.blocks:
        out.print(f"Alerts go to the webhook through the block {', '.join(done.blocks)}.", highlight=False)


retention_app = typer.Typer(
    help="Retention: run folders past LOYALTY_RETENTION_DAYS keep only their summaries.", no_args_is_help=True
)


@retention_app.command("apply")
def retention_apply(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")] = False,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Count the days back from this date (YYYY-MM-DD); default: today.")
    ] = None,
) -> None:
    """Delete the customer-level files (snapshots, plans, messages, outboxes) of run folders past the retention period.

    The daily run does the same after each real run; summaries and KPI reports are kept.
    """
    from tasks.kernel.calendar import business_date
    from tasks.kernel.retention import apply_retention
    from tasks.kernel.settings import Settings

    settings = Settings()
    day = _parse_date(as_of) if as_of else business_date(settings.shop_timezone)
    out.print(apply_retention(settings.output_dir, day, settings.retention_days, dry_run=dry_run).headline())
