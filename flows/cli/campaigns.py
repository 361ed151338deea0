"""``loyalty campaigns check``, ``simulate`` and ``adhoc``: the catalog as code, checked, played day by day, and a one-off send."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from flows.cli.common import _parse_date, _prefect_env, _progress_bars
from flows.cli.console import err, out
from flows.cli.console import fail as _fail

campaigns_app = typer.Typer(
    help="The campaign catalog (campaigns/*.yaml + templates/): check it.", no_args_is_help=True
)


@campaigns_app.command("check")
def campaigns_check(
    campaigns_dir: Annotated[
        Path | None, typer.Option("--campaigns", help="Campaign folder; default: the LOYALTY_CAMPAIGNS_DIR setting.")
    ] = None,
    templates_dir: Annotated[
        Path | None, typer.Option("--templates", help="Templates folder; default: the LOYALTY_TEMPLATES_DIR setting.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON on stdout.")] = False,
) -> None:
    """Validate every campaign file, audience and template; render each step for a sample customer in ru, pl, en.

    Exit 1 if anything is wrong; each problem names the file, the field and the reason.
    """
    from tasks.kernel.settings import Settings
    from tasks.render.catalog_check import check_catalog

    settings = Settings()
    folder, templates = campaigns_dir or settings.campaigns_dir, templates_dir or settings.templates_dir
    for path in (folder, templates):
        if not path.is_dir():
            raise _fail(f"{path}: no such folder")
    passed, problems = check_catalog(folder, templates, settings)
    if as_json:
        report = {"ok": not problems, "passed": passed, "problems": [p.model_dump() for p in problems]}
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
    else:
        for name in passed:
            out.print(f"[green]ok[/]    {escape(name)}", highlight=False)
        for problem in problems:
            err.print(f"[bold red]error[/] {escape(str(problem))}", highlight=False, soft_wrap=True)
        total = len(passed) + len({p.file for p in problems})
        verdict = "[green]all good[/]" if not problems else f"[bold red]{len(problems)} problems[/]"
        out.print(f"{len(passed)} of {total} campaigns ok in {escape(str(folder))}: {verdict}", highlight=False)
    if problems:
        raise typer.Exit(code=1)


def simulate(
    data: Annotated[str, typer.Option(help="Folder or s3://bucket/prefix with the shop's contract tables.")],
    start: Annotated[str, typer.Option("--from", help="First day to plan, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", help="Last day to plan (included), YYYY-MM-DD.")],
    campaign: Annotated[
        list[str] | None, typer.Option("--campaign", help="Only these campaigns (repeat the option); default: all.")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print every plan row as a JSON list: {date, customer_id, campaign, step, channel, kind, occurrence, "
            "decision, reason, yields_to, coupon_valid_until}.",
        ),
    ] = False,
) -> None:
    """Plan each day from --from to --to as a dry run and show what every campaign would send each day.

    Nothing is sent, rendered or written; what a day would send counts as sent for the days after it.
    """
    from tasks.consent.tokens import Purpose, purpose_key
    from tasks.data.contract import ContractError
    from tasks.data.sources import load_raw
    from tasks.kernel.aws import s3_client
    from tasks.kernel.errors import CatalogError
    from tasks.kernel.settings import Settings
    from tasks.plan.campaigns import daily_campaigns, load_catalog
    from tasks.plan.simulate import daily_counts
    from tasks.plan.simulate import simulate as run_simulation

    first, last = _parse_date(start, "--from"), _parse_date(end, "--to")
    if first > last:
        raise _fail(f"--from {first} is after --to {last}")
    if (last - first).days > 366:
        raise _fail("simulate at most a year at a time")
    settings = Settings()
    try:
        campaigns = daily_campaigns(load_catalog(settings.campaigns_dir))
    except CatalogError as exc:
        raise _fail(f"{exc} (run `loyalty campaigns check`)") from None
    unknown = sorted(set(campaign or ()) - set(campaigns))
    if unknown:
        raise _fail(f"unknown campaign {', '.join(unknown)}; the daily campaigns are {', '.join(sorted(campaigns))}")
    chosen = {n: c for n, c in campaigns.items() if not campaign or n in campaign}
    try:
        raw = load_raw(data, lambda: s3_client(settings))
    except ContractError as exc:
        raise _fail(str(exc)) from None
    with err.status(f"Planning {(last - first).days + 1} days…"):
        rows = run_simulation(raw, chosen, first, last, settings, purpose_key(settings, Purpose.COUPON))
    if as_json:
        sys.stdout.write(json.dumps(rows.to_dict("records"), ensure_ascii=False) + "\n")
        return
    counts = daily_counts(rows)
    table = RichTable(title="Messages to send per day (dry run)", title_justify="left")
    for column in ("date", "to send", "by campaign"):
        table.add_column(column, justify="right" if column == "to send" else "left")
    for day, row in counts.iterrows():
        busiest = row.loc[row > 0].sort_values(ascending=False, kind="stable")
        table.add_row(
            str(day), str(int(row.sum())), ", ".join(f"{escape(str(n))} {int(v)}" for n, v in busiest.items())
        )
    out.print(table)
    decided = rows.groupby(["decision", "reason"]).size().reset_index(name="rows")
    parts = [f"{d}{f' ({r})' if r else ''} {n}" for d, r, n in decided.itertuples(index=False)]
    out.print("Decisions: " + ", ".join(parts), highlight=False)


if TYPE_CHECKING:
    from rich.progress import Progress

    from tasks.jobs.adhoc import AdhocRequest, Approval
    from tasks.jobs.adhoc_preview import AdhocPreview, Sample


def _adhoc_option_error(exc: Exception) -> str:
    """One line for the first thing wrong with the adhoc command's options (a pydantic error names a field)."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "options"
    option = {"channels": "channel", "email_copy": "copy"}.get(field, field).replace("_", "-")
    where = " ".join(str(part) for part in first["loc"][1:])  # in the --copy file: "ru body"
    return f"--{option}{f' ({where})' if where else ''}: {first['msg'].removeprefix('Value error, ')}"


