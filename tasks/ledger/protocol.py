"""The send ledger: every outbound message is claimed, sent, then marked.

``claim`` is a conditional insert keyed by the idempotency key, so the same
key is sent at most once across retries, re-runs, overlapping runs and
backfills.  A transient failure releases the claim; a permanent one marks the
entry FAILED with its reason.

A claim holds a lease.  A claim still CLAIMED after its lease was left by a
crash between send and mark: nobody knows whether the message went out, so the
entry is UNKNOWN.  A send whose answer was lost (``mark_unknown``) is UNKNOWN too.
What happens next depends on the entry's kind: marketing is never sent again (at
most once), transactional is taken over by the next claim and sent again (at
least once).  ``expire`` lists the UNKNOWN entries for the run report.

Marks are fenced: ``mark_sent``, ``mark_failed`` and ``mark_unknown`` with a
``run_id`` raise LookupError when that run no longer holds the claim (its lease
ran out and another run took the entry over, or made it UNKNOWN).

Batches: ``claim_many`` answers exactly what ``claim`` would for each claim in turn, and returns
only once every claim it took is durable, so the messages of a batch may go out as soon as it
returns (claim before send holds for each of them). ``mark_many`` applies marks like ``mark_sent`` /
``mark_failed`` / ``mark_unknown`` and answers, per mark, whether it applied instead of raising.
Delivery claims a shard's messages a batch at a time and marks them a batch at a time; a mark lost
with its batch (a crash after the sends) leaves the entry CLAIMED, which after its lease is the
UNKNOWN of a crash between send and mark. ``statuses`` lets delivery skip what is already SENT or
FAILED (final: no rule ever moves an entry out of them) without a write.

Two backends keep exactly the same rules: ``SqliteLedger`` (one file, the
embedded default) decides inside one ``BEGIN IMMEDIATE`` transaction (one per batch);
``DynamoDbLedger`` uses conditional writes only (one per entry; a batch's writes go out side by side).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from tasks.kernel.enums import MessageKind, SendStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


LEASE = timedelta(minutes=15)
"""How long a claim is trusted to be in flight before it counts as abandoned."""


@dataclass(frozen=True)
class Claim:
    """What is recorded when a message is claimed."""

    key: str
    campaign: str
    channel: str
    customer_id: str
    kind: str
    run_id: str


_FINAL_MARKS = frozenset({SendStatus.SENT, SendStatus.FAILED, SendStatus.UNKNOWN})


@dataclass(frozen=True)
class Mark:
    """How a claimed send ended, to record in a batch (``mark_many``).

    ``status``: SENT (``detail`` is the provider's message id), FAILED or UNKNOWN (``detail`` is the
    reason). ``run_id``: the run that must still hold the claim (None: any holder).
    """

    key: str
    status: SendStatus
    detail: str
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.status not in _FINAL_MARKS:
            raise ValueError(f"a mark records sent, failed or unknown, not {self.status}")


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger entry as stored, for reports."""

    key: str
    campaign: str
    channel: str
    customer_id: str
    kind: MessageKind
    status: SendStatus
    run_id: str
    attempts: int
    provider_id: str | None
    reason: str | None
    claimed_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> LedgerEntry:
        """Build an entry from a row of the SQLite ``sends`` table."""
        return cls(
            key=row["key"],
            campaign=row["campaign"],
            channel=row["channel"],
            customer_id=row["customer_id"],
            kind=MessageKind(row["kind"]),
            status=SendStatus(row["status"]),
            run_id=row["run_id"],
            attempts=int(row["attempts"]),
            provider_id=row["provider_id"],
            reason=row["reason"],
            claimed_at=_parse(row["claimed_at"]),
            updated_at=_parse(row["updated_at"]),
        )

    @classmethod
    def from_item(cls, item: Mapping[str, AttributeValueTypeDef]) -> LedgerEntry:
        """Build an entry from a DynamoDB item (low-level client format)."""

        def text(name: str) -> str | None:
            return item[name]["S"] if name in item else None

        return cls(
            key=item["pk"]["S"],
            campaign=item["campaign"]["S"],
            channel=item["channel"]["S"],
            customer_id=item["customer_id"]["S"],
            kind=MessageKind(item["kind"]["S"]),
            status=SendStatus(item["status"]["S"]),
            run_id=item["run_id"]["S"],
            attempts=int(item["attempts"]["N"]),
            provider_id=text("provider_id"),
            reason=text("reason"),
            claimed_at=_parse(item["claimed_at"]["S"]),
            updated_at=_parse(item["updated_at"]["S"]),
        )


