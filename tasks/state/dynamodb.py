"""The AWS state backend: one DynamoDB table (``pk``, ``sk`` strings), every kind of item told apart by its ``pk``.

One table, not one per store: one thing to create, grant and back up, and on-demand billing charges per
request, not per table. Items (``#`` separates parts; hashes and ids, never an address):

=============================  ==========================================  ===================================
pk                             sk                                          what
=============================  ==========================================  ===================================
``SUPP#ADDR#<channel>``        ``<hash>``                                  a suppressed address (reason, at)
``SUPP#CUST``                  ``<channel|*>#<topic>#<customer>``          a customer suppressed by id
``SUPP#DERIVED#<channel>``     ``<topic>#<hash>``                          an address a suppressed customer was
                                                                           messaged at (no customer id)
``MSG#<customer>``             ``<channel>#<hash>``                        an address a customer was messaged at
``HIST#<yyyy-mm>``             ``<day>#<plan>#<customer>#<campaign>#...``  a message sent or held out that day
``PLAN#<yyyy-mm>``             ``<plan>``                                  the plan's current version there
``PLANS``                      ``<plan>``                                  the months the plan's rows touch
``COUPON#<yyyy-mm>``           ``<code>``                                  a coupon code issued that month
``MARK``                       ``<name>``                                  a watermark (text, order)
=============================  ==========================================  ===================================

Reads on the send path are one query per partition, never one per customer: ``hashes`` reads the channel's
addresses and its derived addresses (two queries), ``customers`` one. The join of "customer suppressed by id"
with "addresses they were messaged at" is kept up to date at write time instead: an unsubscribe copies the
customer's messaged addresses into ``SUPP#DERIVED``, and ``remember`` copies a newly messaged address of an
already suppressed customer. Both write first and read after, with consistent reads, so a race of the two
still leaves the address derived.

History: rows carry the version of the plan they were written with; ``PLAN#<month>`` holds each plan's
current version in that month (every month its rows ever touched), written after its rows, so a plan
recorded again (or dropped) replaces its rows at once for every reader; rows of an older version are
ignored, never scanned for (a re-run leaves them behind; ``forget_customer`` erases them too). A month's
history and its versions are two partitions: a read of the budget's 61 days is six queries.

``forget_customer`` scans the history and coupons for the customer (rare, an erasure).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from tasks.kernel.aws import enable_expiry
from tasks.state.calls import DynamoDbCalls
from tasks.state.preferences import DynamoDbPreferences
from tasks.state.protocol import ALL_CHANNELS, CouponRow, HistoryRow, State
from tasks.state.surveys import DynamoDbSurveys

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

_BATCH_WRITE = 25
_UNPROCESSED_ATTEMPTS = 8

Item = dict[str, "AttributeValueTypeDef"]


def _s(value: str) -> AttributeValueTypeDef:
    return {"S": str(value)}


def _text(item: Item, name: str) -> str:
    return item[name]["S"]


def _month(day: date) -> str:
    return day.isoformat()[:7]


def _months(first: date, last: date) -> list[str]:
    months, year, number = [], first.year, first.month
    while (year, number) <= (last.year, last.month):
        months.append(f"{year:04d}-{number:02d}")
        year, number = (year + 1, 1) if number == 12 else (year, number + 1)
    return months


class _Table:
    """The few DynamoDB calls the stores make, on one table."""

    def __init__(self, client: DynamoDBClient, name: str, keep: timedelta | None = None) -> None:
        self.client = client
        self.name = name
        self.keep = keep  # how long history and coupons live after their day (the TTL); None: forever

    def expires(self, day: date) -> Item:
        """``expires_at`` (epoch seconds, the table's TTL attribute) for an item whose last use is ``day``."""
        if self.keep is None:
            return {}
        end = datetime.combine(day + timedelta(days=1), time_of_day.min, tzinfo=UTC) + self.keep
        return {"expires_at": {"N": str(int(end.timestamp()))}}

    def query(self, pk: str, begins: str | None = None, between: tuple[str, str] | None = None) -> Iterator[Item]:
        condition, values = "pk = :pk", {":pk": _s(pk)}
        if begins is not None:
            condition += " AND begins_with(sk, :begins)"
            values[":begins"] = _s(begins)
        if between is not None:
            condition += " AND sk BETWEEN :low AND :high"
            values[":low"], values[":high"] = _s(between[0]), _s(between[1])
        pages = self.client.get_paginator("query").paginate(
            TableName=self.name, KeyConditionExpression=condition, ExpressionAttributeValues=values, ConsistentRead=True
        )
        for page in pages:
            yield from page["Items"]

    def scan(self, condition: str, values: dict[str, AttributeValueTypeDef]) -> Iterator[Item]:
        pages = self.client.get_paginator("scan").paginate(
            TableName=self.name, FilterExpression=condition, ExpressionAttributeValues=values, ConsistentRead=True
        )
        for page in pages:
            yield from page["Items"]

    def put_new(self, item: Item) -> bool:
        """Insert unless the key exists; True if inserted."""
        try:
            self.client.put_item(TableName=self.name, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def write(self, puts: Sequence[Item] = (), deletes: Sequence[Item] = ()) -> None:
        """Put and delete items in batches of 25, retrying what DynamoDB leaves unprocessed."""
        requests: list[Any] = [{"PutRequest": {"Item": i}} for i in puts]
        requests += [{"DeleteRequest": {"Key": {"pk": k["pk"], "sk": k["sk"]}}} for k in deletes]
        for start in range(0, len(requests), _BATCH_WRITE):
            pending: dict[str, Any] = {self.name: requests[start : start + _BATCH_WRITE]}
            for attempt in range(_UNPROCESSED_ATTEMPTS):
                pending = dict(self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {})
                if not pending:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt))  # throttled: back off, then write the rest
            else:
                raise RuntimeError("DynamoDB left writes unprocessed after every retry")


