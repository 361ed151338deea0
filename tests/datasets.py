"""Public data sets that ship inside PyPI wheels, read at test or benchmark time and never committed.

Each data set comes out of one pinned wheel: downloaded once from PyPI (its URL and sha256 from PyPI's JSON API;
the sha256 is also pinned here), verified, and cached under ``REPO/.tools/datasets/`` (``.tools/`` is
gitignored); the files are read out of the zip.

* CDNOW purchase log (Fader, Hardie & Lee 2005): inside the ``lifetimes==0.11.3`` wheel.
* MovieLens-100k ratings (GroupLens; 943 users, 1,682 movies, 100,000 ratings): inside the ``recbole==1.2.1``
  wheel, as RecBole's atomic file ``ml-100k.inter``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO_ROOT / ".tools" / "datasets"


@dataclass(frozen=True)
class PinnedWheel:
    """One release file on PyPI, pinned by its sha256 as PyPI published it (a cached or downloaded file must
    match it byte for byte)."""

    project: str
    version: str
    filename: str
    sha256: str


LIFETIMES = PinnedWheel(
    project="lifetimes",
    version="0.11.3",
    filename="Lifetimes-0.11.3-py3-none-any.whl",
    sha256="261e3dc89977c2b60767ca6728aaa29d429de0c814635070a749c36555895da8",
)
RECBOLE = PinnedWheel(
    project="recbole",
    version="1.2.1",
    filename="recbole-1.2.1-py3-none-any.whl",
    sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
)

# CDNOW_sample.txt: the 1/10th sample (2,357 customers) the paper fits; CDNOW_master.txt: all 23,570.
CDNOW_SAMPLE = "lifetimes/datasets/CDNOW_sample.txt"
CDNOW_MASTER = "lifetimes/datasets/CDNOW_master.txt"
CDNOW_HARDIE_SUMMARY = "lifetimes/datasets/cdnow_customers_summary_with_transactions.csv"
# RecBole atomic file: tab separated, header ``user_id:token item_id:token rating:float timestamp:float``.
MOVIELENS_100K = "recbole/dataset_example/ml-100k/ml-100k.inter"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _get(url: str, timeout: float = 60) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def _release_files(project: str, version: str) -> list[dict[str, object]]:
    """The files of one release, from PyPI's JSON API (per-version endpoint, else the project's)."""
    try:
        return list(json.loads(_get(f"https://pypi.org/pypi/{project}/{version}/json"))["urls"])
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
    return list(json.loads(_get(f"https://pypi.org/pypi/{project}/json"))["releases"][version])


def pinned_wheel(wheel: PinnedWheel) -> Path:
    """The verified wheel in the cache, downloaded from PyPI on first use."""
    path = CACHE_DIR / wheel.filename
    if path.exists() and _sha256(path.read_bytes()) == wheel.sha256:
        return path
    files = [f for f in _release_files(wheel.project, wheel.version) if f["filename"] == wheel.filename]
    if not files:
        raise RuntimeError(f"PyPI lists no {wheel.filename} for {wheel.project}=={wheel.version}")
    listed = files[0]["digests"]["sha256"]  # type: ignore[index]
    if listed != wheel.sha256:
        raise RuntimeError(f"PyPI lists sha256 {listed} for {wheel.filename}, expected {wheel.sha256}")
    data = _get(str(files[0]["url"]))
    if _sha256(data) != wheel.sha256:
        raise RuntimeError(f"downloaded {wheel.filename} does not match its sha256 {wheel.sha256}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(path)  # atomic: a concurrent reader never sees half a wheel
    return path


def lifetimes_wheel() -> Path:
    """The verified ``lifetimes`` wheel in the cache, downloaded from PyPI on first use."""
    return pinned_wheel(LIFETIMES)


def read_from_wheel(member: str, wheel: PinnedWheel = LIFETIMES) -> bytes:
    """One file out of a cached pinned wheel (the ``lifetimes`` one unless told)."""
    with zipfile.ZipFile(pinned_wheel(wheel)) as archive:
        return archive.read(member)


def cdnow_transactions(member: str = CDNOW_SAMPLE) -> pd.DataFrame:
    """The CDNOW purchase log as ``customer_id, date, amount, cds`` (+ ``sample_id``): one row per purchase.

    Both files are whitespace separated: customer id (the sample adds a second, sequential id 1..2357),
    date ``YYYYMMDD``, number of CDs, dollar value. The master file has a header line, the sample none.
    """
    text = read_from_wheel(member).decode("ascii")
    if member == CDNOW_SAMPLE:
        names = ["customer_id", "sample_id", "date", "cds", "amount"]
        raw = pd.read_csv(io.StringIO(text), sep=r"\s+", header=None, names=names, dtype={"customer_id": str})
    else:
        names = ["customer_id", "date", "cds", "amount"]
        raw = pd.read_csv(io.StringIO(text), sep=r"\s+", header=0, names=names, dtype={"customer_id": str})
    frame = pd.DataFrame(
        {
            "customer_id": raw["customer_id"],
            "date": pd.to_datetime(raw["date"].astype(str), format="%Y%m%d"),
            "amount": raw["amount"].astype("float64"),
            "cds": raw["cds"].astype("int64"),
        }
    )
    if "sample_id" in raw.columns:
        frame["sample_id"] = raw["sample_id"].astype("int64")
    return frame


def cdnow_hardie_summary() -> pd.DataFrame:
    """Hardie's own calibration summary of the sample (``ID, x, t_x, T, zbar``; ID = the sample's second id)."""
    return pd.read_csv(io.BytesIO(read_from_wheel(CDNOW_HARDIE_SUMMARY)))


def movielens_100k() -> pd.DataFrame:
    """MovieLens-100k as ``user_id, item_id, rating, timestamp``: one row per rating, in the file's order.

    Ids are strings (``"196"``), ratings integers 1..5, timestamps integer Unix seconds (1997-09 .. 1998-04).
    """
    raw = pd.read_csv(
        io.BytesIO(read_from_wheel(MOVIELENS_100K, RECBOLE)),
        sep="\t",
        header=0,
        names=["user_id", "item_id", "rating", "timestamp"],
        dtype={"user_id": str, "item_id": str},
    )
    return pd.DataFrame(
        {
            "user_id": raw["user_id"],
            "item_id": raw["item_id"],
            "rating": raw["rating"].astype("int64"),
            "timestamp": raw["timestamp"].astype("int64"),
        }
    )
