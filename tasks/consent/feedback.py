"""Provider feedback into suppressions: SES bounces and complaints from SQS, SMS opt-outs from SNS.

SES publishes bounce, complaint and delivery notifications to an SNS topic; an SQS queue
subscribed to it holds them until the ``process_feedback`` flow reads them. Each SQS body
is the SNS envelope (``Type``, ``Message``...) whose ``Message`` is the SES notification;
raw-delivery subscriptions (the notification itself as the body) and SES event publishing
(``eventType`` instead of ``notificationType``) are read too.

What suppresses (an address hash, on the email channel):

* a ``Permanent`` bounce - every bounced recipient, reason ``hard_bounce``;
* a complaint - every complained recipient, reason ``complaint``, unless the receiver
  reports it as ``not-spam``.

Transient and undetermined bounces, deliveries and every other type are acknowledged and
ignored. A message that cannot be read is left on the queue: its redrive policy moves it to
the dead-letter queue after ``maxReceiveCount`` receives, for a person to look at. A recipient
without an address among readable ones is skipped and counted; the others are suppressed.

Trust. Anyone allowed to send to the queue could suppress any address, so only notifications of
the SNS topics in ``LOYALTY_FEEDBACK_TOPIC_ARNS`` are read: any other message (another topic, no
SNS envelope at all: raw delivery cannot be checked, so keep it off) is dropped unread, deleted
and counted as ``rejected``. The envelope's ``TopicArn`` is what SNS wrote, not a signature: the
queue policy (``sns.amazonaws.com`` only, ``aws:SourceArn`` the topic) is what keeps others from
writing one. Unset, every topic is read on the local AWS (the demo) with a warning; on real AWS
the queue is left unread (nothing is lost: messages wait on the queue) and the run fails, saying so.
A message is deleted only after its suppressions are committed, so a crash re-reads it,
and re-reading is harmless (suppressions are idempotent).

Nothing here logs or raises with an address in it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from tasks.consent.suppression import SuppressionList, SuppressionReason
from tasks.kernel.aws import client
from tasks.kernel.enums import Channel
from tasks.kernel.settings import Settings, uses_local_aws

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef


SQS_BATCH = 10  # the most SQS returns or deletes in one call
RECEIVE_WAIT_SECONDS = 1  # a short long-poll: an empty answer then means the queue is really empty


class UnparseableFeedback(ValueError):  # noqa: N818  # a verdict on a message, like InvalidToken
    """A queue message that is not a readable SES notification; the message holds no PII."""


class ForeignTopic(ValueError):  # noqa: N818  # a verdict on a message, like InvalidToken
    """A queue message not published by an allowed SNS topic; the message holds no ARN or PII."""


class Feedback(BaseModel, frozen=True):
    """What one notification asks for: suppress these email addresses for this reason, or nothing."""

    kind: str
    reason: SuppressionReason | None = None
    addresses: tuple[str, ...] = ()
    malformed: int = Field(0, description="Recipients without a readable address, skipped.")


class FeedbackSummary(BaseModel):
    """What one feedback run did, in counts only (no addresses)."""

    received: int = Field(0, description="Queue messages read.")
    deleted: int = Field(0, description="Queue messages handled and deleted.")
    suppressed: dict[str, int] = Field(default_factory=dict, description="New suppressions, by reason.")
    already_suppressed: int = Field(0, description="Addresses reported again that were already suppressed.")
    ignored: int = Field(0, description="Messages needing no suppression: deliveries, soft bounces, others.")
    unparseable: int = Field(0, description="Messages left on the queue for its dead-letter queue.")
    rejected: int = Field(0, description="Messages not from an allowed SNS topic: deleted unread.")
    malformed_recipients: int = Field(0, description="Recipients without an address, skipped (the others counted).")
    queue_not_read: bool = Field(
        False, description="The queue was left unread: on real AWS LOYALTY_FEEDBACK_TOPIC_ARNS must be set."
    )
    not_deleted: int = Field(0, description="Handled messages SQS refused to delete; they come back, harmlessly.")
    sms_opted_out: int = Field(0, description="Phone numbers SNS lists as opted out of SMS.")

    def merge(self, other: FeedbackSummary) -> FeedbackSummary:
        """Return the sum of two summaries."""
        suppressed = Counter(self.suppressed)
        suppressed.update(other.suppressed)
        return FeedbackSummary(
            received=self.received + other.received,
            deleted=self.deleted + other.deleted,
            suppressed=dict(suppressed),
            already_suppressed=self.already_suppressed + other.already_suppressed,
            ignored=self.ignored + other.ignored,
            unparseable=self.unparseable + other.unparseable,
            rejected=self.rejected + other.rejected,
            malformed_recipients=self.malformed_recipients + other.malformed_recipients,
            queue_not_read=self.queue_not_read or other.queue_not_read,
            not_deleted=self.not_deleted + other.not_deleted,
            sms_opted_out=self.sms_opted_out + other.sms_opted_out,
        )

    def headline(self) -> str:
        """Return one line for the log."""
        by_reason = ", ".join(f"{k} {v}" for k, v in sorted(self.suppressed.items())) or "none"
        return (
            f"feedback: {self.received} messages, {self.deleted} deleted, {self.ignored} ignored,"
            f" {self.unparseable} unparseable, {self.rejected} rejected (topic not allowed),"
            f" {self.malformed_recipients} recipients without an address; new suppressions: {by_reason};"
            f" {self.already_suppressed} already suppressed; {self.sms_opted_out} SMS numbers opted out"
        )


def parse_notification(body: str, topics: frozenset[str] | None = None) -> Feedback:
    """Read one SQS message body (SNS envelope or raw SES notification) into what it asks for.

    ``topics``: the SNS topic ARNs a message must come from (``None``: any, raw delivery included).

    Raises:
        UnparseableFeedback: the body is not JSON, or not shaped like an SES notification.
        ForeignTopic: ``topics`` is given and the body is no SNS envelope of one of them.
    """
    document = _json_object(body, "message body")
    if topics is not None:
        topic = document.get("TopicArn")
        if not isinstance(topic, str) or topic not in topics:
            raise ForeignTopic("the message is not from an allowed SNS topic")
    if "Type" in document and "notificationType" not in document and "eventType" not in document:
        if document["Type"] != "Notification":  # SubscriptionConfirmation and the like
            return Feedback(kind=f"sns:{document['Type']}")
        message = document.get("Message")
        if not isinstance(message, str):
            raise UnparseableFeedback("SNS notification without a string Message")
        document = _json_object(message, "SNS Message")
    kind = document.get("notificationType", document.get("eventType"))
    if not isinstance(kind, str):
        raise UnparseableFeedback("no notificationType or eventType")
    if kind == "Bounce":
        bounce = _object(document, "bounce")
        bounce_type = bounce.get("bounceType")
        if not isinstance(bounce_type, str):
            raise UnparseableFeedback("bounce without a bounceType")
        if bounce_type != "Permanent":  # Transient, Undetermined: the address may work tomorrow
            return Feedback(kind=f"Bounce:{bounce_type}")
        addresses, malformed = _recipients(bounce, "bouncedRecipients")
        return Feedback(
            kind="Bounce:Permanent", reason=SuppressionReason.HARD_BOUNCE, addresses=addresses, malformed=malformed
        )
    if kind == "Complaint":
        complaint = _object(document, "complaint")
        if complaint.get("complaintFeedbackType") == "not-spam":  # the receiver says it was wanted
            return Feedback(kind="Complaint:not-spam")
        addresses, malformed = _recipients(complaint, "complainedRecipients")
        return Feedback(kind="Complaint", reason=SuppressionReason.COMPLAINT, addresses=addresses, malformed=malformed)
    return Feedback(kind=kind)


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise UnparseableFeedback(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise UnparseableFeedback(f"{what} is not a JSON object")
    return value


def _object(document: dict[str, Any], field: str) -> dict[str, Any]:
    value = document.get(field)
    if not isinstance(value, dict):
        raise UnparseableFeedback(f"no {field} object")
    return value


def _recipients(section: dict[str, Any], field: str) -> tuple[tuple[str, ...], int]:
    """The recipients' addresses, and how many had none: one bad recipient must not spare the others."""
    recipients = section.get(field)
    if not isinstance(recipients, list) or not recipients:
        raise UnparseableFeedback(f"no {field}")
    addresses = []
    for recipient in recipients:
        raw = recipient.get("emailAddress") if isinstance(recipient, dict) else None
        # SES may give "Name <address>"; only the address is hashed
        address = parseaddr(raw)[1] if isinstance(raw, str) else ""
        if "@" in address:
            addresses.append(address)
    if not addresses:
        raise UnparseableFeedback(f"no recipient in {field} has an email address")
    return tuple(addresses), len(recipients) - len(addresses)


