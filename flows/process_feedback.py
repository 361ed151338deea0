"""Provider feedback: SES bounces and complaints, and SMS opt-outs, into the suppression list."""

from __future__ import annotations

from prefect import flow, get_run_logger

from tasks.consent.feedback import FeedbackSummary, drain_feedback_queue, require_queue_read, sync_sms_opt_outs
from tasks.kernel.paths import private_files
from tasks.kernel.settings import Settings


@flow
def process_feedback(max_messages: int = 10_000) -> FeedbackSummary:
    """Suppress the hard bounces, complaints and SMS opt-outs AWS reports, at most max_messages queue messages a run."""
    settings = Settings()

    # 1. Bounces and complaints from the SES feedback queue, of the allowed SNS topics only; handled messages
    #    (and those of other topics) are deleted, unreadable ones stay.
    with private_files():  # the suppression list is created private (0700 folder, 0600 files)
        email = drain_feedback_queue(settings, max_messages)
        # 2. Phone numbers SNS lists as opted out of SMS.
        sms = sync_sms_opt_outs(settings)
    # 3. Counts only: no address is logged.
    summary = email.merge(sms)
    get_run_logger().info(summary.headline())
    # 4. A queue left unread (no topic allow-list on real AWS) fails the run: nobody should miss it.
    require_queue_read(summary)
    return summary
