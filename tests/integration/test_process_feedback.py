"""The feedback flow under a real Prefect server, reading a local SQS queue and SNS.

moto notes (5.2.x): SES never emits bounce/complaint events itself, so the test writes
SNS-wrapped SES notifications straight onto the queue. SNS ``list_phone_numbers_opted_out``
returns a fixed list of seven UK numbers (``+4474205...``, ``+4477009...``); the "ends in 99"
rule belongs only to ``check_if_phone_number_is_opted_out``, and publishing to such a
number does not add it to the list. The SMS part therefore checks that every number moto
lists ends up suppressed.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from prefect import flow

from flows.process_feedback import process_feedback
from tasks.consent.feedback import (
    Feedback,
    FeedbackSummary,
    ForeignTopic,
    UnparseableFeedback,
    drain_feedback_queue,
    drain_queue,
    parse_notification,
    require_queue_read,
)
from tasks.consent.suppression import SuppressionList, SuppressionReason, address_hash
from tasks.kernel.enums import Channel
from tasks.kernel.settings import Settings
from tests.conftest import REGION

TOPIC_ARN = "arn:aws:sns:eu-central-1:123456789012:loyalty-ses-feedback"


def _ses(notification_type: str, **section: Any) -> dict[str, Any]:
    notification: dict[str, Any] = {
        "notificationType": notification_type,
        "mail": {"timestamp": "2024-06-01T06:00:00.000Z", "source": "hello@shop.example.com", "messageId": "m-1"},
    }
    notification.update(section)
    return notification


def _bounce(bounce_type: str, *addresses: str) -> dict[str, Any]:
    recipients = [{"emailAddress": a, "status": "5.1.1", "action": "failed"} for a in addresses]
    return _ses(
        "Bounce", bounce={"bounceType": bounce_type, "bounceSubType": "General", "bouncedRecipients": recipients}
    )


def _complaint(*addresses: str, feedback_type: str = "abuse") -> dict[str, Any]:
    recipients = [{"emailAddress": a} for a in addresses]
    return _ses("Complaint", complaint={"complainedRecipients": recipients, "complaintFeedbackType": feedback_type})


def _delivery(address: str) -> dict[str, Any]:
    return _ses("Delivery", delivery={"recipients": [address], "smtpResponse": "250 ok"})


def _sns(notification: dict[str, Any]) -> str:
    """The SQS body SNS writes for a notification (raw delivery off)."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "00000000-0000-0000-0000-000000000000",
            "TopicArn": TOPIC_ARN,
            "Message": json.dumps(notification),
            "Timestamp": "2024-06-01T06:00:01.000Z",
            "SignatureVersion": "1",
        }
    )


@pytest.fixture
def queue_url(aws: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url: str = boto3.client("sqs", region_name=REGION).create_queue(QueueName="loyalty-ses-feedback")["QueueUrl"]
    monkeypatch.setenv("LOYALTY_FEEDBACK_QUEUE_URL", url)
    return url


def _put(queue_url: str, *bodies: str) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)


