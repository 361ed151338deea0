"""Email addresses on the wire: the one ASCII form every part of the engine sends to and hashes.

An international domain (``магазин.рф``) is written in its punycode form (``xn--80aairftm.xn--p1ai``):
that is what a ``To:`` header, SES and a suppression hash take. A local part that is not ASCII
(SMTPUTF8) has no such form: SES does not accept it, so it has none here either.
"""

from __future__ import annotations

import functools

from email_validator import EmailNotValidError, validate_email


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
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    return valid.ascii_email
