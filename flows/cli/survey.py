"""``loyalty survey report``: the after-delivery survey's weekly report (NPS by week, category, lateness; themes)."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import _prefect_env
from flows.cli.console import fail as _fail
from flows.cli.console import out

survey_app = typer.Typer(help="The after-delivery survey: its weekly report.")


@survey_app.command("report")
def report_command(
    week: Annotated[str, typer.Option("--week", help="The ISO week to report, YYYY-Www (e.g. 2024-W22).")],
) -> None:
    """Write a week's survey report (CSV tables, PNG chart, Markdown with anonymous quotes) and print its NPS."""
    _prefect_env(False)
    from tasks.kernel.paths import private_files
    from tasks.kernel.settings import Settings
    from tasks.report.survey import iso_week, survey_report_folder, write_survey_report

    try:
        iso_week(week)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    settings = Settings()
    with private_files():
        report = write_survey_report(week, settings)
    out.print(report.by_week.tail(1).to_string(index=False), highlight=False)
    out.print(
        f"Survey {week}: NPS {report.nps:g} from {report.answers} answers. Tables, chart and quotes: "
        f"{survey_report_folder(settings, week)}",
        highlight=False,
        soft_wrap=True,
    )
