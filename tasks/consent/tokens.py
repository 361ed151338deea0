"""Signed tokens: one-click unsubscribe links, survey answer links, preferences links and personal coupon codes.

A preferences link (``preferences_url``: the footer's "Mailing settings") carries the customer id and the
channel of the message, signed together under the preferences key; its language field is not signed.

A survey link (``survey_url``) carries the customer id, the order id and one score (0-10), signed
together under the survey key: a link for 3 cannot be made a 10, another customer's or another
order's, without failing verification (``parse_survey``). Its language field is not signed: it only
chooses the words of the page.

An unsubscribe link carries the customer id, the channel, an optional topic and an
HMAC-SHA256 signature over all three, so none can be changed without the key (a topic
can be neither dropped to widen a link nor added to one). The topic is what a one-click
POST of the link stops (``Topic``): every message's link carries ``marketing`` (offers;
order and service messages go on). A link without a topic stops everything on the channel
(``Topic.ALL``): that is how every link made before topics reads, and they keep working.
Links never expire: a customer may unsubscribe from a years-old message.

Keys. The shop has one signing secret (``LOYALTY_SIGNING_SECRET``), the same on every host, so a
link made on one host verifies on every other and on the unsubscribe endpoint. Each purpose
(``Purpose``: unsubscribe links, coupon codes, reorder links, address hashes) signs with its own
key derived from it (``purpose_key``, HKDF-SHA256), so nothing made for one purpose is valid for
another. Rotation: the new secret signs, the old ones (``LOYALTY_SIGNING_SECRETS_OLD``) still
verify; unsubscribe links made before per-purpose keys (signed by the raw secret) verify too.
Coupon codes are derived, not verified: a rotation changes the codes of new messages only.
Without a configured secret (dry runs and the local AWS only, ``require_signing_secret``), a random
key is kept in the state folder.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote_plus

from pydantic import BaseModel

from tasks.kernel.enums import Channel, Topic
from tasks.kernel.settings import Settings, uses_local_aws

KEY_FILE = "signing.key"
MIN_KEY_BYTES = 16
KEY_BYTES = 32
# HKDF salt: fixed and public (RFC 5869 3.1 allows it); it only sets these keys apart from any other use of the secret.
_HKDF_SALT = b"loyalty-flows/v1"

# Query-string fields of an unsubscribe link.
CUSTOMER_FIELD = "c"
CHANNEL_FIELD = "ch"
TOPIC_FIELD = "tp"
TOKEN_FIELD = "t"

# Signed parts are joined with a control character, so no part may contain one.
_CUSTOMER_ID = re.compile(r"[^\x00-\x1f\x7f]{1,256}")
_TOPIC = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{24}")
# What ``quote_plus`` leaves as it is (``urllib.parse``'s always-safe characters)
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")


class InvalidToken(ValueError):  # noqa: N818  # reads as a verdict: "raise InvalidToken"
    """An unsubscribe link that is forged, altered, truncated or malformed; the message holds no PII."""


class Purpose(StrEnum):
    """What a derived key signs or hashes; each purpose has its own key (``purpose_key``)."""

    UNSUBSCRIBE = "unsubscribe"
    COUPON = "coupon"
    REORDER = "reorder"
    ADDRESS_HASH = "address-hash"
    SURVEY = "survey"
    PREFERENCES = "preferences"


@dataclass(frozen=True)
class MessageKeys:
    """The keys a message is made with, one per purpose: its unsubscribe link, coupon code, reorder, survey and
    preferences links."""

    unsubscribe: bytes
    coupon: bytes
    reorder: bytes
    survey: bytes
    preferences: bytes

    @classmethod
    def for_settings(cls, settings: Settings) -> MessageKeys:
        """The current signing secret's keys."""
        return cls.from_secret(_secrets(settings)[0])

    @classmethod
    def from_secret(cls, secret: bytes) -> MessageKeys:
        """The keys one secret gives (samples and tests sign with a fixed one)."""
        return cls(
            unsubscribe=derive_key(secret, Purpose.UNSUBSCRIBE),
            coupon=derive_key(secret, Purpose.COUPON),
            reorder=derive_key(secret, Purpose.REORDER),
            survey=derive_key(secret, Purpose.SURVEY),
            preferences=derive_key(secret, Purpose.PREFERENCES),
        )


