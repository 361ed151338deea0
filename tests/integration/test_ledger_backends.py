"""The send ledger, the same suite on both backends (SQLite file, DynamoDB on a local moto server).

A key is sent at most once; a claim abandoned past its lease is never resent
when it is marketing and resent exactly once when it is transactional; and all
of it holds with threads and processes racing.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from tasks.deliver.channels import EmailMessageOut, OutboundMessage
from tasks.deliver.delivery import Outgoing, TokenBucket, deliver
from tasks.kernel.aws import client
from tasks.kernel.enums import MessageKind, SendStatus
from tasks.kernel.settings import Settings
from tasks.ledger.backend import open_ledger
from tasks.ledger.dynamodb import DynamoDbLedger, create_ledger_table
from tasks.ledger.protocol import Claim, Ledger, Mark
from tasks.ledger.sqlite import SqliteLedger

LEASE = timedelta(minutes=15)
T0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
KEY = "win_back/1/email/C1/2024-05-01"
ORDER_KEY = "order/O1/shipped/email"


def _claim(key: str = KEY, run_id: str = "run-1", kind: MessageKind = MessageKind.MARKETING) -> Claim:
    campaign = "win_back" if kind is MessageKind.MARKETING else "order_status"
    return Claim(key=key, campaign=campaign, channel="email", customer_id="C1", kind=kind.value, run_id=run_id)


def _order(run_id: str = "run-1", key: str = ORDER_KEY) -> Claim:
    return _claim(key=key, run_id=run_id, kind=MessageKind.TRANSACTIONAL)


def _dynamodb() -> object:
    # Endpoint and fake credentials come from the environment (AWS_ENDPOINT_URL), in spawned processes too.
    return client("dynamodb", Settings())


@dataclass(frozen=True)
class Store:
    """Where one test's ledger lives; picklable, so spawned processes open the same one."""

    backend: str
    location: str  # the SQLite file, or the DynamoDB table

    def open(self) -> Ledger:
        if self.backend == "sqlite":
            return SqliteLedger(Path(self.location), lease=LEASE)
        return DynamoDbLedger(_dynamodb(), self.location, lease=LEASE)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return Store("sqlite", str(tmp_path / "ledger.sqlite"))
    request.getfixturevalue("aws")  # a clean moto server, AWS_ENDPOINT_URL pointing at it
    table = f"ledger-{uuid4().hex[:12]}"
    create_ledger_table(_dynamodb(), table)  # type: ignore[arg-type]
    return Store("dynamodb", table)


@pytest.fixture
def ledger(store: Store) -> Iterator[Ledger]:
    ledger = store.open()
    yield ledger
    ledger.close()


# --- claim, mark, release ---------------------------------------------------


def test_a_key_is_claimed_once(ledger: Ledger) -> None:
    assert ledger.claim(_claim()) is True
    assert ledger.claim(_claim(run_id="run-2")) is False
    assert ledger.status(KEY) is SendStatus.CLAIMED


def test_sent_is_remembered_across_instances(store: Store) -> None:
    first = store.open()
    first.claim(_claim(), now=T0)
    first.mark_sent(KEY, "provider-1", run_id="run-1")
    first.close()

    second = store.open()

    assert second.status(KEY) is SendStatus.SENT
    assert second.claim(_claim(run_id="run-2"), now=T0 + timedelta(days=30)) is False
    assert second.count() == {"sent": 1}
    [entry] = second.entries()
    assert (entry.status, entry.provider_id, entry.run_id, entry.attempts) == (
        SendStatus.SENT,
        "provider-1",
        "run-1",
        1,
    )
    assert entry.claimed_at == T0
    second.close()


def test_statuses_answers_for_a_day_of_keys_in_one_call(ledger: Ledger) -> None:
    keys = [f"win_back/1/email/C{i}/2024-05-01" for i in range(250)]  # more than one DynamoDB batch (100)
    for i, key in enumerate(keys[:240]):
        ledger.claim(_claim(key=key))
        if i % 3 == 0:
            ledger.mark_sent(key, f"provider-{i}")
        elif i % 3 == 1:
            ledger.mark_failed(key, "MessageRejected")

    found = ledger.statuses([*keys, keys[0]])  # never claimed ones are absent; repeats are harmless

    assert found == {key: ledger.status(key) for key in keys[:240]}
    assert sorted(found.values()).count(SendStatus.SENT) == 80
    assert ledger.statuses([]) == {}


