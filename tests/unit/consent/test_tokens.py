"""Unsubscribe tokens: a link works for exactly the customer, channel and topic it was made for."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from tasks.consent.tokens import (
    InvalidToken,
    MessageKeys,
    MissingSecret,
    Purpose,
    Unsubscribe,
    hkdf_sha256,
    parse_unsubscribe,
    preferences_url,
    purpose_key,
    require_signing_secret,
    sign,
    unsubscribe_url,
    verification_keys,
)
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


# any customer id a link may carry: 1-256 characters, no control characters
_IDS = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters=[*map(chr, range(32)), "\x7f"]),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(customer_id=_IDS)
@example(customer_id="C 1+ü&=/?#%~._-")
def test_links_are_written_exactly_as_the_standard_library_encodes_their_fields(customer_id: str) -> None:
    # the links already sent and the goldens were written with urlencode: a link must not change its spelling
    unsubscribe = sign(KEY, "unsubscribe", customer_id, "email", "marketing")
    preferences = sign(KEY, "preferences", customer_id, "sms")

    assert unsubscribe_url(KEY, BASE, customer_id, "email", Topic.MARKETING) == BASE + "?" + urlencode(
        {"c": customer_id, "ch": "email", "tp": "marketing", "t": unsubscribe}
    )
    assert preferences_url(KEY, BASE + "?x=1", customer_id, "sms", "pl") == BASE + "?x=1&" + urlencode(
        {"c": customer_id, "ch": "sms", "t": preferences, "l": "pl"}
    )


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


def _settings(tmp_path: Path, secret: str | None = "s" * 32, old: tuple[str, ...] = (), **more: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        state_dir=tmp_path / "state",
        signing_secret=None if secret is None else SecretStr(secret),
        signing_secrets_old=[SecretStr(s) for s in old],
        **more,
    )


def _link(settings: Settings, customer_id: str = "C42") -> dict[str, str]:
    url = unsubscribe_url(purpose_key(settings, Purpose.UNSUBSCRIBE), BASE, customer_id, "email", Topic.MARKETING)
    return _fields(url)


def test_the_configured_secret_signs_and_no_key_file_is_made(tmp_path: Path) -> None:
    settings = _settings(tmp_path)

    assert parse_unsubscribe(verification_keys(settings, Purpose.UNSUBSCRIBE), _link(settings)).customer_id == "C42"
    assert not (tmp_path / "state").exists()


def test_each_purpose_has_its_own_key_and_none_is_the_secret(tmp_path: Path) -> None:
    settings = _settings(tmp_path)

    keys = {purpose: purpose_key(settings, purpose) for purpose in Purpose}

    assert len(set(keys.values())) == len(Purpose)
    assert b"s" * 32 not in keys.values()
    assert keys[Purpose.COUPON] == MessageKeys.for_settings(settings).coupon


def test_the_key_derivation_is_hkdf_sha256_as_rfc_5869_gives_it() -> None:
    # RFC 5869, appendix A, test case 1
    okm = hkdf_sha256(bytes([0x0B] * 22), bytes(range(0xF0, 0xFA)), bytes(range(13)), 42)

    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")


def test_a_link_signed_with_the_old_secret_still_works_after_a_rotation(tmp_path: Path) -> None:
    before = _settings(tmp_path, "old-secret-0123456789abcdef")
    after = _settings(tmp_path, "new-secret-0123456789abcdef", old=("old-secret-0123456789abcdef",))
    link = _link(before)

    assert parse_unsubscribe(verification_keys(after, Purpose.UNSUBSCRIBE), link).customer_id == "C42"
    # new links are signed with the new secret only
    assert _link(after) != link
    with pytest.raises(InvalidToken, match="does not match"):
        parse_unsubscribe(verification_keys(before, Purpose.UNSUBSCRIBE), _link(after))


def test_a_link_signed_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "new-secret-0123456789abcdef", old=("old-secret-0123456789abcdef",))
    stranger = _settings(tmp_path, "someone-elses-secret-0123456")

    with pytest.raises(InvalidToken, match="does not match"):
        parse_unsubscribe(verification_keys(settings, Purpose.UNSUBSCRIBE), _link(stranger))


def test_a_link_made_before_purpose_keys_signed_with_the_raw_secret_still_works(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    legacy = _fields(unsubscribe_url(b"s" * 32, BASE, "C42", "email"))  # how every link was signed until now

    assert parse_unsubscribe(verification_keys(settings, Purpose.UNSUBSCRIBE), legacy).customer_id == "C42"
    # the raw secret is accepted for unsubscribe links only: it is no coupon or reorder key
    assert b"s" * 32 not in verification_keys(settings, Purpose.REORDER)


def test_another_purposes_key_does_not_sign_an_unsubscribe_link(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    forged = _fields(unsubscribe_url(purpose_key(settings, Purpose.COUPON), BASE, "C42", "email"))

    with pytest.raises(InvalidToken, match="does not match"):
        parse_unsubscribe(verification_keys(settings, Purpose.UNSUBSCRIBE), forged)


def test_two_hosts_with_their_own_state_folders_and_one_secret_accept_each_others_links(tmp_path: Path) -> None:
    host_1 = _settings(tmp_path / "host-1")
    host_2 = _settings(tmp_path / "host-2")

    assert parse_unsubscribe(verification_keys(host_2, Purpose.UNSUBSCRIBE), _link(host_1)).customer_id == "C42"
    assert parse_unsubscribe(verification_keys(host_1, Purpose.UNSUBSCRIBE), _link(host_2)).customer_id == "C42"
    assert MessageKeys.for_settings(host_1) == MessageKeys.for_settings(host_2)  # the same coupon codes too


def test_a_short_configured_secret_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="LOYALTY_SIGNING_SECRET is too short") as caught:
        purpose_key(_settings(tmp_path, "short-secret"), Purpose.COUPON)
    assert "short-secret" not in str(caught.value)


def test_the_old_name_of_the_secret_still_configures_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOYALTY_UNSUBSCRIBE_SECRET", "s" * 32)

    settings = Settings(_env_file=None, state_dir=tmp_path)  # type: ignore[call-arg]

    assert purpose_key(settings, Purpose.UNSUBSCRIBE) == purpose_key(_settings(tmp_path), Purpose.UNSUBSCRIBE)


def test_a_real_send_without_a_secret_is_refused_with_one_line(tmp_path: Path) -> None:
    settings = _settings(tmp_path, None)

    with pytest.raises(MissingSecret, match=r"^LOYALTY_SIGNING_SECRET is required when messages really go out") as no:
        require_signing_secret(settings, dry_run=False)
    assert "\n" not in str(no.value)


@pytest.mark.parametrize(
    ("dry_run", "endpoint"), [(True, None), (False, "http://127.0.0.1:5000"), (False, "http://localhost:4566")]
)
def test_a_dry_run_or_the_local_aws_may_use_the_state_folders_key(
    tmp_path: Path, dry_run: bool, endpoint: str | None
) -> None:
    settings = _settings(tmp_path, None, aws_endpoint_url=endpoint)

    require_signing_secret(settings, dry_run=dry_run)  # no error

    assert purpose_key(settings, Purpose.UNSUBSCRIBE)
    assert (tmp_path / "state" / "signing.key").exists()


def test_a_real_send_to_a_remote_endpoint_needs_the_secret_too(tmp_path: Path) -> None:
    settings = _settings(tmp_path, None, aws_endpoint_url="https://email.eu-central-1.amazonaws.com")

    with pytest.raises(MissingSecret):
        require_signing_secret(settings, dry_run=False)
    require_signing_secret(_settings(tmp_path, aws_endpoint_url="https://email.eu-central-1.amazonaws.com"), False)


def test_without_a_secret_one_private_key_is_kept_in_the_state_folder(tmp_path: Path) -> None:
    settings = _settings(tmp_path, None)

    first, second = purpose_key(settings, Purpose.UNSUBSCRIBE), purpose_key(settings, Purpose.UNSUBSCRIBE)

    assert first == second
    assert len((tmp_path / "state" / "signing.key").read_bytes()) == 32
    assert (tmp_path / "state" / "signing.key").stat().st_mode & 0o777 == 0o600


def test_threads_racing_to_create_the_key_all_get_the_same_key(tmp_path: Path) -> None:
    settings = _settings(tmp_path, None)
    barrier = threading.Barrier(8)
    keys: list[bytes] = []

    def get() -> None:
        barrier.wait()
        keys.append(purpose_key(settings, Purpose.COUPON))

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(keys) == 8
    assert len(set(keys)) == 1
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["signing.key"]


def test_loyalty_run_without_the_secret_stops_before_planning_with_one_line(tmp_path: Path) -> None:
    from tests.shops import tiny_shop, write_shop

    shop = write_shop(tiny_shop(), tmp_path / "shop")
    env = {k: v for k, v in os.environ.items() if k not in ("LOYALTY_SIGNING_SECRET", "LOYALTY_UNSUBSCRIBE_SECRET")}

    # a process of its own: the command sets Prefect's logging up for itself
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--as-of", "2026-03-05", "--data", str(shop)],
        cwd=tmp_path,  # no .env of the working copy
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1  # one line
    assert result.stderr.startswith("error: LOYALTY_SIGNING_SECRET is required when messages really go out")
    assert not (tmp_path / "out").exists()  # nothing loaded, planned or rendered


def test_links_a_host_made_with_its_key_file_still_work_once_the_secret_is_configured(tmp_path: Path) -> None:
    before = _settings(tmp_path, None)
    link = _link(before)  # made by the state folder's own key
    legacy = _fields(unsubscribe_url((tmp_path / "state" / "signing.key").read_bytes(), BASE, "C7", "email"))

    after = _settings(tmp_path)

    assert parse_unsubscribe(verification_keys(after, Purpose.UNSUBSCRIBE), link).customer_id == "C42"
    assert parse_unsubscribe(verification_keys(after, Purpose.UNSUBSCRIBE), legacy).customer_id == "C7"
    assert purpose_key(after, Purpose.UNSUBSCRIBE) != purpose_key(before, Purpose.UNSUBSCRIBE)  # new links: the secret
