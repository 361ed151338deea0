"""The AWS ledger: one DynamoDB table, conditional writes only (no transaction spans two calls).

A batch (``claim_many``, ``mark_many``) is one conditional write per entry, up to ``_PARALLEL`` of
them in flight at once: each entry keeps its own condition (``TransactWriteItems`` would cancel a
whole batch for one entry held by another run), and a claim write is durable once answered.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from tasks.kernel.aws import enable_expiry
from tasks.kernel.enums import MessageKind, SendStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


from tasks.ledger.protocol import (
    LEASE,
    Claim,
    LedgerEntry,
    Mark,
    _decide,
    _iso,
    _oldest_first,
    _parse,
    _utc,
    _Verdict,
)

# The index that reads one run's entries (infra/loyalty.yaml makes it too).
RUN_INDEX = "by_run_id"
# DynamoDB BatchGetItem takes at most 100 keys.
_DYNAMODB_BATCH = 100
_UNPROCESSED_ATTEMPTS = 8
_CLAIM_ROUNDS = 5
# Conditional writes of one batch in flight at once (boto3 clients are thread-safe): botocore's default
# connection pool (max_pool_connections=10), so no connection is opened and thrown away.
_PARALLEL = 10
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


_T = TypeVar("_T")


def _each(write: Callable[[_T], bool], items: Sequence[_T], key: Callable[[_T], str]) -> list[bool]:
    """``write`` every item, up to ``_PARALLEL`` keys at once, the items of one key in their order; the answers
    in order. The first error is raised once every write has ended."""
    by_key: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_key.setdefault(key(item), []).append(index)
    answers = [False] * len(items)

    def write_key(indexes: list[int]) -> None:
        for index in indexes:
            answers[index] = write(items[index])

    if len(by_key) <= 1:
        for indexes in by_key.values():
            write_key(indexes)
        return answers
    with ThreadPoolExecutor(max_workers=min(_PARALLEL, len(by_key)), thread_name_prefix="ledger") as pool:
        list(pool.map(write_key, by_key.values()))
    return answers


class DynamoDbLedger:
    """The AWS ledger: one DynamoDB table (hash key ``pk`` = idempotency key), conditional writes only.

    ``count``, ``entries`` and ``expire`` scan the whole table: they are for
    run reports and housekeeping, never for the send path.
    """

    def __init__(
        self, client: DynamoDBClient, table_name: str, lease: timedelta = LEASE, keep: timedelta | None = None
    ) -> None:
        self._client = client
        self._table = table_name
        self._lease = lease
        self._keep = keep  # entries older than this are DynamoDB's to delete (``expires_at``); None: kept forever

    def _expires(self, stamp: str) -> dict[str, AttributeValueTypeDef]:
        """``expires_at`` (epoch seconds, the table's TTL attribute) for an entry claimed at ``stamp``."""
        return {} if self._keep is None else {"expires_at": {"N": str(int((_parse(stamp) + self._keep).timestamp()))}}

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
            update, expires = _TAKE_OVER, self._expires(stamp)
            if expires:  # a taken-over entry lives its full span again from the new claim
                update, values = (
                    f"{update}, #expires_at = :expires_at",
                    {**values, ":expires_at": expires["expires_at"]},
                )
            if self._update_seen(current, update, {**values, ":one": {"N": "1"}}):
                return True
            # Someone changed the entry between our read and our write: look again.
        return False

    def claim_many(self, claims: Sequence[Claim], now: datetime | None = None) -> list[bool]:
        at = _utc(now)
        return _each(lambda claim: self.claim(claim, at), claims, key=lambda claim: claim.key)

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
                    **self._expires(stamp),
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

    def mark_unknown(self, key: str, reason: str, *, run_id: str | None = None) -> None:
        self._finish(key, run_id, SendStatus.UNKNOWN, "#reason", reason)

    def mark_many(self, marks: Sequence[Mark]) -> list[bool]:
        def apply(mark: Mark) -> bool:
            name = "#provider_id" if mark.status is SendStatus.SENT else "#reason"
            try:
                self._finish(mark.key, mark.run_id, mark.status, name, mark.detail)
            except LookupError:
                return False
            return True

        return _each(apply, marks, key=lambda mark: mark.key)

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

    def _of_run(self, run_id: str | None) -> Iterator[dict[str, AttributeValueTypeDef]]:
        """The entries of one run through the ``by_run_id`` index (every entry when None).

        A table made before the index existed is scanned instead. The index is eventually consistent:
        a report read the instant a run ends may miss its last marks for a moment (the send path never reads it).
        """
        if run_id is None:
            yield from self._scan()
            return
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=RUN_INDEX,
            KeyConditionExpression="#run_id = :run_id",
            ExpressionAttributeNames={"#run_id": "run_id"},
            ExpressionAttributeValues={":run_id": _s(run_id)},
        )
        try:
            for page in pages:
                yield from page["Items"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ValidationException":
                raise
            yield from self._scan("#run_id = :run_id", run_id=run_id)

    def count(self, run_id: str | None = None) -> dict[str, int]:
        return dict(Counter(item["status"]["S"] for item in self._of_run(run_id)))

    def entries(self, run_id: str | None = None) -> list[LedgerEntry]:
        return _oldest_first(LedgerEntry.from_item(item) for item in self._of_run(run_id))

    def expire(self, now: datetime | None = None) -> list[LedgerEntry]:
        at = _utc(now)
        stale = self._scan(
            "#status = :claimed AND #claimed_at <= :cutoff", claimed=SendStatus.CLAIMED, cutoff=_iso(at - self._lease)
        )
        for item in stale:
            self._update_seen(item, _SET_UNKNOWN, {":unknown": _s(SendStatus.UNKNOWN), ":now": _s(_iso(at))})
        unknown = self._scan("#status = :unknown", unknown=SendStatus.UNKNOWN)
        return _oldest_first(LedgerEntry.from_item(item) for item in unknown)

    def forget_customer(self, customer_id: str) -> int:
        erased = 0
        for item in self._scan("#customer_id = :customer_id", customer_id=customer_id):
            self._client.update_item(
                TableName=self._table,
                Key={"pk": item["pk"]},
                UpdateExpression="SET #customer_id = :blank",
                ConditionExpression="#customer_id = :customer_id",
                ExpressionAttributeNames={"#customer_id": "customer_id"},
                ExpressionAttributeValues={":blank": _s(""), ":customer_id": _s(customer_id)},
            )
            erased += 1
        return erased

    def close(self) -> None:
        """Nothing to release: the injected client belongs to the caller."""


def create_ledger_table(client: DynamoDBClient, name: str) -> None:
    """Create the ledger table (on demand, ``pk`` string hash key) unless it exists; wait until it is active."""
    try:
        client.create_table(
            TableName=name,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "run_id", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": RUN_INDEX,
                    "KeySchema": [{"AttributeName": "run_id", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    enable_expiry(client, name)