def test_released_claim_can_be_claimed_again(ledger: Ledger) -> None:
    ledger.claim(_claim())

    ledger.release(KEY)

    assert ledger.status(KEY) is None
    assert ledger.claim(_claim(run_id="run-2")) is True


def test_permanent_failure_is_never_retried(ledger: Ledger) -> None:
    ledger.claim(_order(), now=T0)

    ledger.mark_failed(ORDER_KEY, "MessageRejected")

    assert ledger.status(ORDER_KEY) is SendStatus.FAILED
    assert ledger.claim(_order(run_id="run-2"), now=T0 + timedelta(days=30)) is False
    assert [e.reason for e in ledger.entries()] == ["MessageRejected"]


def test_only_the_claim_holder_can_mark_or_release(ledger: Ledger) -> None:
    with pytest.raises(LookupError):
        ledger.mark_sent(KEY, "provider-1")  # never claimed
    ledger.claim(_claim(run_id="run-1"))

    with pytest.raises(LookupError):
        ledger.mark_sent(KEY, "provider-2", run_id="run-2")
    with pytest.raises(LookupError):
        ledger.mark_failed(KEY, "MessageRejected", run_id="run-2")
    ledger.release(KEY, run_id="run-2")

    assert ledger.status(KEY) is SendStatus.CLAIMED
    ledger.mark_sent(KEY, "provider-1", run_id="run-1")
    with pytest.raises(LookupError):
        ledger.mark_failed(KEY, "too late")  # already sent
    ledger.release(KEY)
    assert ledger.status(KEY) is SendStatus.SENT


def test_entries_and_counts_are_per_run(ledger: Ledger) -> None:
    ledger.claim(_claim(key="a", run_id="run-1"), now=T0)
    ledger.claim(_claim(key="b", run_id="run-2"), now=T0 + timedelta(seconds=1))
    ledger.claim(_order(run_id="run-2"), now=T0 + timedelta(seconds=2))
    ledger.mark_sent("b", "provider-b")

    assert [e.key for e in ledger.entries()] == ["a", "b", ORDER_KEY]
    assert [e.key for e in ledger.entries(run_id="run-2")] == ["b", ORDER_KEY]
    assert ledger.count(run_id="run-2") == {"sent": 1, "claimed": 1}
    assert ledger.count(run_id="run-3") == {}


# --- batches: what delivery uses -------------------------------------------------


def test_a_batch_claim_answers_as_claiming_one_by_one_would(ledger: Ledger) -> None:
    ledger.claim(_claim(key="sent"), now=T0)
    ledger.mark_sent("sent", "provider-1")
    ledger.claim(_claim(key="in-flight", run_id="run-other"), now=T0 + LEASE)
    ledger.claim(_claim(key="marketing-crashed"), now=T0)
    ledger.claim(_order(key="order-crashed"), now=T0)
    batch = [
        _claim(key="sent", run_id="run-2"),
        _claim(key="in-flight", run_id="run-2"),
        _claim(key="marketing-crashed", run_id="run-2"),
        _order(key="order-crashed", run_id="run-2"),
        _claim(key="fresh", run_id="run-2"),
        _claim(key="fresh", run_id="run-2"),  # the same key twice in one batch: won once
    ]

    wins = ledger.claim_many(batch, now=T0 + LEASE + timedelta(minutes=1))

    assert sorted(zip([c.key for c in batch], wins, strict=True)) == sorted(
        [
            ("sent", False),
            ("in-flight", False),
            ("marketing-crashed", False),
            ("order-crashed", True),
            ("fresh", True),
            ("fresh", False),
        ]
    )
    assert ledger.statuses(c.key for c in batch) == {
        "sent": SendStatus.SENT,
        "in-flight": SendStatus.CLAIMED,
        "marketing-crashed": SendStatus.UNKNOWN,  # never sent again
        "order-crashed": SendStatus.CLAIMED,
        "fresh": SendStatus.CLAIMED,
    }
    assert {e.key: (e.run_id, e.attempts) for e in ledger.entries(run_id="run-2")} == {
        "order-crashed": ("run-2", 2),
        "fresh": ("run-2", 1),
    }
    assert ledger.claim_many([]) == []


