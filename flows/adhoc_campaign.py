"""An ad-hoc campaign: a marketer's one-off send, previewed and approved in the Prefect UI before anything goes out."""

from __future__ import annotations

from prefect import flow, get_run_logger, pause_flow_run, unmapped
from prefect.exceptions import FlowPauseTimeout
from prefect.task_runners import ThreadPoolTaskRunner

from flows.waves import deliver_waves
from tasks.data.snapshot import load_snapshot
from tasks.jobs.adhoc import (
    AdhocPreview,
    AdhocRequest,
    AdhocSummary,
    Approval,
    Status,
    adhoc_paths,
    approval_description,
    commit_plan,
    plan_adhoc,
    prepare_campaign,
    publish_preview,
    render_adhoc,
    render_samples,
    report_adhoc,
    summarise_adhoc,
    withdraw_plan,
)
from tasks.kernel.calendar import SendClock, business_date, flow_run_id, sending_moment
from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import Settings
from tasks.profile.features import profile_customers
from tasks.recommend.picks import recommend_products
from tasks.report.run_report import start_send_progress

# Seconds between two looks at whether someone answered the approval form.
APPROVAL_POLL_SECONDS = 10


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))  # type: ignore[arg-type]  # Prefect's runner generics
def adhoc_campaign(request: AdhocRequest) -> AdhocSummary:
    """Send a one-off campaign: plan its audience, publish a preview, wait for approval, then send through the ledger.

    The run pauses with an approval form ("Send 1,234 emails and 56 SMS?") beside the preview
    artifact ``adhoc-<name>-preview``. A rejection stops it with nothing sent; so does silence for
    ``approve_within_hours``, after which Prefect marks the run Failed ("paused and never resumed").
    A dry run stops after the preview.

    Args:
        request: Who (a segment or an expression), which template, channels, offer and send time.
    """
    settings = Settings()
    as_of = request.as_of or business_date(settings.shop_timezone)
    dry_run = request.dry_run or settings.dry_run
    logger = get_run_logger()
    if dry_run:
        logger.warning("DRY RUN: the preview only; nothing is sent")
    # 0. The campaign the request describes; a bad audience or template stops here, before any data is read.
    campaign, audience = prepare_campaign(request, settings)
    paths = adhoc_paths(settings.output_dir, request.name, as_of)

    def waiting() -> None:
        logger.warning("Another run of %s for %s is under way; waiting for it to finish", campaign.name, as_of)

    with paths.exclusive(on_wait=waiting):
        # 1. The day's data and profile, built as the daily run builds them, in the campaign's own folder.
        load_snapshot(request.data or settings.data, as_of, paths, settings)
        profile_customers(paths, as_of, settings)
        if campaign.products == "picks":
            recommend_products(paths, as_of, settings)
        # 2. The audience through consent, suppression, holdout, quiet hours, the budget and the ledger.
        preview = plan_adhoc(campaign, audience, paths, as_of, settings, request.send_at, sending_moment())
        # 3. One sample per locale, for a made-up customer: the preview shows nobody's data.
        samples = render_samples(campaign, preview.locales, as_of, settings)
        # 4. The preview, as an artifact.
        publish_preview(preview, samples, request.name, dry_run)
        if dry_run or preview.to_send == 0:
            return _stop(preview, paths, "dry_run" if dry_run else "nothing_to_send")
        # 5. A person approves (or rejects) in the UI; nothing is sent without a yes.
        approval = _ask_approval(preview, request)
        if approval is None or not approval.approved:
            return _stop(preview, paths, "timed_out" if approval is None else "rejected", approval)
        # 6a. Coupons and send shards of the approved plan; every message rendered before any is sent.
        plan = commit_plan(campaign, paths, settings, sending_moment())
        render_adhoc.map(unmapped(campaign), unmapped(paths), plan.shards, unmapped(as_of), unmapped(settings)).result()
        # 6b. Wave by wave (a send time per zone) through the ledger, as the daily run sends.
        run_id, progress = flow_run_id(), start_send_progress(plan.to_send)
        delivery = deliver_waves(paths, plan.waves, settings, run_id, progress, plan.to_send, SendClock())
        # 7. The summary file, the outbox index and the result artifact.
        summary = report_adhoc(summarise_adhoc(preview, "sent", paths, approval.comment, delivery), paths, plan.shards)
    return _done(summary)


def _ask_approval(preview: AdhocPreview, request: AdhocRequest) -> Approval | None:
    """Pause until someone answers the approval form; None when nobody did in time."""
    form = Approval.with_initial_data(description=approval_description(preview, request.name), approved=False)
    try:
        return pause_flow_run(
            wait_for_input=form,
            timeout=request.approve_within_hours * 3600,
            poll_interval=APPROVAL_POLL_SECONDS,
            key="approval",
        )
    except FlowPauseTimeout:
        return None


def _stop(preview: AdhocPreview, paths: RunPaths, status: Status, approval: Approval | None = None) -> AdhocSummary:
    """Stop with nothing sent: the plan is set aside, so no frequency budget counts it."""
    withdraw_plan(paths, status)
    return _done(summarise_adhoc(preview, status, paths, approval.comment if approval else ""))


def _done(summary: AdhocSummary) -> AdhocSummary:
    get_run_logger().info(summary.headline())
    return summary