def drain_queue(
    sqs: SQSClient,
    queue_url: str,
    suppressions: SuppressionList,
    max_messages: int,
    wait_seconds: int = RECEIVE_WAIT_SECONDS,
    topics: frozenset[str] | None = None,
) -> FeedbackSummary:
    """Read up to ``max_messages`` notifications, 10 at a time, until the queue is empty; suppress, then delete.

    ``topics``: the SNS topics to trust (``None``: any); other messages are deleted unread.
    """
    summary = FeedbackSummary()
    while summary.received < max_messages:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(SQS_BATCH, max_messages - summary.received),
            WaitTimeSeconds=wait_seconds,
        )
        messages = response.get("Messages", [])
        if not messages:
            break
        summary = summary.merge(_handle_batch(sqs, queue_url, suppressions, messages, topics))
    return summary


def _handle_batch(
    sqs: SQSClient,
    queue_url: str,
    suppressions: SuppressionList,
    messages: Sequence[MessageTypeDef],
    topics: frozenset[str] | None,
) -> FeedbackSummary:
    to_suppress: dict[SuppressionReason, list[str]] = {}
    handled: list[str] = []
    ignored = unparseable = rejected = malformed = 0
    for message in messages:
        try:
            feedback = parse_notification(str(message.get("Body", "")), topics)
        except ForeignTopic:
            rejected += 1  # dropped unread: nobody outside the allowed topics suppresses anyone
            handled.append(message["ReceiptHandle"])
            continue
        except UnparseableFeedback:
            unparseable += 1
            continue
        malformed += feedback.malformed
        if feedback.reason is None:
            ignored += 1
        else:
            to_suppress.setdefault(feedback.reason, []).extend(feedback.addresses)
        handled.append(message["ReceiptHandle"])
    # Suppressions are committed before any message is deleted: a crash in between re-reads them.
    suppressed = {
        reason.value: suppressions.add_many(Channel.EMAIL, addresses, reason)
        for reason, addresses in to_suppress.items()
    }
    already = sum(len(a) for a in to_suppress.values()) - sum(suppressed.values())
    deleted = delete_messages(sqs, queue_url, handled)
    return FeedbackSummary(
        received=len(messages),
        deleted=deleted,
        suppressed={k: v for k, v in suppressed.items() if v},
        already_suppressed=already,
        ignored=ignored,
        unparseable=unparseable,
        rejected=rejected,
        malformed_recipients=malformed,
        not_deleted=len(handled) - deleted,
    )