def test_a_batch_of_marks_applies_those_whose_run_holds_the_claim_and_says_which_did_not(ledger: Ledger) -> None:
    for key in ("a", "b", "c"):
        ledger.claim(_claim(key=key), now=T0)
    ledger.claim(_claim(key="theirs", run_id="run-2"), now=T0)
    marks = [
        Mark("a", SendStatus.SENT, "provider-a", "run-1"),
        Mark("b", SendStatus.FAILED, "MessageRejected", "run-1"),
        Mark("c", SendStatus.UNKNOWN, "ReadTimeoutError", "run-1"),
        Mark("theirs", SendStatus.SENT, "provider-x", "run-1"),  # fenced: run-2 holds it
        Mark("never-claimed", SendStatus.SENT, "provider-y", "run-1"),
        Mark("a", SendStatus.FAILED, "too late", "run-1"),  # already marked sent
    ]

    applied = ledger.mark_many(marks)

    assert applied == [True, True, True, False, False, False]
    entries = {e.key: (e.status, e.provider_id, e.reason) for e in ledger.entries()}
    assert entries == {
        "a": (SendStatus.SENT, "provider-a", None),
        "b": (SendStatus.FAILED, None, "MessageRejected"),
        "c": (SendStatus.UNKNOWN, None, "ReadTimeoutError"),
        "theirs": (SendStatus.CLAIMED, None, None),
    }
    assert ledger.mark_many([]) == []


# --- the lease: claims abandoned by a crash between send and mark -------------


def test_a_claim_within_its_lease_is_left_alone(ledger: Ledger) -> None:
    ledger.claim(_order(), now=T0)

    assert ledger.claim(_order(run_id="run-2"), now=T0 + LEASE - timedelta(seconds=1)) is False
    assert ledger.claim(_claim(), now=T0) is True
    assert ledger.claim(_claim(run_id="run-2"), now=T0 + LEASE - timedelta(seconds=1)) is False
    assert ledger.count() == {"claimed": 2}


def test_abandoned_marketing_claim_becomes_unknown_and_is_never_sent_again(ledger: Ledger) -> None:
    ledger.claim(_claim(run_id="run-1"), now=T0)

    assert ledger.claim(_claim(run_id="run-2"), now=T0 + LEASE) is False
    assert ledger.status(KEY) is SendStatus.UNKNOWN
    assert ledger.claim(_claim(run_id="run-3"), now=T0 + timedelta(days=30)) is False
    with pytest.raises(LookupError):
        ledger.mark_sent(KEY, "provider-1", run_id="run-1")  # its crashed owner cannot come back either
    [entry] = ledger.entries()
    assert (entry.status, entry.run_id, entry.attempts) == (SendStatus.UNKNOWN, "run-1", 1)


def test_abandoned_transactional_claim_is_taken_over_exactly_once(ledger: Ledger) -> None:
    ledger.claim(_order(run_id="run-1"), now=T0)
    later = T0 + LEASE + timedelta(minutes=1)

    assert ledger.claim(_order(run_id="run-2"), now=later) is True
    assert ledger.claim(_order(run_id="run-3"), now=later + timedelta(seconds=1)) is False

    [entry] = ledger.entries()
    assert (entry.status, entry.run_id, entry.attempts, entry.claimed_at) == (SendStatus.CLAIMED, "run-2", 2, later)
    with pytest.raises(LookupError):
        ledger.mark_sent(ORDER_KEY, "provider-1", run_id="run-1")  # the old owner lost it
    ledger.mark_sent(ORDER_KEY, "provider-2", run_id="run-2")
    assert ledger.status(ORDER_KEY) is SendStatus.SENT


def test_expire_turns_abandoned_claims_unknown_and_lists_them(ledger: Ledger) -> None:
    ledger.claim(_claim(key="marketing-crashed"), now=T0)
    ledger.claim(_order(key="order-crashed"), now=T0)
    ledger.claim(_claim(key="sent"), now=T0)
    ledger.mark_sent("sent", "provider-1")
    ledger.claim(_claim(key="in-flight"), now=T0 + LEASE)

    unknown = ledger.expire(now=T0 + LEASE)

    assert [(e.key, e.kind, e.status) for e in unknown] == [
        ("marketing-crashed", MessageKind.MARKETING, SendStatus.UNKNOWN),
        ("order-crashed", MessageKind.TRANSACTIONAL, SendStatus.UNKNOWN),
    ]
    assert ledger.status("in-flight") is SendStatus.CLAIMED
    assert ledger.status("sent") is SendStatus.SENT
    # the next run resends the order (at least once), never the marketing message (at most once)
    later = T0 + LEASE + timedelta(minutes=1)
    assert ledger.claim(_order(key="order-crashed", run_id="run-2"), now=later) is True
    assert ledger.claim(_claim(key="marketing-crashed", run_id="run-2"), now=later) is False
    assert [e.key for e in ledger.expire(now=later)] == ["marketing-crashed"]
    assert [(e.key, e.attempts) for e in ledger.entries(run_id="run-2")] == [("order-crashed", 2)]