def _print_adhoc_preview(preview: AdhocPreview, samples: list[Sample]) -> None:
    from rich.markup import escape

    from tasks.jobs.adhoc_preview import service_recovery_note

    title = f"[bold]{escape(preview.campaign)}[/] for {escape(preview.audience_label)}, as of {preview.as_of}"
    out.print(f"{title}: [bold]{preview.audience:,} customers[/]", highlight=False, soft_wrap=True)
    out.print(f"Priority in the frequency budget: {preview.priority}", highlight=False)
    recovery = service_recovery_note(preview)
    if recovery:
        out.print(f"[bold yellow]{escape(recovery)}[/]", highlight=False, soft_wrap=True)
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
        for variant, subject in sample.subjects.items():
            out.print(f"  subject {variant}: {escape(subject)}", highlight=False, soft_wrap=True)
    if preview.send_from is not None and preview.send_until is not None:
        first, last = f"{preview.send_from:%Y-%m-%d %H:%M}", f"{preview.send_until:%Y-%m-%d %H:%M}"
        out.print(f"Sends at {first} UTC." if first == last else f"Sends from {first} to {last} UTC.")


def adhoc(
    name: Annotated[str, typer.Option(help="snake_case name; the campaign is adhoc_<name>.")],
    audience: Annotated[
        str, typer.Option(help='A segment of segments.yaml (vip) or an expression (lifecycle == "lapsed").')
    ],
    template: Annotated[
        str | None, typer.Option(help="A folder under templates/ (weekly_sale); or write the email: --copy.")
    ] = None,
    copy_file: Annotated[
        Path | None,
        typer.Option(
            "--copy",
            help="A YAML file with the email's words instead of a template: per language (ru, pl, en) a subject "
            "and a Markdown body; optional missing_locale (nearest|skip) and subject_variants (README).",
        ),
    ] = None,
    channel: Annotated[
        list[str] | None, typer.Option("--channel", help="email or sms; repeat for both. Default: email.")
    ] = None,
    percent_off: Annotated[int | None, typer.Option("--percent-off", help="A personal coupon's discount.")] = None,
    coupon_prefix: Annotated[str | None, typer.Option("--coupon-prefix", help="The coupon codes' prefix.")] = None,
    valid_days: Annotated[int, typer.Option("--valid-days", help="Days the coupon stays valid after today.")] = 7,
    holdout_share: Annotated[float, typer.Option("--holdout-share", help="Share held out to measure uplift.")] = 0.0,
    priority: Annotated[
        int | None,
        typer.Option(
            "--priority",
            help="Rank in the frequency budget, 0-100 (weekly_sale 20, win_back 60, ...); default 50. The campaign "
            "yields to a daily step of higher priority due in the coming days, and goes ahead of a lower one.",
        ),
    ] = None,
    include_service_recovery: Annotated[
        bool,
        typer.Option(
            "--include-service-recovery",
            help="Also send to customers in service recovery (an apology reached them within its pause on "
            "promotions); by default they are left out and the preview says how many.",
        ),
    ] = False,
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
    """Send a one-off campaign from the terminal: preview it, confirm, then send through the ledger.

    It runs the ``adhoc_campaign`` flow itself, in this process; the terminal, not the Prefect UI, reviews it.
    """
    _prefect_env(verbose)
    from pydantic import ValidationError

    from flows.adhoc_campaign import adhoc_campaign, reviewed_by
    from tasks.data.contract import ContractError
    from tasks.data.sources import check_source
    from tasks.jobs.adhoc import AdhocError, AdhocRequest, campaign_for
    from tasks.kernel.aws import s3_client
    from tasks.kernel.enums import AdhocStatus
    from tasks.kernel.settings import Settings
    from tasks.plan.campaigns import Offer
    from tasks.profile.segments import SegmentError
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
                "template": template or "",
                "email_copy": _read_copy(copy_file) if copy_file is not None else None,
                "channels": channel or ["email"],
                "offer": offer,
                "send_at": datetime.fromisoformat(send_at) if send_at else None,
                "holdout_share": holdout_share,
                **({"priority": priority} if priority is not None else {}),
                "include_service_recovery": include_service_recovery,
                "dry_run": dry_run,
                "as_of": _parse_date(as_of) if as_of else None,
                "data": data,
            }
        )
    except (ValidationError, ValueError) as exc:
        raise _fail(_adhoc_option_error(exc)) from None
    settings = Settings()
    try:  # a bad audience, template or data source: one line, before Prefect starts
        campaign_for(request, settings)
        check_source(request.data or settings.data, lambda: s3_client(settings))
    except (AdhocError, ContractError) as exc:
        raise _fail(str(exc)) from None
    with _progress_bars(skip=set()) as bars, reviewed_by(_TerminalReviewer(yes, bars)):
        try:
            summary = adhoc_campaign(request)
        except (AdhocError, ContractError, SegmentError, RenderError) as exc:
            raise _fail(str(exc)) from None
    out.print(f"[bold]{escape(summary.headline())}[/]")
    if summary.status is AdhocStatus.SENT:
        out.print(f"Run folder: {summary.run_dir}", highlight=False, soft_wrap=True)
    if summary.status is AdhocStatus.REJECTED:
        raise typer.Exit(code=1)


