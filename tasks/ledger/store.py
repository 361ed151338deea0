"""The send ledger: every outbound message is claimed, sent, then marked.

``claim`` is a conditional insert keyed by the idempotency key, so the same
key is sent at most once across retries, re-runs, overlapping runs and
backfills.  A transient failure releases the claim; a permanent one marks the
entry FAILED with its reason.

A claim holds a lease.  A claim still CLAIMED after its lease was left by a
crash between send and mark: nobody knows whether the message went out, so the
entry is UNKNOWN.  What happens next depends on the entry's kind: marketing is
never sent again (at most once), transactional is taken over by the next claim
and sent again (at least once).  ``expire`` lists the UNKNOWN entries for the
run report.

Two backends keep exactly the same rules: ``SqliteLedger`` (one file, the
embedded default) decides inside one ``BEGIN IMMEDIATE`` transaction;
``DynamoDbLedger`` uses conditional writes only.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from tasks.kernel.enums import MessageKind, SendStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    from tasks.kernel.settings import Settings

LEASE = timedelta(minutes=15)
# Keys per lookup: SQLite's bound-parameter limit is far above; DynamoDB BatchGetItem takes at most 100.
_SQLITE_BATCH = 500
_DYNAMODB_BATCH = 100
_UNPROCESSED_ATTEMPTS = 8
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

    def mark_sent(self, key: str, provider_id: str, *, run_id: str | None = None) -> None:
        """Record a successful send with the provider's message id.

        Raises LookupError unless the key is CLAIMED (by ``run_id``, when given).
        """

    def mark_failed(self, key: str, reason: str, *, run_id: str | None = None) -> None:
        """Record a permanent failure; the key is never retried.

        Raises LookupError unless the key is CLAIMED (by ``run_id``, when given).
        """

    def release(self, key: str, *, run_id: str | None = None) -> None:
        """Give a CLAIMED key back after a transient failure so a later attempt can send."""

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


class SqliteLedger:
    """The embedded ledger: one SQLite file in the state folder, safe across threads and processes."""

    def __init__(self, path: Path, lease: timedelta = LEASE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lease = lease
        self._db = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS sends ("
                " key TEXT PRIMARY KEY, campaign TEXT NOT NULL, channel TEXT NOT NULL,"
                " customer_id TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,"
                " provider_id TEXT, reason TEXT, run_id TEXT NOT NULL,"
                " claimed_at TEXT NOT NULL, updated_at TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 1)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS sends_run ON sends (run_id, status)")
            db.execute("CREATE INDEX IF NOT EXISTS sends_status ON sends (status, claimed_at)")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so read-decide-write is atomic across processes.
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def claim(self, claim: Claim, now: datetime | None = None) -> bool:
        at = _iso(_utc(now))
        kind = MessageKind(claim.kind)
        with self._tx() as db:
            row = db.execute("SELECT status, kind, claimed_at FROM sends WHERE key = ?", (claim.key,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO sends (key, campaign, channel, customer_id, kind, status, run_id,"
                    " claimed_at, updated_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                    (
                        claim.key,
                        claim.campaign,
                        claim.channel,
                        claim.customer_id,
                        kind.value,
                        SendStatus.CLAIMED.value,
                        claim.run_id,
                        at,
                        at,
                    ),
                )
                return True
            verdict = _decide(
                SendStatus(row["status"]), MessageKind(row["kind"]), _parse(row["claimed_at"]), _parse(at), self._lease
            )
            if verdict is _Verdict.MARK_UNKNOWN:
                db.execute(
                    "UPDATE sends SET status = ?, updated_at = ? WHERE key = ?",
                    (SendStatus.UNKNOWN.value, at, claim.key),
                )
            elif verdict is _Verdict.TAKE_OVER:
                db.execute(
                    "UPDATE sends SET status = ?, run_id = ?, claimed_at = ?, updated_at = ?, attempts = attempts + 1"
                    " WHERE key = ?",
                    (SendStatus.CLAIMED.value, claim.run_id, at, at, claim.key),
                )
            return verdict is _Verdict.TAKE_OVER

    def mark_sent(self, key: str, provider_id: str, *, run_id: str | None = None) -> None:
        self._finish(key, run_id, SendStatus.SENT, provider_id=provider_id)

    def mark_failed(self, key: str, reason: str, *, run_id: str | None = None) -> None:
        self._finish(key, run_id, SendStatus.FAILED, reason=reason)

    def _finish(
        self,
        key: str,
        run_id: str | None,
        status: SendStatus,
        provider_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        query = "UPDATE sends SET status = ?, provider_id = ?, reason = ?, updated_at = ? WHERE key = ? AND status = ?"
        args: tuple[str | None, ...] = (
            status.value,
            provider_id,
            reason,
            _iso(_utc(None)),
            key,
            SendStatus.CLAIMED.value,
        )
        if run_id is not None:
            query, args = query + " AND run_id = ?", (*args, run_id)
        with self._tx() as db:
            if db.execute(query, args).rowcount != 1:
                raise LookupError(f"ledger entry {key} is not claimed" + ("" if run_id is None else f" by {run_id}"))

    def release(self, key: str, *, run_id: str | None = None) -> None:
        query = "DELETE FROM sends WHERE key = ? AND status = ?"
        args: tuple[str, ...] = (key, SendStatus.CLAIMED.value)
        if run_id is not None:
            query, args = query + " AND run_id = ?", (*args, run_id)
        with self._tx() as db:
            db.execute(query, args)

    def status(self, key: str) -> SendStatus | None:
        with self._lock:
            row = self._db.execute("SELECT status FROM sends WHERE key = ?", (key,)).fetchone()
        return None if row is None else SendStatus(row[0])

    def statuses(self, keys: Iterable[str]) -> dict[str, SendStatus]:
        found: dict[str, SendStatus] = {}
        wanted = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(wanted), _SQLITE_BATCH):
                batch = wanted[start : start + _SQLITE_BATCH]
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(f"SELECT key, status FROM sends WHERE key IN ({marks})", batch)
                found.update((key, SendStatus(status)) for key, status in rows)
        return found

    def count(self, run_id: str | None = None) -> dict[str, int]:
        query = "SELECT status, COUNT(*) FROM sends"
        args: tuple[str, ...] = ()
        if run_id is not None:
            query, args = query + " WHERE run_id = ?", (run_id,)
        with self._lock:
            rows = self._db.execute(query + " GROUP BY status", args).fetchall()
        return {str(s): int(n) for s, n in rows}

    def entries(self, run_id: str | None = None) -> list[LedgerEntry]:
        query = "SELECT * FROM sends"
        args: tuple[str, ...] = ()
        if run_id is not None:
            query, args = query + " WHERE run_id = ?", (run_id,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY claimed_at, key", args).fetchall()
        return [LedgerEntry.from_row(row) for row in rows]

    def expire(self, now: datetime | None = None) -> list[LedgerEntry]:
        at = _utc(now)
        with self._tx() as db:
            db.execute(
                "UPDATE sends SET status = ?, updated_at = ? WHERE status = ? AND claimed_at <= ?",
                (SendStatus.UNKNOWN.value, _iso(at), SendStatus.CLAIMED.value, _iso(at - self._lease)),
            )
            rows = db.execute(
                "SELECT * FROM sends WHERE status = ? ORDER BY claimed_at, key", (SendStatus.UNKNOWN.value,)
            ).fetchall()
        return [LedgerEntry.from_row(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


_CLAIM_ROUNDS = 5
_SET_UNKNOWN = "SET #status = :unknown, #updated_at = :now"
_TAKE_OVER = (
    "SET #status = :claimed, #run_id = :run_id, #claimed_at = :now, #updated_at = :now, #attempts = #attempts + :one"
)


def _names(*expressions: str) -> dict[str, str]:
    """ExpressionAttributeNames for every ``#name`` used: "status" and others are reserved words."""
    return {ref: ref[1:] for expression in expressions for ref in re.findall(r"#\w+", expression)}


