"""Call outcomes: what support recorded after calling a customer about one incident.

An incident is named by its key (``incident_key``: the customer's local day of it, its reason and its order
or product), the same key the call list shows and the planner's service recovery reads, so a call about it
can close it. One record per (customer, incident, call time): recording the same call again replaces it
(the same file recorded twice changes nothing; a corrected outcome wins). Outcomes (``CallOutcome``):
``reached`` and ``no_answer`` count as attempts, ``resolved`` closes the incident, ``wants_no_contact``
takes the customer off every call list and, through the suppression list, off marketing.

Notes are support's free text about the call: kept here, never logged; control characters are stripped and
they are cut to ``MAX_NOTE_CHARS``. Stores hold ids and outcomes, never a phone or a name.

Backends: SQLite (the ``calls`` table of ``state.sqlite``) and DynamoDB (items ``pk=CALL#<customer>``,
``sk=<incident>#<called at>``, plus one copy in the ``CALLS`` partition, ``sk=<customer>#<incident>#<called at>``,
so the daily list reads every outcome in one query, never a scan of the table).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_NOTE_CHARS = 500
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BATCH_WRITE = 25
_UNPROCESSED_ATTEMPTS = 8


class CallOutcome(StrEnum):
    """What became of a call."""

    REACHED = "reached"
    NO_ANSWER = "no_answer"
    RESOLVED = "resolved"
    WANTS_NO_CONTACT = "wants_no_contact"


def incident_key(day: str, reason: str, reference: str | None) -> str:
    """The name of an incident: its local day (``YYYY-MM-DD``), reason and order (or reviewed product) id."""
    return f"{day}:{reason}:{reference or ''}"


def incident_of(key: str) -> tuple[str, str]:
    """The (local day, reason) an incident key names."""
    day, reason, _ = key.split(":", 2)
    return day, reason


def clean_note(text: str | None) -> str:
    """A note as stored: control characters stripped, trimmed, at most ``MAX_NOTE_CHARS``."""
    if not text:
        return ""
    return _CONTROL.sub("", text.replace("\r\n", "\n")).strip()[:MAX_NOTE_CHARS]


@dataclass(frozen=True)
class CallRecord:
    """One call about one incident; ``called_at`` is an ISO date or time (the list's day when support gave none)."""

    customer_id: str
    incident: str
    outcome: CallOutcome
    called_at: str
    note: str = ""


class CallStore(Protocol):
    """Call outcomes, one per (customer, incident, call time)."""

    def record(self, rows: Sequence[CallRecord]) -> int:
        """Store calls, replacing the same call recorded before; return how many were new or changed."""

    def outcomes(self) -> list[CallRecord]:
        """Every call recorded."""

    def forget_customer(self, customer_id: str) -> int:
        """Erase the customer's calls; return how many."""


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path, timeout=30)) as db, db:
        yield db


