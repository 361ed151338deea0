"""The email as it goes on the wire: multipart, UTF-8, one-click unsubscribe."""

from __future__ import annotations

import email
from email.policy import default

from tasks.channels import EmailMessageOut, build_mime
from tasks.enums import MessageKind


def _message(kind: MessageKind = MessageKind.MARKETING) -> EmailMessageOut:
    return EmailMessageOut(
        key="win_back/1/email/C1/2024-05-01",
        to_address="anna@example.com",
        to_name="Анна",
        subject="Анна, мы скучаем: скидка 15%",
        html="<p>Здравствуйте!</p>",
        text="Здравствуйте!\n",
        kind=kind,
        unsubscribe_url="https://shop.example.com/unsubscribe?c=C1&t=x",
        unsubscribe_mailto="unsubscribe@shop.example.com",
    )


def test_marketing_email_carries_one_click_unsubscribe() -> None:
    parsed = email.message_from_bytes(build_mime(_message(), "Shop <hello@shop.example.com>"), policy=default)

    assert parsed["List-Unsubscribe"] == (
        "<https://shop.example.com/unsubscribe?c=C1&t=x>, <mailto:unsubscribe@shop.example.com?subject=unsubscribe>"
    )
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_subject_and_name_survive_utf8_and_both_bodies_are_there() -> None:
    parsed = email.message_from_bytes(build_mime(_message(), "Shop <hello@shop.example.com>"), policy=default)

    assert parsed["Subject"] == "Анна, мы скучаем: скидка 15%"
    assert str(parsed["To"]) == "Анна <anna@example.com>"
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.get_body(("plain",)).get_content() == "Здравствуйте!\r\n"  # type: ignore[union-attr]  # CRLF on the wire
    assert "<p>Здравствуйте!</p>" in parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]


def test_transactional_email_has_no_unsubscribe_header() -> None:
    parsed = email.message_from_bytes(
        build_mime(_message(MessageKind.TRANSACTIONAL), "hello@shop.example.com"), policy=default
    )

    assert parsed["List-Unsubscribe"] is None
