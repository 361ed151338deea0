"""Declarative segments: the expression language is safe, checked at load, and honest about missing values."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.kernel.paths import RunPaths
from tasks.kernel.settings import PROJECT_ROOT
from tasks.profile.schema import PROFILE_DTYPES
from tasks.profile.segments import (
    ABSENT,
    OTHER,
    CompiledSegment,
    Segment,
    SegmentError,
    assign_segments,
    check_segments,
    compile_segment,
    load_segments,
    migration,
    migration_moves,
    read_snapshot,
    segment_flags,
    segment_sizes,
    write_snapshot,
)

NA = pd.NA


def _profile() -> pd.DataFrame:
    """Four customers in the profile's dtypes, with the missing values real profiles have.

    A: never bought (no recency, no prediction, no lifecycle text), no birthday, opted in.
    B: lapsed, valuable, birthday in 3 days, VIP.
    C: new, cheap, birthday in 20 days, opted out, unhappy 10 days ago.
    D: active, no prediction, no top category, unhappy 45 days ago.
    """
    rows = {
        "customer_id": ["A", "B", "C", "D"],
        "orders": [0, 6, 1, 3],
        "days_since_last_order": [NA, 120, 5, 20],
        "monetary_total": [0.0, 400.0, 12.5, np.nan],
        "predicted_clv": [NA, 80.0, 10.0, NA],
        "avg_interpurchase_days": [NA, 30.0, NA, 10.0],
        "lifecycle": [NA, "lapsed", "new", "active"],
        "rfm_segment": ["no_purchase", "cant_lose", "new", "loyal"],
        "top_category": ["cat_food", "cat_toys", "dog_food", NA],
        "vip": [False, True, False, False],
        "email_opt_in": [True, True, False, True],
        "sms_opt_in": [False, False, True, False],
        "unhappy": [False, False, True, True],
        "days_since_unhappy": [NA, NA, 10, 45],
        "days_until_birthday": [NA, 3, 20, 0],
    }
    return pd.DataFrame(rows).astype({column: PROFILE_DTYPES[column] for column in rows})


def _full_profile() -> pd.DataFrame:
    """The four customers with every profile column: the ones not set above are missing, False or 0."""
    profile = _profile()
    for column, dtype in PROFILE_DTYPES.items():
        if column not in profile.columns:
            fill = False if dtype == "bool" else 0 if dtype == "int64" else None
            profile[column] = pd.Series([fill] * len(profile), index=profile.index).astype(dtype)
    return profile[list(PROFILE_DTYPES)]


def _segment(expression: str, name: str = "test_segment") -> CompiledSegment:
    return compile_segment(Segment(name=name, description="A test segment.", expression=expression))


def _members(expression: str) -> list[str]:
    profile = _profile()
    return profile.loc[_segment(expression).evaluate(profile), "customer_id"].tolist()


def test_profile_fixture_has_the_profile_dtypes() -> None:
    profile = _profile()
    for column in profile.columns:
        assert str(profile[column].dtype) == PROFILE_DTYPES[column], column


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("vip and email_opt_in", ["B"]),
        ('lifecycle == "lapsed" and predicted_clv > 50 and email_opt_in', ["B"]),
        ('rfm_segment == "new"', ["C"]),
        ('top_category in ["cat_food", "cat_toys"]', ["A", "B"]),
        ('top_category not in ["cat_food", "cat_toys"]', ["C"]),
        ("unhappy and days_since_unhappy <= 30", ["C"]),
        ("orders == 0", ["A"]),
        ("3 <= orders <= 6", ["B", "D"]),
        ("orders >= 3 and days_since_last_order > 2 * avg_interpurchase_days", ["B"]),
        ("monetary_total / orders > 10", ["B", "C"]),
        ("-orders < -2", ["B", "D"]),
        ("email_opt_in or sms_opt_in", ["A", "B", "C", "D"]),
        ("not vip and (unhappy or orders == 0)", ["A", "C", "D"]),
        ("vip == True", ["B"]),
        ("True", ["A", "B", "C", "D"]),
        ("1 > 2 or vip", ["B"]),
    ],
)
def test_allowed_expressions_pick_the_right_customers(expression: str, expected: list[str]) -> None:
    assert _members(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # A has no birthday on file: in neither the segment nor its negation
        ("days_until_birthday <= 7", ["B", "D"]),
        ("days_until_birthday > 7", ["C"]),
        ("not (days_until_birthday > 7)", ["B", "D"]),
        ("not (days_until_birthday <= 7)", ["C"]),
        # missing text (A's lifecycle), in == and != alike, and in `in` / `not in`
        ('lifecycle != "lapsed"', ["C", "D"]),
        ('not (lifecycle == "lapsed")', ["C", "D"]),
        ('lifecycle not in ["lapsed", "new"]', ["D"]),
        ('not (top_category in ["cat_food"])', ["B", "C"]),
        # NaN in a numpy float column counts as missing too (D's monetary_total)
        ("monetary_total >= 0", ["A", "B", "C"]),
        ("not (monetary_total >= 0)", []),
        # arithmetic with a missing value is missing; dividing by zero is missing, not infinity
        ("predicted_clv * 2 > 0", ["B", "C"]),
        ("monetary_total / orders >= 0", ["B", "C"]),
        ("not (monetary_total / orders >= 0)", []),
        # three-valued logic: unknown or True is True, unknown and False is False
        ("days_until_birthday <= 7 or orders == 0", ["A", "B", "D"]),
        ("not (days_until_birthday > 7 and orders > 100)", ["A", "B", "C", "D"]),
        ("not (days_until_birthday > 7 or orders > 100)", ["B", "D"]),
    ],
)
def test_a_missing_value_never_makes_a_customer_match(expression: str, expected: list[str]) -> None:
    assert _members(expression) == expected


@pytest.mark.parametrize(
    ("expression", "construct"),
    [
        ('__import__("os")', "calling a function"),
        ("x.__class__", "attribute access"),
        ("orders[0]", "indexing"),
        ("lambda: 1", "lambda"),
        ("[c for c in x]", "comprehension"),
        ('f"{orders}"', "f-string"),
        ("(orders := 1)", "assignment"),
        ('open("f")', "calling a function"),
        ('vip and __import__("os").system("true")', "calling a function"),
        ("orders ** 99 > 1", "`**`"),
        ("orders if vip else 0", "if/else"),
        ('{"a": 1}', "dictionary"),
        ("vip & unhappy", "write `and`"),
        ("vip | unhappy", "write `or`"),
        ("~vip", "write `not`"),
        ("top_category is None", "write `==`"),
        ("orders in top_category", "list of values written out"),
        ("orders in [orders]", "constants only"),
        ("b'x' == top_category", "the constant b'x'"),
    ],
)
def test_disallowed_constructs_are_refused_at_load_naming_segment_and_construct(
    expression: str, construct: str
) -> None:
    with pytest.raises(SegmentError) as refused:
        _segment(expression, name="sneaky")

    message = str(refused.value)
    assert message.startswith(f"segment 'sneaky' (`{expression}`): ")
    assert construct in message


def test_a_misspelt_column_is_named_with_a_suggestion() -> None:
    with pytest.raises(SegmentError) as refused:
        _segment('lifecyle == "lapsed"', name="lapsed")

    assert str(refused.value) == (
        "segment 'lapsed' (`lifecyle == \"lapsed\"`): unknown column 'lifecyle' (did you mean 'lifecycle'?)"
    )


def test_a_misspelt_known_value_is_named_with_a_suggestion() -> None:
    with pytest.raises(SegmentError, match=r"lifecycle is never 'lapse' \(did you mean 'lapsed'\?\)"):
        _segment('lifecycle == "lapse"')
    with pytest.raises(SegmentError, match=r"rfm_segment is never 'champion' \(did you mean 'champions'\?\)"):
        _segment('rfm_segment in ["champion", "loyal"]')


def test_a_forgotten_quote_says_how_to_write_text() -> None:
    with pytest.raises(SegmentError, match=r"unknown column 'lapsed'; if you meant the text, put it in quotes"):
        _segment("lifecycle == lapsed")


def test_a_single_equals_sign_says_to_write_double() -> None:
    with pytest.raises(SegmentError, match=r"not a valid expression: .*; to compare, write =="):
        _segment("orders = 0")


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("rfm_segment > 3", "`rfm_segment` is text and `3` is a number; they cannot be compared"),
        ('orders == "3"', '`orders` is a number and `"3"` is text'),
        ("vip == 1", "`vip` is true/false and `1` is a number"),
        ('lifecycle < "new"', "`<` compares numbers, but `lifecycle` is text"),
        ("orders and vip", "`and` needs true/false values, but `orders` is a number; compare it, e.g. `orders > 0`"),
        ("vip or top_category", "`or` needs true/false values, but `top_category` is text"),
        ("not orders", "`not` needs true/false values, but `orders` is a number"),
        ("lifecycle + 1 > 2", "`+` needs numbers, but `lifecycle` is text"),
        ('top_category in ["cat_food", 3]', "`top_category` is text but `3` in the list is a number"),
        ("orders", "must be true or false for each customer, but it is a number"),
        ("first_order_at > 3", "holds datetime64[ns, UTC] values, which expressions cannot use"),
        ("orders / 0 > 1 and 1 / 0 > 1", "`1 / 0`: division by zero"),
    ],
)
def test_type_errors_are_caught_at_load(expression: str, problem: str) -> None:
    with pytest.raises(SegmentError) as refused:
        _segment(expression, name="typed")

    assert str(refused.value).startswith(f"segment 'typed' (`{expression}`): ")
    assert problem in str(refused.value)


def test_every_customer_gets_the_first_matching_segment_or_other() -> None:
    segments = [
        _segment("vip", name="vip"),
        _segment("days_until_birthday <= 7", name="birthday_soon"),
        _segment('lifecycle == "new"', name="new"),
    ]

    assignment = assign_segments(_profile(), segments)

    assert assignment.to_dict(orient="list") == {
        "customer_id": ["A", "B", "C", "D"],
        "segment": [OTHER, "vip", "new", "birthday_soon"],  # B is also birthday_soon, but vip comes first
    }
    assert assignment.dtypes.astype(str).to_dict() == {"customer_id": "string", "segment": "string"}


def test_flags_and_sizes_count_every_segment_a_customer_is_in() -> None:
    segments = [_segment("vip", name="vip"), _segment("days_until_birthday <= 7", name="birthday_soon")]

    flags = segment_flags(_profile(), segments)

    assert list(flags.columns) == ["vip", "birthday_soon"]
    assert flags.loc["B"].tolist() == [True, True]
    assert segment_sizes(_profile(), segments) == {"vip": 1, "birthday_soon": 2}


def test_without_segments_everyone_is_other() -> None:
    assert set(assign_segments(_profile(), [])["segment"]) == {OTHER}


def test_a_profile_without_a_column_a_segment_reads_is_an_error() -> None:
    with pytest.raises(SegmentError, match=r"no column 'predicted_clv', which segment\(s\) valuable read"):
        assign_segments(_profile().drop(columns=["predicted_clv"]), [_segment("predicted_clv > 1", name="valuable")])


def test_snapshot_is_written_under_the_days_segments_folder_and_read_back(tmp_path: Path) -> None:
    paths = RunPaths.for_day(tmp_path, date(2024, 6, 1))
    assignment = assign_segments(_profile(), [_segment("vip", name="vip")])

    written = write_snapshot(paths, assignment)
    paths.reset()  # a re-run of the day keeps the snapshot until it overwrites it

    assert written == tmp_path / "2024-06-01" / "segments" / "membership.parquet"
    pd.testing.assert_frame_equal(read_snapshot(written), assignment)


def test_migration_counts_moves_between_dates_including_absent_customers() -> None:
    before = pd.DataFrame({"customer_id": ["A", "B", "C", "D"], "segment": ["vip", "vip", "new", OTHER]})
    after = pd.DataFrame({"customer_id": ["A", "B", "C", "E"], "segment": ["vip", "lapsed", "lapsed", "new"]})

    matrix = migration(before, after)

    assert list(matrix.index) == list(matrix.columns) == ["vip", "lapsed", "new", OTHER, ABSENT]  # by size
    assert matrix.loc["vip", "vip"] == 1
    assert matrix.loc["vip", "lapsed"] == 1
    assert matrix.loc["new", "lapsed"] == 1
    assert matrix.loc[OTHER, ABSENT] == 1  # D left
    assert matrix.loc[ABSENT, "new"] == 1  # E arrived
    assert int(matrix.to_numpy().sum()) == 5  # every customer of either day once
    moves = migration_moves(matrix)
    assert moves.columns.tolist() == ["from", "to", "customers"]
    assert len(moves) == 5 and moves["customers"].is_monotonic_decreasing


def test_migration_moves_are_sorted_by_count() -> None:
    before = pd.DataFrame({"customer_id": list("ABCDE"), "segment": ["new"] * 5})
    after = pd.DataFrame({"customer_id": list("ABCDE"), "segment": ["vip", "vip", "vip", "new", "lapsed"]})

    moves = migration_moves(migration(before, after))

    assert moves.to_dict(orient="records") == [
        {"from": "new", "to": "vip", "customers": 3},
        {"from": "new", "to": "new", "customers": 1},
        {"from": "new", "to": "lapsed", "customers": 1},
    ]


def test_a_snapshot_with_a_customer_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "membership.parquet"
    pd.DataFrame({"customer_id": ["A", "A"], "segment": ["vip", "new"]}).to_parquet(path)

    with pytest.raises(SegmentError, match="customer 'A' appears twice"):
        read_snapshot(path)


def test_the_shipped_segments_file_loads_and_type_checks() -> None:
    shipped = PROJECT_ROOT / "campaigns" / "segments.yaml"

    segments = load_segments(shipped)
    checks = check_segments(shipped)

    assert 8 <= len(segments) <= 12
    assert [check.error for check in checks] == [None] * len(checks)
    assert all(set(segment.columns) <= set(PROFILE_DTYPES) for segment in segments)
    assert len(set(assign_segments(_full_profile(), segments)["segment"])) > 1


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_bad_segment_in_a_file_names_file_segment_expression_and_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "segments.yaml",
        "segments:\n"
        "  - {name: vip, description: VIPs., expression: vip}\n"
        "  - {name: lapsed, description: Lapsed., expression: 'lifecyle == \"lapsed\"'}\n"
        "  - {name: rich, description: Rich., expression: monetray_total > 100}\n",
    )

    with pytest.raises(SegmentError) as refused:
        load_segments(path)
    checks = check_segments(path)

    assert str(refused.value).startswith(f"{path}: segment 'lapsed' (`lifecyle == \"lapsed\"`): unknown column")
    assert "(and 1 more: run `loyalty segments check`)" in str(refused.value)
    assert [check.error is None for check in checks] == [True, False, False]
    assert "did you mean 'monetary_total'" in str(checks[2].error)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("segments: [", "not valid YAML"),
        ("segments: []", "segments: the file lists no segments"),
        ("- {name: vip, description: d, expression: vip}", "(file): Input should be a valid dictionary"),
        ("segments:\n  - {name: Vip, description: d, expression: vip}", "segments[0] 'Vip'.name: String should match"),
        ("segments:\n  - {name: vip, expression: vip}", "segments[0] 'vip'.description: Field required"),
        ("segments:\n  - {name: vip, description: d, expression: 1}", "segments[0] 'vip'.expression: Input should be"),
        (
            "segments:\n  - {name: vip, description: d, expression: vip}\n  - {name: vip, description: d, expression: vip}",
            "segments: segment name 'vip' is used twice",
        ),
        ("segments:\n  - {name: other, description: d, expression: vip}", "'other' is reserved"),
        ('segments:\n  - {name: vip, description: "two\\nlines", expression: vip}', "must be one line"),
    ],
)
def test_a_malformed_file_names_the_file_and_the_field(tmp_path: Path, text: str, problem: str) -> None:
    path = _write(tmp_path / "segments.yaml", text)

    with pytest.raises(SegmentError) as refused:
        load_segments(path)

    assert str(refused.value).startswith(f"{path}: ")
    assert problem in str(refused.value)
