"""Survey answers: the score (0-10) and optional comment a customer gave about one order.

One answer per (customer, order): a later answer for the same order replaces the earlier one (a
customer who changes their mind is heard once, with their last word). The daily run reads the
answers of a period (``answers``) to turn detractors into incidents and promoters into review
requests; the weekly report reads a week. Comments are customers' free text: kept here, never
logged, and cut to ``MAX_COMMENT_CHARS`` with control characters stripped before they are stored.

Backends: SQLite (the ``surveys`` table of ``state.sqlite``) and DynamoDB (items ``pk=SURVEY#<customer>``,
``sk=<order id>``, on the state table). Standard library only: the unsubscribe Lambda (which records the
answers) ships without pandas or Prefect; the daily run's copy of the answers is ``survey_snapshot.py``.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_COMMENT_CHARS = 2000
# C0 and C1 controls and DEL, but for the line breaks and tabs a comment may have
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_comment(text: str | None) -> str:
    """A customer's comment as stored: control characters stripped, trimmed, at most ``MAX_COMMENT_CHARS``."""
    if not text:
        return ""
    return _CONTROL.sub("", text.replace("\r\n", "\n")).strip()[:MAX_COMMENT_CHARS]


@dataclass(frozen=True)
class SurveyAnswer:
    """One customer's answer about one order; ``answered_at`` is UTC."""

    customer_id: str
    order_id: str
    score: int
    comment: str
    answered_at: datetime

    def __post_init__(self) -> None:
        if not 0 <= self.score <= 10:
            raise ValueError("a survey score is 0 to 10")


class SurveyStore(Protocol):
    """Survey answers, one per (customer, order)."""

    def record(self, answer: SurveyAnswer) -> None:
        """Store an answer, replacing an earlier one for the same customer and order."""

    def answers(self, first: datetime, last: datetime) -> list[SurveyAnswer]:
        """Answers with ``first <= answered_at < last``, oldest first."""

    def forget_customer(self, customer_id: str) -> int:
        """Erase the customer's answers; return how many."""


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(os.fspath(path), timeout=30.0)) as db, db:
        yield db


class SqliteSurveys:
    """Survey answers in ``state.sqlite``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with _connect(path) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS surveys (customer_id TEXT NOT NULL, order_id TEXT NOT NULL,"
                " score INTEGER NOT NULL, comment TEXT NOT NULL, answered_at TEXT NOT NULL,"
                " PRIMARY KEY (customer_id, order_id))"
            )

    def record(self, answer: SurveyAnswer) -> None:
        with _connect(self._path) as db:
            db.execute(
                "INSERT OR REPLACE INTO surveys VALUES (?, ?, ?, ?, ?)",
                (
                    answer.customer_id,
                    answer.order_id,
                    answer.score,
                    clean_comment(answer.comment),
                    _iso(answer.answered_at),
                ),
            )

    def answers(self, first: datetime, last: datetime) -> list[SurveyAnswer]:
        with _connect(self._path) as db:
            rows = db.execute(
                "SELECT customer_id, order_id, score, comment, answered_at FROM surveys"
                " WHERE answered_at >= ? AND answered_at < ? ORDER BY answered_at, customer_id, order_id",
                (_iso(first), _iso(last)),
            ).fetchall()
        return [SurveyAnswer(c, o, int(s), t, _parse(a)) for c, o, s, t, a in rows]

    def forget_customer(self, customer_id: str) -> int:
        with _connect(self._path) as db:
            return db.execute("DELETE FROM surveys WHERE customer_id = ?", (customer_id,)).rowcount


class DynamoDbSurveys:
    """Survey answers on the state table: ``pk=SURVEY#<customer>``, ``sk=<order id>``."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._name = table_name

    def record(self, answer: SurveyAnswer) -> None:
        self._client.put_item(
            TableName=self._name,
            Item={
                "pk": {"S": f"SURVEY#{answer.customer_id}"},
                "sk": {"S": answer.order_id},
                "customer_id": {"S": answer.customer_id},
                "order_id": {"S": answer.order_id},
                "score": {"N": str(answer.score)},
                "comment": {"S": clean_comment(answer.comment)},
                "answered_at": {"S": _iso(answer.answered_at)},
            },
        )

    def answers(self, first: datetime, last: datetime) -> list[SurveyAnswer]:
        # by answer time across customers: a filtered scan (a week's answers, read by the daily run and the report)
        values: dict[str, Any] = {
            ":p": {"S": "SURVEY#"},
            ":first": {"S": _iso(first)},
            ":last": {"S": _iso(last)},
        }
        pages = self._client.get_paginator("scan").paginate(
            TableName=self._name,
            FilterExpression="begins_with(pk, :p) AND answered_at >= :first AND answered_at < :last",
            ExpressionAttributeValues=values,
            ConsistentRead=True,
        )
        found = [_answer(item) for page in pages for item in page["Items"]]
        return sorted(found, key=lambda a: (a.answered_at, a.customer_id, a.order_id))

    def forget_customer(self, customer_id: str) -> int:
        pages = self._client.get_paginator("query").paginate(
            TableName=self._name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"SURVEY#{customer_id}"}},
            ConsistentRead=True,
        )
        keys = [{"pk": item["pk"], "sk": item["sk"]} for page in pages for item in page["Items"]]
        for key in keys:
            self._client.delete_item(TableName=self._name, Key=key)
        return len(keys)


def _answer(item: Any) -> SurveyAnswer:
    return SurveyAnswer(
        customer_id=item["customer_id"]["S"],
        order_id=item["order_id"]["S"],
        score=int(item["score"]["N"]),
        comment=item["comment"]["S"],
        answered_at=_parse(item["answered_at"]["S"]),
    )