# --- lost answers and fenced marks -------------------------------------------


def test_a_lost_answer_makes_the_entry_unknown_only_for_the_claim_holder(ledger: Ledger) -> None:
    ledger.claim(_claim(), now=T0)
    ledger.claim(_order(), now=T0)

    with pytest.raises(LookupError):
        ledger.mark_unknown(KEY, "ReadTimeoutError", run_id="run-2")
    ledger.mark_unknown(KEY, "ReadTimeoutError", run_id="run-1")
    ledger.mark_unknown(ORDER_KEY, "ConnectionClosedError", run_id="run-1")

    soon = T0 + timedelta(seconds=1)
    assert ledger.claim(_claim(run_id="run-2"), now=soon) is False  # marketing: never sent again
    assert ledger.status(KEY) is SendStatus.UNKNOWN
    assert ledger.claim(_order(run_id="run-2"), now=soon) is True  # transactional: a later run resends
    assert {e.key: e.reason for e in ledger.entries()}[KEY] == "ReadTimeoutError"


class _OvertakenWhileSending:
    """A send so slow that the lease runs out and another run takes the claim over meanwhile."""

    name = "email"

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def send(self, message: OutboundMessage) -> str:
        later = datetime.now(UTC) + LEASE + timedelta(minutes=1)
        assert self._ledger.claim(_order(run_id="run-2"), now=later)
        return "provider-1"


def test_a_run_that_lost_its_claim_while_sending_does_not_mark_the_new_owners_claim(ledger: Ledger) -> None:
    message = EmailMessageOut(ORDER_KEY, "c1@example.com", None, "Shipped", "<p>x</p>", "x", MessageKind.TRANSACTIONAL)

    [outcome] = deliver([Outgoing(message, _order())], ledger, _OvertakenWhileSending(ledger), TokenBucket(100), 1)

    assert (outcome.outcome, outcome.reason) == ("sent", "ledger_mark_failed")  # reported, never resent by run-1
    [entry] = ledger.entries()
    assert (entry.status, entry.run_id) == (SendStatus.CLAIMED, "run-2")  # run-2's claim is untouched


# --- races -------------------------------------------------------------------


def test_many_threads_racing_for_one_key_get_one_claim(ledger: Ledger) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        wins = list(pool.map(lambda i: ledger.claim(_claim(run_id=f"run-{i}")), range(200)))

    assert wins.count(True) == 1


def test_many_threads_racing_to_take_over_one_abandoned_claim_get_one(ledger: Ledger) -> None:
    ledger.claim(_order(), now=T0)
    later = T0 + LEASE

    with ThreadPoolExecutor(max_workers=16) as pool:
        wins = list(pool.map(lambda i: ledger.claim(_order(run_id=f"run-{i}"), now=later), range(200)))

    assert wins.count(True) == 1
    assert [e.attempts for e in ledger.entries()] == [2]


def _race(store: Store, claims: list[Claim], now: datetime | None, start, queue) -> None:  # type: ignore[no-untyped-def]
    ledger = store.open()
    start.wait(timeout=120)  # both processes begin together
    queue.put((claims[0].run_id, sum(ledger.claim(claim, now=now) for claim in claims)))
    ledger.close()


