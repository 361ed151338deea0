"""Channels: the email as it goes on the wire, the outbox, refusals before sending, provider error classes."""

from __future__ import annotations

import dataclasses
import email
import pickle
from email.policy import default
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)

from tasks.deliver.channels import (
    EmailMessageOut,
    OutboxSender,
    PermanentSendError,
    QuotaExceededError,
    SesEmailSender,
    SmsMessageOut,
    SmsTooLongError,
    SnsSmsSender,
    TransientSendError,
    UnknownOutcomeError,
    build_mime,
    cost,
    send_error,
)
from tasks.kernel.enums import MessageKind


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


@pytest.mark.parametrize(
    "subject",
    [
        # the standard library's folding dropped the space at a fold between two encoded words: "новыене"
        "wyprzedaż до только do новые не Анна Анна Анна tylko Анна Kasia скидка wiosenna",
        "nowości zniżka Kasia do весенняя nowości только Kasia wiosenna и пропустите tylko",
        "Анна, весенняя распродажа: новые товары и скидка 15% только до воскресенья — не пропустите 🎉",
        "Kasiu, wiosenna wyprzedaż: nowości i zniżka 15% tylko do niedzieli — nie przegap!",
    ],
)
def test_a_long_subject_in_any_script_reaches_the_reader_word_for_word(subject: str) -> None:
    raw = build_mime(dataclasses.replace(_message(), subject=subject), "Shop <hello@shop.example.com>")

    assert email.message_from_bytes(raw, policy=default)["Subject"] == subject
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert max(len(line) for line in head.split("\r\n") if not line.startswith("List-Unsubscribe:")) <= 78


def test_a_line_break_in_the_name_or_subject_cannot_add_a_header() -> None:
    message = dataclasses.replace(_message(), to_name="Анна\r\nBcc: x@evil.example", subject="Hi\n\u2028Bcc: y")

    raw = build_mime(message, "hello@shop.example.com")

    parsed = email.message_from_bytes(raw, policy=default)
    assert parsed["Bcc"] is None
    assert str(parsed["To"]) == '"Анна Bcc: x@evil.example" <anna@example.com>'
    assert parsed["Subject"] == "Hi Bcc: y"


def test_an_international_domain_goes_out_in_punycode() -> None:
    message = dataclasses.replace(_message(), to_address="anna@магазин.рф")

    parsed = email.message_from_bytes(build_mime(message, "hello@shop.example.com"), policy=default)

    assert parsed["To"].addresses[0].addr_spec == "anna@xn--80aairftm.xn--p1ai"


def test_an_address_without_an_ascii_form_is_refused_for_good() -> None:
    message = dataclasses.replace(_message(), to_address="анна@магазин.рф")

    with pytest.raises(PermanentSendError, match=r"^address_not_ascii$"):
        build_mime(message, "hello@shop.example.com")


def test_every_email_carries_its_ledger_key_for_the_receiver_to_dedupe() -> None:
    parsed = email.message_from_bytes(build_mime(_message(), "hello@shop.example.com"), policy=default)

    assert parsed["X-Loyalty-Key"] == "win_back/1/email/C1/2024-05-01"


def test_transactional_email_has_no_unsubscribe_header() -> None:
    parsed = email.message_from_bytes(
        build_mime(_message(MessageKind.TRANSACTIONAL), "hello@shop.example.com"), policy=default
    )

    assert parsed["List-Unsubscribe"] is None


# --- one interface ---------------------------------------------------------------------------------------------


def _sms(
    text: str = "Anna, -15% until Sunday: https://s.example.com/o/AbC1",
    kind: MessageKind = MessageKind.MARKETING,
    opt_out_url: str | None = "https://s.example.com/o/AbC1",
    to_phone: str = "+48500100200",
) -> SmsMessageOut:
    return SmsMessageOut(
        key="win_back/1/sms/C1/2024-05-01", to_phone=to_phone, text=text, kind=kind, opt_out_url=opt_out_url
    )


