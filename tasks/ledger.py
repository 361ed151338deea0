"""The send ledger: every outbound message is claimed, sent, then marked.

``claim`` is a conditional insert keyed by the idempotency key, so the same
key is sent at most once across retries, re-runs, overlapping runs and
backfills.  A transient failure releases the claim; a permanent one marks the
entry FAILED with its reason.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from tasks.enums import SendStatus


@dataclass(frozen=True)
class Claim:
    """What is recorded when a message is claimed."""

    key: str
    campaign: str
    channel: str
    customer_id: str
    kind: str
    run_id: str


class Ledger(Protocol):
    """The protocol every ledger backend implements (SQLite now, DynamoDB next)."""

    def claim(self, claim: Claim) -> bool:
        """Take the key for sending; False if it is already claimed, sent or failed."""

    def mark_sent(self, key: str, provider_id: str) -> None:
        """Record a successful send with the provider's message id."""

    def mark_failed(self, key: str, reason: str) -> None:
        """Record a permanent failure; the key is never retried."""

    def release(self, key: str) -> None:
        """Give the key back after a transient failure so a later attempt can send."""

    def status(self, key: str) -> SendStatus | None:
        """Return the entry's status, or None if the key was never claimed."""

    def count(self, run_id: str | None = None) -> dict[str, int]:
        """Count entries per status, for one run or in all."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class SqliteLedger:
    """The embedded ledger: one SQLite file in the state folder, safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
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

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def claim(self, claim: Claim) -> bool:
        now = _now()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO sends (key, campaign, channel, customer_id, kind, status, run_id, claimed_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                (
                    claim.key,
                    claim.campaign,
                    claim.channel,
                    claim.customer_id,
                    claim.kind,
                    SendStatus.CLAIMED.value,
                    claim.run_id,
                    now,
                    now,
                ),
            )
            return cur.rowcount == 1

    def mark_sent(self, key: str, provider_id: str) -> None:
        self._finish(key, SendStatus.SENT, provider_id=provider_id)

    def mark_failed(self, key: str, reason: str) -> None:
        self._finish(key, SendStatus.FAILED, reason=reason)

    def _finish(self, key: str, status: SendStatus, provider_id: str | None = None, reason: str | None = None) -> None:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE sends SET status = ?, provider_id = ?, reason = ?, updated_at = ? WHERE key = ? AND status = ?",
                (status.value, provider_id, reason, _now(), key, SendStatus.CLAIMED.value),
            )
            if cur.rowcount != 1:
                raise LookupError(f"ledger entry {key} is not claimed")

    def release(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sends WHERE key = ? AND status = ?", (key, SendStatus.CLAIMED.value))

    def status(self, key: str) -> SendStatus | None:
        with self._lock:
            row = self._db.execute("SELECT status FROM sends WHERE key = ?", (key,)).fetchone()
        return None if row is None else SendStatus(row[0])

    def count(self, run_id: str | None = None) -> dict[str, int]:
        query = "SELECT status, COUNT(*) FROM sends"
        args: tuple[str, ...] = ()
        if run_id is not None:
            query, args = query + " WHERE run_id = ?", (run_id,)
        with self._lock:
            rows = self._db.execute(query + " GROUP BY status", args).fetchall()
        return {str(s): int(n) for s, n in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
