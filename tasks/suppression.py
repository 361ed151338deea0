"""The suppression list: addresses that must never be messaged again (bounce, complaint, unsubscribe)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from tasks.enums import Channel


def address_hash(address: str) -> str:
    """Return a stable hash of a normalised address, so the list holds no raw PII."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


class SuppressionList:
    """Suppressed addresses per channel, in a SQLite file in the state folder."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS suppressions ("
                " channel TEXT NOT NULL, address_hash TEXT NOT NULL, reason TEXT NOT NULL,"
                " at TEXT NOT NULL, PRIMARY KEY (channel, address_hash))"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=30)

    def add(self, channel: Channel, address: str, reason: str) -> None:
        """Suppress an address on a channel; the first reason is kept."""
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO suppressions VALUES (?, ?, ?, ?)",
                (channel.value, address_hash(address), reason, datetime.now(UTC).isoformat()),
            )

    def hashes(self, channel: Channel) -> frozenset[str]:
        """Return the hashes of every suppressed address on a channel."""
        with self._connect() as db:
            rows: Iterable[tuple[str]] = db.execute(
                "SELECT address_hash FROM suppressions WHERE channel = ?", (channel.value,)
            )
            return frozenset(r[0] for r in rows)
