"""Delivery through the ledger to a real (local) SES: sent once, faults classified, claims released."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from tasks.aws import ses_client
from tasks.channels import EmailMessageOut, SesEmailChannel
from tasks.delivery import Outgoing, TokenBucket, deliver
from tasks.enums import MessageKind, SendStatus
from tasks.ledger import Claim, SqliteLedger
from tasks.settings import Settings
from tests.conftest import REGION, SENDER


def _batch(n: int) -> list[Outgoing]:
    items = []
    for i in range(n):
        key = f"win_back/1/email/C{i}/2024-05-01"
        message = EmailMessageOut(
            key=key,
            to_address=f"c{i}@example.com",
            to_name=f"Name{i}",
            subject="Hi",
            html="<p>Hi</p>",
            text="Hi\n",
            kind=MessageKind.MARKETING,
            unsubscribe_url="https://u.example.com/x",
            unsubscribe_mailto="unsub@example.com",
        )
        claim = Claim(key=key, campaign="win_back", channel="email", customer_id=f"C{i}", kind="marketing", run_id="r")
        items.append(Outgoing(message=message, claim=claim))
    return items


def _sent_count() -> int:
    quota = boto3.client("ses", region_name=REGION).get_send_quota()
    return int(quota["SentLast24Hours"])


def _error_hook(code: str, status: int, message: str = "error") -> Any:
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>x</RequestId></ErrorResponse>"
    ).encode()

    def hook(**_: Any) -> AWSResponse:
        raw = type("Raw", (), {"stream": lambda self, **kw: iter([body]), "read": lambda self: body})()
        return AWSResponse("http://127.0.0.1/", status, {}, raw)

    return hook


def test_a_batch_is_sent_once_even_when_delivered_twice(aws: str, tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    channel = SesEmailChannel(ses_client(Settings()), SENDER)
    batch = _batch(25)

    first = deliver(batch, ledger, channel, TokenBucket(1000), concurrency=4)
    second = deliver(batch, ledger, channel, TokenBucket(1000), concurrency=4)

    assert first == {"sent": 25}
    assert second == {"already_sent": 25}
    assert _sent_count() == 25
    assert all(ledger.status(item.claim.key) is SendStatus.SENT for item in batch)


def test_throttling_releases_the_claim_so_a_later_run_sends(aws: str, tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    client = ses_client(Settings())
    client.meta.events.register("before-send.ses.SendRawEmail", _error_hook("Throttling", 400, "Rate exceeded"))
    batch = _batch(3)

    throttled = deliver(batch, ledger, SesEmailChannel(client, SENDER), TokenBucket(1000), concurrency=2)
    later = deliver(batch, ledger, SesEmailChannel(ses_client(Settings()), SENDER), TokenBucket(1000), concurrency=2)

    assert throttled == {"retry_later": 3}
    assert later == {"sent": 3}
    assert _sent_count() == 3


def test_rejected_message_is_failed_for_good(aws: str, tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    client = ses_client(Settings())
    client.meta.events.register("before-send.ses.SendRawEmail", _error_hook("MessageRejected", 400))
    batch = _batch(2)

    rejected = deliver(batch, ledger, SesEmailChannel(client, SENDER), TokenBucket(1000), concurrency=2)
    again = deliver(batch, ledger, SesEmailChannel(ses_client(Settings()), SENDER), TokenBucket(1000), concurrency=2)

    assert rejected == {"failed": 2}
    assert again == {"already_sent": 2}
    assert _sent_count() == 0


def test_daily_quota_parks_the_rest_of_the_channel(aws: str, tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    client = ses_client(Settings())
    client.meta.events.register(
        "before-send.ses.SendRawEmail", _error_hook("Throttling", 400, "Daily message quota exceeded")
    )

    counts = deliver(_batch(10), ledger, SesEmailChannel(client, SENDER), TokenBucket(1000), concurrency=1)

    assert counts == {"parked": 10}
    assert ledger.count() == {}
