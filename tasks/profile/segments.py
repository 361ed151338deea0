"""Declarative segments: named true/false expressions over the customer profile, in priority order.

Marketers write ``campaigns/segments.yaml``::

    segments:
      - name: lapsed_valuable
        description: Lapsed buyers still worth a lot; win them back first.
        expression: lifecycle == "lapsed" and predicted_clv > 50 and email_opt_in

Every expression is checked against ``PROFILE_DTYPES`` when the file is loaded and compiled into a
vectorised function over the profile's columns by :mod:`tasks.profile.expressions`, which holds the
grammar, what it allows and why, and the missing-value rules: marketer text is never run, and a customer
whose expression ends unknown is NOT in the segment. This module reads and checks the file, evaluates the
segments over a profile (a customer's primary segment is the first that matches), and writes and compares
the daily membership snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tasks.kernel.errors import CatalogError
from tasks.kernel.paths import RunPaths
from tasks.profile.expressions import (
    KNOWN_VALUES,
    MAX_EXPRESSION_CHARS,
    ExpressionError,
    Kind,
    _as_flags,
    _Frame,
    _Run,
    compile_expression,
)
from tasks.profile.schema import PROFILE_DTYPES

# The primary segment of a customer no segment matches, and the migration label of a customer
# present on one date only.
OTHER = "other"
ABSENT = "(absent)"

SegmentName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class SegmentError(CatalogError):
    """A segment file or expression is invalid; the message names the segment, the expression and the problem."""


# --- the catalog file -----------------------------------------------------------------------------


class Segment(BaseModel):
    """One named segment: a one-line description and a true/false expression over the profile."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    name: SegmentName
    description: str = Field(min_length=1, max_length=200, description="One line: who this is and why.")
    expression: str = Field(min_length=1, max_length=MAX_EXPRESSION_CHARS)

    @field_validator("description")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value:
            raise ValueError("the description must be one line")
        return value


class SegmentCatalog(BaseModel):
    """The segments file: segments in priority order (the first that matches is a customer's primary)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    segments: tuple[Segment, ...] = Field(description="In priority order.")

    @field_validator("segments")
    @classmethod
    def _unique(cls, segments: tuple[Segment, ...]) -> tuple[Segment, ...]:
        if not segments:
            raise ValueError("the file lists no segments")
        seen: set[str] = set()
        for segment in segments:
            if segment.name == OTHER:
                raise ValueError(f"segment name {OTHER!r} is reserved for customers no segment matches")
            if segment.name in seen:
                raise ValueError(f"segment name {segment.name!r} is used twice")
            seen.add(segment.name)
        return segments


def read_catalog(path: Path) -> SegmentCatalog:
    """Read and validate the segments file's shape (not yet the expressions); errors name file and field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SegmentError(f"{path}: not valid YAML ({exc})") from exc
    try:
        return SegmentCatalog.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SegmentError(
            f"{path}: {_where(raw, first['loc'])}: {first['msg'].removeprefix('Value error, ')}"
        ) from exc


def _where(raw: Any, loc: tuple[int | str, ...]) -> str:
    """Name the failing field; a segment by its name where it has one (``segments[2] 'vip'.expression``)."""
    if len(loc) >= 2 and loc[0] == "segments" and isinstance(loc[1], int):
        entries = raw.get("segments") if isinstance(raw, dict) else None
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        named = f" {entry['name']!r}" if isinstance(entry, dict) and isinstance(entry.get("name"), str) else ""
        return ".".join([f"segments[{loc[1]}]{named}", *(str(p) for p in loc[2:])])
    return ".".join(str(p) for p in loc) or "(file)"


