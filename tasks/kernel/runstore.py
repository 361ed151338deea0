"""Run folders in S3: a run works in a local mirror of its folder and syncs it with ``s3://bucket/prefix/``.

With ``LOYALTY_OUTPUT_DIR=s3://bucket/prefix`` the settings keep the URI (``output_s3``) and make
``output_dir`` a mirror under the temporary folder (``$TMPDIR/loyalty-runs/<bucket>/<prefix>``), so every
step reads and writes local files as before (pyarrow, pandas). Around the steps, a run folder
(``<day>/``, ``adhoc/<name>/<day>/``, ``updates/<day>/<run>/``) is synced:

* ``pull`` when a run opens it: the mirror becomes what S3 holds, what an earlier or a crashed run left
  (plan, rendered shards, outcomes, summary, ``earlier/<n>/``); a folder S3 does not have is an empty one.
* ``push`` after every step: files new or changed since the last sync go up, with the server-side
  encryption the run bucket asks for (AES256, infra/loyalty.yaml); files gone from the mirror
  (``RunPaths.reset`` moves a plan to ``earlier/<n>/``) are deleted in S3. Only keys this run pulled or
  pushed are ever deleted, so a host never deletes what another pushed since.
* leaving pushes a last time and empties the mirror: a worker keeps no customer data between runs.

A worker replaced mid-run leaves in S3 everything up to its last push, and the next run goes on from it.
Messages are sent exactly once by the ledger (DynamoDB), whatever a folder holds: the day's ``flock``
(``RunPaths.exclusive``) only keeps two runs of one host apart; two hosts running one day both plan, and
the ledger's conditional claim lets one of them send each message. The send history of committed plans is
on the state backend; the budget reads the run folders' ad-hoc plans too (one waiting for approval is
only there), so ``pull_adhoc_plans`` brings those. Retention in S3 is the run bucket's lifecycle rule, not
``tasks/kernel/retention.py``. Without ``output_s3`` every call here does nothing: the folder is the output.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.kernel.aws import s3_client
from tasks.kernel.paths import ADHOC_FOLDER, RunPaths, private_dir
from tasks.kernel.settings import Settings, mirror_root

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

# What every upload asks for: the run bucket encrypts with S3-managed keys (infra/loyalty.yaml).
ENCRYPTION = {"ServerSideEncryption": "AES256"}
# Files of the mirror that stay local: the day's lock is per host.
LOCAL_ONLY = frozenset({".run.lock"})
# Transfers at once: run folders hold many small files (outbox, shards).
TRANSFERS = 8
# Days around a run's day whose ad-hoc plans the budget reads (``tasks/plan/history.py``: 30 back, 30 ahead).
HISTORY_REACH_DAYS = 31

Stamp = tuple[int, int]  # size, mtime in ns: a file changed since its last sync when this differs


def s3_location(uri: str) -> tuple[str, str]:
    """Return the bucket and the key prefix (empty or ending in ``/``) of ``s3://bucket/prefix``."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class RunFolder:
    """One run folder's local mirror and its home in S3 (none: a local folder, nothing to sync)."""

    def __init__(self, local: Path, s3: S3Client | None = None, bucket: str = "", prefix: str = "") -> None:
        self.local = local
        self._s3, self._bucket, self._prefix = s3, bucket, prefix
        self._synced: dict[str, Stamp] = {}  # file (relative, posix) -> its stamp when last pulled or pushed
        self._lock = threading.Lock()  # shards may push from several threads

    @property
    def remote(self) -> str | None:
        """``s3://bucket/prefix/`` of the folder, or None for a local folder."""
        return None if self._s3 is None else f"s3://{self._bucket}/{self._prefix}"

    def pull(self, only: tuple[str, ...] = ()) -> int:
        """Make the mirror what S3 holds (files S3 lacks go); return how many files were downloaded.

        ``only``: just the files whose names start with one of these (``("delivery/", "summary.json")``);
        the rest of the mirror is left as it is. What was not pushed yet is lost: push first when the folder
        is already open.
        """
        if self._s3 is None:
            return 0
        s3 = self._s3

        def wanted(name: str) -> bool:
            return not only or name.startswith(only)

        with self._lock:
            keys = sorted(name for name in self._list() if wanted(name))
            for name, path in self._files():
                if wanted(name) and name not in keys:
                    path.unlink()

            def download(name: str) -> None:
                target = self.local / name
                private_dir(target.parent)
                s3.download_file(self._bucket, self._prefix + name, str(target))

            _each(download, keys)
            kept = {name: stamp for name, stamp in self._synced.items() if not wanted(name)}
            self._synced = kept | {name: _stamp(self.local / name) for name in keys}
            return len(keys)

    def push(self) -> int:
        """Upload what is new or changed since the last sync, delete in S3 what went; return how many files."""
        if self._s3 is None:
            return 0
        s3 = self._s3
        with self._lock:
            found = {name: (path, _stamp(path)) for name, path in self._files()}
            changed = [name for name, (_, stamp) in found.items() if self._synced.get(name) != stamp]
            gone = sorted(name for name in self._synced if name not in found)

            def upload(name: str) -> None:
                s3.upload_file(str(found[name][0]), self._bucket, self._prefix + name, ExtraArgs=ENCRYPTION)

            _each(upload, changed)
            for start in range(0, len(gone), 1000):  # DeleteObjects takes 1,000 keys at most
                batch: list[ObjectIdentifierTypeDef] = [{"Key": self._prefix + n} for n in gone[start : start + 1000]]
                errors = s3.delete_objects(Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True}).get("Errors")
                if errors:
                    raise RuntimeError(f"{self.remote}: {len(errors)} files could not be deleted ({errors[0]['Code']})")
            self._synced = {name: stamp for name, (_, stamp) in found.items()}
            return len(changed) + len(gone)

    def clear(self) -> None:
        """Empty the mirror (its lock stays): S3 holds the folder now. A local folder is left alone."""
        if self._s3 is None or not self.local.is_dir():
            return
        with self._lock:
            for child in self.local.iterdir():
                if child.name in LOCAL_ONLY:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            self._synced = {}

    def _list(self) -> Iterator[str]:
        assert self._s3 is not None
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=self._prefix):
            for item in page.get("Contents", []):
                name = item["Key"].removeprefix(self._prefix)
                if name and not name.endswith("/") and name not in LOCAL_ONLY:
                    yield name

    def _files(self) -> Iterator[tuple[str, Path]]:
        if not self.local.is_dir():
            return
        for path in sorted(self.local.rglob("*")):
            name = path.relative_to(self.local).as_posix()
            if path.is_file() and not path.is_symlink() and name not in LOCAL_ONLY:
                yield name, path


