"""The embedded state backend: SQLite files in the state folder (one host), short transactions, 30 s busy timeout.

Suppressions stay in ``suppressions.sqlite`` (the file every earlier version wrote, read with no migration);
history and coupons live in ``state.sqlite``; a watermark is a JSON file named after it, replaced atomically.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import date
from pathlib import Path

from tasks.state.calls import SqliteCalls
from tasks.state.preferences import SqlitePreferences
from tasks.state.protocol import ALL_CHANNELS, CouponRow, HistoryRow, State
from tasks.state.surveys import SqliteSurveys

SUPPRESSIONS_FILE = "suppressions.sqlite"
STATE_FILE = "state.sqlite"


@contextmanager
def _transaction(path: Path) -> Iterator[sqlite3.Connection]:
    # sqlite3's own context manager commits but never closes; close, so no handle leaks
    with closing(sqlite3.connect(path, timeout=30)) as db, db:
        yield db


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class SqliteSuppressions:
    """Suppressions and messaged addresses in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with _transaction(path) as db:
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
            db.execute(
                "CREATE TABLE IF NOT EXISTS messaged_addresses ("
                " channel TEXT NOT NULL, customer_id TEXT NOT NULL, address_hash TEXT NOT NULL,"
                " PRIMARY KEY (channel, customer_id, address_hash))"
            )

    def add_addresses(self, channel: str, hashes: Sequence[str], reason: str, at: str) -> int:
        if not hashes:
            return 0
        with _transaction(self._path) as db:
            rows = [(channel, h, reason, at) for h in hashes]
            return db.executemany("INSERT OR IGNORE INTO suppressions VALUES (?, ?, ?, ?)", rows).rowcount

    def add_customer(self, channel: str, customer_id: str, topic: str, reason: str, at: str) -> bool:
        with _transaction(self._path) as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO customer_suppressions VALUES (?, ?, ?, ?, ?)",
                (channel, customer_id, topic, reason, at),
            )
            return cursor.rowcount == 1

    def remember(self, channel: str, pairs: Sequence[tuple[str, str]]) -> None:
        with _transaction(self._path) as db:
            db.executemany(
                "INSERT OR IGNORE INTO messaged_addresses VALUES (?, ?, ?)", [(channel, c, h) for c, h in pairs]
            )

    def hashes(self, channel: str, topics: Sequence[str]) -> frozenset[str]:
        with _transaction(self._path) as db:
            rows = db.execute("SELECT address_hash FROM suppressions WHERE channel = ?", (channel,))
            direct = frozenset(r[0] for r in rows)
            # the few suppressed customers drive the join (CROSS JOIN keeps that order), not every address
            # ever messaged: delivery reads this before every chunk of a shard
            rows = db.execute(
                "SELECT m.address_hash FROM customer_suppressions s CROSS JOIN messaged_addresses m"
                " ON m.channel = ? AND m.customer_id = s.customer_id"
                f" WHERE s.channel IN (?, ?) AND s.topic IN ({_marks(len(topics))})",
                (channel, channel, ALL_CHANNELS, *topics),
            )
            return direct | frozenset(r[0] for r in rows)

    def customers(self, channel: str, topics: Sequence[str]) -> frozenset[str]:
        with _transaction(self._path) as db:
            rows = db.execute(
                "SELECT customer_id FROM customer_suppressions"
                f" WHERE channel IN (?, ?) AND topic IN ({_marks(len(topics))})",
                (channel, ALL_CHANNELS, *topics),
            )
            return frozenset(r[0] for r in rows)

    def address_reason(self, channel: str, hashes: Sequence[str]) -> str | None:
        with _transaction(self._path) as db:
            row = db.execute(
                f"SELECT reason FROM suppressions WHERE channel = ? AND address_hash IN ({_marks(len(hashes))})"
                " ORDER BY at LIMIT 1",
                (channel, *hashes),
            ).fetchone()
            return None if row is None else str(row[0])

    def customer_reason(self, channel: str, customer_id: str, topics: Sequence[str]) -> str | None:
        with _transaction(self._path) as db:
            row = db.execute(
                "SELECT reason FROM customer_suppressions WHERE customer_id = ? AND channel IN (?, ?)"
                f" AND topic IN ({_marks(len(topics))}) ORDER BY at LIMIT 1",
                (customer_id, channel, ALL_CHANNELS, *topics),
            ).fetchone()
            return None if row is None else str(row[0])

    def forget_customer(self, customer_id: str) -> tuple[dict[str, frozenset[str]], int]:
        with _transaction(self._path) as db:
            rows = db.execute(
                "SELECT channel, address_hash FROM messaged_addresses WHERE customer_id = ?", (customer_id,)
            ).fetchall()
            erased = db.execute("DELETE FROM messaged_addresses WHERE customer_id = ?", (customer_id,)).rowcount
            erased += db.execute("DELETE FROM customer_suppressions WHERE customer_id = ?", (customer_id,)).rowcount
        found: dict[str, set[str]] = {}
        for channel, hashed in rows:
            found.setdefault(str(channel), set()).add(str(hashed))
        return {c: frozenset(h) for c, h in found.items()}, erased


