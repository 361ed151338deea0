"""SMS part counting: what a carrier bills for a text, exactly at the boundaries."""

from __future__ import annotations

import pytest

from tasks.render.sms import GSM7_BASIC, GSM7_EXTENSION, SmsParts, sms_parts

CYRILLIC = "Ж"
EMOJI = "🎁"  # U+1F381, outside the BMP: a surrogate pair in UTF-16


@pytest.mark.parametrize(
    ("length", "parts"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_text_is_160_septets_alone_and_153_per_concatenated_part(length: int, parts: int) -> None:
    assert sms_parts("a" * length) == SmsParts(encoding="GSM-7", units=length, parts=parts)


@pytest.mark.parametrize(("count", "units", "parts"), [(80, 160, 1), (81, 162, 2)])
def test_extension_characters_count_two_septets(count: int, units: int, parts: int) -> None:
    assert sms_parts("€" * count) == SmsParts(encoding="GSM-7", units=units, parts=parts)


def test_every_extension_character_counts_double() -> None:
    assert len(GSM7_EXTENSION) == 10
    assert sms_parts("^{}\\[~]|€\f").units == 20


def test_an_extension_character_is_not_split_across_parts() -> None:
    # 152 septets then '€' (2 septets): the escape pair does not fit in part one's last septet
    text = "a" * 152 + "€" + "a" * 152

    counted = sms_parts(text)

    assert counted.units == 306  # would fill exactly 2 parts of 153 if the pair could straddle
    assert counted.parts == 3


@pytest.mark.parametrize(
    ("length", "parts"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3)],
)
def test_cyrillic_text_is_ucs2_70_alone_and_67_per_part(length: int, parts: int) -> None:
    assert sms_parts(CYRILLIC * length) == SmsParts(encoding="UCS-2", units=length, parts=parts)


def test_one_polish_letter_makes_the_whole_message_ucs2() -> None:
    text = "Zamowienie wyslane, dziekujemy! " * 4  # 128 GSM-7 characters: one part as GSM-7
    assert sms_parts(text) == SmsParts(encoding="GSM-7", units=128, parts=1)

    counted = sms_parts(text + "ż")

    assert counted == SmsParts(encoding="UCS-2", units=129, parts=2)


@pytest.mark.parametrize("letter", list("ąęłńśźżóćĄĘŁŃŚŹŻÓĆ"))
def test_no_polish_diacritic_is_in_gsm7(letter: str) -> None:
    assert sms_parts(letter).encoding == "UCS-2"


@pytest.mark.parametrize("letter", list("éÉèùìòÇÅåäöñüàÄÖÑÜØøÆæß¿¡£¥§¤ΔΦΓΛΩΠΨΣΘΞ"))
def test_western_european_letters_of_the_default_alphabet_stay_gsm7(letter: str) -> None:
    assert sms_parts(letter) == SmsParts(encoding="GSM-7", units=1, parts=1)


@pytest.mark.parametrize("char", ["ó", "ç", "á", "í", "ú", "’", "“", "\u00a0", "`"])
def test_lookalikes_outside_the_default_alphabet_force_ucs2(char: str) -> None:
    assert sms_parts(char).encoding == "UCS-2"


def test_the_default_alphabet_has_127_characters_besides_escape() -> None:
    assert len(GSM7_BASIC) == 127
    assert not GSM7_BASIC & GSM7_EXTENSION


def test_an_emoji_counts_two_ucs2_units() -> None:
    assert sms_parts(EMOJI) == SmsParts(encoding="UCS-2", units=2, parts=1)
    assert sms_parts(EMOJI * 35) == SmsParts(encoding="UCS-2", units=70, parts=1)
    assert sms_parts(EMOJI * 35 + "a") == SmsParts(encoding="UCS-2", units=71, parts=2)


def test_an_emoji_is_not_split_across_parts() -> None:
    # 66 units then an emoji: its surrogate pair does not fit in part one's last unit
    counted = sms_parts("a" * 66 + EMOJI + "a" * 66)

    assert counted.units == 134  # would fit 2 parts of 67 if the pair could straddle
    assert counted.parts == 3


def test_a_mixed_russian_message_with_euro_and_emoji() -> None:
    text = "Анна, скидка 15% до 31.05 — 500 € 🎁 shop.example.com/o/AbC1"

    counted = sms_parts(text)

    # every character is one UTF-16 unit except the emoji (2); € costs no extra in UCS-2
    assert counted == SmsParts(encoding="UCS-2", units=len(text) + 1, parts=1)


def test_a_mixed_gsm7_message_counts_extension_characters_double() -> None:
    text = "Hi {name}: 20% off [today] ~ 5€ | café"  # 38 characters, 7 from the extension table

    counted = sms_parts(text)

    assert counted == SmsParts(encoding="GSM-7", units=38 + 7, parts=1)
    assert sms_parts(text.replace("é", "ó")).encoding == "UCS-2"  # é is in GSM-7, ó is not


def test_empty_text_is_billed_as_one_part() -> None:
    assert sms_parts("") == SmsParts(encoding="GSM-7", units=0, parts=1)
