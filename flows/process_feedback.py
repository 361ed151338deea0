"""Provider feedback: SES bounces and complaints, and SMS opt-outs, into the suppression list."""

from __future__ import annotations

from prefect import flow, get_run_logger

from tasks.consent.feedback import FeedbackSummary, drain_feedback_queue, sync_sms_opt_outs
from tasks.kernel.settings import Settings


@flow
def process_feedback(max_messages: int = 10_000) -> FeedbackSummary:
    """Suppress the hard bounces, complaints and SMS opt-outs AWS reports, at most max_messages queue messages a run."""
    settings = Settings()

    # 1. Bounces and complaints from the SES feedback queue; handled messages are deleted, unreadable ones stay.
    email = drain_feedback_queue(settings, max_messages)
    # 2. Phone numbers SNS lists as opted out of SMS.
    sms = sync_sms_opt_outs(settings)
    # 3. Counts only: no address is logged.
    summary = email.merge(sms)
    get_run_logger().info(summary.headline())
    return summary
