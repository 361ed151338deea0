"""Backfill: replay the daily run for a range of dates, in order; the ledger makes it safe.

**Filtered replays.** ``campaigns`` and ``channels`` narrow what a backfill *sends*, never what it plans:
"only the birthday SMS of 3-5 March" after an SMS outage. Each day is planned whole, exactly as its
unfiltered run plans it (the frequency budget, the priorities and every row's decision unchanged), and
only then are the rows outside the filter held back (``deferred`` / ``held_back``, ``tasks/plan/replay.py``):
not sent, no coupon registered, not counted as sent by later days' budgets. The day's earlier plan,
outcomes and summary stay under ``<day>/earlier/<n>/`` (``RunPaths.reset``), so nothing the first run
recorded is lost; the new ``plan.parquet`` records the held-back rows with their reason, and the summary
counts them (``held_back``, ``replay_filter``). A later replay of the day, filtered or not, plans them again
and sends them; what the filtered one sent is then a ``duplicate``: the ledger keeps every message at most
once, whichever replay comes first. ``loyalty missed`` lists what a day still owes and the command to replay it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from prefect import flow, get_run_logger

from flows.daily_run import daily_run
from tasks.kernel.settings import Settings
from tasks.plan.campaigns import daily_campaigns, load_catalog
from tasks.plan.replay import replay_filter
from tasks.report.run_report import RunSummary


def days_between(start: date, end: date) -> list[date]:
    """Return every date from ``start`` to ``end``, both included."""
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def check_replayable(start: date, settings: Settings, now: datetime | None = None) -> None:
    """Refuse a replay of a day whose ledger entries DynamoDB may already have deleted (``state_keep_days``).

    Past that window nothing remembers what was sent, so a replay could send a message twice. SQLite keeps
    every entry: no limit there.
    """
    if settings.shared_backend != "dynamodb" or not settings.state_keep_days:
        return
    today = (now or datetime.now(UTC)).date()
    oldest = today - timedelta(days=settings.state_keep_days - 1)
    if start < oldest:
        raise ValueError(
            f"{start} is older than the ledger keeps its entries (LOYALTY_STATE_KEEP_DAYS="
            f"{settings.state_keep_days}: from {oldest}); a replay could send twice"
        )


@flow
def backfill(
    start: date,
    end: date,
    campaigns: list[str] | None = None,
    channels: list[str] | None = None,
    data: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[RunSummary]:
    """Replay the daily run for each date from start to end, in order; sent messages are not sent again.

    The deployment runs ``deployed_backfill`` below: the same replay on the real clock, without ``now``.

    Args:
        start: The first date to run.
        end: The last date to run (included).
        campaigns: Send only these campaigns (the rest of each day is planned, held back for its own replay).
        channels: Send only these channels: email, sms.
        data: Folder or s3:// prefix of the contract tables. Default: the LOYALTY_DATA setting.
        dry_run: Render and record everything, send nothing.
        now: When the runs send, for judging lateness. Default: the real time (messages past their
            campaign's max_delay_days are skipped as too_late).
    """
    days = days_between(start, end)
    check_replayable(start, Settings(), now)
    # an unknown campaign or channel stops the backfill before its first day, naming the valid ones
    only = replay_filter(campaigns, channels, daily_campaigns(load_catalog(Settings().campaigns_dir)))
    summaries = []
    for day in days:
        # one subflow run per day: each decides exactly what that day's run decides, and sends what the filter lets
        summaries.append(daily_run(as_of=day, dry_run=dry_run, data=data, now=now, only=only))
        get_run_logger().info("%s: %s", day, summaries[-1].headline())
    return summaries


@flow(name="backfill")
def deployed_backfill(
    start: date,
    end: date,
    campaigns: list[str] | None = None,
    channels: list[str] | None = None,
    data: str | None = None,
    dry_run: bool = False,
) -> list[RunSummary]:
    """Replay the daily run for each date from start to end, in order; sent messages are not sent again.

    The deployment's entrypoint: ``backfill`` on the real clock. It has no ``now``: a replay started from
    the UI waits for its waves and judges quiet hours and lateness at the real time.

    Args:
        start: The first date to run.
        end: The last date to run (included).
        campaigns: Send only these campaigns (the rest of each day is planned, held back for its own replay).
        channels: Send only these channels: email, sms.
        data: Folder or s3:// prefix of the contract tables. Default: the LOYALTY_DATA setting.
        dry_run: Render and record everything, send nothing.
    """
    return backfill.fn(start=start, end=end, campaigns=campaigns, channels=channels, data=data, dry_run=dry_run)
