"""Offline evaluation of product recommenders: interaction files, train/test splits and top-k metrics.

Used by ``loyalty recommend evaluate`` and by ``bench/recommend_quality.py``, which scores our models and peer
libraries with the same splits and the same arithmetic.

Interactions
    One row per (user, item, time) with an optional ``weight`` (negative: counts against); read from a CSV with
    :func:`read_interactions_csv`. Ids are text. Timestamps are any monotone number (Unix seconds, a day
    number) or ISO-8601 date-times, which become Unix seconds (UTC when no offset is given).

Splits
    * :func:`split_leave_last`: each user's ``n`` latest interactions are the test set. A user with ``n`` or
      fewer interactions stays entirely in train: with nothing left to learn from they would only measure
      cold-start, which is another question (every MovieLens-100k user has at least 20 ratings).
    * :func:`split_time`: one global cut in time; test keeps only the users who also have train interactions
      (warm users), the only ones a collaborative model can be asked about, and by default only the items
      that occur in train (warm items), the only ones it can recommend. These are the defaults of rectools'
      ``TimeRangeSplitter`` (``filter_cold_users``, ``filter_cold_items``); on MovieLens-100k with an 80/20
      cut they leave 107 test users (109 when cold items are kept: two users rated only new movies).

Metrics (:func:`evaluate`)
    Binary relevance: an item is relevant to a user when the (user, item) pair is in the test set (counted
    once however often it occurs). Each metric is averaged over the users in the test set; a test user with
    no recommendations scores 0. With ``hits`` the relevant items among a user's top ``k``:

    * precision@k = hits / k (a list shorter than ``k`` is not rewarded for being short);
    * recall@k = hits / |relevant|;
    * NDCG@k = DCG / IDCG with DCG = sum over hits of 1 / log2(rank + 1) and IDCG the same sum for a list
      whose first min(|relevant|, k) items are all hits;
    * MAP@k = sum over hit ranks of precision@rank, divided by min(|relevant|, k);
    * coverage = distinct items in the evaluated users' top-k lists / ``catalog_size``.

    A test item the user also has in train stays relevant. Recommenders leave out what a user already has,
    so on data with repeat purchases such an item can never be a hit; on MovieLens every (user, item) pair
    occurs once and the question does not arise.

Pure functions: frames in, frames and numbers out; only :func:`read_interactions_csv` reads a file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp", "weight")
REQUIRED_COLUMNS = ("user_id", "item_id", "timestamp")
RECOMMENDATION_COLUMNS = ("user_id", "rank", "item_id")
TEST_COLUMNS = ("user_id", "item_id")
METRICS = ("precision", "recall", "ndcg", "map", "coverage", "users")

_HEADER = "user_id,item_id,timestamp[,weight]"
_EPOCH = pd.Timestamp(0, tz="UTC")


class InteractionsError(ValueError):
    """An interactions file cannot be read; names the file, the column and the first bad data row, never values."""


class InteractionsNotFoundError(InteractionsError, FileNotFoundError):
    """The interactions file does not exist."""


# --- reading ---------------------------------------------------------------


def read_interactions_csv(path: Path) -> pd.DataFrame:
    """Read an interactions CSV into ``user_id, item_id`` (str), ``timestamp, weight`` (float64).

    The header must hold ``user_id``, ``item_id`` and ``timestamp``; ``weight`` is optional (1.0 when the
    column is absent) and other columns are ignored. Rows are numbered from 1 after the header; blank lines
    are not rows. Ids are stripped and must not be empty. The first data row decides how timestamps are read:
    a number there means every timestamp must be a finite number, otherwise every one must be an ISO-8601
    date-time. A weight must be a finite number (negative counts against the item). The first bad row raises :class:`InteractionsError`.
    """
    raw = _read_text_table(path)
    frame = pd.DataFrame(
        {
            "user_id": _ids(path, raw, "user_id"),
            "item_id": _ids(path, raw, "item_id"),
            "timestamp": _timestamps(path, raw["timestamp"]),
            "weight": _weights(path, raw["weight"]) if "weight" in raw.columns else 1.0,
        },
        index=pd.RangeIndex(len(raw)),
    )
    return frame.astype({"timestamp": "float64", "weight": "float64"})


def _read_text_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InteractionsNotFoundError(f"{path}: interactions file not found")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise InteractionsError(f"{path}: empty file, expected the header {_HEADER}") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InteractionsError(f"{path}: not a readable UTF-8 CSV file ({exc})") from exc
    raw.columns = pd.Index([str(c).strip() for c in raw.columns])
    for column in REQUIRED_COLUMNS:
        if column not in raw.columns:
            raise InteractionsError(f"{path}: column '{column}' is missing; the header must be {_HEADER}")
    # Short rows leave NaN even without NA parsing; every cell is text from here on.
    present = [c for c in INTERACTION_COLUMNS if c in raw.columns]
    return raw.loc[:, present].fillna("").astype(str).reset_index(drop=True)


def _fail(path: Path, column: str, bad: npt.NDArray[np.bool_], reason: str) -> None:
    """Raise for the first bad row, if any (1-based data row number)."""
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 1
        raise InteractionsError(f"{path}: column '{column}', row {row}: {reason}")


def _ids(path: Path, raw: pd.DataFrame, column: str) -> pd.Series:
    ids = raw[column].str.strip()
    _fail(path, column, (ids == "").to_numpy(), "empty id")
    return ids


def _timestamps(path: Path, text: pd.Series) -> pd.Series:
    text = text.str.strip()
    if text.empty:
        return pd.Series(np.zeros(0), dtype="float64")
    _fail(path, "timestamp", (text == "").to_numpy(), "empty timestamp")
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    if np.isfinite(numbers.iloc[0]):
        _fail(
            path,
            "timestamp",
            ~np.isfinite(numbers.to_numpy()),
            "not a finite number (the first row's timestamp is a number, so every row's must be)",
        )
        return numbers
    moments = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    _fail(
        path,
        "timestamp",
        moments.isna().to_numpy(),
        "not a number or an ISO-8601 date-time"
        if moments.isna().iloc[0]
        else "not an ISO-8601 date-time (the first row's timestamp is one, so every row's must be)",
    )
    return (moments - _EPOCH).dt.total_seconds().astype("float64")


def _weights(path: Path, text: pd.Series) -> pd.Series:
    text = text.str.strip()
    _fail(path, "weight", (text == "").to_numpy(), "empty weight (leave the column out for weight 1)")
    numbers = pd.to_numeric(text, errors="coerce").astype("float64").to_numpy()
    # negative weights are allowed (a bad review counts against a product); the sum per (user, item) decides
    _fail(path, "weight", ~np.isfinite(numbers), "not a finite number")
    return pd.Series(numbers, index=text.index, dtype="float64")


# --- splits ----------------------------------------------------------------


def split_leave_last(frame: pd.DataFrame, n: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split each user's ``n`` latest interactions off as test; users with ``n`` or fewer stay in train.

    "Latest" is by timestamp, ties broken by row order (the later row is the later interaction). Both parts
    keep the input's columns and row order, with a fresh index.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    timestamps = _checked_timestamps(frame)
    users = pd.factorize(frame["user_id"])[0]
    if (users < 0).any():
        raise ValueError("interactions: every user_id must be set")
    position = np.arange(len(frame))
    order = np.lexsort((position, timestamps, users))  # by user, then time, then row
    sorted_users = users[order]
    counts = np.bincount(users) if len(frame) else np.zeros(0, dtype=np.int64)
    group_end = np.cumsum(counts)[sorted_users]  # one past the user's last row in sorted order
    from_end = group_end - np.arange(len(frame)) - 1  # 0 for the user's latest interaction
    in_test = np.zeros(len(frame), dtype=bool)
    in_test[order] = (from_end < n) & (counts[sorted_users] > n)
    return _parts(frame, in_test)


def split_time(
    frame: pd.DataFrame, train_share: float = 0.8, *, drop_cold_items: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cut all interactions once in time: the first ``train_share`` of them are train, the rest test.

    Rows are ordered by timestamp (ties in row order) and the first ``round(train_share * rows)`` are train,
    so a tie at the cut may fall on both sides. Test keeps only users who also have train interactions (the
    test rows of users first seen after the cut are dropped) and, with ``drop_cold_items``, only items that
    occur in train. Both parts keep the input's columns and row order, with a fresh index.
    """
    if not 0.0 < train_share < 1.0:
        raise ValueError(f"train_share must be between 0 and 1, got {train_share}")
    timestamps = _checked_timestamps(frame)
    order = np.argsort(timestamps, kind="stable")
    in_test = np.ones(len(frame), dtype=bool)
    in_test[order[: round(train_share * len(frame))]] = False
    train, test = _parts(frame, in_test)
    warm = test["user_id"].isin(pd.Index(train["user_id"].unique()))
    if drop_cold_items:
        warm &= test["item_id"].isin(pd.Index(train["item_id"].unique()))
    return train, test.loc[warm].reset_index(drop=True)