class SqliteHistory:
    """Send history and coupon registry in ``state.sqlite``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with _transaction(path) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS history ("
                " plan_id TEXT NOT NULL, customer_id TEXT NOT NULL, campaign TEXT NOT NULL, step INTEGER NOT NULL,"
                " occurrence TEXT NOT NULL, kind TEXT NOT NULL, decision TEXT NOT NULL, day TEXT NOT NULL,"
                " PRIMARY KEY (plan_id, customer_id, campaign, step, occurrence))"
            )
            db.execute("CREATE INDEX IF NOT EXISTS history_day ON history (day)")
            db.execute("CREATE INDEX IF NOT EXISTS history_customer ON history (customer_id)")

    def record_plan(self, plan_id: str, rows: Sequence[HistoryRow]) -> None:
        with _transaction(self._path) as db:
            db.execute("DELETE FROM history WHERE plan_id = ?", (plan_id,))
            db.executemany(
                "INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (plan_id, r.customer_id, r.campaign, r.step, r.occurrence, r.kind, r.decision, r.day.isoformat())
                    for r in rows
                ],
            )

    def drop_plan(self, plan_id: str) -> None:
        with _transaction(self._path) as db:
            db.execute("DELETE FROM history WHERE plan_id = ?", (plan_id,))

    def read(self, first: date, last: date, exclude: str | None = None) -> list[HistoryRow]:
        with _transaction(self._path) as db:
            rows = db.execute(
                "SELECT customer_id, campaign, step, occurrence, kind, decision, day FROM history"
                " WHERE day BETWEEN ? AND ? AND plan_id IS NOT ?",
                (first.isoformat(), last.isoformat(), exclude),
            ).fetchall()
        return [HistoryRow(c, p, int(s), o, k, d, date.fromisoformat(day)) for c, p, s, o, k, d, day in rows]

    def forget_customer(self, customer_id: str) -> int:
        with _transaction(self._path) as db:
            return db.execute("DELETE FROM history WHERE customer_id = ?", (customer_id,)).rowcount


class SqliteCoupons:
    """The coupon registry in ``state.sqlite``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        with _transaction(path) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS coupons ("
                " code TEXT PRIMARY KEY, customer_id TEXT NOT NULL, campaign TEXT NOT NULL, step INTEGER NOT NULL,"
                " occurrence TEXT NOT NULL, percent_off REAL NOT NULL, valid_from TEXT NOT NULL,"
                " valid_until TEXT NOT NULL, issued TEXT NOT NULL)"
            )

    def record(self, rows: Sequence[CouponRow]) -> None:
        with _transaction(self._path) as db:
            db.executemany(
                "INSERT OR REPLACE INTO coupons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.code,
                        r.customer_id,
                        r.campaign,
                        r.step,
                        r.occurrence,
                        r.percent_off,
                        r.valid_from,
                        r.valid_until,
                        r.issued.isoformat(),
                    )
                    for r in rows
                ],
            )

    def codes(self, first: date, last: date) -> list[CouponRow]:
        with _transaction(self._path) as db:
            rows = db.execute(
                "SELECT code, customer_id, campaign, step, occurrence, percent_off, valid_from, valid_until, issued"
                " FROM coupons WHERE issued BETWEEN ? AND ? ORDER BY issued, code",
                (first.isoformat(), last.isoformat()),
            ).fetchall()
        return [
            CouponRow(
                code=r[0],
                customer_id=r[1],
                campaign=r[2],
                step=int(r[3]),
                occurrence=r[4],
                percent_off=float(r[5]),
                valid_from=r[6],
                valid_until=r[7],
                issued=date.fromisoformat(r[8]),
            )
            for r in rows
        ]

    def forget_customer(self, customer_id: str) -> int:
        with _transaction(self._path) as db:
            return db.execute("UPDATE coupons SET customer_id = '' WHERE customer_id = ?", (customer_id,)).rowcount


class FileWatermarks:
    """Watermarks as files in the state folder: ``<name>`` holds the mark as written (the format every earlier
    version wrote and reads), ``.<name>.order`` its order; each replaced atomically (temporary file, rename)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def read_mark(self, name: str) -> str | None:
        path = self._folder / name
        return path.read_text(encoding="utf-8") if path.exists() else None

    def write_mark(self, name: str, text: str, order: str) -> bool:
        order_file = self._folder / f".{name}.order"
        # a mark written before orders were kept has none: any write may replace it
        stored = order_file.read_text(encoding="utf-8") if order_file.exists() else ""
        if stored > order:
            return False
        _replace(self._folder / name, text)
        _replace(order_file, order)
        return True


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    Path(f.name).replace(path)


def open_sqlite_state(state_dir: Path) -> State:
    """The state kept in files in ``state_dir``."""
    return State(
        suppressions=SqliteSuppressions(state_dir / SUPPRESSIONS_FILE),
        history=SqliteHistory(state_dir / STATE_FILE),
        coupons=SqliteCoupons(state_dir / STATE_FILE),
        watermarks=FileWatermarks(state_dir),
        calls=SqliteCalls(state_dir / STATE_FILE),
        surveys=SqliteSurveys(state_dir / STATE_FILE),
        preferences=SqlitePreferences(state_dir / STATE_FILE),
    )
