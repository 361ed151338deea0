"""Declarative segments: named true/false expressions over the customer profile, in priority order.

Marketers write ``campaigns/segments.yaml``::

    segments:
      - name: lapsed_valuable
        description: Lapsed buyers still worth a lot; win them back first.
        expression: lifecycle == "lapsed" and predicted_clv > 50 and email_opt_in

Every expression is parsed with :mod:`ast` and checked against ``PROFILE_DTYPES`` when the file is
loaded, then compiled into a vectorised function over the profile's columns. Marketer text is never
run: no ``eval``, ``exec``, ``pandas.eval`` or ``DataFrame.query``.

The grammar, and nothing else (anything else is refused at load, naming segment, expression and construct):

* names: profile columns (``PROFILE_DTYPES``); timestamps are not usable, use the ``days_*`` columns;
* constants: ``"text"``, numbers (``-5``, ``2.5``), ``True`` / ``False``;
* ``and``, ``or``, ``not`` over true/false values (a number is not true/false: write ``orders > 0``);
* ``== !=`` between values of one kind; ``< <= > >=`` between numbers; chains such as ``7 <= x <= 14``;
* ``x in [...]`` / ``x not in [...]`` with a written-out list (or tuple) of constants of x's kind;
* ``+ - * /`` between numbers, unary minus, parentheses.

Typos are the common mistake, so an unknown column gets a "did you mean", and so does a misspelt
value of a column whose values are known (``lifecycle``, ``rfm_segment``).

Missing values (``<NA>``: no purchase yet, no birthday, no prediction) follow three-valued logic, as
SQL's ``WHERE`` does: a comparison with a missing value is *unknown*; ``not unknown`` is unknown;
``unknown and False`` is False, ``unknown or True`` is True, otherwise unknown; and a customer whose
expression ends unknown is NOT in the segment. So ``not (x > 5)`` and ``x <= 5`` pick exactly the same
customers, and neither picks a customer whose ``x`` is missing: a missing value never makes anyone
match by accident, however the expression is negated. Arithmetic with a missing value, and division
by zero, give a missing value.
"""

from __future__ import annotations

import ast
import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import reduce
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tasks.kernel.errors import CatalogError
from tasks.kernel.paths import RunPaths
from tasks.profile.lifecycle import Stage
from tasks.profile.rfm import NO_PURCHASE, RFM_SEGMENTS
from tasks.profile.schema import PROFILE_DTYPES

# The primary segment of a customer no segment matches, and the migration label of a customer
# present on one date only.
OTHER = "other"
ABSENT = "(absent)"

# Text columns whose every value is known in advance: a constant compared with them is checked at load.
KNOWN_VALUES: dict[str, frozenset[str]] = {
    "lifecycle": frozenset(stage.value for stage in Stage),
    "rfm_segment": frozenset((*RFM_SEGMENTS, NO_PURCHASE)),
}

# Long enough for any honest rule; short enough that parsing marketer text stays cheap.
MAX_EXPRESSION_CHARS = 1000

SegmentName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]

_GRAMMAR = (
    'expressions use profile columns, numbers, "text", True/False, and/or/not, == != < <= > >=, '
    "in [...], + - * / and parentheses"
)


class SegmentError(CatalogError):
    """A segment file or expression is invalid; the message names the segment, the expression and the problem."""


class ExpressionError(ValueError):
    """What is wrong with one expression (without the segment's name; ``compile_segment`` adds it)."""


class Kind(StrEnum):
    """What a value is, as far as the expression language cares."""

    NUMBER = "a number"
    TEXT = "text"
    FLAG = "true/false"


def column_kind(dtype: str) -> Kind | None:
    """Return the kind of a pandas dtype name; None for kinds expressions cannot use (timestamps)."""
    name = dtype.lower()
    if name in ("bool", "boolean"):
        return Kind.FLAG
    if name in ("string", "str", "object", "category"):
        return Kind.TEXT
    if name.startswith(("int", "uint", "float")):
        return Kind.NUMBER
    return None


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


# --- compiling an expression ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    """The profile's columns an evaluation reads, each in its canonical nullable dtype."""

    columns: Mapping[str, pd.Series]
    index: pd.Index


Value = pd.Series | str | float | bool
_Run = Callable[[_Frame], Value]


@dataclass(frozen=True)
class _Const:
    value: str | float | bool


