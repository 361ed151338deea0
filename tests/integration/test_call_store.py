"""The call-outcomes store, the same suite on both backends (SQLite files, DynamoDB on a local moto server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import pytest

from tasks.kernel.aws import client
from tasks.kernel.settings import Settings
from tasks.state.calls import CallOutcome, CallRecord, closed_incidents
from tasks.state.dynamodb import create_state_table, open_dynamodb_state
from tasks.state.protocol import State
from tasks.state.sqlite import open_sqlite_state

LATE = "2024-05-28:late_delivery:O1"
RETURNED = "2024-05-30:returned:O2"


@pytest.fixture(params=["sqlite", "dynamodb"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], State]:
    """Opens the state of one test's backend; each call is another host on the same state."""
    if request.param == "sqlite":
        return lambda: open_sqlite_state(tmp_path / "state")
    request.getfixturevalue("aws")
    table = f"state-{uuid4().hex[:12]}"
    create_state_table(client("dynamodb", Settings()), table)
    return lambda: open_dynamodb_state(client("dynamodb", Settings()), table)


def test_recording_the_same_calls_twice_changes_nothing(opener: Callable[[], State]) -> None:
    calls = [
        CallRecord("C1", LATE, CallOutcome.NO_ANSWER, "2024-06-01"),
        CallRecord("C1", LATE, CallOutcome.RESOLVED, "2024-06-02", "sent a new parcel"),
    ]

    first = opener().calls.record(calls)
    second = opener().calls.record(calls)

    assert (first, second) == (2, 0)
    assert opener().calls.outcomes() == calls


def test_a_corrected_outcome_replaces_the_same_call_and_closes_only_its_incident(opener: Callable[[], State]) -> None:
    opener().calls.record([CallRecord("C1", LATE, CallOutcome.NO_ANSWER, "2024-06-01")])
    opener().calls.record([CallRecord("C1", RETURNED, CallOutcome.REACHED, "2024-06-01")])

    changed = opener().calls.record([CallRecord("C1", LATE, CallOutcome.RESOLVED, "2024-06-01")])

    assert changed == 1
    assert closed_incidents(opener().calls.outcomes()) == {("C1", LATE)}


def test_forgetting_a_customer_erases_their_calls_only(opener: Callable[[], State]) -> None:
    opener().calls.record(
        [
            CallRecord("C1", LATE, CallOutcome.WANTS_NO_CONTACT, "2024-06-01", "no more calls"),
            CallRecord("C10", RETURNED, CallOutcome.REACHED, "2024-06-01"),
        ]
    )

    erased = opener().calls.forget_customer("C1")

    assert erased == 1
    assert [r.customer_id for r in opener().calls.outcomes()] == ["C10"]
