"""Signed tokens: one-click unsubscribe links and personal coupon codes.

An unsubscribe link carries the customer id, the channel, an optional topic and an
HMAC-SHA256 signature over all three, so none can be changed without the key (a topic
can be neither dropped to widen a link nor added to one). The topic is what a one-click
POST of the link stops (``Topic``): every message's link carries ``marketing`` (offers;
order and service messages go on). A link without a topic stops everything on the channel
(``Topic.ALL``): that is how every link made before topics reads, and they keep working.
Links never expire: a customer may unsubscribe from a years-old message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode

from pydantic import BaseModel

from tasks.kernel.enums import Channel, Topic
from tasks.kernel.settings import Settings

KEY_FILE = "signing.key"
MIN_KEY_BYTES = 16

# Query-string fields of an unsubscribe link.
CUSTOMER_FIELD = "c"
CHANNEL_FIELD = "ch"
TOPIC_FIELD = "tp"
TOKEN_FIELD = "t"

# Signed parts are joined with a control character, so no part may contain one.
_CUSTOMER_ID = re.compile(r"[^\x00-\x1f\x7f]{1,256}")
_TOPIC = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{24}")


class InvalidToken(ValueError):  # noqa: N818  # reads as a verdict: "raise InvalidToken"
    """An unsubscribe link that is forged, altered, truncated or malformed; the message holds no PII."""


class Unsubscribe(BaseModel, frozen=True):
    """A verified unsubscribe request: who, on which channel, and what (``None``: ``Topic.ALL``)."""

    customer_id: str
    channel: Channel
    topic: str | None = None


def signing_key(settings: Settings) -> bytes:
    """Return the HMAC key: the configured secret, else one random key kept in the state folder."""
    if settings.unsubscribe_secret is not None:
        key = settings.unsubscribe_secret.get_secret_value().encode()
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"LOYALTY_UNSUBSCRIBE_SECRET is too short: use at least {MIN_KEY_BYTES} random bytes")
        return key
    path: Path = settings.state_dir / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    key = path.read_bytes()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the signing key in {path} is too short: delete it or set LOYALTY_UNSUBSCRIBE_SECRET")
    return key


def _create_key_file(path: Path) -> None:
    # Render threads and processes may race here: the key is written to a private temporary file
    # and linked into place, so exactly one key wins and nobody reads a half-written file.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(32))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sign(key: bytes, *parts: str) -> str:
    """Return a URL-safe HMAC-SHA256 signature of the parts."""
    digest = hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode().rstrip("=")


def verify(key: bytes, token: str, *parts: str) -> bool:
    """Check a signature made by ``sign`` in constant time."""
    # bytes, not str: compare_digest refuses non-ASCII str, and a token is attacker input
    return hmac.compare_digest(sign(key, *parts).encode(), token.encode("utf-8", "replace"))


def _unsubscribe_parts(customer_id: str, channel: str, topic: str | None) -> tuple[str, ...]:
    # Without a topic the parts are those of the first links ever sent, which must keep working.
    base = ("unsubscribe", customer_id, channel)
    return base if topic is None else (*base, topic)


def unsubscribe_url(key: bytes, base_url: str, customer_id: str, channel: str, topic: str | None = None) -> str:
    """Return the one-click unsubscribe URL for a customer, channel and topic (RFC 8058 POST target).

    ``Topic.ALL`` (or ``None``) makes a link without a topic, exactly as the first links were made.
    """
    if not _CUSTOMER_ID.fullmatch(customer_id):
        raise ValueError("a customer id in an unsubscribe link must be 1-256 characters, no control characters")
    Channel(channel)
    if topic == Topic.ALL:
        topic = None  # one spelling of "everything" in links: the one old links have
    if topic is not None and not _TOPIC.fullmatch(topic):
        raise ValueError("an unsubscribe topic must be 1-64 letters, digits, '_', '.' or '-'")
    fields = {CUSTOMER_FIELD: customer_id, CHANNEL_FIELD: channel}
    if topic is not None:
        fields[TOPIC_FIELD] = topic
    fields[TOKEN_FIELD] = sign(key, *_unsubscribe_parts(customer_id, channel, topic))
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}{urlencode(fields)}"


def parse_unsubscribe(key: bytes, fields: Mapping[str, str]) -> Unsubscribe:
    """Verify the fields of an unsubscribe link (query string or form) and return what they ask for.

    Raises:
        InvalidToken: a field is missing or malformed, or the signature does not match them.
    """
    customer_id = fields.get(CUSTOMER_FIELD, "")
    channel = fields.get(CHANNEL_FIELD, "")
    topic = fields.get(TOPIC_FIELD)
    token = fields.get(TOKEN_FIELD, "")
    if not _CUSTOMER_ID.fullmatch(customer_id):
        raise InvalidToken("malformed unsubscribe link: bad customer id")
    if channel not in {c.value for c in Channel}:
        raise InvalidToken("malformed unsubscribe link: unknown channel")
    if topic is not None and not _TOPIC.fullmatch(topic):
        raise InvalidToken("malformed unsubscribe link: bad topic")
    if not _SIGNATURE.fullmatch(token):
        raise InvalidToken("malformed unsubscribe link: bad token")
    if not verify(key, token, *_unsubscribe_parts(customer_id, channel, topic)):
        raise InvalidToken("unsubscribe link signature does not match")
    return Unsubscribe(customer_id=customer_id, channel=Channel(channel), topic=topic)
