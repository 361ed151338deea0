"""The shared state, the same suite on both backends (SQLite files, DynamoDB on a local moto server).

Suppressions (through ``SuppressionList``, as the engine uses them), send history, the coupon registry
and watermarks keep the same rules on each; what one ``State`` writes, another opened on the same backend
reads (two hosts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date
from pathlib import Path
from uuid import uuid4

import pytest

from tasks.consent.suppression import SuppressionList, SuppressionReason, address_hash
from tasks.kernel.aws import client
from tasks.kernel.enums import Channel, Topic
from tasks.kernel.settings import Settings
from tasks.state.dynamodb import create_state_table, open_dynamodb_state
from tasks.state.protocol import CouponRow, HistoryRow, State
from tasks.state.sqlite import open_sqlite_state

KEY = b"k" * 32
DAY = date(2024, 5, 1)


@pytest.fixture(params=["sqlite", "dynamodb"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], State]:
    """Opens the state of one test's backend; each call is another host (or process) on the same state."""
    if request.param == "sqlite":
        return lambda: open_sqlite_state(tmp_path / "state")
    request.getfixturevalue("aws")  # a clean moto server, AWS_ENDPOINT_URL pointing at it
    table = f"state-{uuid4().hex[:12]}"
    create_state_table(client("dynamodb", Settings()), table)
    return lambda: open_dynamodb_state(client("dynamodb", Settings()), table)


def _list(opener: Callable[[], State]) -> SuppressionList:
    return SuppressionList(store=opener().suppressions, key=KEY)


# --- suppressions ----------------------------------------------------------------------------------------


def test_an_address_is_stored_keyed_and_only_once_with_its_first_reason(opener: Callable[[], State]) -> None:
    suppressions = _list(opener)

    assert suppressions.add(Channel.EMAIL, "Ann@Example.com", SuppressionReason.HARD_BOUNCE) is True
    assert _list(opener).add(Channel.EMAIL, " ann@example.com ", SuppressionReason.COMPLAINT) is False

    stored = _list(opener).hashes(Channel.EMAIL)
    assert stored == {suppressions.hash("ann@example.com")}
    # not the bare SHA-256 anyone could compute from a list of known addresses
    assert hashlib.sha256(b"ann@example.com").hexdigest() not in stored
    assert _list(opener).reason(Channel.EMAIL, "ANN@example.com") is SuppressionReason.HARD_BOUNCE
    assert _list(opener).hashes(Channel.SMS) == frozenset()


def test_an_international_domain_is_hashed_in_its_punycode_form(opener: Callable[[], State]) -> None:
    _list(opener).add(Channel.EMAIL, "ivan@магазин.рф", SuppressionReason.COMPLAINT)

    assert _list(opener).reason(Channel.EMAIL, "Ivan@xn--80aairftm.xn--p1ai") is SuppressionReason.COMPLAINT


def test_a_row_stored_before_keyed_hashes_still_suppresses(opener: Callable[[], State]) -> None:
    old = SuppressionList(store=opener().suppressions, key=None)  # how every earlier version wrote
    old.add(Channel.EMAIL, "ann@example.com", SuppressionReason.COMPLAINT)

    suppressions = _list(opener)

    assert suppressions.reason(Channel.EMAIL, "ann@example.com") is SuppressionReason.COMPLAINT
    assert suppressions.add(Channel.EMAIL, "ann@example.com", SuppressionReason.HARD_BOUNCE) is False
    assert address_hash("ann@example.com") in suppressions.hashes(Channel.EMAIL)
    assert not suppressions.hashes(Channel.EMAIL).isdisjoint(suppressions.forms("ann@example.com"))


def test_many_addresses_count_only_the_new_ones(opener: Callable[[], State]) -> None:
    _list(opener).add(Channel.SMS, "+48512345601", SuppressionReason.SMS_OPT_OUT)

    added = _list(opener).add_many(Channel.SMS, ["+48512345601", "+48512345602", "+48512345602"], "sms_opt_out")

    assert added == 1
    assert len(_list(opener).hashes(Channel.SMS)) == 2


def test_a_topic_unsubscribe_stops_that_topic_and_a_whole_one_stops_all(opener: Callable[[], State]) -> None:
    _list(opener).add_customer(Channel.EMAIL, "C1", SuppressionReason.UNSUBSCRIBE, topic=Topic.MARKETING)
    _list(opener).add_customer(None, "C2", SuppressionReason.MANUAL)

    suppressions = _list(opener)

    assert suppressions.customers(Channel.EMAIL, Topic.MARKETING) == {"C1", "C2"}
    assert suppressions.customers(Channel.EMAIL) == {"C2"}
    assert suppressions.customers(Channel.SMS) == {"C2"}
    assert suppressions.customer_reason(Channel.EMAIL, "C1", Topic.MARKETING) is SuppressionReason.UNSUBSCRIBE
    assert suppressions.customer_reason(Channel.EMAIL, "C1") is None
    assert suppressions.add_customer(None, "C2", SuppressionReason.UNSUBSCRIBE) is False