def test_every_channel_has_its_name() -> None:
    assert SesEmailSender(MagicMock(), "hello@shop.example.com").name == "email"
    assert SnsSmsSender(MagicMock(), "LoyaltyDemo").name == "sms"
    assert OutboxSender(Path("unused")).name == "outbox"


def test_an_email_costs_one_token_and_an_sms_one_per_part() -> None:
    assert cost(_message()) == 1
    assert cost(_sms()) == 1
    assert cost(_sms(text="Ж" * 71)) == 2
    assert cost(_sms(text="a" * 307)) == 3


def test_a_channel_refuses_the_other_channels_message() -> None:
    with pytest.raises(PermanentSendError):
        SesEmailSender(MagicMock(), "hello@shop.example.com").send(_sms())
    with pytest.raises(PermanentSendError):
        SnsSmsSender(MagicMock(), "LoyaltyDemo").send(_message())


@pytest.mark.parametrize("sender_id", ["", "Loyalty Demo", "TwelveCharsX", "12345", "Łódź"])
def test_an_invalid_sender_id_is_refused_when_the_channel_is_built(sender_id: str) -> None:
    with pytest.raises(ValueError, match="sender ID"):
        SnsSmsSender(MagicMock(), sender_id)


# --- outbox ----------------------------------------------------------------------------------------------------


def test_outbox_writes_an_email_a_mail_client_can_open(tmp_path: Path) -> None:
    outbox = OutboxSender(tmp_path, sender="Shop <hello@shop.example.com>")

    provider_id = outbox.send(_message())

    assert provider_id.startswith("outbox:") and provider_id.endswith(".eml")
    path = tmp_path / provider_id.removeprefix("outbox:")
    parsed = email.message_from_bytes(path.read_bytes(), policy=default)
    assert parsed["Subject"] == "Анна, мы скучаем: скидка 15%"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_body(("plain",)).get_content() == "Здравствуйте!\r\n"  # type: ignore[union-attr]


def test_outbox_writes_an_sms_with_its_text_parts_and_encoding_but_not_the_number(tmp_path: Path) -> None:
    text = "Анна, скидка 15%: https://s.example.com/o/AbC1 " + "Ж" * 40

    provider_id = OutboxSender(tmp_path).send(_sms(text=text))

    assert provider_id.endswith(".sms.txt")
    written = (tmp_path / provider_id.removeprefix("outbox:")).read_text(encoding="utf-8")
    assert text in written
    assert "encoding: UCS-2" in written
    assert "parts: 2" in written
    assert "type: Promotional" in written
    assert "+48500100200" not in written
    assert "to: +*********00" in written


def test_outbox_file_names_are_safe_and_distinct_per_key(tmp_path: Path) -> None:
    outbox = OutboxSender(tmp_path)

    first = outbox.send(_sms())
    second = outbox.send(SmsMessageOut("win_back/1/sms/C1/2024_05_01", "+48500100200", "t", MessageKind.TRANSACTIONAL))
    hostile = outbox.send(SmsMessageOut("../../etc/passwd", "+48500100200", "t", MessageKind.TRANSACTIONAL))

    assert first != second
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        x.removeprefix("outbox:") for x in (first, second, hostile)
    )
    assert "/" not in hostile.removeprefix("outbox:")


@pytest.mark.parametrize(
    ("message", "error", "reason"),
    [
        (_sms(text="a" * 460 + " https://s.example.com/o/AbC1"), SmsTooLongError, "over the limit of 3"),
        (_sms(text="Anna, -15% until Sunday!"), PermanentSendError, "marketing SMS without opt-out link"),
        (_sms(opt_out_url=None), PermanentSendError, "marketing SMS without opt-out link"),
        (_sms(to_phone="48500100200"), PermanentSendError, "not E.164"),
        (_sms(text=" ", kind=MessageKind.TRANSACTIONAL, opt_out_url=None), PermanentSendError, "empty SMS"),
    ],
)
def test_outbox_refuses_what_sns_would_refuse_and_writes_nothing(
    tmp_path: Path, message: SmsMessageOut, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error, match=reason) as caught:
        OutboxSender(tmp_path).send(message)

    assert list(tmp_path.glob("*")) == []
    assert message.to_phone not in str(caught.value)
    assert "Sunday" not in str(caught.value)