# --- compiled segments ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledSegment:
    """A checked segment, ready to evaluate over any profile with the columns it reads."""

    name: str
    description: str
    expression: str
    columns: Mapping[str, Kind]
    run: _Run = field(repr=False)

    def evaluate(self, profile: pd.DataFrame) -> pd.Series:
        """Return True for each profile row in the segment (unknown counts as not in it)."""
        return self._members(_prepare(profile, self.columns, [self]))

    def _members(self, frame: _Frame) -> pd.Series:
        return _as_flags(self.run(frame), frame.index).fillna(False).astype(bool)


def compile_segment(
    segment: Segment,
    dtypes: Mapping[str, str] = PROFILE_DTYPES,
    known: Mapping[str, frozenset[str]] = KNOWN_VALUES,
) -> CompiledSegment:
    """Check and compile one segment; an error names the segment and its expression."""
    try:
        columns, run = compile_expression(segment.expression, dtypes, known)
    except ExpressionError as exc:
        raise SegmentError(f"segment {segment.name!r} (`{segment.expression}`): {exc}") from None
    return CompiledSegment(segment.name, segment.description, segment.expression, columns, run)


class SegmentCheck(BaseModel):
    """The outcome of checking one segment: the columns it reads, or what is wrong with it."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    expression: str
    columns: tuple[str, ...] = ()
    error: str | None = None


def check_segments(path: Path, dtypes: Mapping[str, str] = PROFILE_DTYPES) -> list[SegmentCheck]:
    """Check every segment of a file (not only the first bad one); a broken file raises ``SegmentError``."""
    checks = []
    for segment in read_catalog(path).segments:
        try:
            compiled = compile_segment(segment, dtypes)
        except SegmentError as exc:
            checks.append(SegmentCheck(**segment.model_dump(), error=str(exc)))
        else:
            checks.append(SegmentCheck(**segment.model_dump(), columns=tuple(compiled.columns)))
    return checks


def load_segments(path: Path, dtypes: Mapping[str, str] = PROFILE_DTYPES) -> list[CompiledSegment]:
    """Load, check and compile the segments file, in priority order; any bad segment is an error."""
    compiled, errors = [], []
    for segment in read_catalog(path).segments:
        try:
            compiled.append(compile_segment(segment, dtypes))
        except SegmentError as exc:
            errors.append(str(exc))
    if errors:
        more = f" (and {len(errors) - 1} more: run `loyalty segments check`)" if len(errors) > 1 else ""
        raise SegmentError(f"{path}: {errors[0]}{more}")
    return compiled


# --- evaluating over a profile --------------------------------------------------------------------


def _prepare(profile: pd.DataFrame, columns: Mapping[str, Kind], segments: Sequence[CompiledSegment]) -> _Frame:
    """Put the columns segments read into one nullable dtype per kind, so a missing value is always ``<NA>``."""
    prepared: dict[str, pd.Series] = {}
    for column, kind in columns.items():
        if column not in profile.columns:
            users = ", ".join(s.name for s in segments if column in s.columns)
            raise SegmentError(f"the profile has no column {column!r}, which segment(s) {users} read")
        prepared[column] = _canonical(profile[column], kind)
    return _Frame(prepared, profile.index)


def _canonical(values: pd.Series, kind: Kind) -> pd.Series:
    if kind is Kind.NUMBER:
        # through float64 so that NaN (numpy floats) and <NA> (nullable) both become <NA>
        return pd.Series(values.to_numpy(dtype="float64", na_value=np.nan), index=values.index).astype("Float64")
    if kind is Kind.FLAG:
        return values.astype("boolean")
    return values.astype("string")


def segment_flags(profile: pd.DataFrame, segments: Sequence[CompiledSegment]) -> pd.DataFrame:
    """Return one boolean column per segment, in catalog order, indexed by customer_id (a customer may be in several)."""
    needed: dict[str, Kind] = {}
    for segment in segments:
        needed.update(segment.columns)
    frame = _prepare(profile, needed, segments)
    index = pd.Index(profile["customer_id"].astype("string"), name="customer_id")
    flags = {segment.name: segment._members(frame).to_numpy(dtype=bool) for segment in segments}
    return pd.DataFrame(flags, index=index, columns=[segment.name for segment in segments])


def assign_segments(profile: pd.DataFrame, segments: Sequence[CompiledSegment]) -> pd.DataFrame:
    """Give every customer one primary segment: the first that matches in catalog order, else ``other``."""
    flags = segment_flags(profile, segments)
    names = list(flags.columns)
    if names:
        primary = np.select([flags[name].to_numpy() for name in names], names, default=OTHER)
    else:
        primary = np.full(len(flags), OTHER)
    return pd.DataFrame(
        {"customer_id": flags.index.to_numpy(), "segment": primary},
    ).astype({"customer_id": "string", "segment": "string"})


def segment_sizes(profile: pd.DataFrame, segments: Sequence[CompiledSegment]) -> dict[str, int]:
    """Count each segment's full membership (overlaps count in every segment), in catalog order."""
    flags = segment_flags(profile, segments)
    return {name: int(flags[name].sum()) for name in flags.columns}


