"""Where a run's files live: ``<output>/<as_of>/<step>/``, private to the user who runs the flows.

Run folders and the state folder hold customer data (snapshots, plans, messages, suppressions), so
everything a run creates is private: folders 0700, files 0600 (``private_files``: a 0077 umask
while a run lives; ``private_dir`` for the folders themselves).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from tasks.kernel.enums import Table

# Order-updates runs live under <output>/updates/<day>/<run>/; each leaves the marketing it planned in
# plan/marketing.parquet, which the daily run's frequency budget reads.
UPDATES_FOLDER = "updates"
UPDATES_MARKETING_FILE = "marketing.parquet"
# One-off campaigns live under <output>/adhoc/<name>/<day>/, a run folder like a day's.
ADHOC_FOLDER = "adhoc"


# Nobody but the owner may read or list what a run writes (folders 0700, files 0600).
PRIVATE_UMASK = 0o077
_umask_lock = threading.Lock()
_umask_holders = 0
_umask_saved = 0


@contextmanager
def private_files() -> Iterator[None]:
    """Create every file and folder private (umask 0077) until the last run in this process leaves.

    The umask is the process's: runs sharing a process (threads) count holders, and the last one out
    restores the umask it found. Libraries that write files (pyarrow, pandas, SQLite) need no flags.
    """
    global _umask_holders, _umask_saved
    with _umask_lock:
        if _umask_holders == 0:
            _umask_saved = os.umask(PRIVATE_UMASK)
        _umask_holders += 1
    try:
        yield
    finally:
        with _umask_lock:
            _umask_holders -= 1
            if _umask_holders == 0:
                os.umask(_umask_saved)


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents as private folders (0700); return it. Existing folders are left as they are."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    return path


def detail_file(profile_file: Path, name: str) -> Path:
    """Where a detail table of a profile is written: ``profile.interests.parquet`` beside ``profile.parquet``."""
    return profile_file.with_suffix(f".{name}.parquet")


@dataclass(frozen=True)
class RunPaths:
    """The folder layout of one daily run; tasks pass this, never big frames."""

    root: Path

    @classmethod
    def for_day(cls, output_dir: Path, as_of: date) -> RunPaths:
        return cls(root=output_dir / as_of.isoformat())

    def table(self, table: Table) -> Path:
        return self.root / "snapshot" / f"{table.value}.parquet"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine.csv"

    @property
    def nulled(self) -> Path:
        """Cells of kept rows emptied for a bad optional value (table, row, column, reason)."""
        return self.root / "nulled_cells.csv"

    @property
    def profile(self) -> Path:
        return self.root / "profile" / "profile.parquet"

    @property
    def recommendations(self) -> Path:
        """Each customer's products for the day's messages (``tasks/recommend/picks.py``), beside the profile."""
        return self.root / "profile" / "recommendations.parquet"

    @property
    def recommender(self) -> Path:
        """A partitioned day's interaction matrix and fitted model, from which each partition picks for its customers."""
        return self.root / "profile" / "recommender"

    @property
    def segments(self) -> Path:
        """The day's primary segment per customer; ``reset`` leaves it: a re-run overwrites it."""
        return self.root / "segments" / "membership.parquet"

    @property
    def plan(self) -> Path:
        return self.root / "plan" / "plan.parquet"

    @property
    def coupons(self) -> Path:
        """The coupon registry of the day's sends: the CSV the shop's checkout imports."""
        return self.root / "offers" / "coupons.csv"

    def send_shard(self, number: int) -> Path:
        return self.root / "plan" / f"send-{number:05d}.parquet"

    def rendered_shard(self, number: int) -> Path:
        return self.root / "render" / f"rendered-{number:05d}.parquet"

    def shard_picks(self, number: int) -> Path:
        """A send shard's customers' picks, split from the day's before rendering (gone once it is rendered)."""
        return self.root / "render" / f"picks-{number:05d}.parquet"

    def delivery_shard(self, number: int) -> Path:
        return self.root / "delivery" / f"outcomes-{number:05d}.parquet"

    @property
    def call_list(self) -> Path:
        """Support's call list of the day (``tasks/report/calls.py``): it holds phones, so it stays in the run folder."""
        return self.root / "service" / "call_list.csv"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def earlier(self) -> Path:
        return self.root / "earlier"

    @contextmanager
    def exclusive(self, on_wait: Callable[[], None] = lambda: None) -> Iterator[None]:
        """Hold the day's folder for one run at a time; a second run of the same day waits its turn.

        An OS file lock (``flock``): released by the kernel when the holder exits or is killed, so a
        crashed run never leaves the day locked. The ledger, not this lock, keeps sends exactly once;
        the lock keeps two runs from writing the same files.
        """
        private_dir(self.root)
        with (self.root / ".run.lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                on_wait()
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def reset(self) -> None:
        """Make room for a new run of the same day; keep what the earlier run decided and did.

        The earlier run's plan, outbox, per-message outcomes, summary and reports move to
        ``earlier/<n>/`` (a rename: cheap however many messages); what can be recomputed from
        the data (snapshot, profile, rendered shards) is removed.
        """
        kept = [self.root / name for name in _KEPT if (self.root / name).exists()]
        if kept:
            self.earlier.mkdir(parents=True, exist_ok=True)
            number = 1 + max((int(p.name) for p in self.earlier.iterdir() if p.name.isdigit()), default=0)
            target = self.earlier / str(number)
            target.mkdir()
            for path in kept:
                path.rename(target / path.name)
        for step in ("snapshot", "profile", "render"):
            shutil.rmtree(self.root / step, ignore_errors=True)


# What a run of a day leaves that a later run of the same day must not erase.
_KEPT = ("plan", "offers", "outbox", "delivery", "summary.json", "ledger.csv", "quarantine.csv")
