"""The one-click unsubscribe endpoint (RFC 8058): a small ASGI app over the suppression list.

Routes:

* ``POST /unsubscribe?c=..&ch=..[&tp=..]&t=..`` - what mail providers send for
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (body ``List-Unsubscribe=One-Click``),
  and what the confirmation page's button sends. A valid signed link records a customer
  suppression and answers 200, every time (idempotent); anything else answers 400.
  The body is not required: the signature is the authority, and an unsubscribe must not
  fail on how a client encodes its form.
* ``GET /unsubscribe?...`` - a confirmation page with a button. It never unsubscribes:
  mail scanners and link previewers fetch every link in a message.
* ``GET /healthz`` - liveness.

Nothing identifies a customer in responses or logs beyond the customer id; the access log
is off because request URLs carry signed tokens.

The app holds no global state: ``make_app(settings)`` builds everything, so it runs under
uvicorn (``serve_unsubscribe``) or in AWS Lambda behind an ASGI adapter, e.g.
``handler = Mangum(make_app(Settings()))``. On Lambda, set ``LOYALTY_UNSUBSCRIBE_SECRET``
(there is no persistent state folder for the key) and pass a durable ``suppressions`` store.
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
from tasks.consent.tokens import InvalidToken, Unsubscribe, parse_unsubscribe, signing_key, unsubscribe_url
from tasks.kernel.enums import Channel, Topic
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


class CustomerSuppressions(Protocol):
    """Where unsubscribes are recorded (``SuppressionList`` locally; a durable store on Lambda)."""

    def add_customer(
        self, channel: Channel | None, customer_id: str, reason: SuppressionReason | str, topic: str | None = None
    ) -> bool: ...


def make_app(settings: Settings, suppressions: CustomerSuppressions | None = None) -> Starlette:
    """Build the unsubscribe ASGI app; suppressions default to the list in the state folder."""
    key = signing_key(settings)
    store: CustomerSuppressions = suppressions or SuppressionList.for_settings(settings)
    shop = html.escape(settings.shop_name)

    async def confirm(request: Request) -> Response:
        try:
            request_ = parse_unsubscribe(key, request.query_params)
        except InvalidToken as exc:
            return _rejected(exc)
        what = _what(request_)
        body = (
            f"<p>Stop {what} from {shop}?</p>"
            '<form method="post">'
            f'<input type="hidden" name="{ONE_CLICK_FIELD}" value="{ONE_CLICK_VALUE}">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        if request_.topic == Topic.MARKETING.value:
            # a separate, explicit step: everything on the channel, order and delivery updates included
            everything = html.escape(
                unsubscribe_url(key, "", request_.customer_id, request_.channel.value).lstrip("?"), quote=True
            )
            channel = _CHANNEL_NAMES[request_.channel]
            body += (
                f"<p>Order and delivery updates will still reach you by {channel}.</p>"
                f'<form method="post" action="?{everything}">'
                f'<input type="hidden" name="{ONE_CLICK_FIELD}" value="{ONE_CLICK_VALUE}">'
                f'<button type="submit">Stop every {channel} message, order updates too</button></form>'
            )
        return _page(200, "Unsubscribe", body)

    async def unsubscribe(request: Request) -> Response:
        form = await _form_fields(request)
        try:
            request_ = parse_unsubscribe(key, {**form, **request.query_params})
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
        return _page(200, "Unsubscribed", f"<p>You will get no more {_what(request_)} from {shop}.</p>")

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
    uvicorn.run(
        make_app(settings),
        host=host,
        port=port,
        access_log=False,  # request URLs carry customer ids and tokens
        server_header=False,
        log_config=log_config,
    )


async def _form_fields(request: Request) -> dict[str, str]:
    # Only url-encoded bodies are read (the one-click body and our own button); the token
    # normally travels in the query string, which wins over the body.
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    try:
        return dict(parse_qsl(body.decode("utf-8"), max_num_fields=10))
    except (UnicodeDecodeError, ValueError):
        return {}


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
