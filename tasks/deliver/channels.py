"""Channels put one rendered message on the wire; all sit behind one interface.

A channel raises ``TransientSendError`` (the request surely did not go through: try again,
or later with the ledger claim released; ``throttled`` says whether to back off harder),
``UnknownOutcomeError`` (the request left and its answer was lost: the provider may have
sent the message, so it is never retried in this run), ``PermanentSendError`` (never retry:
the entry is marked FAILED) or ``QuotaExceededError`` (stop the channel for the rest of the
run). Error messages carry provider error codes or our own fixed reasons only, never an
address, a phone number or a message text.

Only errors raised before the request left (the endpoint unreachable, the connection not
made in time) and answers AWS gave (throttling, 5xx) are safe to retry: SES and SNS take no
idempotency token, so a resend after a lost answer is a second copy. The clients therefore
make one attempt per call (``tasks/kernel/aws.py``); delivery's own loop retries the safe
errors only.

What a real channel would refuse (a marketing email without an unsubscribe target,
an SMS too long or without its opt-out link) is refused before AWS is called, and
the outbox refuses the same, so a preview catches it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
)

from tasks.deliver import mime
from tasks.kernel.addresses import ascii_address
from tasks.kernel.enums import Channel, MessageKind
from tasks.render.sms import SmsParts, sms_parts

if TYPE_CHECKING:
    from mypy_boto3_ses import SESClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef

# Not a customer channel (so not in enums.Channel, which the planner iterates): the name of the dry-run channel.
OUTBOX: Final = "outbox"


class SendError(Exception):
    """A send did not happen."""


class TransientSendError(SendError):
    """Throttled, timed out or unavailable: a later attempt may succeed.

    ``throttled`` is true when the provider said "slow down" (rather than "I am
    unwell"): delivery should back off harder then.
    """

    def __init__(self, code: str, *, throttled: bool = False) -> None:
        super().__init__(code)
        self.throttled = throttled


class UnknownOutcomeError(SendError):
    """The request left but its answer did not come back (connection closed, read timed out).

    The provider may have accepted the message: resending could deliver it twice.
    """


class PermanentSendError(SendError):
    """Rejected for good: retrying the same message would fail again."""


class SmsTooLongError(PermanentSendError):
    """The SMS takes more parts than the channel allows."""


class QuotaExceededError(SendError):
    """The account's daily quota is used up: park the channel until tomorrow."""


@dataclass(frozen=True)
class EmailMessageOut:
    """A rendered email ready to send."""

    key: str
    to_address: str
    to_name: str | None
    subject: str
    html: str
    text: str
    kind: MessageKind
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None


@dataclass(frozen=True)
class SmsMessageOut:
    """A rendered SMS ready to send; a marketing SMS must carry ``opt_out_url`` in its text."""

    key: str
    to_phone: str  # E.164: +<country><number>, up to 15 digits
    text: str
    kind: MessageKind
    opt_out_url: str | None = None


OutboundMessage: TypeAlias = EmailMessageOut | SmsMessageOut


class Sender(Protocol):
    """Anything that can put a message on the wire and return the provider's message id."""

    @property
    def name(self) -> str:
        """The channel's name: ``email``, ``sms`` or ``outbox``."""

    def send(self, message: OutboundMessage) -> str:
        """Send one message; return the provider message id or raise a SendError."""


def cost(message: OutboundMessage) -> int:
    """Return how many rate tokens a message takes: one per email, one per SMS part."""
    if isinstance(message, SmsMessageOut):
        return sms_parts(message.text).parts
    return 1


# --- provider errors -------------------------------------------------------------------------------------------

# SES v1/v2 and SNS spellings of "slow down".
_THROTTLING_CODES: Final = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "TooManyRequests", "Throttled"}
)
# The provider is unwell: a later attempt may get through.
_UNAVAILABLE_CODES: Final = frozenset(
    {"ServiceUnavailable", "InternalFailure", "InternalError", "RequestTimeout", "RequestTimeoutException"}
)
_QUOTA_TEXT: Final = "daily message quota exceeded"
_RATE_TEXT: Final = "maximum sending rate exceeded"
_CODE_SHAPE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Raised before a request leaves this host: nothing reached the provider, so a retry cannot duplicate.
_NOT_SENT: Final = (EndpointConnectionError, ConnectTimeoutError, NoCredentialsError)


