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
* ``GET /survey?c=..&o=..&s=..&t=..[&l=..]`` - the answer page of a survey link (``tasks/consent/tokens.py``):
  "You chose 8 - send it?", a comment box and the other scores as links. It records nothing: a GET
  must be safe, because mail scanners and link previewers fetch every link in a message, and all
  eleven of a survey's links would otherwise vote at once.
* ``POST /survey`` - the page's form (the link's signed fields, and a comment): records the answer
  (``tasks/state/surveys.py``; a second answer about the same order replaces the first) and thanks.
  A comment is cut to 2,000 characters with control characters stripped, and never logged; the
  body may be up to 32 KiB (a comment in Cyrillic, form-encoded).
  A forged or altered link (another customer, order or score) answers 400 and shows nothing of the
  link: the pages show only the score, never the order or the customer.
* ``GET /preferences?c=..&ch=..&t=..[&l=..]`` - the customer's preferences page (the footer's "Mailing
  settings", ``tasks/consent/preferences_page.py``): topics, channels, frequency and profile facts, filled from
  their stored record (``tasks/state/preferences.py``), never an address or a name. It records nothing.
* ``POST /preferences`` - the page's form (the link's signed fields as hidden inputs, so no other site can post
  it for the customer; ``form-action 'self'``): every field checked (a bad date answers 400 with the form and a
  message), the record stored, "Saved". The next daily run merges it. A forged or altered link answers 400 and
  shows no form and nobody's settings.
* ``GET /healthz`` - liveness.

Topics (``Topic``). Every message's link carries ``marketing``: a marketing email's footer
("Unsubscribe from offers") and its ``List-Unsubscribe`` header, and an order or service
email's footer ("Unsubscribe", beside "Mailing settings"). So a one-click POST of any link made now stops offers on the
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
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from tasks.consent.preferences_page import STYLE as PREFERENCES_STYLE
from tasks.consent.preferences_page import Draft, FormError, form_html, page_language, read_form, words_for
from tasks.consent.suppression import SuppressionList, SuppressionReason
from tasks.consent.tokens import (
    SURVEY_SCORES,
    InvalidToken,
    PreferencesLink,
    Purpose,
    SurveyLink,
    Unsubscribe,
    parse_preferences,
    parse_survey,
    parse_unsubscribe,
    purpose_key,
    survey_url,
    unsubscribe_url,
    verification_keys,
)
from tasks.kernel.enums import Channel, Topic
from tasks.kernel.paths import private_files
from tasks.kernel.settings import Settings
from tasks.state.backend import open_state
from tasks.state.preferences import PreferenceStore
from tasks.state.surveys import MAX_COMMENT_CHARS, SurveyAnswer, SurveyStore, clean_comment

logger = logging.getLogger("loyalty.unsubscribe")

MAX_BODY_BYTES = 4096
MAX_SURVEY_BODY_BYTES = 32768
MAX_PREFERENCES_FIELDS = 20
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


