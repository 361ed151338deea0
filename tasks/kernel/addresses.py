"""Email addresses on the wire: the one ASCII form every part of the engine sends to and hashes.

An international domain (``магазин.рф``) is written in its punycode form (``xn--80aairftm.xn--p1ai``):
that is what a ``To:`` header, SES and a suppression hash take. A local part that is not ASCII
(SMTPUTF8) has no such form: SES does not accept it, so it has none here either.

``email_validator`` decides every address, but it spends most of its ~50 µs an address on the domain
(IDNA, UTS-46), and a shop's million addresses share a few thousand domains. So the common address, a
plain ASCII local part at a domain already seen, is answered from that domain's result; anything else
(quotes, display names, non-ASCII, the RFC 2142 role names, a domain not valid on its own, a long
address) goes through the whole validation. A property test holds the two to the same answers.
"""

from __future__ import annotations

import functools
import re

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH

# RFC 5322 dot-atom of ASCII atext (email_validator's DOT_ATOM_TEXT), one @, a domain of hostname characters
_ATEXT = r"[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+"
_PLAIN = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@([a-zA-Z0-9.\-]+)")
_ROLES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)  # info@, sales@...: email_validator lower-cases these


@functools.lru_cache(maxsize=1 << 16)
def ascii_address(address: str) -> str | None:
    """Return the address as sent: trimmed, the domain in lower-case punycode; None if it has no ASCII form.

    >>> ascii_address(" Ivan@Магазин.РФ ")
    'Ivan@xn--80aairftm.xn--p1ai'
    >>> ascii_address("иван@магазин.рф") is None
    True
    """
    text = address.strip()
    if not text:
        return None
    return _plain(text) or validated_address(text)


def _plain(text: str) -> str | None:
    """A plain ASCII address at a domain valid on its own, answered from the domain's cached forms; else None."""
    plain = _PLAIN.fullmatch(text)
    if plain is None or plain[1].lower() in _ROLES or (forms := _domain(plain[2])) is None:
        return None
    # email_validator checks the length with the domain in Unicode and in ASCII (as given, it is the ASCII one)
    if any(len(plain[1]) + 1 + len(form.encode()) > EMAIL_MAX_LENGTH for form in forms):
        return None
    return f"{plain[1]}@{forms[0]}"


def validated_address(text: str) -> str | None:
    """The whole of ``email_validator``'s answer for a trimmed address (the fast path's reference)."""
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    return valid.ascii_email


@functools.lru_cache(maxsize=1 << 14)
def _domain(domain: str) -> tuple[str, str] | None:
    """A domain's ASCII and Unicode forms as ``email_validator`` gives them, or None if it is not valid alone."""
    try:
        valid = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    return valid.ascii_domain, valid.domain


def clear_caches() -> None:
    """Forget every address and domain answered so far (a benchmark's cold start)."""
    ascii_address.cache_clear()
    _domain.cache_clear()