def _read_copy(path: Path) -> object:
    """The ``--copy`` file as a mapping (validated by the request): YAML, UTF-8."""
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"--copy {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"--copy {path}: a YAML mapping (ru:, pl:, en: with subject and body)")
    return loaded


class _TerminalReviewer:
    """The terminal reviews an ad-hoc campaign: the preview printed, then "Send N messages?" (or ``--yes``)."""

    def __init__(self, yes: bool, bars: Progress | None) -> None:
        self.yes, self.bars = yes, bars

    def show(self, preview: AdhocPreview, samples: list[Sample]) -> None:
        with self._paused_bars():
            _print_adhoc_preview(preview, samples)

    def approve(self, preview: AdhocPreview, request: AdhocRequest) -> Approval:
        from tasks.jobs.adhoc import Approval

        if self.yes:
            return Approval(approved=True, comment="confirmed with --yes")
        with self._paused_bars():
            approved = typer.confirm(f"Send {preview.to_send:,} messages?", default=False)
        return Approval(
            approved=approved, comment="confirmed in the terminal" if approved else "declined in the terminal"
        )

    @contextmanager
    def _paused_bars(self) -> Iterator[None]:
        if self.bars is None:
            yield
            return
        self.bars.stop()
        try:
            yield
        finally:
            self.bars.start()
