"""Channels put one rendered message on the wire; all sit behind one interface.

A channel raises ``TransientSendError`` (try again later: the ledger claim is
released), ``PermanentSendError`` (never retry: the entry is marked FAILED) or
``QuotaExceededError`` (stop the channel for the rest of the run).  Error messages
carry provider error codes only, never an address.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, make_msgid, parseaddr
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from tasks.enums import MessageKind

if TYPE_CHECKING:
    from mypy_boto3_ses import SESClient


class SendError(Exception):
    """A send did not happen."""


class TransientSendError(SendError):
    """Throttled, timed out or unavailable: a later attempt may succeed."""


class PermanentSendError(SendError):
    """Rejected for good: retrying the same message would fail again."""


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


class Channel(Protocol):
    """Anything that can put a message on the wire and return the provider's message id."""

    def send(self, message: EmailMessageOut) -> str:
        """Send one message; return the provider message id or raise a SendError."""


def build_mime(message: EmailMessageOut, sender: str, configuration_set: str | None = None) -> bytes:
    """Build the raw multipart (text + HTML) UTF-8 MIME message, with one-click unsubscribe headers."""
    mime = EmailMessage(policy=SMTP)
    name, addr = parseaddr(sender)
    mime["From"] = formataddr((name, addr)) if name else addr
    local, _, domain = message.to_address.rpartition("@")
    mime["To"] = Address(display_name=message.to_name or "", username=local, domain=domain)
    mime["Subject"] = message.subject
    mime["Message-ID"] = make_msgid(domain=addr.rpartition("@")[2] or None)
    if message.kind is MessageKind.MARKETING:
        targets = []
        if message.unsubscribe_url:
            targets.append(f"<{message.unsubscribe_url}>")
        if message.unsubscribe_mailto:
            targets.append(f"<mailto:{message.unsubscribe_mailto}?subject=unsubscribe>")
        if not targets:
            raise PermanentSendError("marketing email without an unsubscribe target")
        mime["List-Unsubscribe"] = ", ".join(targets)
        mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if configuration_set:
        mime["X-SES-CONFIGURATION-SET"] = configuration_set
    mime.set_content(message.text, charset="utf-8")
    mime.add_alternative(message.html, subtype="html", charset="utf-8")
    return mime.as_bytes()


# SES error codes that a later attempt may get through.
_TRANSIENT = frozenset(
    {"Throttling", "ThrottlingException", "ServiceUnavailable", "InternalFailure", "RequestTimeout", "TooManyRequests"}
)


class SesEmailChannel:
    """Email through SES ``SendRawEmail`` (raw keeps List-Unsubscribe; SES v2 Simple drops it in moto)."""

    def __init__(self, client: SESClient, sender: str, configuration_set: str | None = None) -> None:
        self._client = client
        self._sender = sender
        self._configuration_set = configuration_set

    def send(self, message: EmailMessageOut) -> str:
        raw = build_mime(message, self._sender, self._configuration_set)
        kwargs: dict[str, object] = {"RawMessage": {"Data": raw}}
        if self._configuration_set:
            kwargs["ConfigurationSetName"] = self._configuration_set
        try:
            response = self._client.send_raw_email(**kwargs)  # type: ignore[arg-type]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            text = exc.response.get("Error", {}).get("Message", "")
            if code in {"Throttling", "ThrottlingException"} and "daily" in text.lower():
                raise QuotaExceededError(code) from None
            if code in _TRANSIENT or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                raise TransientSendError(code) from None
            raise PermanentSendError(code) from None
        except BotoCoreError as exc:  # connection reset, timeout, endpoint unreachable
            raise TransientSendError(type(exc).__name__) from None
        return response["MessageId"]
