"""Who is on support's call list, who is not, and how a returned list is read."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tasks.report.calls import (
    ARTIFACT_ROWS,
    CALL_COLUMNS,
    CallFileError,
    CallRules,
    call_list_artifact,
    read_outcomes,
    select_calls,
)
from tasks.state.calls import CallOutcome

AS_OF = date(2024, 6, 1)
# ten buyers: V is the VIP, T1..T9 ordinary; C2 is not a buyer of note
PROFILE = pd.DataFrame(
    {
        "customer_id": ["V", *[f"T{i}" for i in range(1, 10)]],
        "vip": [True] + [False] * 9,
        "predicted_clv": [900.0, *[float(10 * i) for i in range(1, 10)]],
        "monetary_total": [1500.0, *[float(20 * i) for i in range(1, 10)]],
        "orders": [12] + [2] * 9,
    }
)
CUSTOMERS = pd.DataFrame(
    {
        "customer_id": PROFILE["customer_id"],
        "first_name": ["Vera", *[f"Name{i}" for i in range(1, 10)]],
        "phone": ["+48512345678", "", *["+48500000000"] * 8],
        "locale": ["pl"] * 10,
        "timezone": ["Europe/Warsaw"] * 10,
    }
)
NO_CALLS = pd.DataFrame(columns=["customer_id", "incident", "outcome"])
NO_SENT = pd.DataFrame(columns=["customer_id", "campaign", "step", "occurrence", "day"])
NO_CODES = pd.DataFrame(columns=["code", "customer_id", "occurrence", "percent_off"])


def _incidents(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    """(customer, order, reason, UTC time) rows."""
    frame = pd.DataFrame(rows, columns=["customer_id", "order_id", "reason", "at"]).assign(product_id=None)
    return frame.assign(at=pd.to_datetime(frame["at"], utc=True))


def _select(incidents: pd.DataFrame, calls: pd.DataFrame = NO_CALLS, **kwargs: pd.DataFrame) -> pd.DataFrame:
    sent, codes = kwargs.get("sent", NO_SENT), kwargs.get("coupons", NO_CODES)
    return select_calls(PROFILE, incidents, CUSTOMERS, calls, sent, codes, AS_OF, CallRules())


def _calls(customer: str, incident: str, *outcomes: str) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": customer, "incident": incident, "outcome": list(outcomes)})


def test_a_vip_with_an_open_incident_is_listed_with_what_support_needs_and_a_single_incident_is_not() -> None:
    found = _incidents(
        ("V", "O1", "late_delivery", "2024-05-28T10:00:00Z"), ("T1", "O2", "returned", "2024-05-29T10:00:00Z")
    )
    sent = pd.DataFrame(
        {
            "customer_id": ["V"],
            "campaign": ["service_recovery"],
            "step": [1],
            "occurrence": ["2024-05-28"],
            "day": [pd.Timestamp("2024-05-29")],
        }
    )
    codes = pd.DataFrame(
        {"code": ["SORRY-ABC"], "customer_id": ["V"], "occurrence": ["2024-05-28"], "percent_off": [20.0]}
    )

    listed = _select(found, sent=sent, coupons=codes)

    assert list(listed.columns) == list(CALL_COLUMNS)
    assert listed["customer_id"].tolist() == ["V"]
    row = listed.iloc[0]
    assert (row["first_name"], row["phone"], row["why"], row["order_id"]) == (
        "Vera",
        "+48512345678",
        "vip, top value",
        "O1",
    )
    assert (row["reason"], row["at"], row["incident"]) == ("late_delivery", "2024-05-28", "2024-05-28:late_delivery:O1")
    assert row["messages"] == "service_recovery step 1 on 2024-05-29"
    assert (row["coupon"], row["percent_off"]) == ("SORRY-ABC", "20")


# T1's two incidents in 30 days and V's one (a VIP)
REPEATED = (
    ("T1", "O1", "late_delivery", "2024-05-10T10:00:00Z"),
    ("T1", "O2", "cancelled", "2024-05-30T10:00:00Z"),
    ("V", "O3", "returned", "2024-05-31T10:00:00Z"),
)


def test_two_incidents_in_30_days_put_anyone_on_the_list_most_valuable_first() -> None:
    listed = _select(_incidents(*REPEATED))

    assert listed["customer_id"].tolist() == ["V", "T1", "T1"]
    assert set(listed.loc[listed["customer_id"] == "T1", "why"]) == {"repeat incidents"}
    assert listed.loc[listed["customer_id"] == "T1", "phone"].tolist() == ["", ""]  # T1 gave no phone


def test_a_long_call_list_shows_its_most_valuable_rows_in_the_artifact_and_says_how_many_there_are() -> None:
    listed = _select(_incidents(*REPEATED))
    long = pd.concat([listed] * (ARTIFACT_ROWS // 2), ignore_index=True)  # a big shop's day: 1.5 x ARTIFACT_ROWS

    table, description = call_list_artifact(long, AS_OF)
    short, whole = call_list_artifact(listed, AS_OF)

    assert len(table) == ARTIFACT_ROWS and table[0]["customer_id"] == "V"
    assert f"{len(long)} incidents" in description and f"the first {ARTIFACT_ROWS} here" in description
    assert (
        [row["customer_id"] for row in short] == ["V", "T1", "T1"] and "here;" not in whole and "the first" not in whole
    )
    assert not any(key in row for row in table for key in ("phone", "first_name", "last_name"))


def test_an_incident_older_than_the_list_window_is_not_listed() -> None:
    found = _incidents(("V", "O1", "late_delivery", "2024-04-20T10:00:00Z"))

    assert _select(found).empty


def test_a_resolved_or_reached_incident_leaves_the_list_and_the_customers_other_incident_stays() -> None:
    found = _incidents(
        ("V", "O1", "late_delivery", "2024-05-28T10:00:00Z"), ("V", "O2", "returned", "2024-05-29T10:00:00Z")
    )

    resolved = _select(found, _calls("V", "2024-05-28:late_delivery:O1", CallOutcome.RESOLVED))
    reached = _select(found, _calls("V", "2024-05-29:returned:O2", CallOutcome.REACHED))

    assert resolved["order_id"].tolist() == ["O2"]
    assert reached["order_id"].tolist() == ["O1"]


def test_a_customer_who_wants_no_contact_leaves_the_list_for_every_incident() -> None:
    found = _incidents(
        ("V", "O1", "late_delivery", "2024-05-28T10:00:00Z"), ("V", "O2", "returned", "2024-05-29T10:00:00Z")
    )

    listed = _select(found, _calls("V", "2024-05-28:late_delivery:O1", CallOutcome.WANTS_NO_CONTACT))

    assert listed.empty


def test_three_calls_without_an_answer_take_the_incident_off_the_list_two_do_not() -> None:
    found = _incidents(("V", "O1", "late_delivery", "2024-05-28T10:00:00Z"))
    key = "2024-05-28:late_delivery:O1"

    twice = _select(found, _calls("V", key, CallOutcome.NO_ANSWER, CallOutcome.NO_ANSWER))
    thrice = _select(found, _calls("V", key, *[CallOutcome.NO_ANSWER] * 3))

    assert twice["attempts"].tolist() == [2]
    assert thrice.empty


def test_a_returned_list_is_read_with_free_spelling_and_rows_not_called_are_skipped(tmp_path: Path) -> None:
    returned = tmp_path / "calls.csv"
    returned.write_text(
        "list_day,customer_id,phone,incident,outcome,note\n"
        "2024-06-01,V,+48512345678,2024-05-28:late_delivery:O1,Wants no contact,asked us to stop\n"
        "2024-06-01,T1,,2024-05-30:cancelled:O2,,\n"
        "2024-06-01,T2,,2024-05-30:cancelled:O3,no-answer,\n",
        encoding="utf-8",
    )

    records = read_outcomes(returned, date(2024, 6, 3))

    assert [(r.customer_id, r.outcome, r.called_at) for r in records] == [
        ("V", CallOutcome.WANTS_NO_CONTACT, "2024-06-01"),
        ("T2", CallOutcome.NO_ANSWER, "2024-06-01"),
    ]


def test_a_bad_outcome_names_its_line_and_never_echoes_the_row(tmp_path: Path) -> None:
    returned = tmp_path / "calls.csv"
    returned.write_text(
        "customer_id,incident,outcome\nV,2024-05-28:late_delivery:O1,resolved\nT1,2024-05-30:cancelled:O2,+48512345678\n",
        encoding="utf-8",
    )

    with pytest.raises(CallFileError) as raised:
        read_outcomes(returned, AS_OF)

    assert str(raised.value).startswith("calls.csv line 3: outcome must be one of reached, no_answer")
    assert "+48" not in str(raised.value)
