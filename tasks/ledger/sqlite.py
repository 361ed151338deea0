"""The embedded ledger: one SQLite file; every rule is decided inside one ``BEGIN IMMEDIATE`` transaction.

Durability: a claim is on disk (``synchronous=FULL``: the WAL is synced) before its message goes out, so
not even a power cut can let a second run send it again. What follows a send (``mark_sent``,
``mark_failed``, ``mark_unknown``) is committed with ``synchronous=NORMAL``: it survives the process
being killed, and a power cut can only take it back to CLAIMED, which is what a worker killed between
send and mark leaves anyway (after the lease: UNKNOWN for marketing, never resent; a transactional
message is taken over). A ``release`` stays synced: lost, it would hold a message back.

Batches: ``claim_many`` decides a whole batch in one transaction and one sync, ``mark_many`` marks one in
one unsynced transaction; delivery claims and marks a batch at a time, so a message costs a share of
two commits instead of two commits of its own (``bench/delivery.py --channel null`` measures the
ledger's share of a message).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.kernel.enums import MessageKind, SendStatus

if TYPE_CHECKING:
    pass

from tasks.ledger.protocol import LEASE, Claim, LedgerEntry, Mark, _decide, _iso, _parse, _utc, _Verdict

# Keys per lookup: SQLite's bound-parameter limit is far above.
_SQLITE_BATCH = 500


class SqliteLedger:
    """The embedded ledger: one SQLite file in the state folder, safe across threads and processes."""

    def __init__(self, path: Path, lease: timedelta = LEASE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lease = lease
        self._db = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._synchronous = ""
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
    def _tx(self, *, synced: bool = True) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so read-decide-write is atomic across processes.
        with self._lock:
            wanted = "FULL" if synced else "NORMAL"
            if self._synchronous != wanted:  # outside a transaction: the next COMMIT follows it
                self._db.execute(f"PRAGMA synchronous={wanted}")
                self._synchronous = wanted
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def claim(self, claim: Claim, now: datetime | None = None) -> bool:
        return self.claim_many([claim], now)[0]

    def claim_many(self, claims: Sequence[Claim], now: datetime | None = None) -> list[bool]:
        if not claims:
            return []
        at = _iso(_utc(now))
        moment = _parse(at)
        kinds = [MessageKind(claim.kind) for claim in claims]
        claimed = SendStatus.CLAIMED.value
        wins: list[bool] = []
        fresh: list[tuple[str, ...]] = []
        with self._tx() as db:  # synced: every claim is on disk before any of its messages goes out
            # key -> (status, kind, claimed_at), kept current as the batch goes, so a repeated key is won once
            seen = self._current(db, [claim.key for claim in claims])
            for claim, kind in zip(claims, kinds, strict=True):
                row = seen.get(claim.key)
                if row is None:
                    row_in = (claim.key, claim.campaign, claim.channel, claim.customer_id, kind.value, claimed)
                    fresh.append((*row_in, claim.run_id, at, at))
                    seen[claim.key] = (SendStatus.CLAIMED, kind, moment)
                    wins.append(True)
                    continue
                status, stored_kind, claimed_at = row
                verdict = _decide(status, stored_kind, claimed_at, moment, self._lease)
                if verdict is _Verdict.MARK_UNKNOWN:
                    db.execute(
                        "UPDATE sends SET status = ?, updated_at = ? WHERE key = ?",
                        (SendStatus.UNKNOWN.value, at, claim.key),
                    )
                    seen[claim.key] = (SendStatus.UNKNOWN, stored_kind, claimed_at)
                elif verdict is _Verdict.TAKE_OVER:
                    db.execute(
                        "UPDATE sends SET status = ?, run_id = ?, claimed_at = ?, updated_at = ?,"
                        " attempts = attempts + 1 WHERE key = ?",
                        (SendStatus.CLAIMED.value, claim.run_id, at, at, claim.key),
                    )
                    seen[claim.key] = (SendStatus.CLAIMED, stored_kind, moment)
                wins.append(verdict is _Verdict.TAKE_OVER)
            db.executemany(
                "INSERT INTO sends (key, campaign, channel, customer_id, kind, status, run_id,"
                " claimed_at, updated_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                fresh,
            )
        return wins

    @staticmethod
    def _current(db: sqlite3.Connection, keys: list[str]) -> dict[str, tuple[SendStatus, MessageKind, datetime]]:
        found: dict[str, tuple[SendStatus, MessageKind, datetime]] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), _SQLITE_BATCH):
            batch = wanted[start : start + _SQLITE_BATCH]
            rows = db.execute(
                f"SELECT key, status, kind, claimed_at FROM sends WHERE key IN ({','.join('?' * len(batch))})", batch
            )
            for key, status, kind, claimed_at in rows:
                found[key] = (SendStatus(status), MessageKind(kind), _parse(claimed_at))
        return found

    def mark_sent(self, key: str, provider_id: str, *, run_id: str | None = None) -> None:
        self._finish(Mark(key, SendStatus.SENT, provider_id, run_id))

    def mark_failed(self, key: str, reason: str, *, run_id: str | None = None) -> None:
        self._finish(Mark(key, SendStatus.FAILED, reason, run_id))

    def mark_unknown(self, key: str, reason: str, *, run_id: str | None = None) -> None:
        self._finish(Mark(key, SendStatus.UNKNOWN, reason, run_id))

    def _finish(self, mark: Mark) -> None:
        if not self.mark_many([mark])[0]:
            held = "" if mark.run_id is None else f" by {mark.run_id}"
            raise LookupError(f"ledger entry {mark.key} is not claimed{held}")

    def mark_many(self, marks: Sequence[Mark]) -> list[bool]:
        if not marks:
            return []
        at = _iso(_utc(None))
        any_run = (
            "UPDATE sends SET status = ?, provider_id = ?, reason = ?, updated_at = ? WHERE key = ? AND status = ?"
        )
        one_run = any_run + " AND run_id = ?"
        claimed = SendStatus.CLAIMED.value
        applied: list[bool] = []
        with self._tx(synced=False) as db:  # after the send: see the module's docstring
            for mark in marks:
                sent = mark.status is SendStatus.SENT
                provider_id, reason = (mark.detail, None) if sent else (None, mark.detail)
                args: tuple[str | None, ...] = (mark.status.value, provider_id, reason, at, mark.key, claimed)
                query, args = (any_run, args) if mark.run_id is None else (one_run, (*args, mark.run_id))
                applied.append(db.execute(query, args).rowcount == 1)
        return applied

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

    def forget_customer(self, customer_id: str) -> int:
        with self._tx() as db:
            return db.execute("UPDATE sends SET customer_id = '' WHERE customer_id = ?", (customer_id,)).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
