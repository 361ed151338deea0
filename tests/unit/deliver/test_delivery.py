"""Delivery's send path with fake channels: what is retried, what is never resent, what one message's error may stop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from prefect.variables import Variable

from tasks.deliver import delivery
from tasks.deliver.channels import (
    EmailMessageOut,
    OutboundMessage,
    SmsMessageOut,
    SnsSmsSender,
    TransientSendError,
    UnknownOutcomeError,
    cost,
)
from tasks.deliver.delivery import (
    Backoff,
    Outgoing,
    TokenBucket,
    check_lease,
    deliver,
    paused_kinds,
    tally,
)
from tasks.deliver.optouts import OptOuts
from tasks.kernel.aws import dynamodb_client, s3_client, ses_client, sns_client
from tasks.kernel.enums import Channel, MessageKind, SendStatus
from tasks.kernel.settings import Settings
from tasks.ledger.protocol import Claim
from tasks.ledger.sqlite import SqliteLedger
from tasks.plan.pauses import NO_PAUSES, CampaignPauses
from tasks.plan.planner import Suppressed

FAST = Backoff(attempts=3, base=0.001, cap=0.002, token_wait=1.0)


def _email(i: int, kind: MessageKind = MessageKind.MARKETING, name: str = "Anna", run_id: str = "run-1") -> Outgoing:
    key = f"win_back/1/email/C{i}/2024-05-01" if kind is MessageKind.MARKETING else f"order/O{i}/shipped/email"
    message = EmailMessageOut(
        key=key,
        to_address=f"c{i}@example.com",
        to_name=name,
        subject="Hi",
        html="<p>Hi</p>",
        text="Hi\n",
        kind=kind,
        unsubscribe_url="https://u.example.com/x",
    )
    claim = Claim(key=key, campaign="c", channel="email", customer_id=f"C{i}", kind=kind.value, run_id=run_id)
    return Outgoing(message=message, claim=claim)


class FakeChannel:
    """Accepts every message unless ``fail`` raises for it; records each call."""

    name = Channel.EMAIL

    def __init__(self, fail: Callable[[OutboundMessage, int], None] = lambda message, call: None) -> None:
        self.calls: list[str] = []
        self._fail = fail
        self._lock = threading.Lock()

    def send(self, message: OutboundMessage) -> str:
        with self._lock:
            self.calls.append(message.key)
            call = self.calls.count(message.key)
        self._fail(message, call)
        return f"id-{message.key}"


def _run(batch: list[Outgoing], ledger: SqliteLedger, channel: FakeChannel, **kwargs: object) -> list[delivery.Outcome]:
    return deliver(batch, ledger, channel, TokenBucket(10_000), concurrency=2, backoff=FAST, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path) -> SqliteLedger:
    return SqliteLedger(tmp_path / "ledger.sqlite")


# --- 1. a lost answer is never resent ----------------------------------------------------------------------------


def _answer_lost(message: OutboundMessage, call: int) -> None:
    raise UnknownOutcomeError("ReadTimeoutError")


def test_a_marketing_email_whose_answer_was_lost_is_unknown_and_never_sent_again(ledger: SqliteLedger) -> None:
    lost = FakeChannel(_answer_lost)

    [first] = _run([_email(1)], ledger, lost)
    again = FakeChannel()
    [second] = _run([_email(1, run_id="run-2")], ledger, again)

    assert (first.outcome, first.attempts, first.reason) == ("unknown", 1, "ReadTimeoutError")
    assert lost.calls == [_email(1).claim.key]  # one attempt: no retry of a send that may have gone
    assert ledger.status(_email(1).claim.key) is SendStatus.UNKNOWN
    assert second.outcome == "unknown" and again.calls == []


def test_a_transactional_email_whose_answer_was_lost_is_sent_again_by_a_later_run(ledger: SqliteLedger) -> None:
    order = _email(1, MessageKind.TRANSACTIONAL)

    [first] = _run([order], ledger, FakeChannel(_answer_lost))
    [second] = _run([_email(1, MessageKind.TRANSACTIONAL, run_id="run-2")], ledger, FakeChannel())

    assert (first.outcome, second.outcome) == ("unknown", "sent")
    assert ledger.status(order.claim.key) is SendStatus.SENT


def test_what_surely_did_not_go_is_retried_in_the_run(ledger: SqliteLedger) -> None:
    def unreachable_once(message: OutboundMessage, call: int) -> None:
        if call == 1:
            raise TransientSendError("EndpointConnectionError")

    channel = FakeChannel(unreachable_once)

    [outcome] = _run([_email(1)], ledger, channel)

    assert (outcome.outcome, outcome.attempts) == ("sent", 2)


def test_ses_and_sns_clients_make_one_attempt_and_the_ledger_clients_keep_retrying() -> None:
    settings = Settings(send_connect_timeout=2, send_read_timeout=7)

    for sender in (ses_client(settings), sns_client(settings)):
        config: Any = sender.meta.config
        assert config.retries["total_max_attempts"] == 1
        assert (config.connect_timeout, config.read_timeout) == (2, 7)
    for other in (dynamodb_client(settings), s3_client(settings)):
        assert other.meta.config.retries["total_max_attempts"] == 3  # type: ignore[attr-defined]


# --- 2. opt-outs after planning ------------------------------------------------------------------------------------


def test_a_customer_suppressed_after_planning_gets_nothing_and_holds_no_claim(ledger: SqliteLedger) -> None:
    channel = FakeChannel()
    reads = []

    def opt_outs() -> OptOuts:
        reads.append(1)
        suppressed = Suppressed(
            everything={Channel.EMAIL: frozenset({"C3", "hash-of-c4"})},
            marketing={Channel.EMAIL: frozenset({"C1", "C3", "hash-of-c4"})},
        )
        return OptOuts(suppressed, lambda address: (f"hash-of-{address.split('@')[0]}",))

    batch = [_email(1), _email(2), _email(3, MessageKind.TRANSACTIONAL), _email(4, MessageKind.TRANSACTIONAL)]
    batch += [_email(5 + i) for i in range(delivery.SWITCH_EVERY)]
    # C1 unsubscribed from offers: no marketing; an order message still goes. C3 and C4's address bounced: nothing.
    batch.append(_email(1, MessageKind.TRANSACTIONAL))

    outcomes = {o.key: o.outcome for o in _run(batch, ledger, channel, opt_outs=opt_outs)}

    assert outcomes[_email(1).claim.key] == "suppressed"
    assert outcomes[_email(3, MessageKind.TRANSACTIONAL).claim.key] == "suppressed"
    assert outcomes[_email(4, MessageKind.TRANSACTIONAL).claim.key] == "suppressed"
    assert outcomes[_email(1, MessageKind.TRANSACTIONAL).claim.key] == "sent"
    assert sorted(set(outcomes.values())) == ["sent", "suppressed"]
    assert _email(1).claim.key not in channel.calls
    assert ledger.status(_email(1).claim.key) is None  # not claimed: nothing recorded
    assert len(reads) == 2  # once per chunk of SWITCH_EVERY, not per message


# --- 3. one message's error stops nothing --------------------------------------------------------------------------


def test_an_unexpected_error_of_one_message_fails_it_alone(ledger: SqliteLedger) -> None:
    def bad_name(message: OutboundMessage, call: int) -> None:
        if message.key == _email(2).claim.key:
            raise ValueError("Header values may not contain linefeed: Anna\nx@example.com")

    outcomes = _run([_email(i) for i in range(5)], ledger, FakeChannel(bad_name))

    assert tally(outcomes) == {"sent": 4, "failed": 1}
    [failed] = [o for o in outcomes if o.outcome == "failed"]
    assert (failed.key, failed.reason) == (_email(2).claim.key, "ValueError")  # the class only: no PII
    assert ledger.status(_email(2).claim.key) is SendStatus.FAILED


def test_a_ledger_that_cannot_claim_makes_the_message_retry_later(ledger: SqliteLedger) -> None:
    broken = MagicMock(wraps=ledger)
    broken.claim_many.side_effect = OSError("disk I/O error")
    channel = FakeChannel()

    [outcome] = deliver([_email(1)], broken, channel, TokenBucket(100), concurrency=1, backoff=FAST)

    assert (outcome.outcome, outcome.reason) == ("retry_later", "ledger_OSError")
    assert channel.calls == []


# --- 4. no unbounded wait ------------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_three_part_russian_sms_goes_out_at_one_part_a_second(ledger: SqliteLedger) -> None:
    time = FakeTime()
    bucket = TokenBucket(1.0, largest=3, clock=time.clock, sleep=time.sleep)
    client = MagicMock()
    client.publish.return_value = {"MessageId": "sns-1"}
    text = (
        "Анна, мы соскучились! Только до воскресенья дарим вам скидку 15% на всю новую коллекцию, "
        "а доставка по всей стране бесплатная. Загляните: https://s.example.com/o/AbC1"
    )
    batch = []
    for i in range(2):
        key = f"win_back/1/sms/C{i}/2024-05-01"
        message = SmsMessageOut(key, "+48500100200", text, MessageKind.MARKETING, "https://s.example.com/o/AbC1")
        claim = Claim(key=key, campaign="c", channel="sms", customer_id=f"C{i}", kind="marketing", run_id="r")
        batch.append(Outgoing(message, claim))

    outcomes = deliver(
        batch, ledger, SnsSmsSender(client, "Shop"), bucket, concurrency=1, backoff=Backoff(token_wait=10)
    )

    assert cost(batch[0].message) == 3
    assert tally(outcomes) == {"sent": 2}
    assert time.now == pytest.approx(3.0)  # the second waited for its three parts


def test_the_bucket_serves_first_come_first_served_at_its_rate() -> None:
    time = FakeTime()
    bucket = TokenBucket(2.0, capacity=2, clock=time.clock, sleep=time.sleep)

    started = []
    for _ in range(6):
        assert bucket.acquire(1, timeout=10)
        started.append(time.now)

    assert started == pytest.approx([0, 0, 0.5, 1.0, 1.5, 2.0])  # a burst of two, then two a second


def test_tokens_not_had_in_time_leave_the_message_for_a_later_run(ledger: SqliteLedger) -> None:
    time = FakeTime()
    bucket = TokenBucket(0.01, clock=time.clock, sleep=time.sleep)
    bucket.acquire(1)  # empty: the next token comes in 100 s

    [outcome] = deliver(
        [_email(1)], ledger, FakeChannel(), bucket, concurrency=1, backoff=Backoff(attempts=1, token_wait=5)
    )

    assert (outcome.outcome, outcome.reason) == ("retry_later", "rate_wait")
    assert time.now == 0  # refused at once: no wait for tokens that cannot come in time
    assert ledger.status(_email(1).claim.key) is None


# --- 5. a lease shorter than a send is refused ---------------------------------------------------------------------


def test_a_lease_shorter_than_the_longest_send_is_refused() -> None:
    short = Settings(ledger_lease_seconds=60, send_connect_timeout=5, send_read_timeout=15)

    with pytest.raises(ValueError, match="ledger_lease_seconds=60 is shorter than the longest send"):
        check_lease(short)
    check_lease(Settings())  # the defaults hold together
    quick = Settings(ledger_lease_seconds=30, send_connect_timeout=0.5, send_read_timeout=1, send_token_wait=1)
    check_lease(quick)  # 5 x (1 + 0.5 + 1) + 6 of backoff + 10 of margin
    with pytest.raises(ValueError, match="raise the lease to at least 31 "):
        check_lease(quick.model_copy(update={"send_token_wait": 1.5}))


# --- 6. the kill switch fails closed for marketing -----------------------------------------------------------------


def test_an_unreachable_kill_switch_pauses_marketing_only(
    monkeypatch: pytest.MonkeyPatch, ledger: SqliteLedger
) -> None:
    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Prefect API unreachable")

    monkeypatch.setattr(Variable, "get", unreachable)
    kinds = paused_kinds("email", Settings())
    channel = FakeChannel()

    outcomes = _run([_email(1), _email(2, MessageKind.TRANSACTIONAL)], ledger, channel, paused=lambda: kinds)

    assert kinds == {MessageKind.MARKETING}
    assert [o.outcome for o in outcomes] == ["parked", "sent"]
    assert ledger.status(_email(1).claim.key) is None  # no claim: a later run sends it


def test_a_campaign_paused_during_the_run_is_parked_from_the_next_chunk_without_claims(
    monkeypatch: pytest.MonkeyPatch, ledger: SqliteLedger
) -> None:
    monkeypatch.setattr(delivery, "SWITCH_EVERY", 1)
    looks: list[CampaignPauses] = [NO_PAUSES, CampaignPauses(frozenset({"c"}))]
    channel = FakeChannel()

    outcomes = _run(
        [_email(1), _email(2), _email(3)], ledger, channel, campaigns=lambda: looks[min(len(channel.calls), 1)]
    )

    assert [o.outcome for o in outcomes] == ["sent", "parked", "parked"]
    assert channel.calls == [_email(1).claim.key]
    assert ledger.status(_email(2).claim.key) is None  # no claim: a later run sends it once the pause is lifted


def test_the_kill_switch_set_by_an_operator_stops_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Variable, "get", lambda *args, **kwargs: "sms, email")

    assert paused_kinds("email", Settings()) == set(MessageKind)
    assert paused_kinds("email", Settings(paused_channels={"email"})) == set(MessageKind)


# --- 7. batches: claimed together, durable before any of them is sent ----------------------------------------------


def test_a_message_another_run_holds_is_skipped_and_the_rest_of_its_batch_goes(ledger: SqliteLedger) -> None:
    held = _email(2, run_id="run-other")
    assert ledger.claim(held.claim)  # another run is sending it right now
    channel = FakeChannel()

    outcomes = {o.key: o.outcome for o in _run([_email(i) for i in range(5)], ledger, channel)}

    assert outcomes == {_email(i).claim.key: "already_sent" if i == 2 else "sent" for i in range(5)}
    assert sorted(channel.calls) == sorted(_email(i).claim.key for i in (0, 1, 3, 4))
    [entry] = [e for e in ledger.entries() if e.key == held.claim.key]
    assert (entry.status, entry.run_id) == (SendStatus.CLAIMED, "run-other")  # its claim untouched


def test_a_rerun_skips_what_is_sent_without_claiming_it_again(ledger: SqliteLedger) -> None:
    _run([_email(i) for i in range(5)], ledger, FakeChannel())
    watched = MagicMock(wraps=ledger)
    again = FakeChannel()

    outcomes = _run([_email(i, run_id="run-2") for i in range(5)], watched, again)

    assert tally(outcomes) == {"already_sent": 5}
    assert again.calls == []
    watched.claim_many.assert_not_called()  # one read for the chunk, no write transaction per message


class Killed(BaseException):
    """The worker process dies: nothing after it runs, nothing is marked."""


def test_a_worker_killed_between_its_batch_claim_and_the_sends_never_sends_a_marketing_message_twice(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite"
    batch = [_email(i) for i in range(4)] + [_email(4, MessageKind.TRANSACTIONAL)]
    delivered: list[str] = []
    dead = threading.Event()

    def dies_at_the_third_send(message: OutboundMessage, call: int) -> None:
        if dead.is_set() or len(delivered) == 2:
            dead.set()
            raise Killed
        delivered.append(message.key)

    with pytest.raises(Killed):
        deliver(batch, SqliteLedger(path), FakeChannel(dies_at_the_third_send), TokenBucket(10_000), concurrency=1)

    # the whole batch was claimed, durably, before its first send; nothing was marked
    assert SqliteLedger(path).statuses(o.claim.key for o in batch) == {o.claim.key: SendStatus.CLAIMED for o in batch}
    # after the lease, the next run: marketing is never resent (UNKNOWN), the order update is (at least once)
    later = SqliteLedger(path, lease=timedelta(0))
    again = FakeChannel()
    rerun = [_email(i, run_id="run-2") for i in range(4)] + [_email(4, MessageKind.TRANSACTIONAL, run_id="run-2")]
    outcomes = {o.key: o.outcome for o in deliver(rerun, later, again, TokenBucket(10_000), concurrency=1)}

    assert len(delivered) == 2
    assert again.calls == [batch[4].claim.key]
    assert outcomes == {o.claim.key: "sent" if o is batch[4] else "unknown" for o in batch}
    assert later.statuses(o.claim.key for o in batch[:4]) == {o.claim.key: SendStatus.UNKNOWN for o in batch[:4]}
