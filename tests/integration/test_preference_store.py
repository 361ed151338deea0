"""Preference records on both state backends (SQLite, DynamoDB on the local moto server): one record per
customer, the latest wins whatever order the writes arrive in; every record read back; a customer forgotten."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from tasks.kernel.aws import client
from tasks.kernel.settings import Settings
from tasks.state.dynamodb import create_state_table, open_dynamodb_state
from tasks.state.preferences import Preferences
from tasks.state.protocol import State
from tasks.state.sqlite import open_sqlite_state

AT = datetime(2024, 6, 1, 15, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "dynamodb"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], State]:
    """Opens the state of one test's backend; each call is another host on the same state."""
    if request.param == "sqlite":
        return lambda: open_sqlite_state(tmp_path / "state")
    request.getfixturevalue("aws")
    table = f"state-{uuid4().hex[:12]}"
    create_state_table(client("dynamodb", Settings()), table)
    return lambda: open_dynamodb_state(client("dynamodb", Settings()), table)


def test_the_latest_record_wins_even_when_an_older_one_arrives_after_it(opener: Callable[[], State]) -> None:
    weekly = Preferences("C1", channels_off=frozenset({"sms"}), frequency="weekly", updated_at=AT)
    paused = Preferences(
        "C1",
        topics_off=frozenset({"news_and_sales", "birthday_holidays"}),
        frequency="paused",
        paused_until=date(2024, 7, 1),
        birthday=date(1990, 4, 20),
        pets="cat",
        gender="f",
        updated_at=AT + timedelta(hours=1),
    )

    assert opener().preferences.record(weekly)
    assert opener().preferences.record(paused)
    assert not opener().preferences.record(weekly)  # a page submitted earlier, arriving late

    assert opener().preferences.get("C1") == paused
    assert opener().preferences.get("C2") is None


def test_every_record_is_read_back_and_a_forgotten_customer_leaves_none(opener: Callable[[], State]) -> None:
    opener().preferences.record(Preferences("C2", frequency="weekly", updated_at=AT))
    opener().preferences.record(Preferences("C1", pets="none", updated_at=AT))

    assert [p.customer_id for p in opener().preferences.all()] == ["C1", "C2"]
    assert opener().preferences.all()[0].pets == "none" and opener().preferences.all()[0].birthday is None

    assert opener().preferences.forget_customer("C1") == 1
    assert opener().preferences.forget_customer("C1") == 0
    assert [p.customer_id for p in opener().preferences.all()] == ["C2"]


@pytest.mark.parametrize(
    "fields",
    [
        {"topics_off": frozenset({"service"})},  # order and service updates cannot be turned off
        {"channels_off": frozenset({"fax"})},
        {"frequency": "paused"},  # a pause without its day
        {"pets": "parrot"},
        {"gender": "unknown"},
    ],
)
def test_a_record_that_cannot_be_honoured_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Preferences("C1", **fields)  # type: ignore[arg-type]