def _queue_counts(queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages left on the queue."""
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.mark.usefixtures("prefect_harness")
def test_feedback_suppresses_hard_bounces_complaints_and_opt_outs(queue_url: str) -> None:
    _put(
        queue_url,
        _sns(_bounce("Permanent", "hard@example.com", "Hard Two <hard2@example.com>")),
        _sns(_bounce("Transient", "soft@example.com")),
        _sns(_complaint("angry@example.com")),
        _sns(_delivery("happy@example.com")),
        "this is not a notification {",
    )

    summary = process_feedback()

    suppressions = SuppressionList.for_settings(Settings())
    assert suppressions.hashes(Channel.EMAIL) >= {
        suppressions.hash("hard@example.com"),
        suppressions.hash("hard2@example.com"),
        suppressions.hash("angry@example.com"),
    }
    assert suppressions.hash("soft@example.com") not in suppressions.hashes(Channel.EMAIL)
    assert suppressions.hash("happy@example.com") not in suppressions.hashes(Channel.EMAIL)
    assert suppressions.reason(Channel.EMAIL, "hard2@example.com") is SuppressionReason.HARD_BOUNCE
    assert suppressions.reason(Channel.EMAIL, "angry@example.com") is SuppressionReason.COMPLAINT

    listed = boto3.client("sns", region_name=REGION).list_phone_numbers_opted_out()["phoneNumbers"]
    assert listed, "moto lists a fixed set of opted-out numbers"
    assert suppressions.hashes(Channel.SMS) == {suppressions.hash(p) for p in listed}
    assert {suppressions.reason(Channel.SMS, p) for p in listed} == {SuppressionReason.SMS_OPT_OUT}

    assert summary.received == 5
    assert summary.deleted == 4
    assert summary.ignored == 2
    assert summary.unparseable == 1
    assert summary.suppressed == {"hard_bounce": 2, "complaint": 1, "sms_opt_out": len(listed)}
    assert summary.sms_opted_out == len(listed)
    # only the unreadable message is left, in flight until its redrive policy moves it to a dead-letter queue
    assert _queue_counts(queue_url) == (0, 1)


@pytest.mark.usefixtures("prefect_harness")
def test_reported_again_is_counted_not_suppressed_twice(queue_url: str) -> None:
    _put(queue_url, _sns(_complaint("angry@example.com")))
    process_feedback()
    _put(queue_url, _sns(_complaint("angry@example.com")), _sns(_bounce("Permanent", "ANGRY@example.com")))

    summary = process_feedback()

    assert summary.suppressed == {}
    assert summary.already_suppressed == 2 + summary.sms_opted_out
    assert summary.deleted == 2
    assert SuppressionList.for_settings(Settings()).reason(Channel.EMAIL, "angry@example.com") is (
        SuppressionReason.COMPLAINT
    )


@pytest.mark.usefixtures("prefect_harness")
def test_without_a_queue_only_sms_opt_outs_are_read(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOYALTY_FEEDBACK_QUEUE_URL", raising=False)

    summary = process_feedback()

    assert summary.received == 0
    assert summary.sms_opted_out > 0


def test_a_run_reads_at_most_max_messages_in_batches_of_ten(queue_url: str, tmp_path: Any) -> None:
    _put(queue_url, *[_sns(_delivery(f"c{i}@example.com")) for i in range(25)])
    sqs = boto3.client("sqs", region_name=REGION)
    suppressions = SuppressionList(tmp_path / "s.sqlite")

    first = drain_queue(sqs, queue_url, suppressions, max_messages=13)
    rest = drain_queue(sqs, queue_url, suppressions, max_messages=100)

    assert (first.received, first.deleted) == (13, 13)
    assert (rest.received, rest.deleted) == (12, 12)
    assert _queue_counts(queue_url) == (0, 0)


# Parsing is pure; it sits here with the flow it feeds.


def test_an_sns_wrapped_permanent_bounce_asks_to_suppress_its_recipients() -> None:
    feedback = parse_notification(_sns(_bounce("Permanent", "a@example.com", "B <b@example.com>")))

    assert feedback == Feedback(
        kind="Bounce:Permanent", reason=SuppressionReason.HARD_BOUNCE, addresses=("a@example.com", "b@example.com")
    )


def test_a_raw_delivered_complaint_and_an_event_publishing_bounce_are_read() -> None:
    raw = parse_notification(json.dumps(_complaint("a@example.com")))
    event = _bounce("Permanent", "b@example.com")
    event["eventType"] = event.pop("notificationType")

    assert raw.reason is SuppressionReason.COMPLAINT
    assert parse_notification(_sns(event)).addresses == ("b@example.com",)


@pytest.mark.parametrize(
    "notification",
    [
        _bounce("Transient", "a@example.com"),
        _bounce("Undetermined", "a@example.com"),
        _complaint("a@example.com", feedback_type="not-spam"),
        _delivery("a@example.com"),
        _ses("AmazonSnsSubscriptionSucceeded"),
    ],
)
def test_soft_bounces_deliveries_and_others_suppress_nothing(notification: dict[str, Any]) -> None:
    feedback = parse_notification(_sns(notification))

    assert feedback.reason is None
    assert feedback.addresses == ()


def test_an_sns_subscription_confirmation_is_ignored() -> None:
    assert parse_notification(json.dumps({"Type": "SubscriptionConfirmation", "Message": "confirm"})).reason is None


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[1, 2]",
        json.dumps({"Type": "Notification", "Message": "not json"}),
        json.dumps({"Type": "Notification", "Message": {"notificationType": "Bounce"}}),
        _sns({"mail": {}}),
        _sns(_ses("Bounce")),
        _sns(_ses("Bounce", bounce={"bouncedRecipients": [{"emailAddress": "a@example.com"}]})),
        _sns(_ses("Bounce", bounce={"bounceType": "Permanent", "bouncedRecipients": []})),
        _sns(_ses("Bounce", bounce={"bounceType": "Permanent", "bouncedRecipients": [{"status": "5.1.1"}]})),
        _sns(_ses("Complaint", complaint={"complainedRecipients": [{"emailAddress": "no-at-sign"}]})),
    ],
)
def test_unreadable_messages_are_refused_without_echoing_them(body: str) -> None:
    with pytest.raises(UnparseableFeedback) as caught:
        parse_notification(body)

    assert "example.com" not in str(caught.value)
    assert "no-at-sign" not in str(caught.value)


OTHER_TOPIC = "arn:aws:sns:eu-central-1:999999999999:someone-elses-topic"


def test_only_the_allowed_topics_suppress_and_other_messages_are_dropped_unread(queue_url: str, tmp_path: Any) -> None:
    foreign = json.loads(_sns(_complaint("victim@example.com")))
    foreign["TopicArn"] = OTHER_TOPIC
    _put(
        queue_url,
        _sns(_bounce("Permanent", "hard@example.com")),
        json.dumps(foreign),
        json.dumps(_complaint("raw@example.com")),  # no SNS envelope: its topic cannot be known
    )
    suppressions = SuppressionList(tmp_path / "s.sqlite")

    summary = drain_queue(
        boto3.client("sqs", region_name=REGION), queue_url, suppressions, 10, topics=frozenset({TOPIC_ARN})
    )

    assert suppressions.hashes(Channel.EMAIL) == {address_hash("hard@example.com")}
    assert (summary.received, summary.rejected, summary.deleted) == (3, 2, 3)
    assert _queue_counts(queue_url) == (0, 0)  # rejected messages are not left to come back


def test_one_recipient_without_an_address_does_not_spare_the_others(queue_url: str, tmp_path: Any) -> None:
    notification = _bounce("Permanent", "a@example.com", "b@example.com")
    notification["bounce"]["bouncedRecipients"].insert(1, {"emailAddress": "not an address"})
    _put(queue_url, _sns(notification))
    suppressions = SuppressionList(tmp_path / "s.sqlite")

    summary = drain_queue(boto3.client("sqs", region_name=REGION), queue_url, suppressions, 10)

    assert suppressions.hashes(Channel.EMAIL) == {address_hash("a@example.com"), address_hash("b@example.com")}
    assert (summary.suppressed, summary.malformed_recipients, summary.unparseable) == ({"hard_bounce": 2}, 1, 0)
    assert _queue_counts(queue_url) == (0, 0)


def test_a_message_of_another_topic_or_without_an_envelope_is_refused_when_topics_are_set() -> None:
    foreign = json.loads(_sns(_complaint("a@example.com")))
    foreign["TopicArn"] = OTHER_TOPIC

    for body in (json.dumps(foreign), json.dumps(_complaint("a@example.com"))):
        with pytest.raises(ForeignTopic) as caught:
            parse_notification(body, frozenset({TOPIC_ARN}))
        assert "example.com" not in str(caught.value) and OTHER_TOPIC not in str(caught.value)
    assert parse_notification(_sns(_complaint("a@example.com")), frozenset({TOPIC_ARN})).addresses == ("a@example.com",)


@pytest.mark.usefixtures("prefect_harness")
def test_on_real_aws_without_allowed_topics_the_queue_is_left_unread_and_the_run_fails() -> None:
    # no AWS_ENDPOINT_URL: real AWS, which the task must not even call
    settings = Settings(_env_file=None, feedback_queue_url="https://sqs.eu-central-1.amazonaws.com/1/q")  # type: ignore[call-arg]

    @flow
    def drain() -> FeedbackSummary:
        return drain_feedback_queue(settings, 10)

    summary = drain()

    assert summary.queue_not_read and summary.received == 0
    with pytest.raises(RuntimeError, match=r"^LOYALTY_FEEDBACK_TOPIC_ARNS is not set"):
        require_queue_read(summary)
