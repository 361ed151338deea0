"""The suppression list: who must never be messaged again (bounce, complaint, unsubscribe, opt-out).

Two kinds of entry, both permanent and both idempotent to add (the first reason is kept):

* address suppressions - a hash of an email address or E.164 phone on one channel, from
  provider feedback (hard bounces, complaints, SMS opt-outs); no raw address is stored. They
  stop everything on the channel (``Topic.ALL``): the address is dead or its owner wants nothing;
* customer suppressions - a customer id on one channel, or on every channel, with the topic it
  stops (``Topic``): ``marketing`` (an unsubscribe from offers: order and service messages go on)
  or ``all``, from signed unsubscribe links and operators.

``all`` is stored as an empty topic: every row written before links carried a topic has one, and
each of those came from a whole-channel link, so the old rows keep their meaning with no migration.
A query for a topic counts ``all`` too: ``customers(channel, Topic.MARKETING)`` are those who get
no marketing, ``customers(channel)`` those who get nothing at all.

A complaint is recorded against the complained-about email address only: feedback carries
no customer id, a hash cannot be linked to the customer's phone, and consent is given per
channel. An operator who wants a customer silenced everywhere adds a customer suppression
with ``channel=None``.

SQLite with a 30 s busy timeout, short transactions and ``INSERT OR IGNORE`` keeps concurrent
writers (the unsubscribe endpoint, the feedback flow) and readers (the planner) safe on one host.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from tasks.kernel.enums import Channel, Topic
from tasks.kernel.settings import Settings

SUPPRESSIONS_FILE = "suppressions.sqlite"
# Stored in place of a channel for a suppression that covers every channel, and of a topic for
# ``Topic.ALL`` (NULL would make primary keys non-unique in SQLite; old rows hold "" already).
_ALL_CHANNELS = "*"
_WHOLE_CHANNEL = ""


class SuppressionReason(StrEnum):
    """Why someone is suppressed."""

    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"
    SMS_OPT_OUT = "sms_opt_out"


def address_hash(address: str) -> str:
    """Return a stable hash of a normalised address, so the list holds no raw PII."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