def open_run_folder(paths: RunPaths, settings: Settings, s3: S3Client | None = None) -> RunFolder:
    """Open a run's folder: with an S3 output, pull it into its mirror; else the folder itself, nothing to sync."""
    if settings.output_s3 is None:
        return RunFolder(paths.root)
    bucket, base = s3_location(settings.output_s3)
    relative = paths.root.relative_to(settings.output_dir).as_posix()
    prefix = base if relative == "." else f"{base}{relative}/"  # "." : every run folder at once (an erasure)
    folder = RunFolder(paths.root, s3 or s3_client(settings), bucket, prefix)
    folder.pull()
    return folder


@contextmanager
def run_folder(paths: RunPaths, settings: Settings, s3: S3Client | None = None) -> Iterator[RunFolder]:
    """Hold a run's folder in sync: pull it, yield it (``push`` after each step), push on the way out, empty the mirror.

    The last push happens when a step failed too: what the run did is there for the next one.
    """
    folder = open_run_folder(paths, settings, s3)
    try:
        yield folder
    finally:
        try:
            folder.push()
        finally:
            folder.clear()


def pull_adhoc_plans(settings: Settings, around: date, skip: RunPaths | None = None, s3: S3Client | None = None) -> int:
    """Bring the ad-hoc campaigns' plans of the days around ``around`` into the mirror, for the budget; return how many.

    A plan withdrawn in S3 (renamed) goes from the mirror too. ``skip``: the run's own folder (its ``RunFolder``
    syncs it). Nothing to do without an S3 output.
    """
    if settings.output_s3 is None:
        return 0
    client = s3 or s3_client(settings)
    bucket, base = s3_location(settings.output_s3)
    days = {(around + timedelta(days=d)).isoformat() for d in range(-HISTORY_REACH_DAYS, HISTORY_REACH_DAYS + 1)}
    pulled = 0
    for campaign in _subfolders(client, bucket, f"{base}{ADHOC_FOLDER}/"):
        for day in _subfolders(client, bucket, f"{base}{ADHOC_FOLDER}/{campaign}/"):
            if day not in days:
                continue
            name = f"{ADHOC_FOLDER}/{campaign}/{day}/plan/plan.parquet"
            target = settings.output_dir / name
            if skip is not None and target == skip.plan:
                continue
            found = client.list_objects_v2(Bucket=bucket, Prefix=base + name, MaxKeys=1).get("Contents", [])
            if any(item["Key"] == base + name for item in found):
                private_dir(target.parent)
                client.download_file(bucket, base + name, str(target))
                pulled += 1
            else:
                target.unlink(missing_ok=True)
    return pulled


def durable_name(path: Path) -> str:
    """The name a run file goes by on every host: its ``s3://`` URI when it is in a mirror, else its local path.

    A worker's mirror lies under its own temporary folder; what is kept by name (a plan's send history)
    must not change with the worker.
    """
    resolved = path.resolve()
    try:
        return "s3://" + resolved.relative_to(mirror_root()).as_posix()
    except ValueError:
        return str(resolved)


def _subfolders(client: S3Client, bucket: str, prefix: str) -> Iterator[str]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            yield common["Prefix"].removeprefix(prefix).rstrip("/")


def _each(action: Callable[[str], None], names: Iterable[str]) -> None:
    """Run ``action`` on every name, a few at a time; the first error is raised once all are done."""
    with ThreadPoolExecutor(max_workers=TRANSFERS) as pool:
        for future in [pool.submit(action, name) for name in names]:
            future.result()


def _stamp(path: Path) -> Stamp:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns
