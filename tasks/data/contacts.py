"""The per-value checks of contact cells: an email address's ASCII form, a phone number's E.164 form.

Kept apart from ``validation`` so that the worker processes checking many values at once import only
these and their two libraries, not pandas and Arrow (a worker then starts in a fraction of a second).
"""

from __future__ import annotations

import phonenumbers

from tasks.kernel.addresses import ascii_address


def normalise_email(value: str) -> str | None:
    """The form every message is sent to and every suppression hashed in: a punycode domain; an address whose
    local part is not ASCII has no such form and is invalid here (None)."""
    return ascii_address(value) if value else None


def normalise_phone(pair: str) -> str | None:
    """``"<number>\\x1f<country>"`` in E.164, read in the country's national format; None if not a valid number."""
    raw, _, country = pair.partition("\x1f")
    if not raw:
        return None
    try:
        number = phonenumbers.parse(raw, country or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
