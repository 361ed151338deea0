"""Audience expressions: the small language of true/false conditions over the customer profile.

Segments (``campaigns/segments.yaml``), campaign audiences and ad-hoc audiences are written in it, e.g.
``lifecycle == "lapsed" and predicted_clv > 50 and email_opt_in``.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import reduce
from typing import Any

import pandas as pd

from tasks.kernel.enums import Pets
from tasks.profile.lifecycle import Stage
from tasks.profile.rfm import NO_PURCHASE, RFM_SEGMENTS
from tasks.profile.schema import PROFILE_DTYPES

# Text columns whose every value is known in advance: a constant compared with them is checked at load.
KNOWN_VALUES: dict[str, frozenset[str]] = {
    "lifecycle": frozenset(stage.value for stage in Stage),
    "rfm_segment": frozenset((*RFM_SEGMENTS, NO_PURCHASE)),
    "pets": frozenset(p.value for p in Pets),
}

# Long enough for any honest rule; short enough that parsing marketer text stays cheap.
MAX_EXPRESSION_CHARS = 1000

_GRAMMAR = (
    'expressions use profile columns, numbers, "text", True/False, and/or/not, == != < <= > >=, '
    "in [...], + - * / and parentheses"
)


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
        if isinstance(value, int | float):
            try:
                number = float(value)  # an int of hundreds of digits overflows a float
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):  # 1e999999 reads as inf
                shown = self.source(node) if len(self.source(node)) <= 20 else self.source(node)[:17] + "..."
                raise ExpressionError(f"`{shown}` (at character {node.col_offset + 1}): the number is too large")
            return _literal(Kind.NUMBER, number, self.source(node))
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


def compile_expression(
    expression: str,
    dtypes: Mapping[str, str] = PROFILE_DTYPES,
    known: Mapping[str, frozenset[str]] = KNOWN_VALUES,
) -> tuple[Mapping[str, Kind], _Run]:
    """Parse and type-check one expression; return the columns it reads and its vectorised function."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        if "integer string conversion" in str(exc.msg):  # thousands of digits: Python refuses to read them
            digits = re.search(r"\d{100,}", expression)
            at = f" at character {digits.start() + 1}" if digits else ""
            raise ExpressionError(f"the number{at} is too large") from None
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
