"""The outbox: each message as files a person can open, and an index page linking them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.render.outbox import OutboxEntry, OutboxListing, message_stem, write_index, write_message


def _entry(customer_id: str, campaign: str = "win_back", channel: str = "email", **changes: str) -> OutboxEntry:
    stem = message_stem(campaign, customer_id, channel)
    fields = {
        "key": f"key-{customer_id}-{channel}",
        "customer_id": customer_id,
        "campaign": campaign,
        "channel": channel,
        "locale": "en",
        "html_file": "" if channel == "sms" else f"{stem}.html",
        "text_file": f"{stem}.txt",
    }
    return OutboxEntry(**(fields | changes))


def test_a_customer_id_with_path_characters_stays_inside_the_campaigns_folder(tmp_path: Path) -> None:
    stem = message_stem("win_back", "../../etc/passwd", "email")

    html_file, text_file = write_message(tmp_path / "outbox", stem, "<p>hi</p>", "hi\n")

    assert stem == "win_back/______etc_passwd-email"
    assert (tmp_path / "outbox" / text_file).resolve().parent == (tmp_path / "outbox" / "win_back").resolve()
    assert sorted(p.name for p in (tmp_path / "outbox" / "win_back").iterdir()) == [
        "______etc_passwd-email.html",
        "______etc_passwd-email.txt",
    ]
    assert html_file == f"{stem}.html"


@pytest.mark.xfail(
    strict=True,
    reason="message_stem maps every other character to '_': ids 'c.42@example.com' and 'c_42@example_com' share one file",
)
def test_two_customers_whose_ids_differ_only_in_punctuation_get_their_own_files() -> None:
    first = message_stem("win_back", "c.42@example.com", "email")
    second = message_stem("win_back", "c_42@example_com", "email")

    assert first != second


def test_an_sms_is_a_text_file_only_and_an_email_keeps_its_letters(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"

    sms = write_message(outbox, message_stem("birthday", "C1", "sms"), None, "С днём рождения!\n")
    email = write_message(
        outbox, message_stem("birthday", "C1", "email"), "<p>Wszystkiego najlepszego!</p>", "Wszystkiego najlepszego!\n"
    )

    assert sms == ("", "birthday/C1-sms.txt")
    assert not (outbox / "birthday" / "C1-sms.html").exists()
    assert (outbox / "birthday" / "C1-sms.txt").read_text(encoding="utf-8") == "С днём рождения!\n"
    assert email == ("birthday/C1-email.html", "birthday/C1-email.txt")
    assert (outbox / email[0]).read_text(encoding="utf-8") == "<p>Wszystkiego najlepszego!</p>"


def test_the_index_lists_every_message_sorted_with_links_and_escapes_what_it_shows(tmp_path: Path) -> None:
    entries = [
        _entry("C2", campaign="win_back"),
        _entry("C1", campaign="win_back", channel="sms"),
        _entry("<b>C3</b>", campaign="birthday"),
    ]
    listing = OutboxListing(entries, rendered=3)

    page = write_index(tmp_path / "outbox", listing, "Outbox <2026-03-01>").read_text(encoding="utf-8")

    assert "<title>Outbox &lt;2026-03-01&gt;</title>" in page
    assert "<p>3 messages rendered.</p>" in page
    assert "<b>C3</b>" not in page and "&lt;b&gt;C3&lt;/b&gt;" in page
    # birthday before win_back, and C1 before C2 inside win_back
    assert page.index("&lt;b&gt;C3") < page.index("<td>C1</td>") < page.index("<td>C2</td>")
    assert '<a href="win_back/C2-email.html">HTML</a> · <a href="win_back/C2-email.txt">text</a>' in page
    sms_row = page[page.index("<td>C1</td>") : page.index("<td>C2</td>")]
    assert "HTML" not in sms_row and '<a href="win_back/C1-sms.txt">text</a>' in sms_row


def test_an_empty_run_still_has_an_index_page(tmp_path: Path) -> None:
    path = write_index(tmp_path / "new" / "outbox", OutboxListing([], 0), "Outbox 2026-03-01")

    assert path == tmp_path / "new" / "outbox" / "index.html"
    assert "<p>0 messages rendered.</p>" in path.read_text(encoding="utf-8")


def test_a_sampled_index_says_how_many_it_shows_of_how_many_and_where_the_rest_are(tmp_path: Path) -> None:
    entries = [_entry(f"C{n}") for n in range(40)]
    listing = OutboxListing(entries, rendered=748_470, sample=20, record="render/rendered-*.parquet")

    page = write_index(tmp_path / "outbox", listing, "Outbox 2026-03-01").read_text(encoding="utf-8")

    assert (
        "<p>Showing 40 of 748,470 rendered messages: up to 20 per campaign, channel and language of each shard; "
        "every message is in the run folder's render/rendered-*.parquet.</p>"
    ) in page
    assert page.count("<tr><td>") == 40
    assert "messages rendered." not in page
