"""The daily run: one shop's day from raw tables to sent messages, for one ``as_of`` date."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.alerts import emit_run_events
from flows.partition import plan_in_partitions
from flows.waves import ShardsFailedError, deliver_waves, schedule_waves, send_wave_deployment
from tasks.consent.tokens import require_signing_secret
from tasks.data.snapshot import load_snapshot
from tasks.kernel.calendar import SendClock, business_date, flow_run_id, sending_moment
from tasks.kernel.paths import RunPaths, private_files
from tasks.kernel.retention import expire_run_data
from tasks.kernel.runstore import pull_adhoc_plans, run_folder
from tasks.kernel.settings import Settings
from tasks.plan.planner import plan_day
from tasks.plan.replay import ReplayFilter
from tasks.profile.features import profile_customers
from tasks.profile.kpis import report_kpis
from tasks.recommend.picks import recommend_products
from tasks.render.workers import render_plan
from tasks.report.calls import report_calls
from tasks.report.run_report import RunSummary, build_summary, ledger_report, report_run, start_send_progress
from tasks.state.preference_snapshot import merge_preferences
from tasks.state.survey_snapshot import snapshot_answers


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))  # type: ignore[arg-type]  # Prefect's runner generics
def daily_run(
    as_of: date | None = None,
    dry_run: bool = False,
    data: str | None = None,
    now: datetime | None = None,
    only: ReplayFilter | None = None,
    send_waves_as_runs: bool = False,
    partitions_as_runs: bool = False,
) -> RunSummary:
    """Run a shop's day: load, validate, profile, plan, render and send, then report.

    The deployment runs ``deployed_daily_run`` below: the same run on the real clock, without ``now`` or ``only``.

    Args:
        as_of: The business date; data after it is invisible. Default: today in the shop's time zone.
        dry_run: Render and record everything, send nothing.
        data: Folder or s3:// prefix of the contract tables. Default: the LOYALTY_DATA setting.
        now: When the run sends, for judging lateness. Default: the real time; the demo sets it to simulate its day.
        only: A filtered replay (``backfill``): send only these campaigns and channels, hold the rest back.
        send_waves_as_runs: Schedule one ``send-wave`` deployment run per wave at its time and end, instead of
            waiting for each wave in this process (the deployment does; the CLI and the demo send inline).
        partitions_as_runs: With LOYALTY_PARTITIONS > 1: each partition a ``daily-partition`` deployment run that
            the work pool's workers take (the deployment does), instead of a subflow in this process.
    """
    settings = Settings()
    as_of = as_of or business_date(settings.shop_timezone)
    dry_run = dry_run or settings.dry_run
    settings = settings.model_copy(update={"dry_run": dry_run})  # every step knows a rehearsal from a real day
    paths = RunPaths.for_day(settings.output_dir, as_of)
    logger = get_run_logger()
    if dry_run:
        logger.warning("DRY RUN: messages are rendered to the outbox, nothing is sent")
    # 0. A real send signs with the shop's one secret, never a host's own key: refused here, before any work.
    require_signing_secret(settings, dry_run)
    # 0b. Waves as their own runs need the send-wave deployment: refused before any work if it is missing.
    send_wave_id = send_wave_deployment() if send_waves_as_runs and not dry_run else None

    def waiting() -> None:
        logger.warning("Another run of %s is writing its folder; waiting for it to finish", as_of)

    # With LOYALTY_OUTPUT_DIR=s3://...: the day's folder as S3 holds it (an earlier run's), pushed after every step.
    with private_files(), paths.exclusive(on_wait=waiting), run_folder(paths, settings) as folder:
        # 1-2. Load the tables as of the date; bad rows go to quarantine.
        snapshot = load_snapshot(data or settings.data, as_of, paths, settings)
        # LOYALTY_PARTITIONS, else one partition per LOYALTY_PARTITION_CUSTOMERS customers: a big shop is split
        partitions = settings.partitions_for(snapshot.customers)
        settings = settings.model_copy(update={"partitions": partitions})
        # 2b. Survey answers up to the day, as data: detractors become incidents, promoters are thanked.
        snapshot_answers(paths, as_of, settings)
        # 2c. Customers' preferences: their profile facts fill the shop's gaps, their choices go to the planner.
        merge_preferences(paths, as_of, settings)
        folder.push()
        # 5 (in partitions). The recommendation model is fitted from the tables alone, so it is fitted beside the
        # profile and the KPIs, in the flow's second thread (SciPy and Arrow let go of the GIL); each partition
        # then picks for its customers. The folder is pushed once the fit is written, not while it is written.
        fitting = recommend_products.submit(paths, as_of, settings, partitioned=True) if partitions > 1 else None
        try:
            # 3. One profile row per customer: RFM, lifecycle, predicted value, interests, incidents, birthday.
            segments = profile_customers(paths, as_of, settings)
            # 4. The shop's KPIs, retention cohorts and traffic alert, as files and artifacts.
            kpis = report_kpis(paths, as_of, settings)
        finally:  # a failed step fails the run with the fit finished, not writing into a folder no longer ours
            if fitting is not None:
                fitting.wait()
        if fitting is None:
            folder.push()
            # 5. Products picked for each customer (recommender + the shop's rules), for the messages.
            recommend_products(paths, as_of, settings)
        else:
            fitting.result()
        folder.push()
        # 6. Who hears what: candidates through the gates into a sharded send plan (the budget reads ad-hoc plans too).
        pull_adhoc_plans(settings, as_of)
        if partitions > 1:
            logger.info("Planning %d customers in %d partitions", snapshot.customers, partitions)
            # 6-7a. Or partition by partition, each its own flow run (workers take them when deployed), then merged.
            plan, rendered = plan_in_partitions(
                paths, as_of, settings, now or sending_moment(), only, as_runs=partitions_as_runs, folder=folder
            )
        else:
            plan = plan_day(paths, as_of, settings, now or sending_moment(), only)
            folder.push()
            # 7a. Render every message before sending any, shards in worker processes: a template error stops the run.
            rendered = sum(render_plan(paths, plan.shards, as_of, settings))
        folder.push()
        # 7b. Send shard by shard through the ledger (skipped in a dry run).
        delivery: Counter[str] = Counter()
        ledger: dict[str, int] = {}
        failed: ShardsFailedError | None = None  # a failed shard still gets the run reported, then fails the flow
        if not dry_run and send_wave_id is None:
            run_id, progress = flow_run_id(), start_send_progress(plan.to_send)
            # wave by wave: each send time (10:00 in a customer's zone) waits for its moment
            try:
                delivery = deliver_waves(
                    paths, plan.waves, settings, run_id, progress, plan.to_send, SendClock(now), folder.push
                )
            except ShardsFailedError as exc:
                delivery, failed = exc.delivery, exc
            ledger = ledger_report(settings, run_id, paths)
            folder.push()
        # 8. Report: summary file, outbox index, artifacts.
        summary = build_summary(as_of, dry_run, paths, snapshot, segments, plan, rendered, delivery, ledger, kpis, only)
        summary = report_run(summary, paths, plan.shards)
        # 8a. Support's call list: who is worth a call about what went wrong (CSV with phones; the artifact has none).
        report_calls(paths, as_of, settings)
        # 8b. Events for the operators' automations (``loyalty setup-ops``): parked, unknown, traffic; counts only.
        emit_run_events(summary)
        # 9. Retention: run folders past LOYALTY_RETENTION_DAYS lose their customer-level files (not in a dry run).
        if not dry_run:
            expire_run_data(settings, as_of)
    if send_wave_id is not None:
        # 10. Or each wave as its own send-wave run at its time (once per day and wave); each reports into the summary.
        scheduled = schedule_waves(send_wave_id, as_of, plan.waves)
        logger.info("Waves scheduled as send-wave runs: %d; each adds what it sends to the summary", len(scheduled))
    logger.info(summary.headline())
    if failed is not None:
        raise failed
    return summary


@flow(name="daily-run", task_runner=ThreadPoolTaskRunner(max_workers=2))  # type: ignore[arg-type]  # Prefect's runner generics
def deployed_daily_run(as_of: date | None = None, dry_run: bool = False, data: str | None = None) -> RunSummary:
    """Run a shop's day: load, validate, profile, plan, render and send, then report.

    The deployment's entrypoint: ``daily_run`` on the real clock. It has no ``now``, so no form can turn a
    real run into a simulated one (waves that stop waiting, quiet hours judged on a made-up time). It sends
    no wave itself: each goes as its own ``send-wave`` run, scheduled at its time (``flows/send_wave.py``).

    Args:
        as_of: The business date; data after it is invisible. Default: today in the shop's time zone.
        dry_run: Render and record everything, send nothing.
        data: Folder or s3:// prefix of the contract tables. Default: the LOYALTY_DATA setting.
    """
    return daily_run.fn(as_of=as_of, dry_run=dry_run, data=data, send_waves_as_runs=True, partitions_as_runs=True)
