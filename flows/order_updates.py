"""Order updates: order-status messages and back-in-stock notices, every few minutes, from a watermark.

The rules (window, quiet hours, budget, watermark) are in ``tasks/jobs/order_updates.py``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from prefect import flow, get_run_logger, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from flows.waves import deliver_waves
from tasks.consent.tokens import require_signing_secret
from tasks.data.snapshot import load_snapshot
from tasks.jobs.order_updates import (
    UpdatesSummary,
    advance_watermark,
    as_utc,
    open_replay_window,
    open_window,
    plan_order_updates,
    summarise_updates,
    updates_lock,
    updates_paths,
)
from tasks.kernel.calendar import SendClock, flow_run_id, sending_moment
from tasks.kernel.paths import private_files
from tasks.kernel.runstore import pull_adhoc_plans, run_folder
from tasks.kernel.settings import Settings
from tasks.render.compose import render_messages


@flow(name="order-updates", task_runner=ThreadPoolTaskRunner(max_workers=2))  # type: ignore[arg-type]  # Prefect's runner generics
def order_updates(
    from_: datetime | None = None,
    to: datetime | None = None,
    data: str | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    overlap_minutes: int = 10,
    first_lookback_hours: int = 24,
) -> UpdatesSummary:
    """Send order-status updates and back-in-stock notices for the events since the last run.

    The deployment runs ``deployed_order_updates`` below: the same run on the real clock, without ``now``.

    Args:
        from_: Replay a window instead: the events after this moment (the watermark is neither read nor moved).
        to: The replayed window's end (included). Default: now.
        data: Folder or s3:// prefix of the contract tables. Default: the LOYALTY_DATA setting.
        now: The moment the run looks up to and sends at. Default: the real time; tests and simulations set it.
        dry_run: Render and record everything, send nothing, leave the watermark where it is.
        overlap_minutes: How far before the last run's end this run looks again, for rows that arrive late.
        first_lookback_hours: How far back the first run (no watermark yet) looks.
    """
    settings = Settings()
    dry_run = dry_run or settings.dry_run
    settings = settings.model_copy(update={"dry_run": dry_run})  # every step knows a rehearsal from a real run
    moment = as_utc(now or sending_moment())
    run_id = flow_run_id()
    paths = updates_paths(settings.output_dir, moment, run_id, settings.shop_timezone)
    logger = get_run_logger()
    if dry_run:
        logger.warning("DRY RUN: order updates are rendered to the outbox, nothing is sent, the watermark stays")
    require_signing_secret(settings, dry_run)  # a real send signs with the shop's one secret, never a host's own key

    def waiting() -> None:
        logger.warning("Another order-updates run is still going; waiting for it to finish")

    # With LOYALTY_OUTPUT_DIR=s3://...: the run's folder goes to S3, pushed after every step.
    with private_files(), updates_lock(settings, on_wait=waiting), run_folder(paths, settings) as folder:
        # 1. The window: from where the last run stopped (less the overlap, or the earliest owed message) to now;
        #    a replay's is (from_, to], sending now, and leaves the watermark alone.
        if from_ is not None or to is not None:
            window = open_replay_window(settings, from_, to, moment)
        else:
            window = open_window(settings, moment, overlap_minutes, first_lookback_hours)
        # 2. Load and validate the tables of the day (UTC); planning sees nothing after now.
        load_snapshot(data or settings.data, window.sends_at.date(), paths, settings)
        folder.push()
        # 3. Events in the window -> candidates -> consent, suppression, ledger, budget, quiet hours -> shards.
        pull_adhoc_plans(settings, window.as_of)  # the budget reads the ad-hoc campaigns' plans too
        plan = plan_order_updates(paths, window, settings, dry_run)
        folder.push()
        # 4. Render every message before sending any: a template error stops the run here.
        render_messages.map(unmapped(paths), plan.shards, unmapped(window.as_of), unmapped(settings)).result()
        folder.push()
        # 5. Send through the ledger: transactional email at any hour, SMS and marketing outside quiet hours.
        delivery: Counter[str] = Counter()
        if not dry_run:
            delivery = deliver_waves(paths, plan.decisions.waves, settings, run_id, None, 0, SendClock(now))
            folder.push()
        # 6. Only now, with the sends finished, move the watermark (a dry run and a replay leave it).
        after = None if dry_run or window.replay else advance_watermark(paths, plan, window, settings)
        # 7. Counts for the run's summary; the run's copy of the tables goes.
        summary = summarise_updates(paths, plan, window, after, dict(delivery), dry_run)
    logger.info(summary.headline())
    return summary


@flow(name="order-updates", task_runner=ThreadPoolTaskRunner(max_workers=2))  # type: ignore[arg-type]  # Prefect's runner generics
def deployed_order_updates(
    from_: datetime | None = None,
    to: datetime | None = None,
    data: str | None = None,
    dry_run: bool = False,
    overlap_minutes: int = 10,
    first_lookback_hours: int = 24,
) -> UpdatesSummary:
    """Send order-status updates and back-in-stock notices for the events since the last run.

    The deployment's entrypoint: ``order_updates`` on the real clock. It has no ``now``: a run started
    from the UI sends now and judges quiet hours now, never on a made-up time.

    Args:
        from_: Replay a window instead: the events after this moment (the watermark is neither read nor moved).
        to: The replayed window's end (included). Default: now.
        data: Folder or s3:// prefix of the contract tables. Default: the LOYALTY_DATA setting.
        dry_run: Render and record everything, send nothing, leave the watermark where it is.
        overlap_minutes: How far before the last run's end this run looks again, for rows that arrive late.
        first_lookback_hours: How far back the first run (no watermark yet) looks.
    """
    return order_updates.fn(
        from_=from_,
        to=to,
        data=data,
        dry_run=dry_run,
        overlap_minutes=overlap_minutes,
        first_lookback_hours=first_lookback_hours,
    )