def test_a_transactional_sms_needs_no_opt_out_link(tmp_path: Path) -> None:
    message = _sms(text="Your order 1042 has shipped.", kind=MessageKind.TRANSACTIONAL, opt_out_url=None)

    assert OutboxSender(tmp_path).send(message).startswith("outbox:")


def test_outbox_refuses_a_marketing_email_without_unsubscribe(tmp_path: Path) -> None:
    message = dataclasses.replace(_message(), unsubscribe_url=None, unsubscribe_mailto=None)

    with pytest.raises(PermanentSendError, match="unsubscribe"):
        OutboxSender(tmp_path).send(message)

    assert list(tmp_path.glob("*")) == []


# --- provider errors -------------------------------------------------------------------------------------------


def _client_error(code: str, message: str = "error", status: int = 400) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "SendRawEmail")


@pytest.mark.parametrize(
    ("code", "message", "status"),
    [
        ("Throttling", "Rate exceeded", 400),
        ("Throttling", "Maximum sending rate exceeded.", 400),
        ("ThrottlingException", "x", 400),
        ("TooManyRequestsException", "x", 429),
        ("Throttled", "x", 400),
        ("Anything", "Maximum sending rate exceeded.", 400),
    ],
)
def test_throttling_is_transient_and_says_so(code: str, message: str, status: int) -> None:
    error = send_error(_client_error(code, message, status))

    assert isinstance(error, TransientSendError)
    assert error.throttled
    assert str(error) == code


@pytest.mark.parametrize(
    ("code", "status"),
    [("InternalFailure", 500), ("ServiceUnavailable", 503), ("RequestTimeout", 408), ("Whatever", 502)],
)
def test_provider_trouble_is_transient_but_not_throttling(code: str, status: int) -> None:
    error = send_error(_client_error(code, status=status))

    assert isinstance(error, TransientSendError)
    assert not error.throttled


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ],
)
def test_errors_before_the_request_left_are_transient(exc: Exception) -> None:
    error = send_error(exc)  # type: ignore[arg-type]

    assert isinstance(error, TransientSendError)
    assert not error.throttled


@pytest.mark.parametrize(
    "exc",
    [
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
    ],
)
def test_a_lost_answer_is_an_unknown_outcome_never_a_retry(exc: Exception) -> None:
    error = send_error(exc)  # type: ignore[arg-type]

    assert isinstance(error, UnknownOutcomeError)
    assert not isinstance(error, TransientSendError)
    assert str(error) == type(exc).__name__


@pytest.mark.parametrize("code", ["Throttling", "LimitExceeded", "MessageRejected"])
def test_the_daily_quota_parks_the_channel_whatever_the_code(code: str) -> None:
    assert isinstance(send_error(_client_error(code, "Daily message quota exceeded.")), QuotaExceededError)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("MessageRejected", "Email address is not verified. anna@example.com"),
        ("InvalidParameter", "Invalid parameter: PhoneNumber +48500100200"),
        ("InvalidParameterValue", "x"),
        ("MailFromDomainNotVerifiedException", "x"),
        ("OptedOut", "x"),
    ],
)
def test_rejections_are_permanent_and_carry_the_code_only(code: str, message: str) -> None:
    error = send_error(_client_error(code, message))

    assert type(error) is PermanentSendError
    assert str(error) == code


def test_an_unexpected_code_shape_is_not_echoed() -> None:
    assert str(send_error(_client_error("anna@example.com"))) == "Unknown"


def test_a_malformed_request_is_permanent() -> None:
    assert isinstance(send_error(ParamValidationError(report="bad")), PermanentSendError)


def test_throttled_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(TransientSendError("Throttling", throttled=True)))

    assert (str(error), error.throttled) == ("Throttling", True)
