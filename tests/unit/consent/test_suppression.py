"""The suppression list: addresses and customers, per channel and topic, added once, never lost."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from tasks.consent.suppression import SUPPRESSIONS_FILE, SuppressionList, SuppressionReason, address_hash
from tasks.kernel.enums import Channel, Topic
from tasks.kernel.settings import Settings


@pytest.fixture
def suppressions(tmp_path: Path) -> SuppressionList:
    return SuppressionList(tmp_path / "s.sqlite")


def test_adding_an_address_twice_keeps_one_entry_and_the_first_reason(suppressions: SuppressionList) -> None:
    assert suppressions.add(Channel.EMAIL, "Ann@Example.com", SuppressionReason.HARD_BOUNCE) is True
    assert suppressions.add(Channel.EMAIL, " ann@example.com ", SuppressionReason.COMPLAINT) is False

    assert suppressions.hashes(Channel.EMAIL) == {address_hash("ann@example.com")}
    assert suppressions.reason(Channel.EMAIL, "ann@example.com") is SuppressionReason.HARD_BOUNCE


def test_an_address_is_suppressed_only_on_its_channel(suppressions: SuppressionList) -> None:
    suppressions.add(Channel.SMS, "+447700900999", SuppressionReason.SMS_OPT_OUT)

    assert suppressions.hashes(Channel.SMS) == {address_hash("+447700900999")}
    assert suppressions.hashes(Channel.EMAIL) == frozenset()


def test_the_list_stores_no_raw_address(tmp_path: Path) -> None:
    SuppressionList(tmp_path / "s.sqlite").add(Channel.EMAIL, "ann@example.com", "complaint")

    with closing(sqlite3.connect(tmp_path / "s.sqlite")) as db:
        dump = "\n".join(db.iterdump())

    assert "ann@example.com" not in dump


def test_plain_string_reasons_still_work_and_unknown_ones_are_refused(suppressions: SuppressionList) -> None:
    suppressions.add(Channel.EMAIL, "a@example.com", "hard_bounce")

    with pytest.raises(ValueError, match="bounced"):
        suppressions.add(Channel.EMAIL, "b@example.com", "bounced")
    assert suppressions.reason(Channel.EMAIL, "a@example.com") is SuppressionReason.HARD_BOUNCE


def test_many_addresses_are_added_at_once_and_only_new_ones_counted(suppressions: SuppressionList) -> None:
    suppressions.add(Channel.EMAIL, "a@example.com", SuppressionReason.HARD_BOUNCE)

    new = suppressions.add_many(Channel.EMAIL, ["a@example.com", "b@example.com", "c@example.com"], "complaint")

    assert new == 2
    assert len(suppressions.hashes(Channel.EMAIL)) == 3
    assert suppressions.add_many(Channel.EMAIL, [], "complaint") == 0


def test_a_customer_suppression_is_idempotent(suppressions: SuppressionList) -> None:
    assert suppressions.add_customer(Channel.EMAIL, "C1", SuppressionReason.UNSUBSCRIBE) is True
    assert suppressions.add_customer(Channel.EMAIL, "C1", SuppressionReason.MANUAL) is False

    assert suppressions.customers(Channel.EMAIL) == {"C1"}
    assert suppressions.customer_reason(Channel.EMAIL, "C1") is SuppressionReason.UNSUBSCRIBE


def test_customer_and_address_suppressions_are_separate(suppressions: SuppressionList) -> None:
    suppressions.add_customer(Channel.EMAIL, "C1", SuppressionReason.UNSUBSCRIBE)
    suppressions.add(Channel.EMAIL, "ann@example.com", SuppressionReason.HARD_BOUNCE)

    assert suppressions.customers(Channel.EMAIL) == {"C1"}
    assert suppressions.hashes(Channel.EMAIL) == {address_hash("ann@example.com")}
    assert suppressions.customers(Channel.SMS) == frozenset()


def test_a_customer_suppressed_on_every_channel_is_suppressed_on_each(suppressions: SuppressionList) -> None:
    suppressions.add_customer(None, "C1", SuppressionReason.MANUAL)

    assert suppressions.customers(Channel.EMAIL) == {"C1"}
    assert suppressions.customers(Channel.SMS) == {"C1"}
    assert suppressions.customer_reason(Channel.SMS, "C1") is SuppressionReason.MANUAL


def test_a_topic_unsubscribe_silences_only_that_topic(suppressions: SuppressionList) -> None:
    suppressions.add_customer(Channel.EMAIL, "C1", SuppressionReason.UNSUBSCRIBE, topic="win_back")
    suppressions.add_customer(Channel.EMAIL, "C2", SuppressionReason.UNSUBSCRIBE)

    assert suppressions.customers(Channel.EMAIL) == {"C2"}
    assert suppressions.customers(Channel.EMAIL, topic="win_back") == {"C1", "C2"}
    assert suppressions.customers(Channel.EMAIL, topic="birthday") == {"C2"}
    assert suppressions.customer_reason(Channel.EMAIL, "C1") is None
    assert suppressions.customer_reason(Channel.EMAIL, "C1", topic="win_back") is SuppressionReason.UNSUBSCRIBE


def test_a_marketing_unsubscribe_stops_marketing_and_all_or_an_address_stops_everything(
    suppressions: SuppressionList,
) -> None:
    suppressions.add_customer(Channel.EMAIL, "C1", SuppressionReason.UNSUBSCRIBE, topic=Topic.MARKETING)
    suppressions.add_customer(Channel.EMAIL, "C2", SuppressionReason.UNSUBSCRIBE, topic=Topic.ALL)
    suppressions.remember(Channel.EMAIL, [("C1", "c1@example.com"), ("C2", "c2@example.com")])
    suppressions.add(Channel.EMAIL, "angry@example.com", SuppressionReason.COMPLAINT)
    c1, c2, angry = (address_hash(a) for a in ("c1@example.com", "c2@example.com", "angry@example.com"))

    assert suppressions.customers(Channel.EMAIL) == suppressions.customers(Channel.EMAIL, Topic.ALL) == {"C2"}
    assert suppressions.customers(Channel.EMAIL, Topic.MARKETING) == {"C1", "C2"}
    assert suppressions.hashes(Channel.EMAIL) == suppressions.hashes(Channel.EMAIL, Topic.ALL) == {c2, angry}
    assert suppressions.hashes(Channel.EMAIL, Topic.MARKETING) == {c1, c2, angry}  # a complaint stops all
    # "all" is one entry however it is named
    assert not suppressions.add_customer(Channel.EMAIL, "C2", SuppressionReason.MANUAL)


def test_a_customer_row_written_before_topics_keeps_stopping_everything(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    SuppressionList(path)  # the file as any earlier version left it: a whole-channel unsubscribe has topic ''
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO customer_suppressions VALUES ('email', 'C9', '', 'unsubscribe', '2024-01-01')")

    suppressions = SuppressionList(path)

    assert suppressions.customers(Channel.EMAIL) == {"C9"}  # order emails stop too, as they always did
    assert suppressions.customers(Channel.EMAIL, Topic.MARKETING) == {"C9"}
    assert suppressions.customer_reason(Channel.EMAIL, "C9", Topic.ALL) is SuppressionReason.UNSUBSCRIBE


def test_an_empty_topic_is_refused(suppressions: SuppressionList) -> None:
    with pytest.raises(ValueError, match="topic"):
        suppressions.add_customer(Channel.EMAIL, "C1", SuppressionReason.UNSUBSCRIBE, topic="")


def test_an_old_list_file_gains_customer_suppressions_and_keeps_its_addresses(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with sqlite3.connect(path) as db:  # the table as the first version created it
        db.execute(
            "CREATE TABLE suppressions (channel TEXT NOT NULL, address_hash TEXT NOT NULL, reason TEXT NOT NULL,"
            " at TEXT NOT NULL, PRIMARY KEY (channel, address_hash))"
        )
        db.execute("INSERT INTO suppressions VALUES ('email', ?, 'complaint', '2024-01-01')", (address_hash("a@x.io"),))
    db.close()

    suppressions = SuppressionList(path)
    suppressions.add_customer(Channel.EMAIL, "C1", SuppressionReason.UNSUBSCRIBE)

    assert suppressions.hashes(Channel.EMAIL) == {address_hash("a@x.io")}
    assert suppressions.customers(Channel.EMAIL) == {"C1"}


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"

    def write(i: int) -> None:
        suppressions = SuppressionList(path)
        suppressions.add(Channel.EMAIL, f"c{i}@example.com", SuppressionReason.HARD_BOUNCE)
        suppressions.add_customer(Channel.EMAIL, f"C{i % 10}", SuppressionReason.UNSUBSCRIBE)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(200)))

    suppressions = SuppressionList(path)
    assert len(suppressions.hashes(Channel.EMAIL)) == 200
    assert suppressions.customers(Channel.EMAIL) == {f"C{i}" for i in range(10)}


def test_the_list_lives_in_the_state_folder(tmp_path: Path) -> None:
    SuppressionList.for_settings(Settings(state_dir=tmp_path)).add_customer(Channel.SMS, "C1", "manual")

    assert SuppressionList(tmp_path / SUPPRESSIONS_FILE).customers(Channel.SMS) == {"C1"}


def test_a_list_opened_for_the_shop_stores_keyed_hashes_that_survive_a_secret_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOYALTY_SIGNING_SECRET", "the-first-secret-0123456789")
    before = SuppressionList.for_settings(Settings(state_dir=tmp_path))
    before.add(Channel.EMAIL, "ann@example.com", "complaint")
    monkeypatch.setenv("LOYALTY_SIGNING_SECRET", "the-second-secret-0123456789")
    monkeypatch.setenv("LOYALTY_SIGNING_SECRETS_OLD", '["the-first-secret-0123456789"]')

    after = SuppressionList.for_settings(Settings(state_dir=tmp_path))

    stored = after.hashes(Channel.EMAIL)
    assert address_hash("ann@example.com") not in stored  # not the bare SHA-256 of a guessable address
    assert after.hash("ann@example.com") not in stored  # hashed under the earlier secret's key...
    assert not stored.isdisjoint(after.forms("ann@example.com"))  # ...which every check still tries
    assert after.reason(Channel.EMAIL, "Ann@Example.com") is SuppressionReason.COMPLAINT


@pytest.mark.parametrize("key", [None, b"k" * 32])
def test_addresses_remembered_in_their_normal_form_hash_as_validated_ones_do(tmp_path: Path, key: bytes | None) -> None:
    # given: the addresses a plan sends to, as the snapshot keeps them (the ASCII form: an international domain
    # in punycode; a phone in E.164)
    normal = [("C1", "Ivan@xn--80aairftm.xn--p1ai"), ("C2", "Ann.Lee@example.com"), ("C3", "+48601234567")]
    fast, checked = SuppressionList(tmp_path / "a.sqlite", key=key), SuppressionList(tmp_path / "b.sqlite", key=key)

    # when: one list remembers them without validating them again, the other validates each
    fast.remember(Channel.EMAIL, normal, normal_form=True)
    checked.remember(Channel.EMAIL, normal)

    # then: the customers' unsubscribes stop the same hashes
    for found in (fast, checked):
        for customer, _ in normal:
            found.add_customer(Channel.EMAIL, customer, SuppressionReason.UNSUBSCRIBE)
    assert fast.hashes(Channel.EMAIL) == checked.hashes(Channel.EMAIL) and len(fast.hashes(Channel.EMAIL)) == 3
    if key is not None:  # and with the shop's key, the one the address as the customer types it hashes to
        assert fast.hash(" Ivan@Магазин.РФ ") in fast.hashes(Channel.EMAIL)