class DynamoDbSuppressions:
    """Suppressions on the state table (see the module docstring for the items)."""

    def __init__(self, table: _Table) -> None:
        self._t = table

    def add_addresses(self, channel: str, hashes: Sequence[str], reason: str, at: str) -> int:
        # one conditional put each: the first reason is kept, and the count of new ones is exact
        item = {"reason": _s(reason), "at": _s(at)}
        return sum(self._t.put_new({"pk": _s(f"SUPP#ADDR#{channel}"), "sk": _s(h), **item}) for h in set(hashes))

    def add_customer(self, channel: str, customer_id: str, topic: str, reason: str, at: str) -> bool:
        new = self._t.put_new(
            {
                "pk": _s("SUPP#CUST"),
                "sk": _s(f"{channel}#{topic}#{customer_id}"),
                "channel": _s(channel),
                "topic": _s(topic),
                "customer_id": _s(customer_id),
                "reason": _s(reason),
                "at": _s(at),
            }
        )
        messaged = [_text(i, "sk").split("#", 1) for i in self._t.query(f"MSG#{customer_id}")]
        self._t.write([_derived(c, topic, h) for c, h in messaged if channel in (ALL_CHANNELS, c)])
        return new

    def remember(self, channel: str, pairs: Sequence[tuple[str, str]]) -> None:
        unique = sorted(set(pairs))
        self._t.write([{"pk": _s(f"MSG#{c}"), "sk": _s(f"{channel}#{h}")} for c, h in unique])
        topics: dict[str, set[str]] = {}
        for item in self._t.query("SUPP#CUST"):
            if _text(item, "channel") in (ALL_CHANNELS, channel):
                topics.setdefault(_text(item, "customer_id"), set()).add(_text(item, "topic"))
        self._t.write([_derived(channel, t, h) for c, h in unique for t in sorted(topics.get(c, ()))])

    def hashes(self, channel: str, topics: Sequence[str]) -> frozenset[str]:
        direct = {_text(i, "sk") for i in self._t.query(f"SUPP#ADDR#{channel}")}
        derived = (_text(i, "sk").split("#", 1) for i in self._t.query(f"SUPP#DERIVED#{channel}"))
        return frozenset(direct | {h for t, h in derived if t in topics})

    def customers(self, channel: str, topics: Sequence[str]) -> frozenset[str]:
        return frozenset(
            _text(i, "customer_id")
            for i in self._t.query("SUPP#CUST")
            if _text(i, "channel") in (channel, ALL_CHANNELS) and _text(i, "topic") in topics
        )

    def address_reason(self, channel: str, hashes: Sequence[str]) -> str | None:
        found = []
        for hashed in hashes:
            key = {"pk": _s(f"SUPP#ADDR#{channel}"), "sk": _s(hashed)}
            item = self._t.client.get_item(TableName=self._t.name, Key=key, ConsistentRead=True).get("Item")
            if item is not None:
                found.append((_text(item, "at"), _text(item, "reason")))
        return min(found)[1] if found else None

    def customer_reason(self, channel: str, customer_id: str, topics: Sequence[str]) -> str | None:
        found = [
            (_text(i, "at"), _text(i, "reason"))
            for i in self._t.query("SUPP#CUST")
            if _text(i, "customer_id") == customer_id
            and _text(i, "channel") in (channel, ALL_CHANNELS)
            and _text(i, "topic") in topics
        ]
        return min(found)[1] if found else None

    def forget_customer(self, customer_id: str) -> tuple[dict[str, frozenset[str]], int]:
        messaged = list(self._t.query(f"MSG#{customer_id}"))
        theirs = [i for i in self._t.query("SUPP#CUST") if _text(i, "customer_id") == customer_id]
        self._t.write(deletes=[*messaged, *theirs])
        found: dict[str, set[str]] = {}
        for item in messaged:
            channel, hashed = _text(item, "sk").split("#", 1)
            found.setdefault(channel, set()).add(hashed)
        return {c: frozenset(h) for c, h in found.items()}, len(messaged) + len(theirs)