def make_app(
    settings: Settings,
    suppressions: CustomerSuppressions | None = None,
    surveys: SurveyStore | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    preferences: PreferenceStore | None = None,
) -> Starlette:
    """Build the unsubscribe ASGI app (and the survey and preferences pages); stores default to the settings'
    state backend."""
    # the page's buttons are signed with the current secret; links verify under every secret, old ones too
    key, keys = purpose_key(settings, Purpose.UNSUBSCRIBE), verification_keys(settings, Purpose.UNSUBSCRIBE)
    survey_key, survey_keys = purpose_key(settings, Purpose.SURVEY), verification_keys(settings, Purpose.SURVEY)
    store: CustomerSuppressions = suppressions or SuppressionList.for_settings(settings)
    shop = html.escape(settings.shop_name)
    answers: SurveyStore | None = surveys
    chosen: PreferenceStore | None = preferences
    preferences_keys = verification_keys(settings, Purpose.PREFERENCES)

    def answer_store() -> SurveyStore:
        nonlocal answers
        if answers is None:  # opened on the first answer: an unsubscribe never needs it
            answers = open_state(settings).surveys
        return answers

    def preference_store() -> PreferenceStore:
        nonlocal chosen
        if chosen is None:  # opened on the first page: an unsubscribe never needs it
            chosen = open_state(settings).preferences
        return chosen

    async def preferences_page(request: Request) -> Response:
        try:
            link = parse_preferences(preferences_keys, request.query_params)
        except InvalidToken as exc:
            return _preferences_rejected(exc, request.query_params.get("l"))
        stored = await run_in_threadpool(preference_store().get, link.customer_id)
        return _preferences_form(200, link, request.query_params["t"], Draft.from_record(stored), shop)

    async def preferences_saved(request: Request) -> Response:
        form = await _form_fields(request, max_fields=MAX_PREFERENCES_FIELDS)
        try:
            link = parse_preferences(preferences_keys, form)
        except InvalidToken as exc:
            return _preferences_rejected(exc, form.get("l"))
        fields = {k: v for k, v in form.items() if k not in {"c", "ch", "t", "l"}}
        stored = await run_in_threadpool(preference_store().get, link.customer_id)
        try:
            record = read_form(fields, link.customer_id, clock(), stored)
        except FormError as exc:
            logger.info("refused a preferences form of customer %s: %s", link.customer_id, exc.word)
            return _preferences_form(400, link, form["t"], Draft.from_form(fields), shop, error=exc.word)
        await run_in_threadpool(preference_store().record, record)
        logger.info("saved the preferences of customer %s", link.customer_id)  # never the facts themselves
        words, lang = words_for(link.locale), page_language(link.locale)
        again = preferences_url_of(link, form["t"])
        body = (
            f"<p>{html.escape(words['saved'])}</p>"
            f'<p><a href="{html.escape(again, quote=True)}">{html.escape(words["again"])}</a></p>'
        )
        return _preferences_document(200, words["saved_title"], body, lang)

    async def survey_page(request: Request) -> Response:
        try:
            link = parse_survey(survey_keys, request.query_params)
        except InvalidToken as exc:
            return _survey_rejected(exc, request.query_params.get("l"))
        words = _survey_words(link.locale)

        def other(score: int) -> str:
            return survey_url(survey_key, "", link.customer_id, link.order_id, score, link.locale)

        scores = "".join(
            f'<a class="score{" chosen" if s == link.score else ""}" href="{html.escape(other(s), quote=True)}">{s}</a>'
            for s in SURVEY_SCORES
        )
        body = (
            f"<p>{words['chosen'].format(score=link.score)}</p>"
            f'<form method="post">{_hidden(link, request.query_params["t"])}'
            f'<label for="comment">{words["comment"]}</label>'
            f'<textarea id="comment" name="comment" rows="5" maxlength="{MAX_COMMENT_CHARS}"></textarea>'
            f'<button type="submit">{words["send"]}</button></form>'
            f'<p class="note">{words["change"]}</p><div class="scores">{scores}</div>'
        )
        return _survey_page(200, words["title"].format(shop=shop), body, link.locale)

    async def survey_answer(request: Request) -> Response:
        form = await _form_fields(request, max_fields=8)
        try:
            link = parse_survey(survey_keys, form)
        except InvalidToken as exc:
            return _survey_rejected(exc, form.get("l"))
        answer = SurveyAnswer(
            customer_id=link.customer_id,
            order_id=link.order_id,
            score=link.score,
            comment=clean_comment(form.get("comment")),
            answered_at=clock(),
        )
        await run_in_threadpool(answer_store().record, answer)
        logger.info("survey answer from customer %s: %d", link.customer_id, link.score)  # never the comment
        words = _survey_words(link.locale)
        return _survey_page(200, words["thanks_title"], f"<p>{words['thanks'].format(shop=shop)}</p>", link.locale)

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
            Route("/unsubscribe", confirm, methods=["GET"], max_body_size=MAX_BODY_BYTES),
            Route("/unsubscribe", unsubscribe, methods=["POST"], max_body_size=MAX_BODY_BYTES),
            Route("/survey", survey_page, methods=["GET"], max_body_size=MAX_BODY_BYTES),
            Route("/survey", survey_answer, methods=["POST"], max_body_size=MAX_SURVEY_BODY_BYTES),
            Route("/preferences", preferences_page, methods=["GET"], max_body_size=MAX_BODY_BYTES),
            Route("/preferences", preferences_saved, methods=["POST"], max_body_size=MAX_BODY_BYTES),
            Route("/healthz", healthz, methods=["GET"], max_body_size=MAX_BODY_BYTES),
        ],
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


async def _form_fields(request: Request, max_fields: int = 10) -> dict[str, str]:
    # The whole body is read first, whatever its type, within MAX_BODY_BYTES: a larger one raises
    # here and answers 413 before anything is recorded (unread, it would only be refused after
    # the suppression). Only url-encoded bodies are parsed (the one-click body and our own
    # button); the token normally travels in the query string, which wins over the body.
    body = await request.body()
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return {}
    try:
        return dict(parse_qsl(body.decode("utf-8"), max_num_fields=max_fields))
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


# --- the survey pages ---------------------------------------------------------------------------------------------