class SuppressionList:
    """Suppressed addresses and customers per channel, in a SQLite file in the state folder."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with self._transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS suppressions ("
                " channel TEXT NOT NULL, address_hash TEXT NOT NULL, reason TEXT NOT NULL,"
                " at TEXT NOT NULL, PRIMARY KEY (channel, address_hash))"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS customer_suppressions ("
                " channel TEXT NOT NULL, customer_id TEXT NOT NULL, topic TEXT NOT NULL, reason TEXT NOT NULL,"
                " at TEXT NOT NULL, PRIMARY KEY (channel, customer_id, topic))"
            )
            # which address (hash) each customer was messaged at: an unsubscribe by customer id then
            # also covers that address after the customer is re-imported under another id
            db.execute(
                "CREATE TABLE IF NOT EXISTS messaged_addresses ("
                " channel TEXT NOT NULL, customer_id TEXT NOT NULL, address_hash TEXT NOT NULL,"
                " PRIMARY KEY (channel, customer_id, address_hash))"
            )

    @classmethod
    def for_settings(cls, settings: Settings) -> SuppressionList:
        """Open the suppression list kept in the state folder."""
        return cls(settings.state_dir / SUPPRESSIONS_FILE)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # sqlite3's own context manager commits but never closes; close, so no handle leaks
        with closing(sqlite3.connect(self._path, timeout=30)) as db, db:
            yield db

    def add(self, channel: Channel, address: str, reason: SuppressionReason | str) -> bool:
        """Suppress an address on a channel; the first reason is kept. Return whether it is new."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO suppressions VALUES (?, ?, ?, ?)",
                (Channel(channel).value, address_hash(address), SuppressionReason(reason).value, _now()),
            )
            return cursor.rowcount == 1

    def add_many(self, channel: Channel, addresses: Iterable[str], reason: SuppressionReason | str) -> int:
        """Suppress many addresses on a channel in one transaction; return how many are new."""
        at, why = _now(), SuppressionReason(reason).value
        rows = [(Channel(channel).value, address_hash(a), why, at) for a in addresses]
        if not rows:
            return 0
        with self._transaction() as db:
            return db.executemany("INSERT OR IGNORE INTO suppressions VALUES (?, ?, ?, ?)", rows).rowcount

    def add_customer(
        self,
        channel: Channel | None,
        customer_id: str,
        reason: SuppressionReason | str,
        topic: str | None = None,
    ) -> bool:
        """Suppress a customer on a channel (``None``: every channel) for a topic (``None``: ``Topic.ALL``).

        The first reason is kept. Return whether the entry is new.
        """
        stored_channel = _ALL_CHANNELS if channel is None else Channel(channel).value
        if topic == _WHOLE_CHANNEL:
            raise ValueError("a topic must not be empty: pass None or Topic.ALL to suppress the whole channel")
        stored_topic = _WHOLE_CHANNEL if topic is None or topic == Topic.ALL else topic
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO customer_suppressions VALUES (?, ?, ?, ?, ?)",
                (stored_channel, customer_id, stored_topic, SuppressionReason(reason).value, _now()),
            )
            return cursor.rowcount == 1

    def remember(self, channel: Channel, customers_and_addresses: Iterable[tuple[str, str]]) -> None:
        """Record the addresses customers are messaged at (hashed), for unsubscribes by customer id."""
        rows = [(Channel(channel).value, c, address_hash(a)) for c, a in customers_and_addresses]
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE INTO messaged_addresses VALUES (?, ?, ?)", rows)

    def hashes(self, channel: Channel, topic: str | None = None) -> frozenset[str]:
        """Return the hashes of the addresses that must not get a message of ``topic`` on a channel
        (``None``: of any topic, i.e. suppressed for ``Topic.ALL``).

        Address suppressions (bounces, complaints, SMS opt-outs) cover every topic.
        """
        topics = _stopping(topic)
        with self._transaction() as db:
            rows = db.execute("SELECT address_hash FROM suppressions WHERE channel = ?", (Channel(channel).value,))
            direct = frozenset(r[0] for r in rows)
            # addresses of customers suppressed by id (unsubscribe links), wherever they turn up again
            rows = db.execute(
                "SELECT m.address_hash FROM messaged_addresses m JOIN customer_suppressions s"
                " ON s.customer_id = m.customer_id AND s.channel IN (m.channel, ?)"
                f" AND s.topic IN ({', '.join('?' * len(topics))}) WHERE m.channel = ?",
                (_ALL_CHANNELS, *topics, Channel(channel).value),
            )
            return direct | frozenset(r[0] for r in rows)

    def customers(self, channel: Channel, topic: str | None = None) -> frozenset[str]:
        """Return the customers who must not hear anything on a channel, or on one topic of it.

        Without a topic (or ``Topic.ALL``): those suppressed for ``all`` on the channel or on every
        channel. With a topic: those, plus those who unsubscribed from that topic only.
        """
        topics = _stopping(topic)
        with self._transaction() as db:
            rows = db.execute(
                "SELECT customer_id FROM customer_suppressions"
                f" WHERE channel IN (?, ?) AND topic IN ({', '.join('?' * len(topics))})",
                (Channel(channel).value, _ALL_CHANNELS, *topics),
            )
            return frozenset(r[0] for r in rows)

    def reason(self, channel: Channel, address: str) -> SuppressionReason | None:
        """Return why an address is suppressed on a channel, or None if it is not."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT reason FROM suppressions WHERE channel = ? AND address_hash = ?",
                (Channel(channel).value, address_hash(address)),
            ).fetchone()
            return None if row is None else SuppressionReason(row[0])

    def customer_reason(self, channel: Channel, customer_id: str, topic: str | None = None) -> SuppressionReason | None:
        """Return why a customer is suppressed on a channel (or topic), or None if they are not."""
        topics = _stopping(topic)
        with self._transaction() as db:
            row = db.execute(
                "SELECT reason FROM customer_suppressions WHERE customer_id = ? AND channel IN (?, ?)"
                f" AND topic IN ({', '.join('?' * len(topics))}) ORDER BY at LIMIT 1",
                (customer_id, Channel(channel).value, _ALL_CHANNELS, *topics),
            ).fetchone()
            return None if row is None else SuppressionReason(row[0])


def _stopping(topic: str | None) -> tuple[str, ...]:
    """The stored topics whose suppressions stop a message of ``topic`` (``None``: ``Topic.ALL``)."""
    return (_WHOLE_CHANNEL,) if topic is None or topic == Topic.ALL else (_WHOLE_CHANNEL, topic)


def _now() -> str:
    return datetime.now(UTC).isoformat()
