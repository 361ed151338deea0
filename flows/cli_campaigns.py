"""``loyalty campaigns check`` and ``loyalty simulate``: the catalog as code, checked and played day by day."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from flows.console import err, out
from flows.console import fail as _fail

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
            help="Print every plan row as a JSON list: {date, customer_id, campaign, step, channel, decision, reason}.",
        ),
    ] = False,
) -> None:
    """Plan each day from --from to --to as a dry run and show what every campaign would send each day.

    Nothing is sent, rendered or written; what a day would send counts as sent for the days after it.
    """
    from tasks.consent.tokens import signing_key
    from tasks.data.contract import ContractError
    from tasks.data.sources import load_raw
    from tasks.kernel.aws import s3_client
    from tasks.kernel.errors import CatalogError
    from tasks.kernel.settings import Settings
    from tasks.plan.campaigns import daily_campaigns, load_catalog
    from tasks.plan.simulate import daily_counts
    from tasks.plan.simulate import simulate as run_simulation

    first, last = _day("--from", start), _day("--to", end)
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
        rows = run_simulation(raw, chosen, first, last, settings, signing_key(settings))
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


def _day(flag: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(f"{flag} {value!r} is not a date (YYYY-MM-DD)") from None
