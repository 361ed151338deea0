"""What a customer set on their preferences page: one record per customer, the latest wins.

A record says which marketing topics (``MailingTopic``, but never ``service``: order and service updates
cannot be turned off) and which channels' marketing the customer turned off, how often they want marketing
(``Frequency``: as usual, at most weekly, or paused until a day), and the profile facts campaigns use but
shops often lack: birthday, pets, gender. The next daily run merges them (``preference_snapshot.py``):
the planner drops what the customer turned off, and the facts fill only what the shop's own data leaves empty.

A write older than the stored record (``updated_at``) is ignored, so two pages submitted out of order
keep the later one. Backends: SQLite (the ``preferences`` table of ``state.sqlite``) and DynamoDB (items
``pk=PREFERENCES#<customer>``, ``sk=-``, on the state table). Standard library only: the unsubscribe Lambda
(which serves the page) ships without pandas or Prefect.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tasks.kernel.enums import Channel, Frequency, Gender, MailingTopic, Pets

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# The topics a customer may turn off: every one but order and service updates.
OPTIONAL_TOPICS: tuple[MailingTopic, ...] = (
    MailingTopic.NEWS_AND_SALES,
    MailingTopic.PERSONAL_PICKS,
    MailingTopic.BIRTHDAY_HOLIDAYS,
)
GENDERS: tuple[str, ...] = (Gender.FEMALE.value, Gender.MALE.value)
# The run's copy of the records for the planner, beside the day's tables (``preference_snapshot.py``).
PREFERENCES_FILE = "preferences.parquet"


@dataclass(frozen=True)
class Preferences:
    """One customer's preferences; ``updated_at`` is UTC. Unset facts are None."""

    customer_id: str
    topics_off: frozenset[str] = frozenset()
    channels_off: frozenset[str] = frozenset()
    frequency: str = Frequency.USUAL.value
    paused_until: date | None = None
    birthday: date | None = None
    pets: str | None = None
    gender: str | None = None
    updated_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)

    def __post_init__(self) -> None:
        if not self.topics_off <= {t.value for t in OPTIONAL_TOPICS}:
            raise ValueError("a preference may turn off news_and_sales, personal_picks or birthday_holidays only")
        if not self.channels_off <= {c.value for c in Channel}:
            raise ValueError("a preference may turn off email or sms only")
        if self.frequency not in {f.value for f in Frequency}:
            raise ValueError("a preference's frequency is usual, weekly or paused")
        if (self.frequency == Frequency.PAUSED.value) != (self.paused_until is not None):
            raise ValueError("a paused preference has a paused_until day, and only a paused one")
        if self.pets is not None and self.pets not in {p.value for p in Pets}:
            raise ValueError("pets are cat, dog or none")
        if self.gender is not None and self.gender not in GENDERS:
            raise ValueError("a preference's gender is f or m")


class PreferenceStore(Protocol):
    """Customers' preferences, one record each."""

    def record(self, preferences: Preferences) -> bool:
        """Store a record unless the stored one is newer; return whether it was stored."""

    def get(self, customer_id: str) -> Preferences | None:
        """The customer's record; None if they never saved the page."""

    def all(self) -> list[Preferences]:
        """Every record, by customer id."""

    def forget_customer(self, customer_id: str) -> int:
        """Erase the customer's record; return how many (0 or 1)."""


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _joined(values: Iterable[str]) -> str:
    return ",".join(sorted(values))


def _split(text: str) -> frozenset[str]:
    return frozenset(part for part in text.split(",") if part)


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _fields(p: Preferences) -> tuple[str, str, str, str, str | None, str | None, str | None, str | None, str]:
    return (
        p.customer_id,
        _joined(p.topics_off),
        _joined(p.channels_off),
        p.frequency,
        p.paused_until.isoformat() if p.paused_until else None,
        p.birthday.isoformat() if p.birthday else None,
        p.pets,
        p.gender,
        _iso(p.updated_at),
    )