_SURVEY_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "How was your order?",
        "chosen": "You chose <strong>{score}</strong> out of 10. Send it?",
        "comment": "Anything you would like to tell us? (optional)",
        "send": "Send my answer",
        "change": "Or choose another score:",
        "thanks_title": "Thank you!",
        "thanks": "Your answer has reached {shop}. Thank you for taking the time.",
        "invalid_title": "This link does not work",
        "invalid": "This survey link is not valid. Please use the link from the email.",
    },
    "ru": {
        "title": "Как вам заказ?",
        "chosen": "Вы выбрали <strong>{score}</strong> из 10. Отправить?",
        "comment": "Хотите что-нибудь добавить? (необязательно)",
        "send": "Отправить ответ",
        "change": "Или выберите другую оценку:",
        "thanks_title": "Спасибо!",
        "thanks": "Ваш ответ получен. Спасибо, что уделили нам время!",
        "invalid_title": "Ссылка не работает",
        "invalid": "Эта ссылка на опрос недействительна. Пожалуйста, воспользуйтесь ссылкой из письма.",
    },
    "pl": {
        "title": "Jak oceniasz zamówienie?",
        "chosen": "Wybrano ocenę <strong>{score}</strong> na 10. Wysłać?",
        "comment": "Chcesz nam coś jeszcze przekazać? (opcjonalnie)",
        "send": "Wyślij odpowiedź",
        "change": "Albo wybierz inną ocenę:",
        "thanks_title": "Dziękujemy!",
        "thanks": "Twoja odpowiedź do nas dotarła. Dziękujemy, że poświęcasz nam czas!",
        "invalid_title": "Ten link nie działa",
        "invalid": "Ten link do ankiety jest nieprawidłowy. Skorzystaj z linku z wiadomości e-mail.",
    },
}
_SURVEY_STYLE = (
    "body{font-family:sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.5}"
    "label{display:block;margin:1rem 0 .25rem}"
    "textarea{box-sizing:border-box;width:100%;font:inherit;padding:.5rem}"
    "button{margin-top:.75rem;padding:.75rem 1.5rem;font:inherit;font-weight:bold;background:#c33;color:#fff;"
    "border:0;border-radius:4px}"
    ".note{color:#666;margin-top:2rem}"
    "h1{font-size:1.5rem;line-height:1.25}"
    ".scores{display:grid;grid-template-columns:repeat(11,1fr);gap:3px}"
    ".score{text-align:center;padding:.5rem 0;border:1px solid #c33;border-radius:4px;color:#c33;"
    "text-decoration:none}"
    ".chosen{background:#c33;color:#fff}"
)


def _survey_words(locale: str | None) -> dict[str, str]:
    return _SURVEY_WORDS.get((locale or "en").split("-")[0].lower(), _SURVEY_WORDS["en"])


def _hidden(link: SurveyLink, token: str) -> str:
    fields = {"c": link.customer_id, "o": link.order_id, "s": str(link.score), "t": token}
    if link.locale:
        fields["l"] = link.locale
    # the signature the link came with: the POST is verified exactly as the link was
    return "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value, quote=True)}">'
        for name, value in fields.items()
    )


def _survey_rejected(exc: InvalidToken, locale: str | None) -> Response:
    logger.warning("rejected a survey request: %s", exc)
    known = locale if locale in _SURVEY_WORDS else None  # the link's language, unsigned: only a word list is picked
    words = _survey_words(known)
    return _survey_page(400, words["invalid_title"], f"<p>{words['invalid']}</p>", known)


def _survey_page(status: int, title: str, body: str, locale: str | None) -> HTMLResponse:
    lang = locale if locale in _SURVEY_WORDS else "en"
    document = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_SURVEY_STYLE}</style></head><body><h1>{title}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=_HEADERS)


# --- the preferences page -----------------------------------------------------------------------------------------


def _link_fields(link: PreferencesLink, token: str) -> dict[str, str]:
    # the signature the link came with: the POST is verified exactly as the link was
    fields = {"c": link.customer_id, "ch": link.channel.value, "t": token}
    if link.locale:
        fields["l"] = link.locale
    return fields


def preferences_url_of(link: PreferencesLink, token: str) -> str:
    """The page's own link (relative), to open the form again after saving."""
    return "?" + urlencode(_link_fields(link, token))


def _preferences_form(
    status: int, link: PreferencesLink, token: str, draft: Draft, shop: str, error: str | None = None
) -> HTMLResponse:
    words, lang = words_for(link.locale), page_language(link.locale)
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value, quote=True)}">'
        for name, value in _link_fields(link, token).items()
    )
    body = f"<p>{html.escape(words['intro']).format(shop=shop)}</p>"
    if error is not None:
        body = f'<p class="error" role="alert">{html.escape(words[error])}</p>' + body
    title = words["error_title"] if error is not None else words["title"]
    return _preferences_document(status, title, body + form_html(words, hidden, draft, lang), lang)


def _preferences_rejected(exc: InvalidToken, locale: str | None) -> Response:
    logger.warning("rejected a preferences request: %s", exc)
    words = words_for(locale)  # the link's language, unsigned: only a word list is picked
    return _preferences_document(400, words["invalid_title"], f"<p>{html.escape(words['invalid'])}</p>", locale)


def _preferences_document(status: int, title: str, body: str, locale: str | None) -> HTMLResponse:
    document = (
        f'<!doctype html><html lang="{page_language(locale)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{PREFERENCES_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=_HEADERS)
