"""Every deployment, built from code, and ``serve_all``: one process that schedules and runs them.

``prefect.yaml`` declares the same deployments for process workers; a test keeps the two in step.

A deployment never offers a simulated clock: the flows that take ``now`` (for tests, the demo and
``loyalty simulate``) are deployed through their ``deployed_*`` twins, the same run without ``now``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prefect import serve
from prefect.client.orchestration import get_client
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron

from flows.adhoc_campaign import deployed_adhoc_campaign
from flows.audiences import audiences
from flows.backfill import deployed_backfill
from flows.daily_run import deployed_daily_run
from flows.notify import notify_operators
from flows.order_updates import deployed_order_updates
from flows.partition import daily_partition
from flows.process_feedback import process_feedback
from flows.send_wave import send_wave
from flows.survey_report import survey_report

if TYPE_CHECKING:
    from tasks.kernel.settings import Settings

# 06:00 in the shop's time zone: before the CRM team's day starts, after the night's orders are in.
DAILY_RUN_CRON = "0 6 * * *"
# Bounces and complaints reach the suppression list within a quarter of an hour.
FEEDBACK_CRON = "*/15 * * * *"
# Order-status messages within five minutes of the change.
ORDER_UPDATES_CRON = "*/5 * * * *"
# 07:00 in the shop's time zone: an hour after the daily run, whose profile the audiences are made from.
AUDIENCES_CRON = "0 7 * * *"
# Mondays 08:00 in the shop's time zone: the survey report of the week that just ended.
SURVEY_REPORT_CRON = "0 8 * * 1"
TAGS = ["loyalty-flows"]

logger = logging.getLogger("loyalty.serve")


def _summary(docstring: str | None) -> str:
    """Keep a flow docstring's first paragraph: the UI shows a deployment's description whole, Args and all."""
    return (docstring or "").split("\n\n", 1)[0].strip()


def deployments(settings: Settings) -> list[RunnerDeployment]:
    """Build every deployment of the project, scheduled in the shop's time zone."""
    # RunnerDeployment.from_flow is what Flow.to_deployment calls; to_deployment itself is typed
    # "RunnerDeployment | Coroutine" and returns a coroutine when called from async code. Neither
    # takes a ``timezone`` in Prefect 3.8.8: the Cron schedule carries it.
    return [
        RunnerDeployment.from_flow(
            deployed_daily_run,
            name="daily-run",
            schedule=Cron(DAILY_RUN_CRON, timezone=settings.shop_timezone),
            parameters={"dry_run": False},
            description=_summary(deployed_daily_run.description),
            tags=[*TAGS, "daily"],
        ),
        RunnerDeployment.from_flow(
            process_feedback,
            name="process-feedback",
            schedule=Cron(FEEDBACK_CRON, timezone=settings.shop_timezone),
            description=_summary(process_feedback.description),
            tags=[*TAGS, "feedback"],
        ),
        RunnerDeployment.from_flow(
            deployed_order_updates,
            name="order-updates",
            schedule=Cron(ORDER_UPDATES_CRON, timezone=settings.shop_timezone),
            description=_summary(deployed_order_updates.description),
            tags=[*TAGS, "order-updates"],
        ),
        # LOYALTY_AUDIENCES names the (segment, platform) files; a day not run yet fails the run, saying so
        RunnerDeployment.from_flow(
            audiences,
            name="audiences",
            schedule=Cron(AUDIENCES_CRON, timezone=settings.shop_timezone),
            description=_summary(audiences.description),
            tags=[*TAGS, "audiences"],
        ),
        RunnerDeployment.from_flow(
            survey_report,
            name="survey-report",
            schedule=Cron(SURVEY_REPORT_CRON, timezone=settings.shop_timezone),
            description=_summary(survey_report.description),
            tags=[*TAGS, "survey"],
        ),
        # no schedule: an engineer starts it from the UI ("Custom run") with the dates to replay
        RunnerDeployment.from_flow(
            deployed_backfill,
            name="backfill",
            parameters={"dry_run": False},
            description=_summary(deployed_backfill.description),
            tags=[*TAGS, "backfill"],
        ),
        # no schedule: a marketer fills in the form ("Custom run"), reads the preview and approves the pause
        # once approved, a campaign's waves go as send-wave runs at their times: nothing waits in this run
        RunnerDeployment.from_flow(
            deployed_adhoc_campaign,
            name="adhoc-campaign",
            description=_summary(deployed_adhoc_campaign.description),
            tags=[*TAGS, "adhoc"],
        ),
        # no schedule: the daily run (and an approved ad-hoc campaign) schedules one run per wave at its time;
        # an engineer runs a wave again by hand ("Custom run" or ``loyalty send-wave``), the ledger sends nothing twice
        RunnerDeployment.from_flow(
            send_wave,
            name="send-wave",
            description=_summary(send_wave.description),
            tags=[*TAGS, "wave"],
        ),
        # no schedule: the daily run (LOYALTY_PARTITIONS > 1) starts one run per partition of its customers and
        # waits for them; any number of workers of the pool take them
        RunnerDeployment.from_flow(
            daily_partition,
            name="daily-partition",
            description=_summary(daily_partition.description),
            tags=[*TAGS, "daily"],
        ),
        # no schedule: the operators' automations run it to publish an alert to their SNS topic (``setup-ops``)
        RunnerDeployment.from_flow(
            notify_operators,
            name="notify-operators",
            description=_summary(notify_operators.description),
            tags=[*TAGS, "ops"],
        ),
    ]


def serve_all(settings: Settings) -> None:
    """Serve every deployment from this process until it stops; stopping pauses their schedules.

    Prefect's runner pauses them as it shuts down, but only once it has started: a Ctrl-C (or SIGTERM) while
    it is still registering the deployments or entering its client would leave their schedules on, and the
    server would go on scheduling runs nobody takes. So whatever stops it, every deployment it registered is
    paused on the way out; pausing twice is harmless.
    """
    served = deployments(settings)
    try:
        serve(*served)
    except KeyboardInterrupt:  # Prefect's serve catches it once its runner runs; while registering it comes through
        logger.info("stopped before serving; pausing what was registered")
    finally:
        _pause(served)


def _pause(served: list[RunnerDeployment]) -> None:
    """Pause each served deployment the server knows and has not paused; a server that is gone is only logged."""
    paused = 0
    try:
        with get_client(sync_client=True) as client:
            for deployment in served:
                try:
                    found = client.read_deployment_by_name(deployment.full_name)
                except ObjectNotFound:
                    continue  # stopped before this one was registered
                if not found.paused:
                    client.pause_deployment(found.id)
                    paused += 1
    except Exception as err:  # on the way out, whatever the API does: tell the operator and stop
        logger.warning(
            "could not pause the served deployments' schedules (%s): pause them in the UI", type(err).__name__
        )
        return
    if paused:
        logger.info("paused %d deployment(s) the runner had not paused", paused)