class SqliteCalls:
    """Call outcomes in the ``calls`` table of ``state.sqlite``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with _connect(path) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS calls ("
                " customer_id TEXT NOT NULL, incident TEXT NOT NULL, called_at TEXT NOT NULL,"
                " outcome TEXT NOT NULL, note TEXT NOT NULL, PRIMARY KEY (customer_id, incident, called_at))"
            )

    def record(self, rows: Sequence[CallRecord]) -> int:
        changed = 0
        with _connect(self._path) as db:
            for r in rows:
                stored = db.execute(
                    "SELECT outcome, note FROM calls WHERE customer_id = ? AND incident = ? AND called_at = ?",
                    (r.customer_id, r.incident, r.called_at),
                ).fetchone()
                if stored == (r.outcome.value, clean_note(r.note)):
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?)",
                    (r.customer_id, r.incident, r.called_at, r.outcome.value, clean_note(r.note)),
                )
                changed += 1
        return changed

    def outcomes(self) -> list[CallRecord]:
        with _connect(self._path) as db:
            rows = db.execute(
                "SELECT customer_id, incident, outcome, called_at, note FROM calls ORDER BY customer_id, called_at"
            ).fetchall()
        return [CallRecord(c, i, CallOutcome(o), at, n) for c, i, o, at, n in rows]

    def forget_customer(self, customer_id: str) -> int:
        with _connect(self._path) as db:
            return db.execute("DELETE FROM calls WHERE customer_id = ?", (customer_id,)).rowcount


class DynamoDbCalls:
    """Call outcomes on the state table: ``CALL#<customer>`` items, each copied into the ``CALLS`` partition."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._name = table_name

    def _query(self, pk: str, begins: str = "") -> Iterator[dict[str, Any]]:
        condition, values = "pk = :pk", {":pk": {"S": pk}}
        if begins:  # an empty prefix is refused by DynamoDB
            condition += " AND begins_with(sk, :begins)"
            values[":begins"] = {"S": begins}
        pages = self._client.get_paginator("query").paginate(
            TableName=self._name,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
        )
        for page in pages:
            yield from page["Items"]

    def _write(self, requests: list[Any]) -> None:
        for start in range(0, len(requests), _BATCH_WRITE):
            pending: dict[str, Any] = {self._name: requests[start : start + _BATCH_WRITE]}
            for attempt in range(_UNPROCESSED_ATTEMPTS):
                pending = dict(self._client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {})
                if not pending:
                    break
                time.sleep(min(2.0, 0.05 * 2**attempt))  # throttled: back off, then write the rest
            else:
                raise RuntimeError("DynamoDB left call records unprocessed after every retry")

    def record(self, rows: Sequence[CallRecord]) -> int:
        stored = {(r.customer_id, r.incident, r.called_at): r for r in self.outcomes()}
        puts: list[Any] = []
        for r in {(r.customer_id, r.incident, r.called_at): r for r in rows}.values():
            row = CallRecord(r.customer_id, r.incident, r.outcome, r.called_at, clean_note(r.note))
            if stored.get((r.customer_id, r.incident, r.called_at)) == row:
                continue
            item = {
                "customer_id": {"S": row.customer_id},
                "incident": {"S": row.incident},
                "outcome": {"S": row.outcome.value},
                "called_at": {"S": row.called_at},
                "note": {"S": row.note},
            }
            own = {"pk": {"S": f"CALL#{row.customer_id}"}, "sk": {"S": f"{row.incident}#{row.called_at}"}}
            listed = {"pk": {"S": "CALLS"}, "sk": {"S": f"{row.customer_id}#{row.incident}#{row.called_at}"}}
            puts += [{"PutRequest": {"Item": {**own, **item}}}, {"PutRequest": {"Item": {**listed, **item}}}]
        self._write(puts)
        return len(puts) // 2

    def outcomes(self) -> list[CallRecord]:
        out = [_record(i) for i in self._query("CALLS")]
        return sorted(out, key=lambda r: (r.customer_id, r.called_at))

    def forget_customer(self, customer_id: str) -> int:
        own = list(self._query(f"CALL#{customer_id}"))
        listed = list(self._query("CALLS", f"{customer_id}#"))
        listed = [i for i in listed if i["customer_id"]["S"] == customer_id]  # not a longer id with this prefix
        self._write([{"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in [*own, *listed]])
        return len(own)


def _record(item: Any) -> CallRecord:
    return CallRecord(
        customer_id=item["customer_id"]["S"],
        incident=item["incident"]["S"],
        outcome=CallOutcome(item["outcome"]["S"]),
        called_at=item["called_at"]["S"],
        note=item["note"]["S"],
    )


def closed_incidents(records: Sequence[CallRecord]) -> frozenset[tuple[str, str]]:
    """The (customer id, incident key) pairs support resolved: service recovery stops for them."""
    return frozenset((r.customer_id, r.incident) for r in records if r.outcome is CallOutcome.RESOLVED)
