"""The hand-written MIME reads back, header by header and part by part, as the standard library's own would."""

from __future__ import annotations

import email
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, compat32, default

from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.deliver.channels import EmailMessageOut, build_mime, one_line
from tasks.kernel.enums import MessageKind

SENDER = "Shop Ünïcode <hello@shop.example.com>"

# names and subjects as shops have them: Cyrillic, Polish, quotes, commas, backslashes, emoji, long words
_TEXT = st.text(alphabet="abcXYZ ąęłżśАнаКсяжё.,\"\\;:<>@()[]!?-_'=💡🎉\t", max_size=120)
_BODY = st.lists(st.sampled_from([*"ab <p>Здравствуйте!ąę\n\r\t=", "x" * 700, "\n\n"]), max_size=40).map("".join)


def _reference(message: EmailMessageOut, sender: str) -> bytes:
    """What the standard library builds for the same email (the writer it replaced, without its subject fix)."""
    mime = EmailMessage(policy=SMTP)
    mime["From"] = sender
    local, _, domain = message.to_address.rpartition("@")
    mime["To"] = Address(display_name=one_line(message.to_name or ""), username=local, domain=domain)
    mime["Subject"] = one_line(message.subject)
    mime.set_content(message.text, charset="utf-8")
    mime.add_alternative(message.html, subtype="html", charset="utf-8")
    return mime.as_bytes()


def _display_name(raw: bytes) -> str:
    """The ``To`` display name as a reader shows it: adjacent encoded words joined, as RFC 2047 says.

    (The standard library's address parser keeps the folding space between two encoded words of one name,
    against RFC 2047 6.2; ``decode_header`` does not.)"""
    parsed = email.message_from_bytes(raw, policy=compat32)
    value = " ".join(str(parsed["To"]).split())
    name = value.rpartition(" <")[0]
    if name.startswith("=?"):
        return str(make_header(decode_header(name)))
    return email.message_from_bytes(raw, policy=default)["To"].addresses[0].display_name  # type: ignore[no-any-return]


def _read(raw: bytes) -> dict[str, str]:
    parsed = email.message_from_bytes(raw, policy=default)
    return {
        "from": str(parsed["From"]),
        "to_address": parsed["To"].addresses[0].addr_spec,
        "to_name": _display_name(raw),
        "subject": str(parsed["Subject"]),
        "plain": parsed.get_body(("plain",)).get_content(),  # type: ignore[union-attr]
        "html": parsed.get_body(("html",)).get_content(),  # type: ignore[union-attr]
    }


@settings(max_examples=300, deadline=None)
@given(name=_TEXT, subject=_TEXT, text=_BODY, html=_BODY)
def test_every_name_subject_and_body_reads_back_as_the_standard_librarys(
    name: str, subject: str, text: str, html: str
) -> None:
    message = EmailMessageOut(
        key="win_back/1/email/C1/2024-05-01",
        to_address="anna@example.com",
        to_name=name,
        subject=subject,
        html=html,
        text=text,
        kind=MessageKind.TRANSACTIONAL,
    )
    ours, theirs = _read(build_mime(message, SENDER)), _read(_reference(message, SENDER))

    assert ours == theirs


@settings(max_examples=100, deadline=None)
@given(name=_TEXT, subject=_TEXT, url=st.text(alphabet="abc/?=&%-_.", max_size=300))
def test_no_header_line_is_too_long_and_none_can_be_forged(name: str, subject: str, url: str) -> None:
    message = EmailMessageOut(
        key="k\r\nBcc: x@evil.example",
        to_address="anna@example.com",
        to_name=name + "\r\nBcc: x@evil.example",
        subject=subject + "\nBcc: x@evil.example",
        html="<p>x</p>",
        text="x",
        kind=MessageKind.MARKETING,
        unsubscribe_url=f"https://shop.example.com/u?{url}",
        unsubscribe_mailto="unsubscribe@shop.example.com",
    )
    raw = build_mime(message, SENDER)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    parsed = email.message_from_bytes(raw, policy=default)

    assert parsed["Bcc"] is None
    assert all(len(line) <= 998 for line in head.split("\r\n"))
    assert all(len(line) <= 78 for line in head.split("\r\n") if line.startswith(("To:", "Subject:", " =?")))
    assert parsed["List-Unsubscribe"] == (
        f"<https://shop.example.com/u?{url}>, <mailto:unsubscribe@shop.example.com?subject=unsubscribe>"
    )
