"""Lost answers: SES accepts a message and the connection drops before its reply. Nobody gets a marketing email twice.

Three runs of one day's delivery against a local SES that throttles 5% of sends and loses the answer
of 5% more (the message stored, the socket closed). Count what the fake SES really stored.
"""

from __future__ import annotations

import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tasks.deliver.channels import EmailMessageOut, SesEmailSender
from tasks.deliver.delivery import Backoff, Outgoing, TokenBucket, deliver
from tasks.kernel.aws import ses_client
from tasks.kernel.enums import MessageKind, SendStatus
from tasks.kernel.settings import Settings
from tasks.ledger.protocol import Claim
from tasks.ledger.sqlite import SqliteLedger
from tests.conftest import REGION, SENDER
from tests.faults import FaultyAws

pytestmark = pytest.mark.timeout(120)

CUSTOMERS = 300


@pytest.fixture
def lossy_ses(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyAws]:
    aws = FaultyAws(throttle=0.05, server_error=0.0, dropped=0.05, seed=11).start()
    urllib.request.urlopen(urllib.request.Request(f"{aws.endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    boto3.client("ses", region_name=REGION).verify_email_identity(EmailAddress="hello@shop.example.com")
    try:
        yield aws
    finally:
        aws.stop()


def _day(run_id: str) -> list[Outgoing]:
    items = []
    for i in range(CUSTOMERS):
        key = f"win_back/1/email/C{i}/2024-06-01"
        message = EmailMessageOut(
            key=key,
            to_address=f"c{i}@example.com",
            to_name="Ola",
            subject="Tęsknimy",
            html="<p>Wróć do nas</p>",
            text="Wróć do nas\n",
            kind=MessageKind.MARKETING,
            unsubscribe_url="https://u.example.com/x",
        )
        claim = Claim(
            key=key, campaign="win_back", channel="email", customer_id=f"C{i}", kind="marketing", run_id=run_id
        )
        items.append(Outgoing(message=message, claim=claim))
    return items


def test_three_runs_with_lost_answers_and_throttling_send_no_marketing_email_twice(
    lossy_ses: FaultyAws, tmp_path: Path
) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    channel = SesEmailSender(ses_client(Settings()), SENDER)  # the engine's own client: one attempt per call
    backoff = Backoff(attempts=3, base=0.01, cap=0.05, token_wait=5)

    runs = [
        deliver(_day(f"run-{n}"), ledger, channel, TokenBucket(10_000), concurrency=4, backoff=backoff)
        for n in range(3)
    ]

    received = lossy_ses.emails_per_recipient(REGION)
    assert lossy_ses.injected["dropped"] > 0 and lossy_ses.injected["throttle"] > 0
    assert max(received.values()) == 1, "somebody got a marketing email twice"
    # every lost answer is reported unknown by the run that sent it, and nothing else is
    lost = [o for run in runs for o in run if o.outcome == "unknown" and o.attempts > 0]
    assert len(lost) == lossy_ses.injected["dropped"]
    assert {o.reason for o in lost} == {"ConnectionClosedError"}
    # the later runs did not resend them: they found the entries unknown
    unknown_keys = {o.key for o in lost}
    assert all(ledger.status(key) is SendStatus.UNKNOWN for key in unknown_keys)
    for later in runs[1:]:
        assert {o.key for o in later if o.key in unknown_keys} <= {o.key for o in later if o.outcome == "unknown"}
    # in the end everyone got exactly one: SENT in the ledger, or stored before its answer was lost
    assert len(received) == CUSTOMERS
    final = Counter(ledger.status(item.claim.key) for item in _day("check"))
    assert final == {SendStatus.SENT: CUSTOMERS - len(lost), SendStatus.UNKNOWN: len(lost)}
