"""Survey answers on both state backends (SQLite, DynamoDB on the local moto server): one answer per order,
the last word kept; comments cleaned; a period read back across customers; a customer forgotten."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from tasks.kernel.aws import client
from tasks.kernel.settings import Settings
from tasks.state.dynamodb import create_state_table, open_dynamodb_state
from tasks.state.protocol import State
from tasks.state.sqlite import open_sqlite_state
from tasks.state.surveys import MAX_COMMENT_CHARS, SurveyAnswer

AT = datetime(2024, 6, 1, 15, 0, tzinfo=UTC)
WEEK = (datetime(2024, 5, 27, tzinfo=UTC), datetime(2024, 6, 3, tzinfo=UTC))


@pytest.fixture(params=["sqlite", "dynamodb"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], State]:
    """Opens the state of one test's backend; each call is another host on the same state."""
    if request.param == "sqlite":
        return lambda: open_sqlite_state(tmp_path / "state")
    request.getfixturevalue("aws")
    table = f"state-{uuid4().hex[:12]}"
    create_state_table(client("dynamodb", Settings()), table)
    return lambda: open_dynamodb_state(client("dynamodb", Settings()), table)


def test_a_second_answer_about_the_same_order_replaces_the_first(opener: Callable[[], State]) -> None:
    opener().surveys.record(SurveyAnswer("C1", "O1", 3, "late", AT))
    opener().surveys.record(SurveyAnswer("C1", "O1", 8, "fine after all", AT + timedelta(hours=1)))
    opener().surveys.record(SurveyAnswer("C1", "O2", 10, "", AT + timedelta(hours=2)))
    opener().surveys.record(SurveyAnswer("C2", "O1", 0, "", AT))  # another customer's order of the same id

    found = opener().surveys.answers(*WEEK)

    assert [(a.customer_id, a.order_id, a.score, a.comment) for a in found] == [
        ("C2", "O1", 0, ""),
        ("C1", "O1", 8, "fine after all"),
        ("C1", "O2", 10, ""),
    ]
    assert found[1].answered_at == AT + timedelta(hours=1)


def test_answers_are_read_by_period_end_excluded(opener: Callable[[], State]) -> None:
    opener().surveys.record(SurveyAnswer("C1", "O1", 7, "", WEEK[0] - timedelta(microseconds=1)))
    opener().surveys.record(SurveyAnswer("C1", "O2", 7, "", WEEK[0]))
    opener().surveys.record(SurveyAnswer("C1", "O3", 7, "", WEEK[1]))

    assert [a.order_id for a in opener().surveys.answers(*WEEK)] == ["O2"]


def test_a_comment_is_stored_without_control_characters_and_cut_to_the_limit(opener: Callable[[], State]) -> None:
    opener().surveys.record(SurveyAnswer("C1", "O1", 9, "ok\x00\x1b[31m\r\nгрустно" + "x" * 5000, AT))

    comment = opener().surveys.answers(*WEEK)[0].comment

    assert comment.startswith("ok[31m\nгрустно") and len(comment) == MAX_COMMENT_CHARS


def test_a_forgotten_customer_leaves_no_answer(opener: Callable[[], State]) -> None:
    opener().surveys.record(SurveyAnswer("C1", "O1", 2, "bad", AT))
    opener().surveys.record(SurveyAnswer("C2", "O2", 9, "", AT))

    assert opener().surveys.forget_customer("C1") == 1

    assert [a.customer_id for a in opener().surveys.answers(*WEEK)] == ["C2"]
