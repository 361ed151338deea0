"""How many SMS parts a text costs: GSM-7 or UCS-2, single or concatenated.

The GSM 7-bit default alphabet and its extension table are those of 3GPP TS 23.038
(GSM 03.38). National language shift tables are not used: SNS and most carriers do
not send them, so a Polish or Turkish letter outside the default alphabet makes the
whole message UCS-2.

A single SMS holds 160 septets (GSM-7) or 70 UTF-16 code units (UCS-2). Longer
texts are sent as concatenated parts whose user-data header leaves 153 septets or
67 code units each. A part never splits an escape sequence (an extension character)
or a surrogate pair (an emoji), so a part may end a unit early.

Empty text counts as one part: it is what a carrier would bill, and a message never
costs zero rate tokens. (Sending an empty SMS is refused by the channels anyway.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

# The 128 code points of the default alphabet, 0x00-0x7F, less 0x1B (escape to the extension table).
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ"  # 0x00-0x1A
    "ÆæßÉ"  # 0x1C-0x1F
    " !\"#¤%&'()*+,-./0123456789:;<=>?"  # 0x20-0x3F
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"  # 0x40-0x5F
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"  # 0x60-0x7F
)
# The extension table: each is sent as escape + code, two septets.
GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_SINGLE: Final = 160
GSM7_CONCATENATED: Final = 153
UCS2_SINGLE: Final = 70
UCS2_CONCATENATED: Final = 67


@dataclass(frozen=True)
class SmsParts:
    """What a text costs on the wire: its encoding, its length in units, and the parts billed."""

    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    parts: int


def is_gsm7(text: str) -> bool:
    """Return whether every character of ``text`` is in the GSM 7-bit alphabet or its extension."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def sms_parts(text: str) -> SmsParts:
    """Count the encoding, units and parts of an SMS text as a carrier bills it."""
    if is_gsm7(text):
        sizes = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        encoding: Encoding = "GSM-7"
        single, concatenated = GSM7_SINGLE, GSM7_CONCATENATED
    else:
        sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        encoding = "UCS-2"
        single, concatenated = UCS2_SINGLE, UCS2_CONCATENATED
    units = sum(sizes)
    parts = 1 if units <= single else _pack(sizes, concatenated)
    return SmsParts(encoding=encoding, units=units, parts=parts)


def _pack(sizes: list[int], capacity: int) -> int:
    """Fill parts of ``capacity`` units in order; a character's units never straddle two parts."""
    parts, used = 1, 0
    for size in sizes:
        if used + size > capacity:
            parts, used = parts + 1, 0
        used += size
    return parts
