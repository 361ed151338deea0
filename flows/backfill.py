"""Backfill: replay the daily run for a range of dates, in order; the ledger makes it safe."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from prefect import flow, get_run_logger

from flows.daily_run import daily_run
from tasks.report.run_report import RunSummary


def days_between(start: date, end: date) -> list[date]:
    """Return every date from ``start`` to ``end``, both included."""
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


@flow
def backfill(
    start: date, end: date, data: str | None = None, dry_run: bool = False, now: datetime | None = None
) -> list[RunSummary]:
    """Replay the daily run for each date from start to end, in order; sent messages are not sent again.

    Args:
        start: The first date to run.
        end: The last date to run (included).
        data: Folder or s3:// prefix of the contract tables. Default: the LOYALTY_DATA setting.
        dry_run: Render and record everything, send nothing.
        now: When the runs send, for judging lateness. Default: the real time (messages past their
            campaign's max_delay_days are skipped as too_late).
    """
    summaries = []
    for day in days_between(start, end):
        # one subflow run per day: each decides exactly what that day's run decides
        summaries.append(daily_run(as_of=day, dry_run=dry_run, data=data, now=now))
        get_run_logger().info("%s: %s", day, summaries[-1].headline())
    return summaries