def delete_messages(sqs: SQSClient, queue_url: str, receipt_handles: list[str]) -> int:
    """Delete handled messages (at most 10); return how many SQS deleted."""
    if not receipt_handles:
        return 0
    response = sqs.delete_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(receipt_handles)]
    )
    return len(response.get("Successful", []))


def opted_out_phones(sns: SNSClient) -> Iterator[str]:
    """Yield every phone number SNS lists as opted out of SMS (E.164), page by page."""
    for page in sns.get_paginator("list_phone_numbers_opted_out").paginate():
        yield from page.get("phoneNumbers", [])


def record_opt_outs(phones: Iterable[str], suppressions: SuppressionList) -> FeedbackSummary:
    """Suppress opted-out phone numbers on the SMS channel."""
    listed = list(phones)
    new = suppressions.add_many(Channel.SMS, listed, SuppressionReason.SMS_OPT_OUT)
    return FeedbackSummary(
        suppressed={SuppressionReason.SMS_OPT_OUT.value: new} if new else {},
        already_suppressed=len(listed) - new,
        sms_opted_out=len(listed),
    )


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10)
def drain_feedback_queue(settings: Settings, max_messages: int) -> FeedbackSummary:
    """Turn SES bounce and complaint notifications on the feedback queue into suppressions."""
    logger = get_run_logger()
    if settings.feedback_queue_url is None:
        logger.warning("LOYALTY_FEEDBACK_QUEUE_URL is not set: bounces and complaints are not read")
        return FeedbackSummary()
    topics = None if settings.feedback_topic_arns is None else frozenset(settings.feedback_topic_arns)
    if topics is None:
        if not uses_local_aws(settings):
            logger.error(UNTRUSTED_QUEUE)
            return FeedbackSummary(queue_not_read=True)
        logger.warning("LOYALTY_FEEDBACK_TOPIC_ARNS is not set: on the local AWS, messages of any topic are read")
    sqs: SQSClient = client("sqs", settings)
    suppressions = SuppressionList.for_settings(settings)
    return drain_queue(sqs, settings.feedback_queue_url, suppressions, max_messages, topics=topics)


UNTRUSTED_QUEUE = (
    "LOYALTY_FEEDBACK_TOPIC_ARNS is not set: the feedback queue is left unread (its messages wait there);"
    " set it to the SNS topic ARNs SES publishes bounces and complaints to"
)


def require_queue_read(summary: FeedbackSummary) -> None:
    """Fail the run when the queue was left unread for want of a topic allow-list (after SMS opt-outs were synced).

    Raises:
        RuntimeError: ``summary.queue_not_read``.
    """
    if summary.queue_not_read:
        raise RuntimeError(UNTRUSTED_QUEUE)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10)
def sync_sms_opt_outs(settings: Settings) -> FeedbackSummary:
    """Suppress every phone number that SNS lists as opted out of SMS."""
    sns: SNSClient = client("sns", settings)
    return record_opt_outs(opted_out_phones(sns), SuppressionList.for_settings(settings))
