"""Unsubscribe tokens: a link works for exactly the customer, channel and topic it was made for."""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from pydantic import SecretStr

from tasks.consent.tokens import InvalidToken, Unsubscribe, parse_unsubscribe, sign, signing_key, unsubscribe_url
from tasks.kernel.enums import Channel, Topic
from tasks.kernel.settings import Settings

KEY = b"k" * 32
BASE = "https://shop.example.com/unsubscribe"


def _fields(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_a_link_round_trips_to_its_customer_and_channel() -> None:
    url = unsubscribe_url(KEY, BASE, "C42", "email")

    assert url.startswith(BASE + "?")
    assert parse_unsubscribe(KEY, _fields(url)) == Unsubscribe(customer_id="C42", channel=Channel.EMAIL)


def test_a_topic_link_round_trips_with_its_topic() -> None:
    url = unsubscribe_url(KEY, BASE, "C42", "sms", topic="win_back")

    assert parse_unsubscribe(KEY, _fields(url)) == Unsubscribe(customer_id="C42", channel=Channel.SMS, topic="win_back")


def test_links_made_before_topics_existed_still_verify() -> None:
    # the first links carried sign(key, "unsubscribe", customer, channel) and no topic
    fields = {"c": "C42", "ch": "email", "t": sign(KEY, "unsubscribe", "C42", "email")}

    assert parse_unsubscribe(KEY, fields).customer_id == "C42"


def test_a_marketing_link_carries_its_topic_signed() -> None:
    fields = _fields(unsubscribe_url(KEY, BASE, "C42", "email", Topic.MARKETING))

    assert fields["tp"] == "marketing"
    assert parse_unsubscribe(KEY, fields).topic == Topic.MARKETING


def test_a_link_for_everything_is_the_old_link_without_a_topic() -> None:
    # one spelling of "all" in links, the one every link sent before topics has
    url = unsubscribe_url(KEY, BASE, "C42", "email", Topic.ALL)

    assert url == unsubscribe_url(KEY, BASE, "C42", "email")
    assert _fields(url) == {"c": "C42", "ch": "email", "t": sign(KEY, "unsubscribe", "C42", "email")}
    assert parse_unsubscribe(KEY, _fields(url)).topic is None


def test_a_customer_id_with_reserved_characters_round_trips() -> None:
    url = unsubscribe_url(KEY, BASE, "a&b=c d/é", "email")

    assert parse_unsubscribe(KEY, _fields(url)).customer_id == "a&b=c d/é"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("c", "C43"),  # another customer
        ("ch", "sms"),  # another channel
        ("tp", "birthday"),  # another topic
    ],
)
def test_an_altered_link_is_rejected(field: str, value: str) -> None:
    fields = _fields(unsubscribe_url(KEY, BASE, "C42", "email", topic="win_back"))
    fields[field] = value

    with pytest.raises(InvalidToken):
        parse_unsubscribe(KEY, fields)


def test_dropping_the_topic_to_widen_an_unsubscribe_is_rejected() -> None:
    fields = _fields(unsubscribe_url(KEY, BASE, "C42", "email", topic="win_back"))
    del fields["tp"]

    with pytest.raises(InvalidToken):
        parse_unsubscribe(KEY, fields)


def test_adding_a_topic_to_a_channel_link_is_rejected() -> None:
    fields = _fields(unsubscribe_url(KEY, BASE, "C42", "email"))
    fields["tp"] = "win_back"

    with pytest.raises(InvalidToken):
        parse_unsubscribe(KEY, fields)


def test_a_forged_signature_is_rejected() -> None:
    fields = _fields(unsubscribe_url(KEY, BASE, "C42", "email"))
    fields["t"] = "A" * len(fields["t"])

    with pytest.raises(InvalidToken, match="signature"):
        parse_unsubscribe(KEY, fields)


def test_a_link_signed_with_another_key_is_rejected() -> None:
    fields = _fields(unsubscribe_url(b"other-key-" * 4, BASE, "C42", "email"))

    with pytest.raises(InvalidToken):
        parse_unsubscribe(KEY, fields)


@pytest.mark.parametrize("cut", [1, 5, 23])
def test_a_truncated_token_is_rejected(cut: int) -> None:
    fields = _fields(unsubscribe_url(KEY, BASE, "C42", "email"))
    fields["t"] = fields["t"][:-cut]

    with pytest.raises(InvalidToken):
        parse_unsubscribe(KEY, fields)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"c": "C42", "ch": "email"},  # no token
        {"c": "", "ch": "email", "t": "x" * 24},
        {"c": "C42", "ch": "fax", "t": "x" * 24},
        {"c": "C42\x1femail", "ch": "email", "t": "x" * 24},
        {"c": "C42", "ch": "email", "tp": "", "t": "x" * 24},
        {"c": "C42", "ch": "email", "tp": "a b", "t": "x" * 24},
        {"c": "C42", "ch": "email", "t": "é" * 24},  # non-ASCII must not crash the comparison
        {"c": "C" * 1000, "ch": "email", "t": "x" * 24},
    ],
)
def test_a_malformed_link_is_rejected(fields: dict[str, str]) -> None:
    with pytest.raises(InvalidToken):
        parse_unsubscribe(KEY, fields)


def test_an_invalid_token_message_names_no_customer() -> None:
    fields = _fields(unsubscribe_url(KEY, BASE, "secret-customer", "email"))
    fields["t"] = "A" * 24

    with pytest.raises(InvalidToken) as caught:
        parse_unsubscribe(KEY, fields)

    assert "secret-customer" not in str(caught.value)


def test_making_a_link_for_an_unknown_channel_fails() -> None:
    with pytest.raises(ValueError, match="fax"):
        unsubscribe_url(KEY, BASE, "C42", "fax")


def test_the_configured_secret_is_the_key(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, unsubscribe_secret=SecretStr("s" * 32))

    assert signing_key(settings) == b"s" * 32
    assert not (tmp_path / "signing.key").exists()


def test_a_short_configured_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too short"):
        signing_key(Settings(state_dir=tmp_path, unsubscribe_secret=SecretStr("short")))


def test_without_a_secret_one_private_key_is_kept_in_the_state_folder(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", unsubscribe_secret=None)

    first, second = signing_key(settings), signing_key(settings)

    assert first == second
    assert len(first) == 32
    assert (tmp_path / "state" / "signing.key").stat().st_mode & 0o777 == 0o600


def test_threads_racing_to_create_the_key_all_get_the_same_key(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", unsubscribe_secret=None)
    barrier = threading.Barrier(8)
    keys: list[bytes] = []

    def get() -> None:
        barrier.wait()
        keys.append(signing_key(settings))

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(keys) == 8
    assert len(set(keys)) == 1
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["signing.key"]
