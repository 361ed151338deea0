"""Render messages from Jinja2 templates: one pure function over a typed context.

Templates live in ``templates/<template>/<locale>/`` as ``subject.txt.j2``,
``body.html.j2`` and ``body.txt.j2`` for email, and ``sms.txt.j2`` for a
campaign that also speaks by SMS.  They run sandboxed (marketers edit them),
with ``StrictUndefined`` (a missing variable is an error naming the template,
never a blank) and HTML autoescaping for every ``*.html.j2``.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
import jinja2.runtime
from babel import Locale
from babel.numbers import format_decimal
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, field_validator

from tasks.render.inlining import render_inlined, slot_value

DEFAULT_LOCALE = "en"
PARTS = ("subject.txt.j2", "body.html.j2", "body.txt.j2")
SMS_PART = "sms.txt.j2"


class RenderError(ValueError):
    """A template failed to render; the message names the template, never customer data."""


class ProductPick(BaseModel):
    """A product picked for the customer (``tasks/recommend/picks.py``), ready to show: name, link, price and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    url: str | None = None
    image_url: str | None = None
    price: str | None = None  # formatted for the message's locale ("1 234,50 ₽")
    reason: str  # due_again | because_of | popular | in_cart | new | back_in_stock | gift
    because: str | None = None  # the customer's product behind a because_of (or the one due again)

    @field_validator("url", "image_url", mode="before")
    @classmethod
    def _web_only(cls, value: object) -> object:
        """Drop a link that is not http(s): a ``javascript:`` or ``data:`` href runs in the reader's mail client.

        Validation already empties such product links; this holds for any other way a product gets here.
        """
        if isinstance(value, str) and not value.strip().lower().startswith(("http://", "https://")):
            return None
        return value


class Article(BaseModel):
    """A useful article a message carries (``tasks/render/articles.py``): plain text, escaped in HTML like the rest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    paragraphs: tuple[str, ...]


class MessageContext(BaseModel):
    """Everything a template may use. Adding a variable here is the only way to add one.

    Beside these, templates have ``plural(n, one=, few=, many=, other=)`` (the locale's plural rule,
    CLDR via babel) and the ``number`` filter (digits grouped the locale's way).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_name: str | None
    # the name to address the customer by in this locale: Polish in the vocative («Anno», «Józefie»), None
    # for a name the locale's table does not know (greet without a name); ru, en: the first name as given
    greeting_name: str | None = None
    locale: str
    shop_name: str
    shop_url: str
    unsubscribe_url: str
    # the customer's preferences page (the footer's "Mailing settings"); empty: no link (a sample context)
    preferences_url: str = ""
    campaign: str = ""
    step: int = 1
    variant: str | None = None  # the step's content variant (greeting, reminder, neutral, ...)
    interest: str | None = None  # cat | dog | ... : the customer's main interest group, for content variants
    # cat | dog: the customer's interest when the shop counts it as a pet (LOYALTY_PET_INTERESTS). Pet wording
    # only under {% if pet %}: most customers have none
    pet: str | None = None
    days_since_last_order: int | None = None
    coupon_code: str | None = None
    percent_off: int | None = None
    coupon_valid_until: str | None = None
    occasion_date: str | None = None  # the birthday or holiday, formatted for the locale ("20 апреля")
    days_to_occasion: int | None = None  # days from this message to the occasion (negative: after it)
    order_id: str | None = None
    order_url: str | None = None
    review_url: str | None = None
    survey_urls: tuple[str, ...] = ()  # the survey: the answer link of each score, 0 to 10
    incident: str | None = None  # late_delivery | low_rating | low_score | returned | cancelled
    # points: with the shop's spending data, the statement's balance (earned - spent - expired) and the points
    # that really lapse; without it no balance is known: the statement's points earned in ``points_month``
    # (the month before, "May", "май", "maj"), the expiry's points earned on ``points_earned_on`` ("if unused")
    points_balance: int | None = None
    points_earned: int | None = None
    points_month: str | None = None
    points_expiring: int | None = None
    points_expire_on: str | None = None
    points_earned_on: str | None = None
    reorder_url: str | None = None
    products: tuple[ProductPick, ...] = ()
    # the day the message goes out, the locale's word for it ("пятница", "piątek", "Friday"): say "today is"
    # only with it, never a fixed day
    weekday: str | None = None
    # the customer's next useful article, for a template that shows one; None: every fitting one was given
    article: Article | None = None


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def _autoescape(name: str | None) -> bool:
    # select_autoescape(["html"]) does not match "body.html.j2": decide on the full suffix
    return name is not None and (name.endswith(".html.j2") or name.endswith(".html"))


class _Environment(SandboxedEnvironment):
    """The sandboxed environment with each template's globals in a plain dict, not Jinja's ``ChainMap``.

    Jinja reads a template's globals on every render, and on every ``{% import %}`` it compares them with
    the importing template's: through a ``ChainMap`` that was a tenth of rendering a message. The globals are
    set once, in ``make_environment``, before any template is loaded, so a copy is the same.
    """

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}