def send_error(exc: ClientError | BotoCoreError) -> SendError:
    """Classify an SES or SNS error; the result's text is the provider's error code only.

    SES reports both its per-second rate and its daily quota as ``Throttling``: the
    message text tells them apart, so it is checked first.
    """
    if isinstance(exc, ParamValidationError):  # our request was malformed: the same message fails again
        return PermanentSendError(type(exc).__name__)
    if isinstance(exc, _NOT_SENT):  # endpoint unreachable, no connection in time, no credentials: nothing left
        return TransientSendError(type(exc).__name__)
    if isinstance(exc, BotoCoreError):  # connection closed, read timed out...: the request may have been accepted
        return UnknownOutcomeError(type(exc).__name__)
    error = exc.response.get("Error", {})
    raw_code = str(error.get("Code", ""))
    code = raw_code if _CODE_SHAPE.fullmatch(raw_code) else "Unknown"
    text = str(error.get("Message", "")).lower()
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    if _QUOTA_TEXT in text:
        return QuotaExceededError(code)
    if code in _THROTTLING_CODES or _RATE_TEXT in text or status == 429:
        return TransientSendError(code, throttled=True)
    if code in _UNAVAILABLE_CODES or status >= 500:
        return TransientSendError(code)
    return PermanentSendError(code)


# --- email -----------------------------------------------------------------------------------------------------


# Line breaks, tabs and other control characters (C0, DEL, C1, Unicode line/paragraph separators).
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
LEDGER_KEY_HEADER: Final = "X-Loyalty-Key"


def one_line(text: str) -> str:
    """Return ``text`` fit for a header: every run of control characters (a line break too) made one space."""
    return " ".join(_CONTROL.sub(" ", text).split())


@lru_cache(maxsize=64)
def _sender(sender: str) -> tuple[str, str]:
    return parseaddr(sender)


def build_mime(message: EmailMessageOut, sender: str, configuration_set: str | None = None) -> bytes:
    """Build the raw multipart (text + HTML) UTF-8 MIME message, with one-click unsubscribe headers.

    ``To:`` carries the address's ASCII form (an international domain in punycode); an address without
    one is refused (``address_not_ascii``). The display name and the subject lose any control character.
    ``X-Loyalty-Key`` carries the ledger key, so a receiving side can drop a second copy. Written by
    ``tasks/deliver/mime.py`` (the standard library's ``EmailMessage`` took 2.5 ms of CPU a message).
    """
    to_address = ascii_address(message.to_address)
    if to_address is None:
        raise PermanentSendError("address_not_ascii")
    name, addr = _sender(sender)
    headers = [
        mime.from_header(name, addr),
        mime.header("To", mime.mailbox(one_line(message.to_name or ""), to_address)),
        mime.header("Subject", one_line(message.subject)),
        f"Message-ID: {mime.message_id(addr.rpartition('@')[2] or 'localhost')}{mime.CRLF}",
        mime.header(LEDGER_KEY_HEADER, one_line(message.key)),
    ]
    if message.kind is MessageKind.MARKETING:
        targets = []
        if message.unsubscribe_url:
            targets.append(f"<{one_line(message.unsubscribe_url)}>")
        if message.unsubscribe_mailto:
            targets.append(f"<mailto:{one_line(message.unsubscribe_mailto)}?subject=unsubscribe>")
        if not targets:
            raise PermanentSendError("marketing email without an unsubscribe target")
        headers.append(mime.header("List-Unsubscribe", ", ".join(targets)))
        headers.append(f"List-Unsubscribe-Post: List-Unsubscribe=One-Click{mime.CRLF}")
    if configuration_set:
        headers.append(mime.header("X-SES-CONFIGURATION-SET", one_line(configuration_set)))
    return mime.multipart_alternative(headers, message.text, message.html)


class SesEmailSender:
    """Email through SES ``SendRawEmail`` (raw keeps List-Unsubscribe; SES v2 Simple drops it in moto)."""

    name = Channel.EMAIL

    def __init__(self, client: SESClient, sender: str, configuration_set: str | None = None) -> None:
        self._client = client
        self._sender = sender
        self._configuration_set = configuration_set

    def send(self, message: OutboundMessage) -> str:
        """Send one email; return the SES message id."""
        if not isinstance(message, EmailMessageOut):
            raise PermanentSendError("the email channel sends emails only")
        raw = build_mime(message, self._sender, self._configuration_set)
        try:
            if self._configuration_set:
                response = self._client.send_raw_email(
                    RawMessage={"Data": raw}, ConfigurationSetName=self._configuration_set
                )
            else:
                response = self._client.send_raw_email(RawMessage={"Data": raw})
        except (ClientError, BotoCoreError) as exc:
            raise send_error(exc) from None
        return response["MessageId"]


