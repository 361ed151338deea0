"""Public data sets that ship inside PyPI wheels, read at test or benchmark time and never committed.

The CDNOW purchase log (Fader, Hardie & Lee 2005) is inside the ``lifetimes==0.11.3`` wheel. The wheel is
downloaded once from PyPI (its URL and sha256 from PyPI's JSON API; the sha256 is also pinned here), verified,
and cached under ``REPO/.tools/datasets/`` (``.tools/`` is gitignored); the files are read out of the zip.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO_ROOT / ".tools" / "datasets"

LIFETIMES_PROJECT = "lifetimes"
LIFETIMES_VERSION = "0.11.3"
# The wheel's sha256 as PyPI published it: a cached or downloaded file must match it byte for byte.
LIFETIMES_WHEEL = "Lifetimes-0.11.3-py3-none-any.whl"
LIFETIMES_SHA256 = "261e3dc89977c2b60767ca6728aaa29d429de0c814635070a749c36555895da8"

# CDNOW_sample.txt: the 1/10th sample (2,357 customers) the paper fits; CDNOW_master.txt: all 23,570.
CDNOW_SAMPLE = "lifetimes/datasets/CDNOW_sample.txt"
CDNOW_MASTER = "lifetimes/datasets/CDNOW_master.txt"
CDNOW_HARDIE_SUMMARY = "lifetimes/datasets/cdnow_customers_summary_with_transactions.csv"


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


def lifetimes_wheel() -> Path:
    """The verified ``lifetimes`` wheel in the cache, downloaded from PyPI on first use."""
    path = CACHE_DIR / LIFETIMES_WHEEL
    if path.exists() and _sha256(path.read_bytes()) == LIFETIMES_SHA256:
        return path
    files = [f for f in _release_files(LIFETIMES_PROJECT, LIFETIMES_VERSION) if f["filename"] == LIFETIMES_WHEEL]
    if not files:
        raise RuntimeError(f"PyPI lists no {LIFETIMES_WHEEL} for {LIFETIMES_PROJECT}=={LIFETIMES_VERSION}")
    listed = files[0]["digests"]["sha256"]  # type: ignore[index]
    if listed != LIFETIMES_SHA256:
        raise RuntimeError(f"PyPI lists sha256 {listed} for {LIFETIMES_WHEEL}, expected {LIFETIMES_SHA256}")
    data = _get(str(files[0]["url"]))
    if _sha256(data) != LIFETIMES_SHA256:
        raise RuntimeError(f"downloaded {LIFETIMES_WHEEL} does not match its sha256 {LIFETIMES_SHA256}")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(path)  # atomic: a concurrent reader never sees half a wheel
    return path


def read_from_wheel(member: str) -> bytes:
    """One file out of the cached ``lifetimes`` wheel."""
    with zipfile.ZipFile(lifetimes_wheel()) as wheel:
        return wheel.read(member)


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
