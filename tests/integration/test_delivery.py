"""Delivery through the ledger to a real (local) SES: sent once, faults classified, claims released."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from tasks.deliver.channels import EmailMessageOut, SesEmailSender
from tasks.deliver.delivery import Backoff, Outgoing, TokenBucket, deliver, tally
from tasks.kernel.aws import ses_client
from tasks.kernel.enums import MessageKind, SendStatus
from tasks.kernel.settings import Settings
from tasks.ledger.protocol import Claim
from tasks.ledger.sqlite import SqliteLedger
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


FAST = Backoff(attempts=2, base=0.01, cap=0.02)


def _deliver(*args: Any, **kwargs: Any) -> dict[str, int]:
    return dict(tally(deliver(*args, backoff=kwargs.pop("backoff", FAST), **kwargs)))


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
    channel = SesEmailSender(ses_client(Settings()), SENDER)
    batch = _batch(25)

    first = _deliver(batch, ledger, channel, TokenBucket(1000), concurrency=4)
    second = _deliver(batch, ledger, channel, TokenBucket(1000), concurrency=4)

    assert first == {"sent": 25}
    assert second == {"already_sent": 25}
    assert _sent_count() == 25
    assert all(ledger.status(item.claim.key) is SendStatus.SENT for item in batch)


def test_throttling_releases_the_claim_so_a_later_run_sends(aws: str, tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    client = ses_client(Settings())
    client.meta.events.register("before-send.ses.SendRawEmail", _error_hook("Throttling", 400, "Rate exceeded"))
    batch = _batch(3)

    throttled = _deliver(batch, ledger, SesEmailSender(client, SENDER), TokenBucket(1000), concurrency=2)
    later = _deliver(batch, ledger, SesEmailSender(ses_client(Settings()), SENDER), TokenBucket(1000), concurrency=2)

    assert throttled == {"retry_later": 3}
    assert later == {"sent": 3}
    assert _sent_count() == 3


def test_rejected_message_is_failed_for_good(aws: str, tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    client = ses_client(Settings())
    client.meta.events.register("before-send.ses.SendRawEmail", _error_hook("MessageRejected", 400))
    batch = _batch(2)

    rejected = _deliver(batch, ledger, SesEmailSender(client, SENDER), TokenBucket(1000), concurrency=2)
    again = _deliver(batch, ledger, SesEmailSender(ses_client(Settings()), SENDER), TokenBucket(1000), concurrency=2)

    assert rejected == {"failed": 2}
    assert again == {"already_sent": 2}
    assert _sent_count() == 0


def test_daily_quota_parks_the_rest_of_the_channel(aws: str, tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    client = ses_client(Settings())
    client.meta.events.register(
        "before-send.ses.SendRawEmail", _error_hook("Throttling", 400, "Daily message quota exceeded")
    )

    counts = _deliver(_batch(10), ledger, SesEmailSender(client, SENDER), TokenBucket(1000), concurrency=1)

    assert counts == {"parked": 10}
    assert ledger.count() == {}


def test_a_throttled_send_is_retried_with_backoff_and_sent_once(aws: str, tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    # one attempt per call, so the engine's own backoff (not botocore's) is what retries
    client = boto3.client("ses", region_name=REGION, config=Config(retries={"total_max_attempts": 1}))
    calls = {"n": 0}
    throttle = _error_hook("Throttling", 400, "Maximum sending rate exceeded.")

    def first_two_throttled(**kwargs: Any) -> AWSResponse | None:
        calls["n"] += 1
        return throttle(**kwargs) if calls["n"] <= 2 else None

    client.meta.events.register("before-send.ses.SendRawEmail", first_two_throttled)
    waits: list[float] = []

    outcomes = deliver(
        _batch(1),
        ledger,
        SesEmailSender(client, SENDER),
        TokenBucket(1000),
        concurrency=1,
        backoff=Backoff(attempts=5, base=0.01, cap=0.05),
        sleep=waits.append,
    )

    assert [(o.outcome, o.attempts) for o in outcomes] == [("sent", 3)]
    assert len(waits) == 2 and all(0 <= w <= 0.05 for w in waits)
    assert _sent_count() == 1


def test_kill_switch_parks_the_rest_between_batches(aws: str, tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    channel = SesEmailSender(ses_client(Settings()), SENDER)
    looks = {"n": 0}

    def paused() -> frozenset[MessageKind]:  # the operator flips the switch after the first batch
        looks["n"] += 1
        return frozenset(MessageKind) if looks["n"] > 1 else frozenset()

    counts = _deliver(_batch(450), ledger, channel, TokenBucket(10_000), concurrency=4, paused=paused)

    assert counts == {"sent": 200, "parked": 250}
    assert _sent_count() == 200
    assert ledger.count() == {"sent": 200}  # parked messages hold no claim: a later run sends them