def _derived(channel: str, topic: str, hashed: str) -> Item:
    return {"pk": _s(f"SUPP#DERIVED#{channel}"), "sk": _s(f"{topic}#{hashed}")}


class DynamoDbHistory:
    """Send history on the state table: rows by send month; each plan's current version per month it touches."""

    def __init__(self, table: _Table) -> None:
        self._t = table

    def _months_of(self, plan_id: str) -> set[str]:
        key = {"pk": _s("PLANS"), "sk": _s(plan_id)}
        item = self._t.client.get_item(TableName=self._t.name, Key=key, ConsistentRead=True).get("Item")
        return set() if item is None else set(_text(item, "months").split())

    def _set_version(self, plan_id: str, months: set[str], version: str) -> None:
        """Make ``version`` the plan's rows in every month it ever touched (older rows there stop counting)."""
        self._t.write(
            [
                {"pk": _s(f"PLAN#{m}"), "sk": _s(plan_id), "version": _s(version), **self._t.expires(_month_end(m))}
                for m in sorted(months)
            ]
        )
        self._t.write([{"pk": _s("PLANS"), "sk": _s(plan_id), "months": _s(" ".join(sorted(months)))}])

    def record_plan(self, plan_id: str, rows: Sequence[HistoryRow]) -> None:
        version = uuid.uuid4().hex
        puts: dict[tuple[str, str], Item] = {}
        for r in rows:
            sk = f"{r.day.isoformat()}#{plan_id}#{r.customer_id}#{r.campaign}#{r.step}#{r.occurrence}"
            puts[(_month(r.day), sk)] = {
                "pk": _s(f"HIST#{_month(r.day)}"),
                "sk": _s(sk),
                "plan_id": _s(plan_id),
                "version": _s(version),
                "customer_id": _s(r.customer_id),
                "campaign": _s(r.campaign),
                "step": {"N": str(r.step)},
                "occurrence": _s(r.occurrence),
                "kind": _s(r.kind),
                "decision": _s(r.decision),
                "day": _s(r.day.isoformat()),
                **self._t.expires(r.day),
            }
        # rows first, then the version: a reader sees the old rows or the new ones, never half of each
        self._t.write(list(puts.values()))
        self._set_version(plan_id, self._months_of(plan_id) | {m for m, _ in puts}, version)

    def drop_plan(self, plan_id: str) -> None:
        self._set_version(plan_id, self._months_of(plan_id), "dropped")

    def read(self, first: date, last: date, exclude: str | None = None) -> list[HistoryRow]:
        out = []
        bounds = (first.isoformat(), f"{last.isoformat()}#\U0010ffff")
        for month in _months(first, last):
            versions = {_text(i, "sk"): _text(i, "version") for i in self._t.query(f"PLAN#{month}")}
            for item in self._t.query(f"HIST#{month}", between=bounds):
                plan = _text(item, "plan_id")
                if plan == exclude or versions.get(plan) != _text(item, "version"):
                    continue
                out.append(
                    HistoryRow(
                        customer_id=_text(item, "customer_id"),
                        campaign=_text(item, "campaign"),
                        step=int(item["step"]["N"]),
                        occurrence=_text(item, "occurrence"),
                        kind=_text(item, "kind"),
                        decision=_text(item, "decision"),
                        day=date.fromisoformat(_text(item, "day")),
                    )
                )
        return out

    def forget_customer(self, customer_id: str) -> int:
        rows = list(
            self._t.scan("begins_with(pk, :hist) AND customer_id = :c", {":hist": _s("HIST#"), ":c": _s(customer_id)})
        )
        self._t.write(deletes=rows)
        return len(rows)