def _checked_timestamps(frame: pd.DataFrame) -> npt.NDArray[np.float64]:
    _require(frame, ("user_id", "item_id", "timestamp"), "interactions")
    timestamps = pd.to_numeric(frame["timestamp"], errors="coerce").to_numpy(dtype="float64")
    if not np.isfinite(timestamps).all():
        raise ValueError("interactions: every timestamp must be a finite number")
    return timestamps


def _parts(frame: pd.DataFrame, in_test: npt.NDArray[np.bool_]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return frame.loc[~in_test].reset_index(drop=True), frame.loc[in_test].reset_index(drop=True)


# --- metrics ---------------------------------------------------------------


def evaluate(recs: pd.DataFrame, test: pd.DataFrame, k: int, catalog_size: int) -> dict[str, float]:
    """Score top-``k`` recommendations against a test set: mean precision, recall, NDCG, MAP, and coverage.

    ``recs`` has ``user_id, rank, item_id`` (rank 1 is the best; rows ranked below ``k`` are ignored, an item
    listed twice for a user counts once at its best rank); ``test`` has ``user_id, item_id``. Returns the keys
    of :data:`METRICS`; ``users`` is the number of users evaluated (the distinct users in ``test``).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if catalog_size < 1:
        raise ValueError(f"catalog_size must be at least 1, got {catalog_size}")
    _require(recs, RECOMMENDATION_COLUMNS, "recommendations")
    _require(test, TEST_COLUMNS, "test")
    relevant = pd.DataFrame(
        {"user_id": test["user_id"].astype(str), "item_id": test["item_id"].astype(str)}
    ).drop_duplicates()
    relevant_per_user = relevant.groupby("user_id", sort=False).size()
    users = relevant_per_user.index
    if users.empty:
        return dict.fromkeys(METRICS, 0.0)

    ranks = pd.to_numeric(recs["rank"], errors="coerce")
    if bool((ranks.isna() | (ranks < 1) | (ranks != np.floor(ranks))).any()):
        raise ValueError("recommendations: every rank must be a whole number of at least 1")
    top = pd.DataFrame(
        {"user_id": recs["user_id"].astype(str), "rank": ranks.astype("int64"), "item_id": recs["item_id"].astype(str)}
    )
    top = top.loc[(top["rank"] <= k) & top["user_id"].isin(users)]
    top = top.sort_values(["user_id", "rank"], kind="stable").drop_duplicates(["user_id", "item_id"])

    hits = top.merge(relevant, on=["user_id", "item_id"]).sort_values(["user_id", "rank"], kind="stable")
    hit_rank = hits["rank"].to_numpy(dtype="float64")
    hit_number = hits.groupby("user_id", sort=False).cumcount().to_numpy() + 1.0  # 1st, 2nd, ... hit of a user

    def per_user(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        summed = pd.Series(values, index=hits["user_id"].to_numpy()).groupby(level=0).sum()
        return np.asarray(summed.reindex(users, fill_value=0.0), dtype=np.float64)

    n_relevant = relevant_per_user.to_numpy(dtype="float64")
    n_hits = per_user(np.ones(len(hits)))
    ideal_hits = np.minimum(relevant_per_user.to_numpy(), k)
    ideal_dcg = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))[ideal_hits - 1]
    return {
        "precision": float(np.mean(n_hits / k)),
        "recall": float(np.mean(n_hits / n_relevant)),
        "ndcg": float(np.mean(per_user(1.0 / np.log2(hit_rank + 1.0)) / ideal_dcg)),
        "map": float(np.mean(per_user(hit_number / hit_rank) / ideal_hits)),
        "coverage": top["item_id"].nunique() / catalog_size,
        "users": float(len(users)),
    }


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)}")
