"""The outbox: rendered messages as files a person can open, plus an index page.

The outbox is a preview; the rendered Parquet shards are the record (delivery reads them). A day of a large shop
renders hundreds of thousands of messages, and writing each as two small files was two fifths of the CPU of
rendering them. So each render shard writes the first ``outbox_sample`` messages of every campaign, channel
and language (``Settings.outbox_sample``; 0, as in the demo: every message), and the index says how many it
shows of how many were rendered, and where the rest are.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OutboxEntry:
    """One rendered message on disk. The index shows ids, never names or addresses."""

    key: str
    customer_id: str
    campaign: str
    channel: str
    locale: str
    html_file: str
    text_file: str


@dataclass(frozen=True)
class OutboxListing:
    """What an outbox index lists: the messages written as files, out of how many were rendered.

    ``sample``: up to this many of each campaign, channel and language per shard were written (0: every message);
    ``record``: where every rendered message is, relative to the run folder.
    """

    entries: list[OutboxEntry]
    rendered: int
    sample: int = 0
    record: str = ""


def message_stem(campaign: str, customer_id: str, channel: str) -> str:
    """Return the file name stem of a message in the outbox."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in customer_id)
    return f"{campaign}/{safe}-{channel}"


def write_message(outbox: Path, stem: str, html_body: str | None, text_body: str) -> tuple[str, str]:
    """Write one message's HTML (none for an SMS) and text; return their paths relative to the outbox."""
    text_path = outbox / f"{stem}.txt"
    try:
        text_path.write_text(text_body, encoding="utf-8")
    except FileNotFoundError:  # the campaign's first message: its folder is made once, not checked per message
        text_path.parent.mkdir(parents=True, exist_ok=True)
        text_path.write_text(text_body, encoding="utf-8")
    if html_body is None:
        return "", f"{stem}.txt"
    (outbox / f"{stem}.html").write_text(html_body, encoding="utf-8")
    return f"{stem}.html", f"{stem}.txt"


def _links(entry: OutboxEntry) -> str:
    text = f'<a href="{html.escape(entry.text_file)}">text</a>'
    return f'<a href="{html.escape(entry.html_file)}">HTML</a> · {text}' if entry.html_file else text


def _shown(listing: OutboxListing, shown: int) -> str:
    """The sentence above the table: how many messages it lists, of how many, and where the rest are."""
    if shown == listing.rendered:
        return f"{shown} messages rendered."
    where = f"; every message is in the run folder's {html.escape(listing.record)}" if listing.record else ""
    return (
        f"Showing {shown:,} of {listing.rendered:,} rendered messages: up to {listing.sample:,} per campaign, "
        f"channel and language of each shard{where}."
    )


def write_index(outbox: Path, listing: OutboxListing, title: str) -> Path:
    """Write ``index.html`` listing the messages written as files, with links to their HTML and text."""
    rows = [
        f"<tr><td>{html.escape(e.campaign)}</td><td>{html.escape(e.customer_id)}</td>"
        f"<td>{html.escape(e.channel)}</td><td>{html.escape(e.locale)}</td>"
        f"<td>{_links(e)}</td>"
        f"<td><code>{html.escape(e.key)}</code></td></tr>"
        for e in sorted(listing.entries, key=lambda e: (e.campaign, e.customer_id, e.channel))
    ]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:Helvetica,Arial,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse}}td,th{{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}}
th{{background:#f4f4f7}}code{{font-size:12px;color:#666}}</style></head>
<body><h1>{html.escape(title)}</h1><p>{_shown(listing, len(rows))}</p>
<table><thead><tr><th>campaign</th><th>customer</th><th>channel</th><th>locale</th><th>message</th>
<th>idempotency key</th></tr></thead><tbody>
{"".join(rows)}
</tbody></table></body></html>
"""
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