class Unsubscribe(BaseModel, frozen=True):
    """A verified unsubscribe request: who, on which channel, and what (``None``: ``Topic.ALL``)."""

    customer_id: str
    channel: Channel
    topic: str | None = None


class MissingSecret(ValueError):  # noqa: N818  # reads as the verdict, like InvalidToken
    """A real send without the shop's signing secret; the message names the setting, never a key."""


def purpose_key(settings: Settings, purpose: str) -> bytes:
    """Return the key of one purpose, derived from the current signing secret: HKDF-SHA256, info ``loyalty/<purpose>``.

    A key serves one purpose only, so a value made for one (a coupon code) is never valid for another
    (an unsubscribe link), and none of them gives the secret away.
    """
    return derive_key(_secrets(settings)[0], purpose)


def verification_keys(settings: Settings, purpose: str) -> tuple[bytes, ...]:
    """Return every key a signature of ``purpose`` may have been made with: the current secret's first.

    The current and each old secret (``LOYALTY_SIGNING_SECRETS_OLD``) give their purpose key, so links
    signed before a rotation keep working. Unsubscribe links also verify under the raw secrets
    themselves (legacy): every link made before keys were derived per purpose was signed that way,
    and a customer may click a years-old one. So does the state folder's key file, if one is left
    from before the secret was configured: the links this host made with it keep working.
    """
    secrets_ = _secrets(settings)
    key_file = settings.state_dir / KEY_FILE
    if settings.signing_secret is not None and key_file.is_file():
        secrets_.append(_key_file(key_file))
    keys = tuple(derive_key(secret, purpose) for secret in secrets_)
    return (*keys, *secrets_) if purpose == Purpose.UNSUBSCRIBE else keys


def derive_key(secret: bytes, purpose: str) -> bytes:
    """Return the 32-byte key of ``purpose`` under ``secret`` (HKDF-SHA256, RFC 5869, stdlib only)."""
    return hkdf_sha256(secret, f"loyalty/{purpose}".encode(), _HKDF_SALT, KEY_BYTES)


