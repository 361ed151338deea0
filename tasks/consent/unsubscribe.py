"""The one-click unsubscribe endpoint (RFC 8058): a small ASGI app over the suppression list.

Routes:

* ``POST /unsubscribe?c=..&ch=..[&tp=..]&t=..`` - what mail providers send for
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (body ``List-Unsubscribe=One-Click``),
  and what the page's buttons send. A valid signed link records a customer suppression for
  the link's topic and answers 200, every time (idempotent); anything else answers 400.
  The body is not required: the signature is the authority, and an unsubscribe must not
  fail on how a client encodes its form. A body over 4 KiB answers 413 and records nothing:
  it is read (within the limit) before the link is acted on.
* ``GET /unsubscribe?...`` - a page with buttons. It never unsubscribes: mail scanners and
  link previewers fetch every link in a message.
* ``GET /healthz`` - liveness.

Topics (``Topic``). Every message's link carries ``marketing``: a marketing email's footer
("Unsubscribe from offers") and its ``List-Unsubscribe`` header, and an order or service
email's footer ("Manage emails"). So a one-click POST of any link made now stops offers on the
channel and never order or service messages (RFC 8058: the header unsubscribes from the list the
message came from, and that list is the marketing one; transactional email carries no header).
The page of such a link, and of an old link without a topic, is the channel's preferences:
"Unsubscribe from offers" first, then, separately and saying what it costs, "Stop every email,
order updates too" (``Topic.ALL``). Each button posts a link the page signs for the same customer
and channel; an old link POSTed one-click keeps its old meaning, everything on the channel.

Nothing identifies a customer in responses or logs beyond the customer id; the access log
is off because request URLs carry signed tokens.

The app holds no global state: ``make_app(settings)`` builds everything, so it runs under
uvicorn (``serve_unsubscribe``) or in AWS Lambda behind an ASGI adapter, e.g.
``handler = Mangum(make_app(Settings()))`` (``tasks.consent.lambda_handler``). On Lambda, give it the shop's one
secret (``LOYALTY_SIGNING_SECRET``, or ``LOYALTY_SIGNING_SECRET_ARN``; there is no persistent state folder for a
key) and durable suppressions (``LOYALTY_STATE_BACKEND=dynamodb``).
"""

from __future__ import annotations

import copy
import html
import logging
from typing import Protocol
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from tasks.consent.suppression import SuppressionList, SuppressionReason
from tasks.consent.tokens import (
    InvalidToken,
    Purpose,
    Unsubscribe,
    parse_unsubscribe,
    purpose_key,
    unsubscribe_url,
    verification_keys,
)
from tasks.kernel.enums import Channel, Topic
from tasks.kernel.paths import private_files
from tasks.kernel.settings import Settings

logger = logging.getLogger("loyalty.unsubscribe")

MAX_BODY_BYTES = 4096
ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"

_HEADERS = {
    # the URL holds a token: keep it out of caches, referrers and search indexes
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
}
_CHANNEL_NAMES = {Channel.EMAIL: "email", Channel.SMS: "text message (SMS)"}
# one message of the channel, and the preferences page's title
_MESSAGE_NAMES = {Channel.EMAIL: "email", Channel.SMS: "text message"}
_PREFERENCES_TITLES = {Channel.EMAIL: "Email preferences", Channel.SMS: "Text message preferences"}
# links whose page is the channel's preferences (offers, or everything); other topics get one button
_PREFERENCE_TOPICS = frozenset({None, Topic.MARKETING.value})


class CustomerSuppressions(Protocol):
    """Where unsubscribes are recorded (``SuppressionList`` locally; a durable store on Lambda)."""

    def add_customer(
        self, channel: Channel | None, customer_id: str, reason: SuppressionReason | str, topic: str | None = None
    ) -> bool: ...


