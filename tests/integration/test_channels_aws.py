"""Channels against a local AWS (moto server): SNS SMS published with the right attributes, refusals
made before any call, and SES/SNS faults (injected with botocore ``before-send`` hooks) classified."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from tasks.deliver.channels import (
    EmailMessageOut,
    PermanentSendError,
    QuotaExceededError,
    SendError,
    SesEmailSender,
    SmsMessageOut,
    SmsTooLongError,
    SnsSmsSender,
    TransientSendError,
)
from tasks.kernel.enums import MessageKind
from tests.conftest import REGION, SENDER, sms_in_moto

PHONE = "+48500100200"
OPT_OUT = "https://s.example.com/o/AbC1"


def _client(service: str) -> Any:
    # One attempt: these tests are about how an error is classified, not about botocore's retries.
    return boto3.client(service, region_name=REGION, config=Config(retries={"total_max_attempts": 1}))


def _sms(
    text: str = f"Anna, -15% until Sunday. Stop: {OPT_OUT}",
    kind: MessageKind = MessageKind.MARKETING,
    to_phone: str = PHONE,
    opt_out_url: str | None = OPT_OUT,
) -> SmsMessageOut:
    return SmsMessageOut(
        key="win_back/1/sms/C1/2024-05-01", to_phone=to_phone, text=text, kind=kind, opt_out_url=opt_out_url
    )


def _email() -> EmailMessageOut:
    return EmailMessageOut(
        key="win_back/1/email/C1/2024-05-01",
        to_address="anna@example.com",
        to_name="Anna",
        subject="Hi",
        html="<p>Hi</p>",
        text="Hi\n",
        kind=MessageKind.MARKETING,
        unsubscribe_url="https://u.example.com/x",
        unsubscribe_mailto="unsub@example.com",
    )


def _capture_publish(client: Any) -> list[dict[str, str]]:
    """Record the form body of every SNS Publish request the client makes (the request still goes out)."""
    requests: list[dict[str, str]] = []

    def hook(request: Any, **_: Any) -> None:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        requests.append({key: values[0] for key, values in parse_qs(body).items()})

    client.meta.events.register("before-send.sns.Publish", hook)
    return requests


def _attributes(form: dict[str, str]) -> dict[str, str]:
    """Turn ``MessageAttributes.entry.N.Name/Value.StringValue`` form fields back into a dict."""
    names = {
        k.split(".")[2]: v for k, v in form.items() if k.startswith("MessageAttributes.entry.") and k.endswith(".Name")
    }
    return {name: form[f"MessageAttributes.entry.{n}.Value.StringValue"] for n, name in names.items()}


def _fault(code: str, status: int, message: str) -> Any:
    """A ``before-send`` hook answering every request with an AWS query-protocol error."""
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>x</RequestId></ErrorResponse>"
    ).encode()

    class Raw:
        def stream(self, **_: Any) -> Any:
            return iter([body])

        def read(self) -> bytes:
            return body

    def hook(**_: Any) -> AWSResponse:
        return AWSResponse("http://127.0.0.1/", status, {}, Raw())

    return hook


# --- SNS SMS ---------------------------------------------------------------------------------------------------


def test_an_sms_is_published_and_moto_records_it(aws: str) -> None:
    channel = SnsSmsSender(_client("sns"), "LoyaltyDemo")

    message_id = channel.send(_sms())

    assert sms_in_moto(aws) == [{"message_id": message_id, "phone_number": PHONE, "message": _sms().text}]


def test_a_cyrillic_sms_arrives_unchanged(aws: str) -> None:
    text = f"Анна, скидка 15% до воскресенья 🎁 Отписка: {OPT_OUT}"

    SnsSmsSender(_client("sns"), "LoyaltyDemo").send(_sms(text=text))

    assert [sms["message"] for sms in sms_in_moto(aws)] == [text]


@pytest.mark.parametrize(
    ("kind", "sms_type"), [(MessageKind.MARKETING, "Promotional"), (MessageKind.TRANSACTIONAL, "Transactional")]
)
def test_sms_type_and_sender_id_go_with_every_publish(aws: str, kind: MessageKind, sms_type: str) -> None:
    client = _client("sns")
    requests = _capture_publish(client)

    SnsSmsSender(client, "ShopPL").send(_sms(kind=kind))

    assert len(requests) == 1
    assert requests[0]["PhoneNumber"] == PHONE
    assert _attributes(requests[0]) == {"AWS.SNS.SMS.SMSType": sms_type, "AWS.SNS.SMS.SenderID": "ShopPL"}


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (_sms(text="a" * 430 + f" Stop: {OPT_OUT}"), SmsTooLongError),  # 465 septets: 4 parts
        (_sms(text="Ж" * 180 + f" {OPT_OUT}"), SmsTooLongError),  # UCS-2, 209 units: 4 parts
        (_sms(text="Anna, -15% until Sunday."), PermanentSendError),  # marketing without its opt-out link
        (_sms(to_phone="48500100200"), PermanentSendError),  # moto would take it; real SNS wants the +
    ],
)
def test_refused_sms_never_reach_sns(aws: str, message: SmsMessageOut, error: type[SendError]) -> None:
    client = _client("sns")
    requests = _capture_publish(client)

    with pytest.raises(error) as caught:
        SnsSmsSender(client, "LoyaltyDemo", max_parts=3).send(message)

    assert requests == []
    assert sms_in_moto(aws) == []
    assert "48500100200" not in str(caught.value)
    assert message.text not in str(caught.value)


def test_an_sms_sns_rejects_is_failed_for_good_without_the_number_or_text(aws: str) -> None:
    # moto's own limit (1,600 characters) answers InvalidParameter: a real rejection, not an injected one
    channel = SnsSmsSender(_client("sns"), "LoyaltyDemo", max_parts=20)

    with pytest.raises(PermanentSendError) as caught:
        channel.send(_sms(text="a" * 1601, kind=MessageKind.TRANSACTIONAL, opt_out_url=None))

    assert str(caught.value) == "InvalidParameter"
    assert sms_in_moto(aws) == []


# --- faults, classified the same way for SES and SNS -----------------------------------------------------------

FAULTS = [
    pytest.param("Throttling", 400, "Maximum sending rate exceeded.", TransientSendError, True, id="ses-rate"),
    pytest.param("Throttled", 400, "Rate exceeded", TransientSendError, True, id="sns-throttled"),
    pytest.param("InternalFailure", 500, "oops", TransientSendError, False, id="500"),
    pytest.param("ServiceUnavailable", 503, "busy", TransientSendError, False, id="503"),
    pytest.param("Throttling", 400, "Daily message quota exceeded.", QuotaExceededError, None, id="quota"),
    pytest.param("MessageRejected", 400, "Email address is not verified.", PermanentSendError, None, id="rejected"),
]


def _assert_classified(
    caught: pytest.ExceptionInfo[SendError], code: str, expected: type, throttled: bool | None
) -> None:
    assert type(caught.value) is expected
    assert str(caught.value) == code
    if throttled is not None:
        assert isinstance(caught.value, TransientSendError)
        assert caught.value.throttled is throttled


@pytest.mark.parametrize(("code", "status", "text", "expected", "throttled"), FAULTS)
def test_ses_faults_are_classified(
    aws: str, code: str, status: int, text: str, expected: type, throttled: bool | None
) -> None:
    client = _client("ses")
    client.meta.events.register("before-send.ses.SendRawEmail", _fault(code, status, text))

    with pytest.raises(SendError) as caught:
        SesEmailSender(client, SENDER).send(_email())

    _assert_classified(caught, code, expected, throttled)
    assert "anna@example.com" not in str(caught.value)


@pytest.mark.parametrize(("code", "status", "text", "expected", "throttled"), FAULTS)
def test_sns_faults_are_classified(
    aws: str, code: str, status: int, text: str, expected: type, throttled: bool | None
) -> None:
    client = _client("sns")
    client.meta.events.register("before-send.sns.Publish", _fault(code, status, text))

    with pytest.raises(SendError) as caught:
        SnsSmsSender(client, "LoyaltyDemo").send(_sms())

    _assert_classified(caught, code, expected, throttled)
    assert sms_in_moto(aws) == []


def test_an_unreachable_endpoint_is_transient(aws: str) -> None:
    client = boto3.client(
        "sns",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )

    with pytest.raises(TransientSendError) as caught:
        SnsSmsSender(client, "LoyaltyDemo").send(_sms())

    assert str(caught.value) == "EndpointConnectionError"
    assert not caught.value.throttled
