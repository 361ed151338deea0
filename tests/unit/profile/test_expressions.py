"""Audience expressions: a number too large to use is a clear expression error, not a crash."""

from __future__ import annotations

import pytest

from tasks.profile.expressions import ExpressionError, compile_expression


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("monetary > 1e999999", r"^`1e999999` \(at character 12\): the number is too large$"),
        ("monetary > " + "9" * 400, r"^`9{17}\.\.\.` \(at character 12\): the number is too large$"),
        ("monetary in [1, -" + "9" * 400 + "]", r"\(at character 18\): the number is too large$"),
        ("monetary > " + "9" * 10_000, r"^the number at character 12 is too large$"),
    ],
    ids=["float-overflow", "long-integer", "long-integer-in-list", "ten-thousand-digits"],
)
def test_a_number_too_large_is_refused_naming_its_position(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        compile_expression(expression, {"monetary": "float64"}, {})