def make_app(settings: Settings, suppressions: CustomerSuppressions | None = None) -> Starlette:
    """Build the unsubscribe ASGI app; suppressions default to the list in the state folder."""
    # the page's buttons are signed with the current secret; links verify under every secret, old ones too
    key, keys = purpose_key(settings, Purpose.UNSUBSCRIBE), verification_keys(settings, Purpose.UNSUBSCRIBE)
    store: CustomerSuppressions = suppressions or SuppressionList.for_settings(settings)
    shop = html.escape(settings.shop_name)

    async def confirm(request: Request) -> Response:
        try:
            request_ = parse_unsubscribe(keys, request.query_params)
        except InvalidToken as exc:
            return _rejected(exc)
        if request_.topic not in _PREFERENCE_TOPICS:
            return _page(200, "Unsubscribe", f"<p>Stop {_what(request_)} from {shop}?</p>{_button('', 'Unsubscribe')}")
        channel, one = _CHANNEL_NAMES[request_.channel], _MESSAGE_NAMES[request_.channel]

        def link(topic: Topic) -> str:
            return unsubscribe_url(key, "", request_.customer_id, request_.channel.value, topic.value)

        body = (
            f"<p>Stop offers and newsletters by {channel} from {shop}?"
            f" Order and delivery updates will still reach you by {channel}.</p>"
            f"{_button(link(Topic.MARKETING), 'Unsubscribe from offers')}"
            # a separate, explicit step: it costs the customer the news of their own orders
            f"<p>Or stop every {one} from {shop}, order and delivery updates included:"
            f" you will not hear from us by {channel} about your orders either.</p>"
            f"{_button(link(Topic.ALL), f'Stop every {one}, order updates too')}"
        )
        return _page(200, _PREFERENCES_TITLES[request_.channel], body)

    async def unsubscribe(request: Request) -> Response:
        form = await _form_fields(request)
        try:
            request_ = parse_unsubscribe(keys, {**form, **request.query_params})
        except InvalidToken as exc:
            return _rejected(exc)
        new = await run_in_threadpool(
            store.add_customer, request_.channel, request_.customer_id, SuppressionReason.UNSUBSCRIBE, request_.topic
        )
        logger.info(
            "unsubscribed customer %s from %s%s%s",
            request_.customer_id,
            request_.channel.value,
            f" topic {request_.topic}" if request_.topic else "",
            "" if new else " (already)",
        )
        body = f"<p>You will get no more {_what(request_)} from {shop}.</p>"
        if request_.topic == Topic.MARKETING.value:
            body += f"<p>Order and delivery updates will still reach you by {_CHANNEL_NAMES[request_.channel]}.</p>"
        return _page(200, "Unsubscribed", body)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok", headers={"Cache-Control": "no-store"})

    return Starlette(
        routes=[
            Route("/unsubscribe", confirm, methods=["GET"]),
            Route("/unsubscribe", unsubscribe, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        max_body_size=MAX_BODY_BYTES,
    )


def serve_unsubscribe(settings: Settings, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the unsubscribe endpoint with uvicorn until interrupted (loopback by default: put TLS in front)."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["loyalty"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    with private_files():  # the suppression list it writes is private (0700 folder, 0600 files)
        uvicorn.run(
            make_app(settings),
            host=host,
            port=port,
            access_log=False,  # request URLs carry customer ids and tokens
            server_header=False,
            log_config=log_config,
        )


async def _form_fields(request: Request) -> dict[str, str]:
    # The whole body is read first, whatever its type, within MAX_BODY_BYTES: a larger one raises
    # here and answers 413 before anything is recorded (unread, it would only be refused after
    # the suppression). Only url-encoded bodies are parsed (the one-click body and our own
    # button); the token normally travels in the query string, which wins over the body.
    body = await request.body()
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return {}
    try:
        return dict(parse_qsl(body.decode("utf-8"), max_num_fields=10))
    except (UnicodeDecodeError, ValueError):
        return {}


def _button(action: str, label: str) -> str:
    """A form that POSTs the one-click body to ``action`` (a query string; empty: the page's own link)."""
    target = f' action="{html.escape(action, quote=True)}"' if action else ""
    return (
        f'<form method="post"{target}>'
        f'<input type="hidden" name="{ONE_CLICK_FIELD}" value="{ONE_CLICK_VALUE}">'
        f'<button type="submit">{html.escape(label)}</button></form>'
    )


def _what(request: Unsubscribe) -> str:
    channel = _CHANNEL_NAMES[request.channel]
    if request.topic == Topic.MARKETING.value:
        return f"offers and newsletters by {channel}"
    topic = f" about {html.escape(request.topic)}" if request.topic else ""
    return f"{channel} messages{topic}"


def _rejected(exc: InvalidToken) -> Response:
    logger.warning("rejected an unsubscribe request: %s", exc)
    return _page(
        400, "Invalid link", "<p>This unsubscribe link is not valid. Please use the link from the message.</p>"
    )


def _page(status: int, title: str, body: str) -> HTMLResponse:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head>"
        f'<body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto;"><h1>{title}</h1>{body}</body></html>'
    )
    return HTMLResponse(document, status_code=status, headers=_HEADERS)
