"""The preferences form as the page reads it: every field checked, a pause of a month that saving again keeps,
and a birthday typed either way a person writes it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tasks.consent.preferences_page import Draft, FormError, form_html, read_form, words_for
from tasks.state.preferences import Preferences

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
ALL_ON = {
    "topic_news_and_sales": "on",
    "topic_personal_picks": "on",
    "topic_birthday_holidays": "on",
    "channel_email": "on",
    "channel_sms": "on",
    "frequency": "usual",
}


def test_unticked_boxes_are_what_the_customer_turned_off() -> None:
    form = {k: v for k, v in ALL_ON.items() if k not in {"topic_personal_picks", "channel_email"}}

    record = read_form(form | {"frequency": "weekly"}, "C1", NOW, None)

    assert record.topics_off == {"personal_picks"} and record.channels_off == {"email"}
    assert record.frequency == "weekly" and record.paused_until is None and record.updated_at == NOW


def test_a_pause_lasts_a_month_and_saving_the_page_again_keeps_its_day() -> None:
    first = read_form(ALL_ON | {"frequency": "paused"}, "C1", NOW, None)
    again = read_form(ALL_ON | {"frequency": "paused"}, "C1", datetime(2024, 6, 20, tzinfo=UTC), first)
    over = read_form(ALL_ON | {"frequency": "paused"}, "C1", datetime(2024, 7, 2, tzinfo=UTC), first)

    assert first.paused_until == again.paused_until == date(2024, 7, 1)
    assert over.paused_until == date(2024, 8, 1)  # the last pause ended: a new month


@pytest.mark.parametrize("typed", ["1990-04-20", "20.04.1990", " 20.04.1990 "])
def test_a_birthday_is_read_as_the_date_field_sends_it_or_as_people_write_it(typed: str) -> None:
    assert read_form(ALL_ON | {"birthday": typed}, "C1", NOW, None).birthday == date(1990, 4, 20)


@pytest.mark.parametrize(
    ("field", "value", "word"),
    [
        ("birthday", "20/04/1990", "bad_date"),
        ("birthday", "1899-12-31", "bad_date"),
        ("birthday", "2024-06-02", "bad_date"),  # tomorrow
        ("pets", "parrot", "bad_form"),
        ("gender", "unknown", "bad_form"),
        ("frequency", "", "bad_form"),
        ("topic_service", "on", "bad_form"),
        ("channel_email", "off", "bad_form"),
    ],
)
def test_a_field_the_page_never_offers_is_refused(field: str, value: str, word: str) -> None:
    with pytest.raises(FormError) as refused:
        read_form(ALL_ON | {field: value}, "C1", NOW, None)

    assert refused.value.word == word


def test_what_a_customer_typed_is_shown_escaped() -> None:
    draft = Draft.from_form(ALL_ON | {"birthday": '"><script>alert(1)</script>'})

    page = form_html(words_for("en"), "", draft, "en")

    assert "<script>" not in page and "&lt;script&gt;" in page


def test_a_stored_pause_is_shown_with_its_day_in_the_pages_language() -> None:
    stored = Preferences("C1", frequency="paused", paused_until=date(2024, 7, 1), updated_at=NOW)

    assert "Пауза до 01.07.2024." in form_html(words_for("ru"), "", Draft.from_record(stored), "ru")
    assert "Wstrzymane do 01.07.2024." in form_html(words_for("pl"), "", Draft.from_record(stored), "pl")
