"""The send ledger: the same key is sent at most once, whatever runs at the same time."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tasks.kernel.enums import SendStatus
from tasks.ledger.protocol import Claim
from tasks.ledger.sqlite import SqliteLedger


def _claim(key: str = "win_back/1/email/C1/2024-05-01", run_id: str = "run-1") -> Claim:
    return Claim(key=key, campaign="win_back", channel="email", customer_id="C1", kind="marketing", run_id=run_id)


def test_a_key_is_claimed_once(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")

    assert ledger.claim(_claim()) is True
    assert ledger.claim(_claim(run_id="run-2")) is False


def test_sent_is_remembered_across_instances(tmp_path: Path) -> None:
    first = SqliteLedger(tmp_path / "ledger.sqlite")
    first.claim(_claim())
    first.mark_sent(_claim().key, "provider-1")
    first.close()

    second = SqliteLedger(tmp_path / "ledger.sqlite")

    assert second.status(_claim().key) is SendStatus.SENT
    assert second.claim(_claim()) is False
    assert second.count() == {"sent": 1}


def test_released_claim_can_be_claimed_again(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    ledger.claim(_claim())

    ledger.release(_claim().key)

    assert ledger.status(_claim().key) is None
    assert ledger.claim(_claim()) is True


def test_permanent_failure_is_never_retried(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    ledger.claim(_claim())

    ledger.mark_failed(_claim().key, "MessageRejected")

    assert ledger.status(_claim().key) is SendStatus.FAILED
    assert ledger.claim(_claim()) is False


def test_many_threads_racing_for_one_key_get_one_claim(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")

    with ThreadPoolExecutor(max_workers=16) as pool:
        wins = list(pool.map(lambda i: ledger.claim(_claim(run_id=f"run-{i}")), range(200)))

    assert wins.count(True) == 1


def _race(path: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    ledger = SqliteLedger(Path(path))
    queue.put(sum(ledger.claim(_claim(key=f"k{i}")) for i in range(300)))


def test_two_processes_claiming_the_same_keys_split_them_exactly(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger.sqlite")
    SqliteLedger(Path(path)).close()  # create the schema once
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(path, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)

    assert queue.get(timeout=5) + queue.get(timeout=5) == 300
    assert SqliteLedger(Path(path)).count() == {"claimed": 300}