def _conditional_check_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _s(value: str) -> AttributeValueTypeDef:
    return {"S": str(value)}


class DynamoDbLedger:
    """The AWS ledger: one DynamoDB table (hash key ``pk`` = idempotency key), conditional writes only.

    ``count``, ``entries`` and ``expire`` scan the whole table: they are for
    run reports and housekeeping, never for the send path.
    """

    def __init__(self, client: DynamoDBClient, table_name: str, lease: timedelta = LEASE) -> None:
        self._client = client
        self._table = table_name
        self._lease = lease

    def claim(self, claim: Claim, now: datetime | None = None) -> bool:
        at = _utc(now)
        stamp = _iso(at)
        kind = MessageKind(claim.kind)
        for _ in range(_CLAIM_ROUNDS):
            current = self._insert(claim, kind, stamp)
            if current is None:
                return True
            entry = LedgerEntry.from_item(current)
            verdict = _decide(entry.status, entry.kind, entry.claimed_at, _parse(stamp), self._lease)
            if verdict is _Verdict.REFUSE:
                return False
            if verdict is _Verdict.MARK_UNKNOWN:
                # Losing this race means someone else already resolved the entry: either way, not ours.
                self._update_seen(current, _SET_UNKNOWN, {":unknown": _s(SendStatus.UNKNOWN), ":now": _s(stamp)})
                return False
            values = {":claimed": _s(SendStatus.CLAIMED), ":run_id": _s(claim.run_id), ":now": _s(stamp)}
            if self._update_seen(current, _TAKE_OVER, {**values, ":one": {"N": "1"}}):
                return True
            # Someone changed the entry between our read and our write: look again.
        return False

    def _insert(self, claim: Claim, kind: MessageKind, stamp: str) -> dict[str, AttributeValueTypeDef] | None:
        """Insert a fresh CLAIMED entry; None on success, else the entry that is already there."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": _s(claim.key),
                    "campaign": _s(claim.campaign),
                    "channel": _s(claim.channel),
                    "customer_id": _s(claim.customer_id),
                    "kind": _s(kind),
                    "status": _s(SendStatus.CLAIMED),
                    "run_id": _s(claim.run_id),
                    "attempts": {"N": "1"},
                    "claimed_at": _s(stamp),
                    "updated_at": _s(stamp),
                },
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _conditional_check_failed(exc):
                raise
            old: dict[str, AttributeValueTypeDef] | None = exc.response.get("Item")  # type: ignore[assignment]
            return old if old else self._get(claim.key)
        return None

    def _get(self, key: str) -> dict[str, AttributeValueTypeDef] | None:
        return self._client.get_item(TableName=self._table, Key={"pk": _s(key)}, ConsistentRead=True).get("Item")

    def _update_seen(
        self, seen: Mapping[str, AttributeValueTypeDef], update: str, values: dict[str, AttributeValueTypeDef]
    ) -> bool:
        """Apply ``update`` only if the entry is still exactly the claim we read; False if it changed."""
        condition = "#status = :seen_status AND #claimed_at = :seen_claimed_at AND #run_id = :seen_run_id"
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": seen["pk"]},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=_names(update, condition),
                ExpressionAttributeValues={
                    ":seen_status": seen["status"],
                    ":seen_claimed_at": seen["claimed_at"],
                    ":seen_run_id": seen["run_id"],
                    **values,
                },
            )
        except ClientError as exc:
            if not _conditional_check_failed(exc):
                raise
            return False
        return True

    def mark_sent(self, key: str, provider_id: str, *, run_id: str | None = None) -> None:
        self._finish(key, run_id, SendStatus.SENT, "#provider_id", provider_id)

    def mark_failed(self, key: str, reason: str, *, run_id: str | None = None) -> None:
        self._finish(key, run_id, SendStatus.FAILED, "#reason", reason)

    def _finish(self, key: str, run_id: str | None, status: SendStatus, name: str, value: str) -> None:
        condition = "#status = :claimed"
        values: dict[str, AttributeValueTypeDef] = {
            ":claimed": _s(SendStatus.CLAIMED),
            ":status": _s(status),
            ":value": _s(value),
            ":now": _s(_iso(_utc(None))),
        }
        if run_id is not None:
            condition += " AND #run_id = :run_id"
            values[":run_id"] = _s(run_id)
        update = f"SET #status = :status, {name} = :value, #updated_at = :now"
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": _s(key)},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=_names(update, condition),
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not _conditional_check_failed(exc):
                raise
            raise LookupError(
                f"ledger entry {key} is not claimed" + ("" if run_id is None else f" by {run_id}")
            ) from None

    def release(self, key: str, *, run_id: str | None = None) -> None:
        condition = "#status = :claimed"
        values: dict[str, AttributeValueTypeDef] = {":claimed": _s(SendStatus.CLAIMED)}
        if run_id is not None:
            condition += " AND #run_id = :run_id"
            values[":run_id"] = _s(run_id)
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={"pk": _s(key)},
                ConditionExpression=condition,
                ExpressionAttributeNames=_names(condition),
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not _conditional_check_failed(exc):
                raise

    def status(self, key: str) -> SendStatus | None:
        item = self._get(key)
        return None if item is None else SendStatus(item["status"]["S"])

    def statuses(self, keys: Iterable[str]) -> dict[str, SendStatus]:
        found: dict[str, SendStatus] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), _DYNAMODB_BATCH):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [{"pk": _s(k)} for k in wanted[start : start + _DYNAMODB_BATCH]],
                    "ConsistentRead": True,
                    "ProjectionExpression": "pk, #status",
                    "ExpressionAttributeNames": {"#status": "status"},
                }
            }
            for attempt in range(_UNPROCESSED_ATTEMPTS):
                response = self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    found[item["pk"]["S"]] = SendStatus(item["status"]["S"])
                request = dict(response.get("UnprocessedKeys") or {})
                if not request:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt))  # throttled: back off, then ask for the rest
            else:
                raise RuntimeError("DynamoDB left keys unprocessed after every retry")
        return found

    def _scan(self, condition: str | None = None, **values: str) -> Iterator[dict[str, AttributeValueTypeDef]]:
        kwargs: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        if condition is not None:
            kwargs["FilterExpression"] = condition
            kwargs["ExpressionAttributeNames"] = _names(condition)
            kwargs["ExpressionAttributeValues"] = {f":{name}": _s(value) for name, value in values.items()}
        for page in self._client.get_paginator("scan").paginate(**kwargs):
            yield from page["Items"]

    def count(self, run_id: str | None = None) -> dict[str, int]:
        items = self._scan() if run_id is None else self._scan("#run_id = :run_id", run_id=run_id)
        return dict(Counter(item["status"]["S"] for item in items))

    def entries(self, run_id: str | None = None) -> list[LedgerEntry]:
        items = self._scan() if run_id is None else self._scan("#run_id = :run_id", run_id=run_id)
        return _oldest_first(LedgerEntry.from_item(item) for item in items)

    def expire(self, now: datetime | None = None) -> list[LedgerEntry]:
        at = _utc(now)
        stale = self._scan(
            "#status = :claimed AND #claimed_at <= :cutoff", claimed=SendStatus.CLAIMED, cutoff=_iso(at - self._lease)
        )
        for item in stale:
            self._update_seen(item, _SET_UNKNOWN, {":unknown": _s(SendStatus.UNKNOWN), ":now": _s(_iso(at))})
        unknown = self._scan("#status = :unknown", unknown=SendStatus.UNKNOWN)
        return _oldest_first(LedgerEntry.from_item(item) for item in unknown)

    def close(self) -> None:
        """Nothing to release: the injected client belongs to the caller."""


def _oldest_first(entries: Iterator[LedgerEntry]) -> list[LedgerEntry]:
    return sorted(entries, key=lambda entry: (entry.claimed_at, entry.key))


def create_ledger_table(client: DynamoDBClient, name: str) -> None:
    """Create the ledger table (on demand, ``pk`` string hash key) unless it exists; wait until it is active."""
    try:
        client.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})


def open_ledger(settings: Settings, dynamodb_client_factory: Callable[[Settings], DynamoDBClient]) -> Ledger:
    """Open the ledger the settings choose: the SQLite file in the state folder, or the DynamoDB table."""
    lease = timedelta(seconds=settings.ledger_lease_seconds)
    if settings.ledger_backend == "dynamodb":
        return DynamoDbLedger(dynamodb_client_factory(settings), settings.ledger_table, lease=lease)
    return SqliteLedger(settings.state_dir / "ledger.sqlite", lease=lease)