def make_environment(templates_dir: Path, auto_reload: bool = True) -> SandboxedEnvironment:
    """Build the sandboxed, strict, autoescaping environment for a templates folder.

    ``auto_reload=False``: templates are compiled once and never checked for changes again (the caller
    watches the folder; ``tasks/render/compose.py``), and none is dropped from the cache.
    """
    env = _Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        auto_reload=auto_reload,
        cache_size=400 if auto_reload else -1,
        undefined=jinja2.StrictUndefined,
        autoescape=_autoescape,
        keep_trailing_newline=False,
        finalize=slot_value,  # values of an HTML part become slots while it is inlined (``inlining.py``)
    )
    env.globals["plural"] = _plural
    env.filters["number"] = _number
    return env


@jinja2.pass_context
def _plural(context: jinja2.runtime.Context, count: int, **forms: str) -> str:
    """The word form for ``count`` in the message's locale: one, few, many or other (CLDR plural rules)."""
    category = Locale.parse(str(context.get("locale", DEFAULT_LOCALE))).plural_form(abs(count))
    if category in forms:
        return forms[category]
    if "other" in forms:
        return forms["other"]
    raise RenderError(f"plural(): no form for {category!r} (give one=, few=, many=, other= as the language needs)")


@jinja2.pass_context
def _number(context: jinja2.runtime.Context, value: float) -> str:
    return format_decimal(value, locale=str(context.get("locale", DEFAULT_LOCALE)))


def template_locale(env: jinja2.Environment, template: str, locale: str) -> str:
    """Return the locale to render in: the customer's if the template has it, else English."""
    try:
        env.get_template(f"{template}/{locale}/{PARTS[0]}")
        return locale
    except jinja2.TemplateNotFound:
        return DEFAULT_LOCALE


def render_message(env: jinja2.Environment, template: str, context: MessageContext) -> Rendered:
    """Render subject, HTML and text of one message for one customer; the HTML's CSS is inlined."""
    locale = template_locale(env, template, context.locale)
    values = context.model_dump()
    subject, html, text = (
        _render_part(env, f"{template}/{locale}/{part}", values, inline=part == PARTS[1]) for part in PARTS
    )
    return Rendered(subject=" ".join(subject.split()), html=html, text=text.strip() + "\n")


def render_sms(env: jinja2.Environment, template: str, context: MessageContext) -> str:
    """Render the SMS text of one message: one line, whitespace collapsed (every character costs)."""
    locale = template_locale(env, template, context.locale)
    return " ".join(_render_part(env, f"{template}/{locale}/{SMS_PART}", context.model_dump()).split())


def _render_part(env: jinja2.Environment, name: str, values: dict[str, object], inline: bool = False) -> str:
    """Render one part; ``inline``: an HTML part, its CSS inlined (``tasks/render/inlining.py``)."""
    try:
        template = env.get_template(name)
        return render_inlined(env, template, values) if inline else template.render(values)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {exc.name} not found") from None
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"template {exc.name or name} line {exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        where = _failing_template(sys.exc_info()[2]) or name
        raise RenderError(f"template {where}: {exc.message}") from None
    except SecurityError as exc:
        raise RenderError(f"template {name}: not allowed in a template ({exc})") from None


def _failing_template(tb: TracebackType | None) -> str | None:
    """Return the innermost template file in a traceback (the layout, if it failed there)."""
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = filename
        tb = tb.tb_next
    if found is None:
        return None
    parts = Path(found).parts
    return "/".join(parts[-3:]) if len(parts) >= 3 else found