def _from_fields(row: tuple[Any, ...]) -> Preferences:
    customer, topics, channels, frequency, paused, birthday, pets, gender, updated = row
    return Preferences(
        customer_id=customer,
        topics_off=_split(topics),
        channels_off=_split(channels),
        frequency=frequency,
        paused_until=_day(paused),
        birthday=_day(birthday),
        pets=pets,
        gender=gender,
        updated_at=_parse(updated),
    )


_COLUMNS = "customer_id, topics_off, channels_off, frequency, paused_until, birthday, pets, gender, updated_at"


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(os.fspath(path), timeout=30.0)) as db, db:
        yield db


class SqlitePreferences:
    """Preferences in ``state.sqlite``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with _connect(path) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS preferences (customer_id TEXT PRIMARY KEY, topics_off TEXT NOT NULL,"
                " channels_off TEXT NOT NULL, frequency TEXT NOT NULL, paused_until TEXT, birthday TEXT, pets TEXT,"
                " gender TEXT, updated_at TEXT NOT NULL)"
            )

    def record(self, preferences: Preferences) -> bool:
        with _connect(self._path) as db:
            cursor = db.execute(
                f"INSERT INTO preferences ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (customer_id) DO UPDATE SET topics_off = excluded.topics_off,"
                " channels_off = excluded.channels_off, frequency = excluded.frequency,"
                " paused_until = excluded.paused_until, birthday = excluded.birthday, pets = excluded.pets,"
                " gender = excluded.gender, updated_at = excluded.updated_at"
                " WHERE excluded.updated_at >= preferences.updated_at",
                _fields(preferences),
            )
            return cursor.rowcount > 0

    def get(self, customer_id: str) -> Preferences | None:
        with _connect(self._path) as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM preferences WHERE customer_id = ?", (customer_id,)).fetchone()
        return None if row is None else _from_fields(row)

    def all(self) -> list[Preferences]:
        with _connect(self._path) as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM preferences ORDER BY customer_id").fetchall()
        return [_from_fields(row) for row in rows]

    def forget_customer(self, customer_id: str) -> int:
        with _connect(self._path) as db:
            return db.execute("DELETE FROM preferences WHERE customer_id = ?", (customer_id,)).rowcount


_PREFIX = "PREFERENCES#"
_NAMES = [name.strip() for name in _COLUMNS.split(",")]


class DynamoDbPreferences:
    """Preferences on the state table: ``pk=PREFERENCES#<customer>``, ``sk=-``."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._name = table_name

    def record(self, preferences: Preferences) -> bool:
        item: dict[str, Any] = {"pk": {"S": _PREFIX + preferences.customer_id}, "sk": {"S": "-"}}
        for name, value in zip(_NAMES, _fields(preferences), strict=True):
            if value is not None:
                item[name] = {"S": value}
        try:
            self._client.put_item(
                TableName=self._name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR updated_at <= :u",
                ExpressionAttributeValues={":u": {"S": _iso(preferences.updated_at)}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False  # a newer record is stored
        return True

    def get(self, customer_id: str) -> Preferences | None:
        found = self._client.get_item(
            TableName=self._name, Key={"pk": {"S": _PREFIX + customer_id}, "sk": {"S": "-"}}, ConsistentRead=True
        )
        return _from_item(found["Item"]) if "Item" in found else None

    def all(self) -> list[Preferences]:
        # every customer's record: a filtered scan, once per daily run
        pages = self._client.get_paginator("scan").paginate(
            TableName=self._name,
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": {"S": _PREFIX}},
            ConsistentRead=True,
        )
        return sorted((_from_item(i) for page in pages for i in page["Items"]), key=lambda p: p.customer_id)

    def forget_customer(self, customer_id: str) -> int:
        gone = self._client.delete_item(
            TableName=self._name, Key={"pk": {"S": _PREFIX + customer_id}, "sk": {"S": "-"}}, ReturnValues="ALL_OLD"
        )
        return 1 if gone.get("Attributes") else 0


def _from_item(item: Any) -> Preferences:
    return _from_fields(tuple(item[name]["S"] if name in item else None for name in _NAMES))