# --- SMS -------------------------------------------------------------------------------------------------------

_E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")
_SENDER_ID: Final = re.compile(r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*")
_SMS_TYPE: Final = {MessageKind.MARKETING: "Promotional", MessageKind.TRANSACTIONAL: "Transactional"}


def check_sms(message: SmsMessageOut, max_parts: int) -> SmsParts:
    """Refuse an SMS that must not go out; return its parts.

    Refused: a number that is not E.164, an empty text, a marketing SMS whose text
    lacks its opt-out link, and a text of more than ``max_parts`` parts.
    """
    if not _E164.fullmatch(message.to_phone):
        raise PermanentSendError("phone number is not E.164")
    if not message.text.strip():
        raise PermanentSendError("empty SMS")
    if message.kind is MessageKind.MARKETING and not (message.opt_out_url and message.opt_out_url in message.text):
        raise PermanentSendError("marketing SMS without opt-out link")
    parts = sms_parts(message.text)
    if parts.parts > max_parts:
        raise SmsTooLongError(f"SMS of {parts.parts} {parts.encoding} parts, over the limit of {max_parts}")
    return parts


class SnsSmsSender:
    """SMS through SNS ``Publish`` to a phone number: Promotional for marketing, Transactional otherwise."""

    name = Channel.SMS

    def __init__(self, client: SNSClient, sender_id: str, max_parts: int = 3) -> None:
        if len(sender_id) > 11 or not _SENDER_ID.fullmatch(sender_id):
            raise ValueError("an SMS sender ID is 1-11 letters or digits with at least one letter")
        if max_parts < 1:
            raise ValueError("max_parts must be at least 1")
        self._client = client
        self._sender_id = sender_id
        self._max_parts = max_parts

    def send(self, message: OutboundMessage) -> str:
        """Send one SMS; return the SNS message id."""
        if not isinstance(message, SmsMessageOut):
            raise PermanentSendError("the SMS channel sends SMS only")
        check_sms(message, self._max_parts)
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": _SMS_TYPE[message.kind]},
            "AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": self._sender_id},
        }
        try:
            response = self._client.publish(
                PhoneNumber=message.to_phone, Message=message.text, MessageAttributes=attributes
            )
        except (ClientError, BotoCoreError) as exc:
            raise send_error(exc) from None
        return response["MessageId"]


# --- outbox ----------------------------------------------------------------------------------------------------


def outbox_stem(key: str) -> str:
    """Return a file name stem for a message key: readable, safe on any file system, unique per key."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._")[:100]
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _mask_phone(phone: str) -> str:
    return "+" + "*" * (len(phone) - 3) + phone[-2:]


class OutboxSender:
    """Write each message as a file a person can open instead of sending it (dry runs, previews).

    Email: the raw MIME SES would get, as ``<stem>.eml``. SMS: ``<stem>.sms.txt`` with
    the text and what it costs. Refuses what SES and SNS would refuse.
    """

    name = OUTBOX

    def __init__(self, folder: Path, *, sender: str = "outbox@example.invalid", sms_max_parts: int = 3) -> None:
        self._folder = folder
        self._sender = sender
        self._sms_max_parts = sms_max_parts

    def send(self, message: OutboundMessage) -> str:
        """Write one message; return ``outbox:<path relative to the folder>``."""
        self._folder.mkdir(parents=True, exist_ok=True)
        if isinstance(message, EmailMessageOut):
            relative = f"{outbox_stem(message.key)}.eml"
            (self._folder / relative).write_bytes(build_mime(message, self._sender))
        else:
            parts = check_sms(message, self._sms_max_parts)
            relative = f"{outbox_stem(message.key)}.sms.txt"
            (self._folder / relative).write_text(_sms_preview(message, parts), encoding="utf-8")
        return f"{OUTBOX}:{relative}"


def _sms_preview(message: SmsMessageOut, parts: SmsParts) -> str:
    return (
        "SMS preview (not sent)\n"
        f"key: {message.key}\n"
        f"to: {_mask_phone(message.to_phone)}\n"
        f"type: {_SMS_TYPE[message.kind]}\n"
        f"encoding: {parts.encoding}\n"
        f"units: {parts.units}\n"
        f"parts: {parts.parts}\n"
        "\n"
        f"{message.text}\n"
    )
