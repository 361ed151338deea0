"""The weekly survey report, each Monday morning for the week before: NPS by week, category and lateness, themes.

What it counts and how (``tasks/report/survey.py``): the answers of the after-delivery survey (the survey
campaign, the answer pages of the unsubscribe app), the shop's tables of the latest run that week. It writes
``<output>/reports/survey/<week>/`` (CSV tables, ``nps.png``, ``report.md`` with anonymous quotes) and a table
artifact with counts only.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow, get_run_logger

from tasks.kernel.calendar import business_date
from tasks.kernel.paths import private_files
from tasks.kernel.settings import Settings
from tasks.report.survey import report_survey


@flow
def survey_report(week: str | None = None) -> float:
    """Report the after-delivery survey of an ISO week: NPS by week, category and delivery lateness, comment themes.

    Args:
        week: The ISO week, YYYY-Www (2024-W22). Default: last week, in the shop's time zone.
    """
    settings = Settings()
    if week is None:
        year, number, _ = (business_date(settings.shop_timezone) - timedelta(weeks=1)).isocalendar()
        week = f"{year}-W{number:02d}"
    with private_files():  # the quotes are customers' words: the report folder is private
        # 1. The week's answers and the weeks before, joined with the shop's orders; files and an artifact.
        report = report_survey(week, settings)
    # 2. Counts only in the log: never a comment.
    get_run_logger().info("Survey %s: NPS %s from %d answers", week, report.nps, report.answers)
    return report.nps