class DynamoDbCoupons:
    """The coupon registry on the state table, by month issued."""

    def __init__(self, table: _Table) -> None:
        self._t = table

    def record(self, rows: Sequence[CouponRow]) -> None:
        items: dict[str, Item] = {
            r.code: {
                "pk": _s(f"COUPON#{_month(r.issued)}"),
                "sk": _s(r.code),
                "customer_id": _s(r.customer_id),
                "campaign": _s(r.campaign),
                "step": {"N": str(r.step)},
                "occurrence": _s(r.occurrence),
                "percent_off": {"N": repr(float(r.percent_off))},
                "valid_from": _s(r.valid_from),
                "valid_until": _s(r.valid_until),
                "issued": _s(r.issued.isoformat()),
                **self._t.expires(max(r.issued, _day_of(r.valid_until))),
            }
            for r in rows
        }
        self._t.write(list(items.values()))

    def codes(self, first: date, last: date) -> list[CouponRow]:
        out = [
            _coupon(i)
            for month in _months(first, last)
            for i in self._t.query(f"COUPON#{month}")
            if first.isoformat() <= _text(i, "issued") <= last.isoformat()
        ]
        return sorted(out, key=lambda r: (r.issued, r.code))

    def forget_customer(self, customer_id: str) -> int:
        rows = list(
            self._t.scan("begins_with(pk, :c) AND customer_id = :id", {":c": _s("COUPON#"), ":id": _s(customer_id)})
        )
        for item in rows:
            item["customer_id"] = _s("")
        self._t.write(rows)
        return len(rows)


def _coupon(item: Item) -> CouponRow:
    return CouponRow(
        code=_text(item, "sk"),
        customer_id=_text(item, "customer_id"),
        campaign=_text(item, "campaign"),
        step=int(item["step"]["N"]),
        occurrence=_text(item, "occurrence"),
        percent_off=float(item["percent_off"]["N"]),
        valid_from=_text(item, "valid_from"),
        valid_until=_text(item, "valid_until"),
        issued=date.fromisoformat(_text(item, "issued")),
    )


class DynamoDbWatermarks:
    """Watermarks on the state table: a conditional write, so a mark never moves backwards."""

    def __init__(self, table: _Table) -> None:
        self._t = table

    def read_mark(self, name: str) -> str | None:
        key = {"pk": _s("MARK"), "sk": _s(name)}
        item = self._t.client.get_item(TableName=self._t.name, Key=key, ConsistentRead=True).get("Item")
        return None if item is None else _text(item, "text")

    def write_mark(self, name: str, text: str, order: str) -> bool:
        try:
            self._t.client.put_item(
                TableName=self._t.name,
                Item={"pk": _s("MARK"), "sk": _s(name), "text": _s(text), "order": _s(order)},
                ConditionExpression="attribute_not_exists(pk) OR #order <= :order",
                ExpressionAttributeNames={"#order": "order"},
                ExpressionAttributeValues={":order": _s(order)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True


def _month_end(month: str) -> date:
    """The last day of a ``yyyy-mm`` month."""
    year, number = int(month[:4]), int(month[5:7])
    following = date(year + 1, 1, 1) if number == 12 else date(year, number + 1, 1)
    return following - timedelta(days=1)


def _day_of(stamp: str) -> date:
    """The day of a coupon's ``valid_until`` (a date or a timestamp)."""
    return date.fromisoformat(stamp[:10])


def open_dynamodb_state(client: DynamoDBClient, table_name: str, keep: timedelta | None = None) -> State:
    """The state kept in one DynamoDB table; history rows and coupons expire ``keep`` after their day (None: never)."""
    table = _Table(client, table_name, keep)
    return State(
        suppressions=DynamoDbSuppressions(table),
        history=DynamoDbHistory(table),
        coupons=DynamoDbCoupons(table),
        watermarks=DynamoDbWatermarks(table),
        calls=DynamoDbCalls(client, table_name),
        surveys=DynamoDbSurveys(client, table_name),
        preferences=DynamoDbPreferences(client, table_name),
    )


def create_state_table(client: DynamoDBClient, name: str) -> None:
    """Create the state table (on demand, ``pk``/``sk`` strings) unless it exists; wait until it is active."""
    try:
        client.create_table(
            TableName=name,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    enable_expiry(client, name)
