"""The raw MIME of one email, written directly: headers, then a text and an HTML part.

Every email the engine sends has the same shape (``multipart/alternative``: a UTF-8 text part and a UTF-8
HTML part, a handful of headers), so it is written here in one pass instead of through the standard
library's ``EmailMessage``: its header objects parse and refold every header of every message, which
cost about 2.5 ms of CPU a message, more than everything else the engine does for it together
(``bench/delivery.py --channel null``). This writer costs a few per cent of that, and what it writes is
what the standard library reads back: ``tests/unit/deliver/test_mime.py`` parses both, for names and
subjects in every script, and compares header by header and part by part.

The rules it follows (RFC 5322, RFC 2045-2047):

* lines end in CRLF; no header line is longer than 998 octets, and folding whitespace is only added
  where a header may be folded;
* a display name that is plain ASCII words goes as is, other ASCII as a quoted string (``\\`` and ``"``
  escaped), anything else as UTF-8 encoded words of at most 75 characters;
* a non-ASCII subject is encoded whole, spaces inside its encoded words, so no reader can drop a space
  between two words (the standard library's folding did: "новыене" for "новые не");
* a body that is ASCII with short lines is ``7bit``; any other is ``base64`` in lines of 76.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

CRLF: Final = "\r\n"
# An encoded word of 42 bytes is 68 characters (RFC 2047: at most 75), and "Subject: " + one stays within 78.
ENCODED_WORD_BYTES: Final = 42
_LINE: Final = 78
_ATOM_TEXT: Final = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_SEVEN_BIT_LINE: Final = 998
_BASE64_LINE: Final = 76


def encoded_words(text: str) -> list[str]:
    """``text`` as UTF-8 base64 encoded words, split on character boundaries, each of at most 75 characters."""
    data = text.encode("utf-8")
    words: list[bytes] = []
    while len(data) > ENCODED_WORD_BYTES:
        cut = ENCODED_WORD_BYTES
        while data[cut] & 0xC0 == 0x80:  # never inside a character: back off its continuation bytes
            cut -= 1
        words.append(data[:cut])
        data = data[cut:]
    words.append(data)
    return [f"=?utf-8?b?{base64.b64encode(word).decode('ascii')}?=" for word in words]


def _fold_words(name: str, words: Sequence[str]) -> str:
    """A header of whitespace-separated ``words``, folded before a word that would pass 78 characters."""
    lines = [f"{name}:"]
    for word in words:
        if len(lines[-1]) + 1 + len(word) > _LINE and lines[-1] != f"{name}:":
            lines.append("")
        lines[-1] += f" {word}"
    return (CRLF).join(lines) + CRLF


def header(name: str, value: str) -> str:
    """An unstructured header (``Subject``): ASCII folded at spaces, anything else as encoded words."""
    if value.isascii():
        return _fold_words(name, value.split(" ")) if value else f"{name}: {CRLF}"
    return _fold_words(name, encoded_words(value))


def mailbox(display_name: str, address: str) -> str:
    """``Name <address>``: the name as atoms, a quoted string or encoded words; the address as given (ASCII)."""
    if not display_name:
        return address
    if not display_name.isascii():
        return " ".join(encoded_words(display_name)) + f" <{address}>"
    if _ATOM_TEXT.fullmatch(display_name) and display_name.strip() == display_name:
        return f"{display_name} <{address}>"
    quoted = display_name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>'


@lru_cache(maxsize=64)
def from_header(display_name: str, address: str) -> str:
    """The ``From`` header of a sender (the same for every message of a run)."""
    return _fold_words("From", mailbox(display_name, address).split(" "))


def message_id(domain: str) -> str:
    """A new ``<time.random@domain>`` Message-ID."""
    return f"<{time.time_ns()}.{secrets.token_hex(8)}@{domain}>"


def _part(content_type: str, body: str) -> str:
    """One UTF-8 text part: ``7bit`` when the body is ASCII with short lines, else ``base64``."""
    lines = body.splitlines()
    head = f'Content-Type: {content_type}; charset="utf-8"{CRLF}'
    if body.isascii() and all(len(line) <= _SEVEN_BIT_LINE for line in lines):
        return f"{head}Content-Transfer-Encoding: 7bit{CRLF}{CRLF}{CRLF.join(lines)}{CRLF}"
    encoded = base64.b64encode((CRLF.join(lines) + CRLF).encode("utf-8")).decode("ascii")
    wrapped = CRLF.join(encoded[i : i + _BASE64_LINE] for i in range(0, len(encoded), _BASE64_LINE))
    return f"{head}Content-Transfer-Encoding: base64{CRLF}{CRLF}{wrapped}{CRLF}"


def multipart_alternative(headers: Sequence[str], text: str, html: str) -> bytes:
    """The whole message: ``headers`` (each a full header, CRLF-terminated), then the text and HTML parts."""
    boundary = f"=_loyalty_{secrets.token_hex(16)}"
    return "".join(
        (
            *headers,
            f"MIME-Version: 1.0{CRLF}",
            f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"{CRLF}',
            CRLF,
            f"--{boundary}{CRLF}",
            _part("text/plain", text),
            f"{CRLF}--{boundary}{CRLF}",
            _part("text/html", html),
            f"{CRLF}--{boundary}--{CRLF}",
        )
    ).encode("ascii")
