"""Audiences for ad platforms: each platform's normalisation checked against its published examples, and who is in."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tasks.consent.suppression import address_hash
from tasks.kernel.enums import Channel
from tasks.plan.planner import Suppressed
from tasks.profile.segments import CompiledSegment, load_segments
from tasks.report.audiences import (
    COLUMNS,
    AudienceError,
    Exclusions,
    Platform,
    build_audience,
    exclusions_for,
    hashed,
    normalise_email,
    normalise_phone,
    parse_audiences,
    write_audience,
)

AS_OF = date(2026, 3, 1)
CATALOG = Path(__file__).resolve().parents[3] / "campaigns" / "segments.yaml"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def lapsed_valuable() -> CompiledSegment:
    """The catalog's own win-back segment (lapsed, predicted value above 50, reads our email)."""
    return {s.name: s for s in load_segments(CATALOG)}["lapsed_valuable"]


def test_yandex_normalisation_gives_the_published_md5s_and_the_file_holds_sha256_of_the_same_strings(
    lapsed_valuable: CompiledSegment,
) -> None:
    # given: Yandex Audience's published examples, written the way customers type them
    phone = normalise_phone("yandex", "+7 (987) 654-32-10", "RU")
    email = normalise_email("yandex", " Mail@Yandex.ru ")
    national = normalise_phone("yandex", "8 901 234-56-78", "RU")
    second = normalise_email("yandex", "Example2@yandex.ru")
    # then: the normal forms are Yandex's own (its examples are MD5s)
    assert (md5(str(phone)), md5(str(email))) == (
        "5c5259938ed3e632bc5e3f94731090af",
        "3c56ff8fef0f6c65b36b2d25720fe276",
    )
    assert (md5(str(national)), md5(str(second))) == (
        "7cea6da797b7105aee4188b6731a9006",
        "8d2b135ba9bd88fbfbd8ececb31196d1",
    )
    # and the file carries SHA-256 of them (MD5 is refused for new uploads), with the shop's id as external_id
    profile = _profile(["C1"])
    customers = _customers(["C1"], emails=[" Mail@Yandex.ru "], phones=["+7 (987) 654-32-10"])
    rows = build_audience(profile, customers, lapsed_valuable, "yandex", AS_OF, Exclusions()).rows
    assert list(rows.columns) == ["external_id", "phone", "email"]
    assert rows.to_dict("records") == [
        {
            "external_id": "C1",
            "phone": hashlib.sha256(b"79876543210").hexdigest(),
            "email": hashlib.sha256(b"mail@yandex.ru").hexdigest(),
        }
    ]


def test_a_normalised_email_hashes_to_tiktoks_published_sha256() -> None:
    assert hashed(str(normalise_email("meta", " JaneDoe@Gmail.com"))) == (
        "d6117306485ed0e50afab3ac871e98f81699151f30281527d63ff5f233656c69"
    )


def test_only_google_removes_the_dots_of_a_gmail_address_and_only_for_gmail() -> None:
    assert normalise_email("google", "Jane.Doe@GoogleMail.com") == "janedoe@googlemail.com"
    assert normalise_email("google", "jane.doe@gmail.com") == "janedoe@gmail.com"
    assert normalise_email("google", "jane.doe@yandex.ru") == "jane.doe@yandex.ru"
    for platform in ("meta", "vk", "yandex"):
        assert normalise_email(platform, " Jane.Doe@Gmail.com ") == "jane.doe@gmail.com"


@pytest.mark.parametrize(
    ("raw", "country", "google", "others"),
    [
        ("+48 601 234 567", "PL", "+48601234567", "48601234567"),
        ("601 234 567", "PL", "+48601234567", "48601234567"),  # national, read in the customer's country
        ("8 (987) 654-32-10", "RU", "+79876543210", "79876543210"),
        ("123", "RU", None, None),  # not a number: left out, not guessed
    ],
)
def test_a_phone_is_e164_with_plus_for_google_and_digits_only_for_the_others(
    raw: str, country: str, google: str | None, others: str | None
) -> None:
    assert normalise_phone("google", raw, country) == google
    for platform in ("meta", "vk", "yandex"):
        assert normalise_phone(platform, raw, country) == others


def test_each_platform_gets_its_documented_header() -> None:
    assert COLUMNS[Platform.GOOGLE] == ("Email", "Phone")
    assert COLUMNS[Platform.META] == COLUMNS[Platform.VK] == ("email", "phone")
    assert COLUMNS[Platform.YANDEX] == ("external_id", "phone", "email")