@dataclass(frozen=True)
class _Typed:
    """A checked piece of an expression: its kind, how to compute it, and what the checks need to know."""

    kind: Kind
    run: _Run
    source: str
    constant: _Const | None = None
    column: str | None = None


_COMPARE: dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
}
_ARITHMETIC: dict[type[ast.operator], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
}
# What a refused construct is called in an error message; anything not listed is named by its AST type.
_REFUSED: dict[type[ast.AST], str] = {
    ast.Call: "calling a function",
    ast.Attribute: "attribute access (.)",
    ast.Subscript: "indexing ([...])",
    ast.Slice: "slicing",
    ast.Lambda: "lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string",
    ast.NamedExpr: "assignment (:=)",
    ast.IfExp: "if/else",
    ast.Dict: "a dictionary",
    ast.Set: "a set outside `in`",
    ast.List: "a list outside `in`",
    ast.Tuple: "a tuple outside `in`",
    ast.Starred: "unpacking (*)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}
_SYMBOLS: dict[type[ast.AST], str] = {
    ast.Pow: "**",
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitXor: "^",
}
_OPERATOR_HINTS: dict[type[ast.AST], str] = {
    ast.BitAnd: "`&` is not allowed: write `and`",
    ast.BitOr: "`|` is not allowed: write `or`",
    ast.Invert: "`~` is not allowed: write `not`",
    ast.Is: "`is` is not allowed: write `==`",
    ast.IsNot: "`is not` is not allowed: write `!=`",
}


class _Compiler:
    """Check an expression's AST node by node and build its vectorised function; refuse anything unknown."""

    def __init__(self, expression: str, dtypes: Mapping[str, str], known: Mapping[str, frozenset[str]]) -> None:
        self.expression = expression
        self.dtypes = dtypes
        self.known = known
        self.columns: dict[str, Kind] = {}

    def source(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.expression, node) or self.expression

    def where(self, node: ast.AST) -> str:
        """Quote the part of the expression at fault, unless it is the whole expression (already quoted)."""
        part = self.source(node)
        return "" if part == self.expression else f"`{part}`: "

    def refuse(self, node: ast.AST, what: str) -> ExpressionError:
        return ExpressionError(f"{self.where(node)}{what} is not allowed; {_GRAMMAR}")

    def visit(self, node: ast.expr) -> _Typed:
        if isinstance(node, ast.BoolOp):
            return self.bool_op(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary_op(node)
        if isinstance(node, ast.BinOp):
            return self.bin_op(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Constant):
            return self.constant(node)
        raise self.refuse(node, _REFUSED.get(type(node), type(node).__name__))

    def name(self, node: ast.Name) -> _Typed:
        column = node.id
        if column not in self.dtypes:
            raise ExpressionError(f"unknown column {column!r}{_suggest(column, self.dtypes)}")
        kind = column_kind(self.dtypes[column])
        if kind is None:
            raise ExpressionError(
                f"column {column!r} holds {self.dtypes[column]} values, which expressions cannot use; "
                "use a days_* column (days_since_last_order, tenure_days, ...)"
            )
        self.columns[column] = kind
        return _Typed(kind, lambda frame: frame.columns[column], column, column=column)

    def constant(self, node: ast.Constant) -> _Typed:
        value = node.value
        if isinstance(value, bool):
            return _literal(Kind.FLAG, value, self.source(node))
        if isinstance(value, int | float) and math.isfinite(value):
            return _literal(Kind.NUMBER, float(value), self.source(node))
        if isinstance(value, str):
            return _literal(Kind.TEXT, value, self.source(node))
        raise self.refuse(node, f"the constant {value!r}")

    def bool_op(self, node: ast.BoolOp) -> _Typed:
        word = "and" if isinstance(node.op, ast.And) else "or"
        parts = [self.flag(value, f"`{word}`") for value in node.values]
        combine = operator.and_ if word == "and" else operator.or_

        def run(frame: _Frame) -> Value:
            return reduce(combine, (_as_flags(part.run(frame), frame.index) for part in parts))

        return _Typed(Kind.FLAG, run, self.source(node))

    def unary_op(self, node: ast.UnaryOp) -> _Typed:
        if isinstance(node.op, ast.Not):
            inner = self.flag(node.operand, "`not`")
            return _Typed(Kind.FLAG, lambda frame: ~_as_flags(inner.run(frame), frame.index), self.source(node))
        if type(node.op) in _OPERATOR_HINTS:
            raise ExpressionError(f"{self.where(node)}{_OPERATOR_HINTS[type(node.op)]}")
        if isinstance(node.op, ast.USub | ast.UAdd):
            inner = self.visit(node.operand)
            if inner.kind is not Kind.NUMBER:
                raise ExpressionError(f"{self.where(node)}a sign needs a number, but `{inner.source}` is {inner.kind}")
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            if inner.constant is not None:
                return _literal(Kind.NUMBER, sign * float(inner.constant.value), self.source(node))
            return _Typed(
                Kind.NUMBER, lambda frame: _arithmetic(operator.mul, inner.run(frame), sign, False), self.source(node)
            )
        raise self.refuse(node, "this operator")

    def bin_op(self, node: ast.BinOp) -> _Typed:
        if type(node.op) in _OPERATOR_HINTS:
            raise ExpressionError(f"{self.where(node)}{_OPERATOR_HINTS[type(node.op)]}")
        if type(node.op) not in _ARITHMETIC:
            raise self.refuse(node, f"`{_SYMBOLS.get(type(node.op), type(node.op).__name__)}`")
        symbol, apply = _ARITHMETIC[type(node.op)]
        left, right = self.visit(node.left), self.visit(node.right)
        for side in (left, right):
            if side.kind is not Kind.NUMBER:
                raise ExpressionError(f"{self.where(node)}`{symbol}` needs numbers, but `{side.source}` is {side.kind}")
        divide = symbol == "/"
        if left.constant is not None and right.constant is not None:
            a, b = float(left.constant.value), float(right.constant.value)
            if divide and b == 0:
                raise ExpressionError(f"{self.where(node)}division by zero")
            result = apply(a, b)
            if not math.isfinite(result):
                raise ExpressionError(f"{self.where(node)}the number is too large")
            return _literal(Kind.NUMBER, result, self.source(node))

        def run(frame: _Frame) -> Value:
            return _arithmetic(apply, left.run(frame), right.run(frame), divide)

        return _Typed(Kind.NUMBER, run, self.source(node))

    def compare(self, node: ast.Compare) -> _Typed:
        checks: list[_Typed] = []
        left = self.visit(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                checks.append(self.membership(node, left, right_node, negate=isinstance(op, ast.NotIn)))
                continue
            if type(op) in _OPERATOR_HINTS:
                raise ExpressionError(f"{self.where(node)}{_OPERATOR_HINTS[type(op)]}")
            right = self.visit(right_node)
            checks.append(self.pair(node, op, left, right))
            left = right
        if len(checks) == 1:
            return checks[0]

        def run(frame: _Frame) -> Value:
            return reduce(operator.and_, (_as_flags(check.run(frame), frame.index) for check in checks))

        return _Typed(Kind.FLAG, run, self.source(node))

    def pair(self, node: ast.Compare, op: ast.cmpop, left: _Typed, right: _Typed) -> _Typed:
        symbol, apply = _COMPARE[type(op)]
        where = self.where(node)
        if left.kind is not right.kind:
            raise ExpressionError(
                f"{where}`{left.source}` is {left.kind} and `{right.source}` is {right.kind}; they cannot be compared"
            )
        if symbol not in ("==", "!=") and left.kind is not Kind.NUMBER:
            raise ExpressionError(f"{where}`{symbol}` compares numbers, but `{left.source}` is {left.kind}")
        self.known_value(node, left, right)
        self.known_value(node, right, left)
        if left.constant is not None and right.constant is not None:
            return _literal(Kind.FLAG, bool(apply(left.constant.value, right.constant.value)), self.source(node))
        dtype = _DTYPES[left.kind]

        def run(frame: _Frame) -> Value:
            a, b = left.run(frame), right.run(frame)
            if not isinstance(a, pd.Series) and not isinstance(b, pd.Series):
                a = pd.Series(a, index=frame.index, dtype=dtype)
            flags: pd.Series = apply(a, b)
            return flags

        return _Typed(Kind.FLAG, run, self.source(node))

    def membership(self, node: ast.Compare, left: _Typed, right_node: ast.expr, negate: bool) -> _Typed:
        where = self.where(node)
        if len(node.ops) > 1:
            raise ExpressionError(f"{where}`in` cannot be chained with other comparisons; join them with `and`")
        if not isinstance(right_node, ast.List | ast.Tuple | ast.Set):
            raise ExpressionError(f'{where}`in` needs a list of values written out, e.g. `in ["a", "b"]`')
        values: list[str | float | bool] = []
        for element in right_node.elts:
            item = self.visit(element)
            if item.constant is None:
                raise ExpressionError(f"{where}the list after `in` may hold constants only, not `{item.source}`")
            if item.kind is not left.kind:
                raise ExpressionError(
                    f"{where}`{left.source}` is {left.kind} but `{item.source}` in the list is {item.kind}"
                )
            self.known_value(node, left, item)
            values.append(item.constant.value)
        if left.constant is not None:
            return _literal(Kind.FLAG, (left.constant.value in values) != negate, self.source(node))
        dtype = _DTYPES[left.kind]

        def run(frame: _Frame) -> Value:
            column = left.run(frame)
            series = column if isinstance(column, pd.Series) else pd.Series(column, index=frame.index, dtype=dtype)
            found = series.isin(values).astype("boolean").mask(series.isna())
            return ~found if negate else found

        return _Typed(Kind.FLAG, run, self.source(node))

    def known_value(self, node: ast.Compare, column: _Typed, value: _Typed) -> None:
        """Refuse a text constant that a column with known values never holds (``lifecycle == "lapse"``)."""
        if column.column is None or value.constant is None or column.column not in self.known:
            return
        allowed = self.known[column.column]
        text = value.constant.value
        if isinstance(text, str) and text not in allowed:
            close = difflib.get_close_matches(text, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ExpressionError(
                f"{self.where(node)}{column.column} is never {text!r}{hint}; it is one of {', '.join(sorted(allowed))}"
            )

    def flag(self, node: ast.expr, word: str) -> _Typed:
        """Visit an operand of and/or/not: it must be true/false (a number or text is not)."""
        typed = self.visit(node)
        if typed.kind is not Kind.FLAG:
            example = f"`{typed.source} > 0`" if typed.kind is Kind.NUMBER else f'`{typed.source} == "..."`'
            raise ExpressionError(
                f"{word} needs true/false values, but `{typed.source}` is {typed.kind}; compare it, e.g. {example}"
            )
        return typed


_DTYPES = {Kind.NUMBER: "Float64", Kind.TEXT: "string", Kind.FLAG: "boolean"}


def _literal(kind: Kind, value: str | float | bool, source: str) -> _Typed:
    return _Typed(kind, lambda frame: value, source, constant=_Const(value))


def _suggest(name: str, columns: Mapping[str, str]) -> str:
    close = difflib.get_close_matches(name, list(columns), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if name.lower() in ("true", "false"):
        return f" (write {name.capitalize()})"
    return f'; if you meant the text, put it in quotes: "{name}"'


def _as_flags(value: Value, index: pd.Index) -> pd.Series:
    """A true/false value as a nullable boolean Series (Kleene logic for &, |, ~)."""
    if isinstance(value, pd.Series):
        return value.astype("boolean")
    return pd.Series(bool(value), index=index, dtype="boolean")


def _arithmetic(apply: Callable[[Any, Any], Any], a: Value, b: Value, divide: bool) -> pd.Series:
    """Apply ``+ - * /`` (one side at least a column); dividing by zero gives a missing value, not infinity."""
    result: pd.Series = apply(a, b)
    if divide and isinstance(b, pd.Series):
        result = result.mask(b.eq(0).fillna(False).astype(bool))
    elif divide and b == 0:
        result = pd.Series(pd.NA, index=result.index, dtype="Float64")
    return result


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


def compile_expression(
    expression: str,
    dtypes: Mapping[str, str] = PROFILE_DTYPES,
    known: Mapping[str, frozenset[str]] = KNOWN_VALUES,
) -> tuple[Mapping[str, Kind], _Run]:
    """Parse and type-check one expression; return the columns it reads and its vectorised function."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        hint = "; to compare, write ==" if re.search(r"(?<![=!<>])=(?!=)", expression) else ""
        raise ExpressionError(f"not a valid expression: {exc.msg} (at character {exc.offset}){hint}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"not a valid expression ({type(exc).__name__})") from None
    compiler = _Compiler(expression.strip(), dtypes, known)
    try:
        typed = compiler.visit(tree.body)
    except RecursionError:
        raise ExpressionError("the expression is nested too deeply") from None
    if typed.kind is not Kind.FLAG:
        raise ExpressionError(f"the expression must be true or false for each customer, but it is {typed.kind}")
    return dict(compiler.columns), typed.run


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
