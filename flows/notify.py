"""The operators' SNS topic as a Prefect action: ``notify-operators`` publishes one alert to it.

Prefect's automations run their actions on the Prefect server, which holds no AWS credentials and has
no SNS notification block. So ``loyalty setup-ops --sns-topic ARN`` makes each automation *run this
deployment* instead (its subject and message templated from the event); the run, on the ECS work pool,
publishes with a role allowed nothing but ``sns:Publish`` on that one topic (infra/loyalty.yaml's
``OpsNotifierRole``: the worker's own role may publish SMS only). What it sends comes from the event:
flow and run names, days and counts, never a customer.
"""

from __future__ import annotations

import re

from prefect import flow, get_run_logger

from tasks.kernel.aws import client
from tasks.kernel.settings import Settings

# SNS takes a subject of at most 100 printable ASCII characters, no line breaks.
_SUBJECT_LENGTH = 100
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]+")


def sns_subject(text: str) -> str:
    """``text`` as SNS accepts a subject: printable ASCII on one line, at most 100 characters."""
    cleaned = " ".join(_NOT_PRINTABLE_ASCII.sub(" ", text).split())
    return (cleaned or "Loyalty Flows alert")[:_SUBJECT_LENGTH]


# retries: SNS answers a throttled or failed publish with an error, and an alert sent twice is better than none
@flow(name="notify-operators", retries=3, retry_delay_seconds=20)
def notify_operators(subject: str, message: str, topic_arn: str) -> str:
    """Publish one alert to the operators' SNS topic; return SNS's message id.

    Args:
        subject: The alert's title (email subscribers see it as the subject).
        message: The alert's text.
        topic_arn: The operators' topic (the stack's OperatorsTopicArn output).
    """
    answer = client("sns", Settings()).publish(TopicArn=topic_arn, Subject=sns_subject(subject), Message=message)
    get_run_logger().info("Alert published to the operators' topic: %s", sns_subject(subject))
    return str(answer["MessageId"])