# --- daily snapshots and migration ----------------------------------------------------------------


def write_snapshot(paths: RunPaths, assignment: pd.DataFrame) -> Path:
    """Write the day's primary segments (customer_id, segment) to ``<run>/segments/membership.parquet``.

    Written to a temporary name and renamed, so a crash never leaves half a snapshot for a later migration.
    """
    target = paths.segments
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    assignment[["customer_id", "segment"]].astype("string").to_parquet(partial, index=False)
    partial.replace(target)
    return target


def read_snapshot(path: Path) -> pd.DataFrame:
    """Read a day's segment snapshot; refuse one without customer_id/segment or with a customer twice."""
    frame = pd.read_parquet(path)
    missing = {"customer_id", "segment"} - set(frame.columns)
    if missing:
        raise SegmentError(f"{path}: not a segment snapshot (no column {', '.join(sorted(missing))})")
    frame = frame[["customer_id", "segment"]].astype("string")
    twice = frame["customer_id"].duplicated()
    if twice.any():
        raise SegmentError(f"{path}: customer {frame['customer_id'][twice].iloc[0]!r} appears twice")
    return frame


def migration(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Count customers by (segment on the earlier date, segment on the later date).

    Rows are the earlier segment (``from``), columns the later one (``to``), one label set on both axes:
    the segments by size, then ``other``, then ``(absent)`` for customers present on one date only.
    """
    merged = pd.merge(
        before[["customer_id", "segment"]].astype("string"),
        after[["customer_id", "segment"]].astype("string"),
        on="customer_id",
        how="outer",
        suffixes=("_from", "_to"),
    )
    pairs = pd.DataFrame(
        {"from": merged["segment_from"].fillna(ABSENT), "to": merged["segment_to"].fillna(ABSENT)}
    ).astype(object)
    labels = _labels(pd.concat([pairs["from"], pairs["to"]]))
    matrix = pd.DataFrame(0, index=pd.Index(labels, name="from"), columns=pd.Index(labels, name="to"), dtype="int64")
    for cell, count in pairs.groupby(["from", "to"]).size().items():
        source, target = cast(tuple[str, str], cell)
        matrix.loc[source, target] = int(count)
    return matrix


def _labels(seen: pd.Series) -> list[str]:
    counts = seen.loc[~seen.isin([OTHER, ABSENT])].value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return [str(name) for name, _ in ranked] + [OTHER, ABSENT]


def migration_moves(matrix: pd.DataFrame) -> pd.DataFrame:
    """The matrix in long form: one row per non-empty (from, to) cell, biggest first (stays included)."""
    rows = [
        (str(source), str(target), int(matrix.loc[source, target]))
        for source in matrix.index
        for target in matrix.columns
        if matrix.loc[source, target] > 0
    ]
    rows.sort(key=lambda row: -row[2])
    return pd.DataFrame(rows, columns=["from", "to", "customers"]).astype({"customers": "int64"})
