"""Retention: run folders older than ``LOYALTY_RETENTION_DAYS`` keep their summaries, nothing customer-level.

A run folder (``paths.RunPaths``) holds the day's copy of the shop's tables, profiles, plans, coupon
registries, rendered messages, outboxes and per-message outcomes: customer data that has done its
work once the day is past. After ``retention_days`` (counted back from the run's ``as_of``, never
the wall clock) only what is kept is left:

* ``summary.json`` - the run's counts (no customer in it), also in ``earlier/<n>/``;
* ``kpis/`` - the shop's KPIs and cohort charts (aggregates);
* ``.run.lock`` - the day's lock file (empty).

Everything else goes: a keep list, not a delete list, so a file a later version adds to run
folders is customer data until someone says otherwise. Run folders are a day's
(``<output>/<day>/``), an order-updates run's (``<output>/updates/<day>/<run>/``) and an ad-hoc
campaign's (``<output>/adhoc/<name>/<day>/``); nothing else under the output folder is touched (the
demo shop, say). A day another run holds (its lock is taken) is skipped until the next time.
``retention_days`` 0 keeps everything forever.

Durable state (ledger, suppressions, send history) is not here: it lives under the state folder.
Local output folders only. With ``LOYALTY_OUTPUT_DIR=s3://...`` (``tasks/kernel/runstore.py``) the run
bucket's lifecycle rule expires run folders (infra/loyalty.yaml: ``RetentionDays``, whole folders, summaries
too); the daily run does not walk the bucket, and the worker's mirror holds no run folder between runs.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.kernel.settings import Settings

# What an expired run folder keeps; inside earlier/<n>/ only the summary is kept.
KEPT = frozenset({"summary.json", "kpis", ".run.lock"})
EARLIER = "earlier"
UPDATES = "updates"
ADHOC = "adhoc"


@dataclass(frozen=True)
class RetentionReport:
    """What retention deleted (or, in a dry run, would delete): counts and days, never a name or a customer."""

    cutoff: date | None
    dry_run: bool
    days: tuple[date, ...] = ()
    folders: int = 0
    files: int = 0
    skipped_busy: tuple[date, ...] = field(default=())
    in_s3: bool = False  # run folders in S3: the bucket's lifecycle rule expires them

    def headline(self) -> str:
        """Return one line for the log and the terminal."""
        if self.in_s3:
            return "retention: run folders are in S3, where the bucket's lifecycle rule expires them"
        if self.cutoff is None:
            return "retention: off (LOYALTY_RETENTION_DAYS=0): every run folder is kept"
        verb = "would delete" if self.dry_run else "deleted"
        days = ", ".join(d.isoformat() for d in self.days) or "none"
        line = (
            f"retention: {verb} {self.files} customer-level files in {self.folders} run folders from before"
            f" {self.cutoff}; days: {days}; summaries kept"
        )
        if self.skipped_busy:
            line += f"; skipped (a run holds them): {', '.join(d.isoformat() for d in self.skipped_busy)}"
        return line


def apply_retention(output_dir: Path, as_of: date, retention_days: int, dry_run: bool = False) -> RetentionReport:
    """Delete the customer-level files of run folders older than ``retention_days`` before ``as_of``.

    A folder of day ``d`` expires when ``d < as_of - retention_days``; the summary and reports stay.
    """
    if retention_days == 0:
        return RetentionReport(cutoff=None, dry_run=dry_run)
    cutoff = as_of - timedelta(days=retention_days)
    days: set[date] = set()
    busy: set[date] = set()
    folders = files = 0
    for day, folder in run_folders(output_dir):
        if day >= cutoff:
            continue
        found = _expired_entries(folder)
        if not found:
            continue
        with _unless_busy(folder) as free:
            if not free:
                busy.add(day)
                continue
            count = sum(_file_count(p) for p in found)
            if not dry_run:
                for path in found:
                    _remove(path)
        days.add(day)
        folders += 1
        files += count
    return RetentionReport(
        cutoff=cutoff,
        dry_run=dry_run,
        days=tuple(sorted(days)),
        folders=folders,
        files=files,
        skipped_busy=tuple(sorted(busy)),
    )


def run_folders(output_dir: Path) -> Iterator[tuple[date, Path]]:
    """Yield every run folder under the output folder with its day: the daily, order-updates and ad-hoc ones."""
    if not output_dir.is_dir():
        return
    for child in sorted(output_dir.iterdir()):
        day = _day(child)
        if day is not None:
            yield day, child
    for day, folder in _dated(output_dir / UPDATES):
        for run in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
            yield day, run
    adhoc = output_dir / ADHOC
    if adhoc.is_dir():
        for campaign in sorted(p for p in adhoc.iterdir() if p.is_dir()):
            yield from _dated(campaign)


def _dated(folder: Path) -> Iterator[tuple[date, Path]]:
    if folder.is_dir():
        for child in sorted(folder.iterdir()):
            day = _day(child)
            if day is not None:
                yield day, child


def _day(path: Path) -> date | None:
    if not path.is_dir() or path.is_symlink():
        return None
    try:
        return date.fromisoformat(path.name)
    except ValueError:
        return None


def _expired_entries(folder: Path) -> list[Path]:
    """What an expired run folder must lose: all but the kept names; in ``earlier/<n>/``, all but the summary."""
    found = [p for p in folder.iterdir() if p.name not in KEPT and p.name != EARLIER]
    earlier = folder / EARLIER
    if earlier.is_dir() and not earlier.is_symlink():
        for attempt in earlier.iterdir():
            if attempt.is_dir() and not attempt.is_symlink():
                found += [p for p in attempt.iterdir() if p.name != "summary.json"]
            else:
                found.append(attempt)
    return found


@contextmanager
def _unless_busy(folder: Path) -> Iterator[bool]:
    """Hold the run folder's lock while its files go; yield False when another run holds it."""
    lock = folder / ".run.lock"
    if not lock.is_file():
        yield True
        return
    with lock.open("a") as handle:  # closing it releases the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _file_count(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(1 for p in path.rglob("*") if not p.is_dir() or p.is_symlink())
    return 1


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@task(cache_policy=NO_CACHE)
def expire_run_data(settings: Settings, as_of: date) -> RetentionReport:
    """Delete the customer-level files of run folders past the retention period; keep their summaries."""
    if settings.output_s3 is not None:  # the bucket's lifecycle rule, not a walk over the bucket
        report = RetentionReport(cutoff=None, dry_run=False, in_s3=True)
    else:
        report = apply_retention(settings.output_dir, as_of, settings.retention_days)
    get_run_logger().info(report.headline())
    return report