def hkdf_sha256(secret: bytes, info: bytes, salt: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869): extract a pseudorandom key from ``secret``, expand it to ``length`` bytes for ``info``."""
    if not 0 < length <= 255 * hashlib.sha256().digest_size:
        raise ValueError("HKDF-SHA256 gives 1 to 8160 bytes")
    prk = hmac.new(salt or bytes(hashlib.sha256().digest_size), secret, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in range(1, -(-length // hashlib.sha256().digest_size) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def require_signing_secret(settings: Settings, dry_run: bool) -> None:
    """Refuse a real send without the shop's signing secret: call it before planning.

    A host's own key file would sign links another host's endpoint refuses (the unsubscribe fails,
    silently, for the customer) and make coupon codes no other host knows. The key file stays for
    dry runs and the local AWS (the demo), where no message reaches anyone.

    Raises:
        MissingSecret: messages really go out and ``LOYALTY_SIGNING_SECRET`` is not set.
    """
    if settings.signing_secret is None and not dry_run and not uses_local_aws(settings):
        raise MissingSecret(
            "LOYALTY_SIGNING_SECRET is required when messages really go out (not a dry run, not the local AWS):"
            " set it to the same random secret (at least 16 bytes) on every host and the unsubscribe endpoint"
        )


def _secrets(settings: Settings) -> list[bytes]:
    """The signing secrets, current first: the configured one (else the state folder's key file), then the old ones."""
    if settings.signing_secret is not None:
        current = settings.signing_secret.get_secret_value().encode()
        if len(current) < MIN_KEY_BYTES:
            raise ValueError(f"LOYALTY_SIGNING_SECRET is too short: use at least {MIN_KEY_BYTES} random bytes")
    else:
        current = _key_file(settings.state_dir / KEY_FILE)
    old = [s.get_secret_value().encode() for s in settings.signing_secrets_old]
    if any(len(s) < MIN_KEY_BYTES for s in old):
        raise ValueError(f"a secret in LOYALTY_SIGNING_SECRETS_OLD is too short: use at least {MIN_KEY_BYTES} bytes")
    return [current, *old]


def _key_file(path: Path) -> bytes:
    if not path.exists():
        _create_key_file(path)
    key = path.read_bytes()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the signing key in {path} is too short: delete it or set LOYALTY_SIGNING_SECRET")
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
    return f"{base_url}{separator}{_query(fields)}"


def _query(fields: Mapping[str, str]) -> str:
    """``urlencode(fields)``, byte for byte, without quoting what needs none: every message carries two signed
    links or more, and quoting each of their names, ids and tokens was a twentieth of rendering it."""
    return "&".join(f"{_plus(name)}={_plus(value)}" for name, value in fields.items())


def _plus(text: str) -> str:
    return text if _URL_SAFE.fullmatch(text) else quote_plus(text)


def parse_unsubscribe(keys: bytes | Sequence[bytes], fields: Mapping[str, str]) -> Unsubscribe:
    """Verify the fields of an unsubscribe link (query string or form) and return what they ask for.

    ``keys``: every key the link may be signed with (``verification_keys``); one matching is enough.

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
    parts = _unsubscribe_parts(customer_id, channel, topic)
    candidates = (keys,) if isinstance(keys, bytes) else tuple(keys)
    # every key is tried (no early exit), so the time taken does not tell which key matched
    matches = [verify(key, token, *parts) for key in candidates]
    if not any(matches):
        raise InvalidToken("unsubscribe link signature does not match")
    return Unsubscribe(customer_id=customer_id, channel=Channel(channel), topic=topic)


# --- survey links -------------------------------------------------------------------------------------------------

# Query-string fields of a survey link (the customer field is the unsubscribe link's).
ORDER_FIELD = "o"
SCORE_FIELD = "s"
LOCALE_FIELD = "l"  # not signed: it only picks the language of the answer page
SURVEY_SCORES = range(11)
_SCORE = re.compile(r"10|[0-9]")


class SurveyLink(BaseModel, frozen=True):
    """A verified survey link: who answers, about which order, with which score (0-10)."""

    customer_id: str
    order_id: str
    score: int
    locale: str | None = None


def _survey_parts(customer_id: str, order_id: str, score: int) -> tuple[str, ...]:
    return (Purpose.SURVEY.value, customer_id, order_id, str(score))


def survey_url(
    key: bytes, base_url: str, customer_id: str, order_id: str, score: int, locale: str | None = None
) -> str:
    """Return the link that answers the survey about ``order_id`` with ``score``.

    The signature covers the customer, the order and the score: each of the eleven links of a message is signed
    on its own, so none can be turned into another customer's, another order's or another score's link.
    """
    if not _CUSTOMER_ID.fullmatch(customer_id) or not _CUSTOMER_ID.fullmatch(order_id):
        raise ValueError("a customer or order id in a survey link must be 1-256 characters, no control characters")
    if score not in SURVEY_SCORES:
        raise ValueError("a survey score is 0 to 10")
    fields = {
        CUSTOMER_FIELD: customer_id,
        ORDER_FIELD: order_id,
        SCORE_FIELD: str(score),
        TOKEN_FIELD: sign(key, *_survey_parts(customer_id, order_id, score)),
    }
    if locale is not None and _TOPIC.fullmatch(locale):
        fields[LOCALE_FIELD] = locale
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}{_query(fields)}"


def parse_survey(keys: bytes | Sequence[bytes], fields: Mapping[str, str]) -> SurveyLink:
    """Verify the fields of a survey link (query string or form) and return what they say.

    Raises:
        InvalidToken: a field is missing or malformed, or the signature does not match them.
    """
    customer_id = fields.get(CUSTOMER_FIELD, "")
    order_id = fields.get(ORDER_FIELD, "")
    score = fields.get(SCORE_FIELD, "")
    token = fields.get(TOKEN_FIELD, "")
    if not _CUSTOMER_ID.fullmatch(customer_id) or not _CUSTOMER_ID.fullmatch(order_id):
        raise InvalidToken("malformed survey link: bad customer or order id")
    if not _SCORE.fullmatch(score):
        raise InvalidToken("malformed survey link: bad score")
    if not _SIGNATURE.fullmatch(token):
        raise InvalidToken("malformed survey link: bad token")
    parts = _survey_parts(customer_id, order_id, int(score))
    candidates = (keys,) if isinstance(keys, bytes) else tuple(keys)
    if not any([verify(key, token, *parts) for key in candidates]):  # every key tried: no timing tell
        raise InvalidToken("survey link signature does not match")
    locale = fields.get(LOCALE_FIELD)
    locale = locale if locale is not None and _TOPIC.fullmatch(locale) else None
    return SurveyLink(customer_id=customer_id, order_id=order_id, score=int(score), locale=locale)


# --- preferences links --------------------------------------------------------------------------------------------


class PreferencesLink(BaseModel, frozen=True):
    """A verified preferences link: whose page, from a message on which channel, in which language."""

    customer_id: str
    channel: Channel
    locale: str | None = None


def _preferences_parts(customer_id: str, channel: str) -> tuple[str, ...]:
    return (Purpose.PREFERENCES.value, customer_id, channel)


def preferences_url(key: bytes, base_url: str, customer_id: str, channel: str, locale: str | None = None) -> str:
    """Return the link to a customer's preferences page (the footer's "Mailing settings").

    The signature covers the customer and the channel, so no link can be turned into another customer's page;
    the locale only picks the page's language and is not signed.
    """
    if not _CUSTOMER_ID.fullmatch(customer_id):
        raise ValueError("a customer id in a preferences link must be 1-256 characters, no control characters")
    Channel(channel)
    fields = {
        CUSTOMER_FIELD: customer_id,
        CHANNEL_FIELD: channel,
        TOKEN_FIELD: sign(key, *_preferences_parts(customer_id, channel)),
    }
    if locale is not None and _TOPIC.fullmatch(locale):
        fields[LOCALE_FIELD] = locale
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}{_query(fields)}"


def parse_preferences(keys: bytes | Sequence[bytes], fields: Mapping[str, str]) -> PreferencesLink:
    """Verify the fields of a preferences link (query string or the page's hidden fields) and return them.

    Raises:
        InvalidToken: a field is missing or malformed, or the signature does not match them.
    """
    customer_id = fields.get(CUSTOMER_FIELD, "")
    channel = fields.get(CHANNEL_FIELD, "")
    token = fields.get(TOKEN_FIELD, "")
    if not _CUSTOMER_ID.fullmatch(customer_id):
        raise InvalidToken("malformed preferences link: bad customer id")
    if channel not in {c.value for c in Channel}:
        raise InvalidToken("malformed preferences link: unknown channel")
    if not _SIGNATURE.fullmatch(token):
        raise InvalidToken("malformed preferences link: bad token")
    parts = _preferences_parts(customer_id, channel)
    candidates = (keys,) if isinstance(keys, bytes) else tuple(keys)
    if not any([verify(key, token, *parts) for key in candidates]):  # every key tried: no timing tell
        raise InvalidToken("preferences link signature does not match")
    locale = fields.get(LOCALE_FIELD)
    locale = locale if locale is not None and _TOPIC.fullmatch(locale) else None
    return PreferencesLink(customer_id=customer_id, channel=Channel(channel), locale=locale)