def test_only_opted_in_unsuppressed_customers_without_an_open_incident_or_a_recent_order_are_exported(
    lapsed_valuable: CompiledSegment, tmp_path: Path
) -> None:
    # given: six lapsed, valuable customers, each but the first with one reason to be left out
    ids = ["ok", "no_ads", "unsubscribed", "forgotten", "unhappy", "just_bought"]
    profile = _profile(ids, unhappy={"unhappy"}, last_order_days={"just_bought": 3})
    customers = _customers(ids, ads={i: i != "no_ads" for i in ids})
    key = b"k" * 32
    suppressed = Suppressed(
        marketing={
            Channel.EMAIL: frozenset({"unsubscribed", address_hash("forgotten@example.com", key)}),
        },
        hash_keys=(key,),
    )

    # when
    audience = build_audience(
        profile, customers, lapsed_valuable, "meta", AS_OF, exclusions_for("lapsed_valuable", suppressed, 14)
    )

    # then: only the first, hashed; every other counted under its reason
    assert audience.rows.to_dict("records") == [
        {"email": hashed("ok@example.com"), "phone": hashed("48601234567")},
    ]
    assert audience.counts.members == 6
    assert audience.counts.excluded == {
        "not_opted_in": 1,
        "suppressed": 2,
        "service_recovery": 1,
        "recent_buyer": 1,
        "no_identifier": 0,
    }
    # and the file a marketer uploads holds no address
    text = write_audience(audience, tmp_path / "audience.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "email,phone"
    assert "@" not in text and "example" not in text and "601" not in text


def test_a_recent_order_leaves_a_customer_out_of_win_back_audiences_only(lapsed_valuable: CompiledSegment) -> None:
    assert exclusions_for("lapsed_valuable", Suppressed(), 14).recent_buyer_days == 14
    assert exclusions_for("champions", Suppressed(), 14).recent_buyer_days is None


def test_without_the_ads_consent_column_nobody_is_exported(lapsed_valuable: CompiledSegment) -> None:
    customers = _customers(["a", "b"]).drop(columns=["ads_opt_in"])

    audience = build_audience(_profile(["a", "b"]), customers, lapsed_valuable, "google", AS_OF, Exclusions())

    assert audience.rows.empty and list(audience.rows.columns) == ["Email", "Phone"]
    assert audience.counts.excluded["not_opted_in"] == 2


def test_two_customers_with_the_same_address_are_one_row_and_a_missing_phone_is_blank(
    lapsed_valuable: CompiledSegment,
) -> None:
    customers = _customers(["a", "b"], emails=["Same@Example.com", "same@example.com "], phones=[None, None])

    audience = build_audience(_profile(["a", "b"]), customers, lapsed_valuable, "vk", AS_OF, Exclusions())

    assert audience.rows.to_dict("records") == [{"email": hashed("same@example.com"), "phone": ""}]
    assert audience.counts.duplicates == 1


def test_the_setting_names_segments_and_platforms_and_a_typo_is_an_error() -> None:
    assert parse_audiences("lapsed_valuable:meta, google; at_risk:vk") == [
        ("lapsed_valuable", Platform.META),
        ("lapsed_valuable", Platform.GOOGLE),
        ("at_risk", Platform.VK),
    ]
    assert parse_audiences("") == []
    with pytest.raises(AudienceError, match="unknown platform 'tiktok'"):
        parse_audiences("lapsed_valuable:tiktok")
    with pytest.raises(AudienceError, match="not segment:platform"):
        parse_audiences("lapsed_valuable")


# --- a small shop -------------------------------------------------------------------------------------


def _profile(
    ids: list[str], unhappy: set[str] | None = None, last_order_days: dict[str, int] | None = None
) -> pd.DataFrame:
    """Lapsed, valuable email readers (members of lapsed_valuable), last order 120 days ago unless told."""
    days = [(last_order_days or {}).get(i, 120) for i in ids]
    return pd.DataFrame(
        {
            "customer_id": pd.Series(ids, dtype="string"),
            "lifecycle": pd.Series(["lapsed"] * len(ids), dtype="string"),
            "predicted_clv": pd.Series([80.0] * len(ids), dtype="Float64"),
            "email_opt_in": [True] * len(ids),
            "unhappy": [i in (unhappy or set()) for i in ids],
            "last_order_at": pd.to_datetime([pd.Timestamp(AS_OF) - pd.Timedelta(days=d) for d in days], utc=True),
        }
    )


def _customers(
    ids: list[str],
    emails: list[str] | None = None,
    phones: list[str | None] | None = None,
    ads: dict[str, bool] | None = None,
) -> pd.DataFrame:
    """The snapshot's customers: a Polish mobile each, an email named after the id, everyone opted in unless told."""
    return pd.DataFrame(
        {
            "customer_id": ids,
            "email": emails or [f"{i}@example.com" for i in ids],
            "phone": phones or ["+48601234567"] * len(ids),
            "country": ["PL"] * len(ids),
            "ads_opt_in": [(ads or {}).get(i, True) for i in ids],
        }
    )