@pytest.mark.parametrize("unsubscribe_first", [False, True])
def test_an_unsubscribe_by_id_covers_the_address_the_customer_was_messaged_at(
    opener: Callable[[], State], unsubscribe_first: bool
) -> None:
    def remember() -> None:
        _list(opener).remember(Channel.EMAIL, [("C1", "ann@example.com"), ("C2", "bob@example.com")])

    def unsubscribe() -> None:
        _list(opener).add_customer(Channel.EMAIL, "C1", SuppressionReason.UNSUBSCRIBE, topic=Topic.MARKETING)

    for step in (unsubscribe, remember) if unsubscribe_first else (remember, unsubscribe):
        step()

    suppressions = _list(opener)
    ann = suppressions.hash("ann@example.com")
    # re-imported under another id, the address is still out of marketing, and only of marketing
    assert ann in suppressions.hashes(Channel.EMAIL, Topic.MARKETING)
    assert ann not in suppressions.hashes(Channel.EMAIL)
    assert suppressions.hash("bob@example.com") not in suppressions.hashes(Channel.EMAIL, Topic.MARKETING)
    assert ann not in suppressions.hashes(Channel.SMS, Topic.MARKETING)


def test_forgetting_a_customer_erases_their_id_and_suppresses_their_addresses(opener: Callable[[], State]) -> None:
    _list(opener).remember(Channel.EMAIL, [("C1", "ann@example.com"), ("C2", "bob@example.com")])
    _list(opener).add_customer(Channel.EMAIL, "C1", SuppressionReason.UNSUBSCRIBE, topic=Topic.MARKETING)

    erased = _list(opener).forget("C1", {Channel.SMS: ["+48512345601"]})

    suppressions = _list(opener)
    assert erased == 2  # the messaged address and the unsubscribe
    assert "C1" not in suppressions.customers(Channel.EMAIL, Topic.MARKETING)
    assert suppressions.reason(Channel.EMAIL, "ann@example.com") is SuppressionReason.FORGOTTEN
    assert suppressions.reason(Channel.SMS, "+48512345601") is SuppressionReason.FORGOTTEN
    assert suppressions.reason(Channel.EMAIL, "bob@example.com") is None
    assert _list(opener).forget("C1", {}) == 0


# --- send history ----------------------------------------------------------------------------------------


def _row(customer: str, day: date = DAY, step: int = 1) -> HistoryRow:
    return HistoryRow(customer, "win_back", step, "2024-05-01", "marketing", "send", day)


def test_a_plan_recorded_again_replaces_its_rows(opener: Callable[[], State]) -> None:
    opener().history.record_plan("host-a/2024-05-01/plan", [_row("C1"), _row("C2")])
    opener().history.record_plan("host-a/2024-05-01/plan", [_row("C2"), _row("C3")])

    rows = opener().history.read(DAY, DAY)

    assert sorted(r.customer_id for r in rows) == ["C2", "C3"]


def test_history_reads_a_day_range_across_plans_and_leaves_out_the_plan_made_again(
    opener: Callable[[], State],
) -> None:
    opener().history.record_plan("a", [_row("C1", date(2024, 4, 30)), _row("C2", date(2024, 6, 2))])
    opener().history.record_plan("b", [_row("C3", DAY)])

    history = opener().history

    assert sorted(r.customer_id for r in history.read(date(2024, 4, 1), date(2024, 6, 30))) == ["C1", "C2", "C3"]
    assert [r.customer_id for r in history.read(date(2024, 5, 1), date(2024, 6, 1))] == ["C3"]
    assert sorted(r.customer_id for r in history.read(date(2024, 4, 1), date(2024, 6, 30), exclude="b")) == [
        "C1",
        "C2",
    ]
    assert history.read(DAY, DAY) == [_row("C3", DAY)]


def test_a_dropped_plan_and_a_forgotten_customer_leave_the_history(opener: Callable[[], State]) -> None:
    opener().history.record_plan("a", [_row("C1"), _row("C2")])
    opener().history.record_plan("b", [_row("C1", step=2)])

    opener().history.drop_plan("b")
    assert sorted((r.customer_id, r.step) for r in opener().history.read(DAY, DAY)) == [("C1", 1), ("C2", 1)]

    assert opener().history.forget_customer("C1") >= 1
    assert [r.customer_id for r in opener().history.read(DAY, DAY)] == ["C2"]
    assert opener().history.forget_customer("C1") == 0


# --- coupons and watermarks ------------------------------------------------------------------------------


def _coupon(code: str, customer: str, issued: date = DAY) -> CouponRow:
    return CouponRow(code, customer, "win_back", 1, "2024-05-01", 10.0, "2024-05-01", "2024-05-15", issued)


def test_every_code_issued_is_kept_and_a_forgotten_customer_unlinked(opener: Callable[[], State]) -> None:
    opener().coupons.record([_coupon("WB-AAA", "C1"), _coupon("WB-BBB", "C2", date(2024, 6, 1))])
    opener().coupons.record([_coupon("WB-AAA", "C1")])  # the plan committed again

    assert opener().coupons.forget_customer("C1") == 1

    codes = opener().coupons.codes(date(2024, 5, 1), date(2024, 6, 30))
    assert codes == [_coupon("WB-AAA", ""), _coupon("WB-BBB", "C2", date(2024, 6, 1))]
    assert opener().coupons.codes(date(2024, 6, 1), date(2024, 6, 1)) == [codes[1]]


def test_a_watermark_never_moves_backwards(opener: Callable[[], State]) -> None:
    assert opener().watermarks.read_mark("updates") is None
    assert opener().watermarks.write_mark("updates", "ten past", "2024-05-01T10:10") is True

    # another host, whose window was opened earlier, finishes later
    assert opener().watermarks.write_mark("updates", "ten to", "2024-05-01T09:50") is False
    assert opener().watermarks.write_mark("updates", "half past", "2024-05-01T10:30") is True

    assert opener().watermarks.read_mark("updates") == "half past"