def _in_two_processes(store: Store, claims: list[Claim], now: datetime | None = None) -> dict[str, int]:
    """Two spawned processes claim the same keys from opposite ends; return wins per run id."""
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Barrier(2), ctx.Queue()
    batches = [
        [replace(claim, run_id="run-a") for claim in claims],
        [replace(claim, run_id="run-b") for claim in reversed(claims)],
    ]
    procs = [ctx.Process(target=_race, args=(store, batch, now, start, queue)) for batch in batches]
    for proc in procs:
        proc.start()
    wins = dict(queue.get(timeout=300) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return wins


def test_two_processes_claiming_the_same_keys_split_them_exactly(store: Store) -> None:
    store.open().close()  # create the schema once
    keys = [f"k{i}" for i in range(300)]

    wins = _in_two_processes(store, [_claim(key=k) for k in keys])

    assert sum(wins.values()) == 300
    ledger = store.open()
    assert ledger.count() == {"claimed": 300}
    ledger.close()


def _race_in_batches(store: Store, claims: list[Claim], start, queue) -> None:  # type: ignore[no-untyped-def]
    ledger = store.open()
    start.wait(timeout=120)
    wins = sum(sum(ledger.claim_many(claims[i : i + 50])) for i in range(0, len(claims), 50))
    queue.put((claims[0].run_id, wins))
    ledger.close()


def test_two_processes_claiming_the_same_keys_in_batches_split_them_exactly(store: Store) -> None:
    store.open().close()  # create the schema once
    claims = [_claim(key=f"k{i}") for i in range(300)]
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Barrier(2), ctx.Queue()
    batches = [
        [replace(claim, run_id="run-a") for claim in claims],
        [replace(claim, run_id="run-b") for claim in reversed(claims)],
    ]
    procs = [ctx.Process(target=_race_in_batches, args=(store, batch, start, queue)) for batch in batches]
    for proc in procs:
        proc.start()
    wins = dict(queue.get(timeout=300) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0

    assert sum(wins.values()) == 300
    ledger = store.open()
    assert ledger.count() == {"claimed": 300}
    assert Counter(e.run_id for e in ledger.entries()) == Counter(wins)
    ledger.close()


def test_two_processes_taking_over_the_same_abandoned_claims_split_them_exactly(ledger: Ledger, store: Store) -> None:
    keys = [f"order/O{i}/shipped/email" for i in range(100)]
    for key in keys:
        ledger.claim(_order(key=key), now=T0)

    wins = _in_two_processes(store, [_order(key=k) for k in keys], now=T0 + LEASE + timedelta(minutes=1))

    assert sum(wins.values()) == 100
    entries = ledger.entries()
    assert {e.attempts for e in entries} == {2}
    assert Counter(e.run_id for e in entries) == Counter(wins)


# --- configuration ---------------------------------------------------------------


def test_open_ledger_opens_the_configured_backend(store: Store, tmp_path: Path) -> None:
    settings = Settings(
        ledger_backend=store.backend,
        ledger_table=store.location if store.backend == "dynamodb" else "unused",
        state_dir=Path(store.location).parent if store.backend == "sqlite" else tmp_path,
        ledger_lease_seconds=60,
    )
    opened = open_ledger(settings, lambda s: client("dynamodb", s))
    opened.claim(_order(), now=T0)

    assert opened.claim(_order(run_id="run-2"), now=T0 + timedelta(seconds=59)) is False
    assert opened.claim(_order(run_id="run-2"), now=T0 + timedelta(seconds=60)) is True  # the configured lease
    opened.close()
    ledger = store.open()
    assert ledger.status(ORDER_KEY) is SendStatus.CLAIMED
    ledger.close()


def test_the_state_backend_switch_chooses_the_ledger_too(store: Store, tmp_path: Path) -> None:
    settings = Settings(
        state_backend=store.backend,  # LOYALTY_STATE_BACKEND; LOYALTY_LEDGER_BACKEND left at its default
        ledger_table=store.location if store.backend == "dynamodb" else "unused",
        state_dir=Path(store.location).parent if store.backend == "sqlite" else tmp_path,
    )
    opened = open_ledger(settings, lambda s: client("dynamodb", s))
    opened.claim(_claim(), now=T0)
    opened.close()

    ledger = store.open()
    assert ledger.status(KEY) is SendStatus.CLAIMED
    ledger.close()


# --- forgetting a customer -------------------------------------------------------


def test_forgetting_a_customer_blanks_their_id_and_keeps_the_key(ledger: Ledger) -> None:
    ledger.claim(_claim(), now=T0)
    ledger.mark_sent(KEY, "provider-1", run_id="run-1")
    other = Claim(
        key="win_back/1/email/C2/2024-05-01",
        campaign="win_back",
        channel="email",
        customer_id="C2",
        kind="marketing",
        run_id="run-1",
    )
    ledger.claim(other, now=T0)

    assert ledger.forget_customer("C1") == 1

    assert {(e.key, e.customer_id) for e in ledger.entries()} == {(KEY, ""), (other.key, "C2")}
    assert ledger.claim(_claim(run_id="run-2"), now=T0 + timedelta(days=1)) is False  # never sent again
    assert ledger.forget_customer("C1") == 0