class Ledger(Protocol):
    """The protocol every ledger backend implements (SQLite and DynamoDB)."""

    def claim(self, claim: Claim, now: datetime | None = None) -> bool:
        """Take the key for sending; False if someone holds it, it is done, or its fate is unknown.

        A claim past its lease (or an UNKNOWN entry) is taken over when the
        entry is transactional and turned UNKNOWN when it is marketing.
        """

    def claim_many(self, claims: Sequence[Claim], now: datetime | None = None) -> list[bool]:
        """Claim each in turn, as ``claim`` would; return once every claim taken is durable.

        One answer per claim, in order: a key repeated in the batch is won at most once.
        """

    def mark_sent(self, key: str, provider_id: str, *, run_id: str | None = None) -> None:
        """Record a successful send with the provider's message id.

        Raises LookupError unless the key is CLAIMED (by ``run_id``, when given).
        """

    def mark_failed(self, key: str, reason: str, *, run_id: str | None = None) -> None:
        """Record a permanent failure; the key is never retried.

        Raises LookupError unless the key is CLAIMED (by ``run_id``, when given).
        """

    def mark_unknown(self, key: str, reason: str, *, run_id: str | None = None) -> None:
        """Record that a send's outcome is unknown (its answer was lost): the provider may have sent it.

        The same rule as a crash-left claim then applies: marketing is never sent again,
        transactional is taken over by a later run. Raises LookupError unless the key is
        CLAIMED (by ``run_id``, when given).
        """

    def mark_many(self, marks: Sequence[Mark]) -> list[bool]:
        """Apply each mark as ``mark_sent``, ``mark_failed`` or ``mark_unknown`` would; one answer per mark, in
        order: False where that one would raise LookupError (the key not CLAIMED by the mark's run)."""

    def release(self, key: str, *, run_id: str | None = None) -> None:
        """Give a CLAIMED key back after a transient failure so a later attempt can send.

        Does nothing unless the key is CLAIMED (by ``run_id``, when given).
        """

    def status(self, key: str) -> SendStatus | None:
        """Return the entry's status, or None if the key was never claimed."""

    def statuses(self, keys: Iterable[str]) -> dict[str, SendStatus]:
        """Return the status of every key the ledger holds among ``keys`` (batched: for planning a day)."""

    def count(self, run_id: str | None = None) -> dict[str, int]:
        """Count entries per status, for one run or in all (for reports)."""

    def entries(self, run_id: str | None = None) -> list[LedgerEntry]:
        """Return the entries of one run, or all, oldest claim first (for reports)."""

    def expire(self, now: datetime | None = None) -> list[LedgerEntry]:
        """Turn every claim past its lease into UNKNOWN; return all UNKNOWN entries."""

    def forget_customer(self, customer_id: str) -> int:
        """Blank the customer id on their entries (``loyalty forget``); the keys stay, so nothing is sent again.

        Return how many entries held it. Scans the whole table on DynamoDB: an erasure, never the send path.
        """

    def close(self) -> None:
        """Release the backend's resources."""


class _Verdict(Enum):
    REFUSE = "refuse"
    MARK_UNKNOWN = "mark_unknown"
    TAKE_OVER = "take_over"


def _decide(status: SendStatus, kind: MessageKind, claimed_at: datetime, now: datetime, lease: timedelta) -> _Verdict:
    """What a new claim does to an existing entry: the one rule both backends apply."""
    if status in (SendStatus.SENT, SendStatus.FAILED):
        return _Verdict.REFUSE
    if status is SendStatus.CLAIMED and now - claimed_at < lease:
        return _Verdict.REFUSE  # someone is sending it right now
    # A claim past its lease, or UNKNOWN: it may or may not have gone out.
    if kind is MessageKind.MARKETING:
        return _Verdict.MARK_UNKNOWN if status is SendStatus.CLAIMED else _Verdict.REFUSE
    return _Verdict.TAKE_OVER


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("ledger times must be time-zone aware")
    return now.astimezone(UTC)


def _iso(at: datetime) -> str:
    # One fixed-width UTC format, so stored timestamps also compare correctly as strings.
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _oldest_first(entries: Iterator[LedgerEntry]) -> list[LedgerEntry]:
    return sorted(entries, key=lambda entry: (entry.claimed_at, entry.key))
