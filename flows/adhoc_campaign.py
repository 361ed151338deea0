"""An ad-hoc campaign: a marketer's one-off send, previewed and approved in the Prefect UI before anything goes out.

One orchestration for both faces: the ``adhoc-campaign`` deployment (a form in the UI, approval by
``pause_flow_run``) and ``loyalty adhoc`` (the same flow, in-process, approval at the terminal). Who
reviews the preview is the only difference: a ``Reviewer``, the UI's unless ``reviewed_by`` names another.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

from prefect import flow, get_run_logger, pause_flow_run, unmapped
from prefect.exceptions import FlowPauseTimeout
from prefect.task_runners import ThreadPoolTaskRunner

from flows.waves import ShardsFailedError, deliver_waves, schedule_waves, send_wave_deployment
from tasks.consent.tokens import require_signing_secret
from tasks.data.snapshot import load_snapshot
from tasks.jobs.adhoc import (
    AdhocRequest,
    AdhocSummary,
    Approval,
    adhoc_paths,
    commit_plan,
    plan_adhoc,
    prepare_campaign,
    render_adhoc,
    report_adhoc,
    summarise_adhoc,
    withdraw_plan,
)
from tasks.jobs.adhoc_preview import AdhocPreview, Sample, approval_description, publish_preview, render_samples
from tasks.kernel.calendar import SendClock, business_date, flow_run_id, sending_moment
from tasks.kernel.enums import AdhocStatus
from tasks.kernel.paths import RunPaths, private_files
from tasks.kernel.runstore import pull_adhoc_plans, run_folder
from tasks.kernel.settings import Settings
from tasks.profile.features import profile_customers
from tasks.recommend.picks import recommend_products
from tasks.report.run_report import start_send_progress
from tasks.state.preference_snapshot import merge_preferences

# Seconds between two looks at whether someone answered the approval form.
APPROVAL_POLL_SECONDS = 10


class Reviewer(Protocol):
    """Who sees the preview and says yes or no before anything is sent."""

    def show(self, preview: AdhocPreview, samples: list[Sample]) -> None:
        """See the preview (sizes, decisions, samples for a made-up customer)."""

    def approve(self, preview: AdhocPreview, request: AdhocRequest) -> Approval | None:
        """Answer: approved or rejected (with a comment); None when nobody answered in time."""


class UiReviewer:
    """The Prefect UI: the preview is an artifact; the run pauses with an approval form."""

    def show(self, preview: AdhocPreview, samples: list[Sample]) -> None:
        """The preview artifact is already published; nothing more to show."""

    def approve(self, preview: AdhocPreview, request: AdhocRequest) -> Approval | None:
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


_reviewer: ContextVar[Reviewer | None] = ContextVar("adhoc_reviewer", default=None)


@contextmanager
def reviewed_by(reviewer: Reviewer) -> Iterator[None]:
    """Have ``reviewer`` (a terminal, say) review the ad-hoc campaigns run in this context, instead of the UI."""
    token = _reviewer.set(reviewer)
    try:
        yield
    finally:
        _reviewer.reset(token)


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))  # type: ignore[arg-type]  # Prefect's runner generics
def adhoc_campaign(request: AdhocRequest, send_waves_as_runs: bool = False) -> AdhocSummary:
    """Send a one-off campaign: plan its audience, publish a preview, wait for approval, then send through the ledger.

    The run pauses with an approval form ("Send 1,234 emails and 56 SMS?", and how many customers in
    service recovery are left out or included) beside the preview artifact ``adhoc-<name>-preview``.
    A rejection stops it with nothing sent; so does silence for ``approve_within_hours``, after which
    Prefect marks the run Failed ("paused and never resumed"). A dry run stops after the preview. An
    offer whose template does not show the coupon stops the run before any data is read.

    Args:
        request: Who (a segment or an expression), which template, channels, offer, send time, priority in the
            frequency budget, and whether customers in service recovery get it too.
        send_waves_as_runs: Once approved, schedule one ``send-wave`` run per wave at its time and end, instead of
            waiting in this run for a later send time (the deployment does; ``loyalty adhoc`` sends inline).
    """
    settings = Settings()
    reviewer = _reviewer.get() or UiReviewer()
    as_of = request.as_of or business_date(settings.shop_timezone)
    dry_run = request.dry_run or settings.dry_run
    settings = settings.model_copy(update={"dry_run": dry_run})  # every step knows a rehearsal from a real run
    logger = get_run_logger()
    if dry_run:
        logger.warning("DRY RUN: the preview only; nothing is sent")
    require_signing_secret(settings, dry_run)  # a real send signs with the shop's one secret, never a host's own key
    # waves as their own runs need the send-wave deployment: refused before any data is read if it is missing
    send_wave_id = send_wave_deployment() if send_waves_as_runs and not dry_run else None
    # 0. The campaign the request describes; a bad audience or template stops here, before any data is read.
    campaign, audience = prepare_campaign(request, settings)
    paths = adhoc_paths(settings.output_dir, request.name, as_of)

    def waiting() -> None:
        logger.warning("Another run of %s for %s is under way; waiting for it to finish", campaign.name, as_of)

    # With LOYALTY_OUTPUT_DIR=s3://...: the campaign's folder as S3 holds it, pushed after every step.
    with private_files(), paths.exclusive(on_wait=waiting), run_folder(paths, settings) as folder:
        # 1. The day's data and profile, built as the daily run builds them, in the campaign's own folder.
        load_snapshot(request.data or settings.data, as_of, paths, settings)
        merge_preferences(paths, as_of, settings)  # the customers' facts and choices (channels, topics, pause)
        profile_customers(paths, as_of, settings)
        if campaign.products == "picks":
            recommend_products(paths, as_of, settings)
        folder.push()
        pull_adhoc_plans(settings, as_of, skip=paths)  # the other campaigns' plans, for the budget
        # 2. The audience through the planner's gates: consent, suppression, quiet hours, the pause after service
        #    recovery (unless the request includes those customers), budget (at the request's priority), holdout, ledger.
        preview = plan_adhoc(
            campaign,
            audience,
            paths,
            as_of,
            settings,
            request.send_at,
            sending_moment(),
            request.include_service_recovery,
            request.email_copy,
        )
        folder.push()  # the plan waiting for approval counts in other runs' budgets
        # 3. One sample per locale, for a made-up customer: the preview shows nobody's data.
        samples = render_samples(campaign, preview.locales, as_of, settings, request.email_copy)
        # 4. The preview, as an artifact (and to the reviewer).
        publish_preview(preview, samples, request.name, dry_run)
        reviewer.show(preview, samples)
        if dry_run or preview.to_send == 0:
            return _stop(preview, paths, AdhocStatus.DRY_RUN if dry_run else AdhocStatus.NOTHING_TO_SEND)
        # 5. A person approves (or rejects); nothing is sent without a yes.
        approval = reviewer.approve(preview, request)
        if approval is None or not approval.approved:
            return _stop(preview, paths, AdhocStatus.TIMED_OUT if approval is None else AdhocStatus.REJECTED, approval)
        # 6a. Coupons and send shards of the approved plan; every message rendered before any is sent.
        plan = commit_plan(campaign, paths, settings, sending_moment())
        render_adhoc.map(
            unmapped(campaign),
            unmapped(paths),
            plan.shards,
            unmapped(as_of),
            unmapped(settings),
            unmapped(request.email_copy),
        ).result()
        folder.push()
        # 6b. Wave by wave (a send time per zone) through the ledger, as the daily run sends; or, as runs, later.
        delivery: Counter[str] = Counter()
        failed: ShardsFailedError | None = None  # a failed shard still gets the campaign reported, then fails the flow
        if send_wave_id is None:
            run_id, progress = flow_run_id(), start_send_progress(plan.to_send)
            try:
                delivery = deliver_waves(
                    paths, plan.waves, settings, run_id, progress, plan.to_send, SendClock(), folder.push
                )
            except ShardsFailedError as exc:
                delivery, failed = exc.delivery, exc
        folder.push()
        # 7. The summary file, the outbox index and the result artifact.
        summary = summarise_adhoc(preview, AdhocStatus.SENT, paths, approval.comment, delivery)
        summary = report_adhoc(summary, paths, plan.shards)
    if send_wave_id is not None:
        # 8. Each wave as its own send-wave run at its time (once per campaign, day and wave); each adds to the summary.
        scheduled = schedule_waves(send_wave_id, as_of, plan.waves, adhoc=request.name)
        get_run_logger().info(
            "Waves scheduled as send-wave runs: %d; each adds what it sends to the summary", len(scheduled)
        )
    _done(summary)
    if failed is not None:
        raise failed
    return summary


@flow(name="adhoc-campaign", task_runner=ThreadPoolTaskRunner(max_workers=2))  # type: ignore[arg-type]  # Prefect's runner generics
def deployed_adhoc_campaign(request: AdhocRequest) -> AdhocSummary:
    """Send a one-off campaign: plan its audience, publish a preview, wait for approval, then send through the ledger.

    The run pauses with an approval form ("Send 1,234 emails and 56 SMS?", and how many customers in
    service recovery are left out or included) beside the preview artifact ``adhoc-<name>-preview``.
    Once approved, each wave goes as its own ``send-wave`` run at its time: nothing waits in this run.

    Args:
        request: Who (a segment or an expression), which template, channels, offer, send time, priority in the
            frequency budget, and whether customers in service recovery get it too.
    """
    # the deployment's entrypoint: the form shows the request only, never how the waves are sent
    return adhoc_campaign.fn(request, send_waves_as_runs=True)


def _stop(
    preview: AdhocPreview, paths: RunPaths, status: AdhocStatus, approval: Approval | None = None
) -> AdhocSummary:
    """Stop with nothing sent: the plan is set aside, so no frequency budget counts it."""
    withdraw_plan(paths, status)
    return _done(summarise_adhoc(preview, status, paths, approval.comment if approval else ""))


def _done(summary: AdhocSummary) -> AdhocSummary:
    get_run_logger().info(summary.headline())
    return summary
