"""Survey answer links: each of the eleven is signed over the customer, the order and its own score."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from tasks.consent.tokens import InvalidToken, SurveyLink, parse_survey, survey_url

KEY = b"survey-test-key-" * 2
BASE = "https://shop.example.com/survey"


def _fields(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_a_link_says_who_answers_about_which_order_with_which_score_and_in_which_language() -> None:
    fields = _fields(survey_url(KEY, BASE, "C42", "O-7", 8, "pl"))

    assert parse_survey(KEY, fields) == SurveyLink(customer_id="C42", order_id="O-7", score=8, locale="pl")


@pytest.mark.parametrize(
    "change",
    [
        {"c": "C43"},  # another customer
        {"o": "O-8"},  # another order
        {"s": "10"},  # another score: a 3 cannot be made a 10
        {"s": "03"},
        {"s": "11"},
        {"t": "A" * 24},
    ],
)
def test_a_tampered_link_fails_verification(change: dict[str, str]) -> None:
    fields = _fields(survey_url(KEY, BASE, "C42", "O-7", 3)) | change

    with pytest.raises(InvalidToken) as caught:
        parse_survey(KEY, fields)
    assert "C42" not in str(caught.value) and "O-7" not in str(caught.value)


def test_a_link_signed_with_another_key_or_for_unsubscribing_fails() -> None:
    fields = _fields(survey_url(b"another-key-1234" * 2, BASE, "C42", "O-7", 9))

    with pytest.raises(InvalidToken):
        parse_survey(KEY, fields)


def test_an_old_key_still_verifies_when_it_is_among_the_keys() -> None:
    old = b"old-survey-key--" * 2
    fields = _fields(survey_url(old, BASE, "C42", "O-7", 0))

    assert parse_survey((KEY, old), fields).score == 0


def test_the_language_is_not_signed_and_a_strange_one_is_ignored() -> None:
    fields = _fields(survey_url(KEY, BASE, "C42", "O-7", 5, "ru")) | {"l": "<script>"}

    assert parse_survey(KEY, fields).locale is None


def test_a_score_outside_0_to_10_makes_no_link() -> None:
    with pytest.raises(ValueError, match="0 to 10"):
        survey_url(KEY, BASE, "C42", "O-7", 11)
