"""Copy a marketer writes: a subject and a Markdown body per locale, rendered into the shop's email layout.

An ad-hoc campaign may carry its own words instead of a template folder (``EmailCopy``): per locale a
subject (plain text) and a body (Markdown), both with the templates' variables (``{{ greeting_name }}``,
``{{ coupon_code }}``, ``{% for p in products %}``...). Rendering one message, in this order:

1. The variables are rendered by Jinja2 in a sandbox, with autoescape on and every value's Markdown
   punctuation backslash-escaped, so a first name like ``**Anna** <b>x</b>`` is text, never markup.
2. The Markdown becomes HTML through markdown-it-py (CommonMark, raw HTML off: ``<script>`` in the
   source is shown as text, not passed through).
3. The HTML is sanitised by nh3 (ammonia) against an allow-list: text tags, links with http(s) or
   mailto only, images with an http(s) ``src`` only; no ``<script>``, ``<style>``, ``<iframe>``,
   ``on*=`` attributes or ``javascript:``/``data:`` URLs ever reach the email.
4. The fragment goes into ``templates/_layout/email.html.j2`` with the locale's footer and unsubscribe
   link (so the List-Unsubscribe headers are the template emails' too), CSS inlined as there.

The plain-text part is the Markdown source with the variables rendered as they are (no escaping):
links read "label (url)", emphasis marks and any HTML tags are dropped.

A customer whose locale the copy lacks gets the nearest one (``missing_locale="nearest"``: English,
else the copy's first locale) or nothing (``"skip"``: the plan leaves them out; the preview counts them).

Subject variants (A/B): two to four subjects per locale with a share each; the variant of a message is a
stable hash of the campaign, the occurrence and the customer, so a re-run picks the same one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from functools import cache, lru_cache
from typing import Literal

import css_inline
import jinja2
import nh3
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment
from markdown_it import MarkdownIt
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.render.templating import MessageContext, Rendered, RenderError, _plural

COPY_LOCALES = ("ru", "pl", "en")  # the catalog's locales, in the order the fallback prefers after the customer's
FALLBACK_LOCALE = "en"
MAX_SUBJECT_CHARS = 150
MAX_BODY_CHARS = 20_000
VARIANT_NAMES = ("A", "B", "C", "D")
# What a copy may use: the templates' context (MessageContext) without what only a trigger fills.
COPY_VARIABLES = frozenset(
    {
        "first_name",
        "greeting_name",
        "locale",
        "shop_name",
        "shop_url",
        "unsubscribe_url",
        "interest",
        "pet",
        "days_since_last_order",
        "coupon_code",
        "percent_off",
        "coupon_valid_until",
        "products",
        "weekday",
    }
)

# The footer of a copy's email, per locale, as the catalog's templates word it.
FOOTERS: dict[str, tuple[str, str]] = {
    "ru": ("Вы получили это письмо, потому что согласились на рассылку {shop}.", "Отписаться от рассылки"),
    "pl": ("Otrzymujesz tę wiadomość, ponieważ wyrażono zgodę na kontakt od {shop}.", "Wypisz się z ofert"),
    "en": ("You receive this because you agreed to hear from {shop}.", "Unsubscribe from offers"),
}

# The footer's link to the preferences page, worded as the layout words it.
SETTINGS_LABELS: dict[str, str] = {"ru": "Настройки рассылки", "pl": "Ustawienia wiadomości", "en": "Mailing settings"}

ALLOWED_TAGS = frozenset(
    {"p", "br", "strong", "em", "b", "i", "a", "ul", "ol", "li", "h1", "h2", "h3", "h4", "blockquote", "code", "pre"}
    | {"hr", "img"}
)
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_WEB = ("http://", "https://")
# What a body may not say, refused at request time (the sanitiser drops it anyway): better an error than a dead link.
_REFUSED = re.compile(
    r"(?i)\b(?:java|vb)script\s*:"
    r"|\]\(\s*<?\s*data\s*:|^\s*\[[^\]]+\]:\s*<?\s*data\s*:|<data\s*:"
    r"|<\s*/?\s*(?:script|iframe|style|object|embed)\b"
    r"|<[a-z][^>]*\son[a-z]+\s*=",
    re.MULTILINE,
)

# CommonMark lets any ASCII punctuation be backslash-escaped; <, >, &, " and ' are left to autoescape (HTML
# entities, which Markdown turns back into the same text).
_MARKDOWN_PUNCTUATION = re.compile(r"([!#$%()*+,\-./:;=?@\[\\\]^_`{|}~])")
_INLINER = css_inline.CSSInliner(keep_style_tags=False, keep_at_rules=True, load_remote_stylesheets=False)
LAYOUT = "_layout/email.html.j2"  # under the templates folder: the shop's one email layout
_LAYOUT = (
    '{% extends "' + LAYOUT + '" %}{% autoescape true %}'
    "{% block title %}{{ subject }}{% endblock %}"
    "{% block content %}{{ body }}{% endblock %}"
    "{% block footer %}{{ footer }}{% endblock %}"
    "{% block unsubscribe %}{{ unsubscribe_label }}{% endblock %}{% endautoescape %}"
)


class LocaleCopy(BaseModel):
    """One locale's words: a subject line (plain text) and a body (Markdown), both with the templates' variables."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="Subject and body")

    subject: str = Field(
        min_length=1,
        max_length=MAX_SUBJECT_CHARS,
        description="One line of plain text, e.g. {{ greeting_name }}, spring is here: -20%",
    )
    body: str = Field(
        min_length=1,
        max_length=MAX_BODY_CHARS,
        description="Markdown: **bold**, *italic*, [links](https://...), lists, ![images](https://...). "
        "Variables: {{ greeting_name }}, {{ coupon_code }}, {{ percent_off }}, {{ coupon_valid_until }}, "
        "{{ shop_url }}, {% for p in products %}...{% endfor %}. Raw HTML is shown as text.",
    )

    @field_validator("subject")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value:
            raise ValueError("a subject is one line: no line breaks")
        return value

    @field_validator("body")
    @classmethod
    def _nothing_that_runs(cls, value: str) -> str:
        found = _REFUSED.search(value)
        if found:
            raise ValueError(
                f"{found.group(0).strip()!r} is not allowed in an email: links are http(s) or mailto:, images "
                "http(s); no scripts, frames, styles or event handlers (rendering would drop it anyway)"
            )
        return value


class SubjectVariant(BaseModel):
    """One subject line of an A/B test, per locale of the copy, and the share of messages that get it."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="Subject variant")

    share: float = Field(gt=0.0, lt=1.0, description="The share of messages with this subject (the shares sum to 1).")
    ru: str | None = Field(
        None, max_length=MAX_SUBJECT_CHARS, title="Subject in Russian", description="The subject in Russian."
    )
    pl: str | None = Field(
        None, max_length=MAX_SUBJECT_CHARS, title="Subject in Polish", description="The subject in Polish."
    )
    en: str | None = Field(
        None, max_length=MAX_SUBJECT_CHARS, title="Subject in English", description="The subject in English."
    )

    @field_validator("ru", "pl", "en")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and ("\n" in value or "\r" in value):
            raise ValueError("a subject is one line: no line breaks")
        return value

    def subject(self, locale: str) -> str | None:
        return {"ru": self.ru, "pl": self.pl, "en": self.en}.get(locale)


class EmailCopy(BaseModel):
    """The words of an ad-hoc email, written in the form: a subject and a Markdown body per locale."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="Email copy")

    ru: LocaleCopy | None = Field(None, title="Russian", description="Russian.")
    pl: LocaleCopy | None = Field(None, title="Polish", description="Polish.")
    en: LocaleCopy | None = Field(None, title="English", description="English.")
    missing_locale: Literal["nearest", "skip"] = Field(
        "nearest",
        description="A customer whose language the copy lacks: nearest (English, else the first language "
        "written) or skip (left out; the preview counts them).",
    )
    subject_variants: tuple[SubjectVariant, ...] = Field(
        (),
        description="Optional A/B test of the subject: 2 to 4 variants, each with a subject per language "
        "and a share; the shares sum to 1. Each message records its variant; attribution reports each.",
    )

    @model_validator(mode="after")
    def _complete(self) -> EmailCopy:
        locales = self.locales()
        if not locales:
            raise ValueError("write the copy in at least one language (ru, pl or en)")
        for locale, words in locales.items():
            for part, source in (("subject", words.subject), ("body", words.body)):
                check_variables(source, f"{locale} {part}")
        if self.subject_variants:
            if not 2 <= len(self.subject_variants) <= len(VARIANT_NAMES):
                raise ValueError(f"subject variants: 2 to {len(VARIANT_NAMES)}, not {len(self.subject_variants)}")
            total = sum(v.share for v in self.subject_variants)
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"subject variants: the shares sum to {total:g}, not 1")
            for name, variant in zip(VARIANT_NAMES, self.subject_variants, strict=False):
                for locale in locales:
                    subject = variant.subject(locale)
                    if not subject:
                        raise ValueError(f"subject variant {name}: no {locale} subject (the copy has {locale})")
                    check_variables(subject, f"subject variant {name} {locale}")
        return self

    def locales(self) -> dict[str, LocaleCopy]:
        """The locales written, in the catalog's order."""
        found = {"ru": self.ru, "pl": self.pl, "en": self.en}
        return {locale: words for locale, words in found.items() if words is not None}

    def locale_for(self, locale: str) -> str | None:
        """The locale a customer gets: their own if written, else (nearest) English or the first written; None: skip."""
        written = self.locales()
        if locale in written:
            return locale
        if self.missing_locale == "skip":
            return None
        return FALLBACK_LOCALE if FALLBACK_LOCALE in written else next(iter(written))

    def variables(self) -> frozenset[str]:
        """Every variable any subject or body reads."""
        sources = [s for w in self.locales().values() for s in (w.subject, w.body)]
        sources += [s for v in self.subject_variants for s in (v.ru, v.pl, v.en) if s]
        return frozenset().union(*(undeclared(s) for s in sources))

    def variant_for(self, campaign: str, occurrence: str, customer_id: str) -> str:
        """The subject variant of one message ("A".."D"; "" without variants): stable across re-runs."""
        return choose_variant([v.share for v in self.subject_variants], campaign, occurrence, customer_id)

    def subject_source(self, locale: str, variant: str) -> str:
        """The subject template of a locale and variant (the copy's own subject without variants)."""
        if variant:
            subject = self.subject_variants[VARIANT_NAMES.index(variant)].subject(locale)
            if subject:
                return subject
        return self.locales()[locale].subject


def choose_variant(shares: Sequence[float], campaign: str, occurrence: str, customer_id: str) -> str:
    """Pick a variant by a hash of the campaign, occurrence and customer: uniform in [0, 1) against the shares."""
    if not shares:
        return ""
    digest = hashlib.sha256(f"{campaign}/{occurrence}/{customer_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    bound = 0.0
    for name, share in zip(VARIANT_NAMES, shares, strict=False):
        bound += share
        if point < bound:
            return name
    return VARIANT_NAMES[len(shares) - 1]


# --- variables ----------------------------------------------------------------------------------------------------


def undeclared(source: str) -> frozenset[str]:
    """The variables a subject or body reads (the sandbox's globals such as ``plural`` excluded)."""
    env = _text_env()
    try:
        names = meta.find_undeclared_variables(env.parse(source))
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"line {exc.lineno}: {exc.message}") from None
    return frozenset(names - set(env.globals))


def check_variables(source: str, where: str) -> None:
    """Refuse a subject or body that reads a variable the layout does not provide, naming it."""
    try:
        unknown = sorted(undeclared(source) - COPY_VARIABLES)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if unknown:
        known = ", ".join(sorted(COPY_VARIABLES))
        raise ValueError(f"{where}: unknown variable {unknown[0]!r} (there are: {known})")


def _escape_markdown(value: object) -> object:
    """Backslash-escape a value's Markdown punctuation: a variable is text, never Markdown."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _MARKDOWN_PUNCTUATION.sub(r"\\\1", value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _MARKDOWN_PUNCTUATION.sub(r"\\\1", str(value))
    return value


@cache
def _text_env() -> SandboxedEnvironment:
    """Subjects and the text part: variables as they are (no HTML there)."""
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.globals["plural"] = _plural
    return env


# The text part's values while its Markdown marks are taken out: each value stands in as a token meanwhile.
_HELD: ContextVar[list[str] | None] = ContextVar("copy_text_values", default=None)
_TOKEN = re.compile("\ue000(\\d+)\ue001")


def _hold(value: object) -> object:
    held = _HELD.get()
    if held is None or value is None or isinstance(value, bool):
        return value
    held.append(str(value))
    return f"\ue000{len(held) - 1}\ue001"


@cache
def _plain_env() -> SandboxedEnvironment:
    """The text part: each value held aside as a token while the Markdown marks go (``plain_text``)."""
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, finalize=_hold, keep_trailing_newline=False
    )
    env.globals["plural"] = _plural
    return env


@cache
def _markdown_env() -> SandboxedEnvironment:
    """The body before Markdown: autoescaped and Markdown-escaped values."""
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=True, finalize=_escape_markdown, keep_trailing_newline=True
    )
    env.globals["plural"] = _plural
    return env


@cache
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False})
    # every URL goes to the sanitiser, which drops the ones not allowed: a refused link shows its label, not its source
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md


# --- rendering ----------------------------------------------------------------------------------------------------


def _image_source(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and not value.strip().lower().startswith(_WEB):
        return None
    return value


@cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style", "iframe", "object", "embed", "template"},
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_image_source,
        url_schemes=set(URL_SCHEMES),
        url_relative="deny",
    )


def sanitise(html: str) -> str:
    """Keep only the allow-listed tags and attributes; links http(s)/mailto, images http(s)."""
    return _cleaner().clean(html)


def markdown_html(body: str) -> str:
    """Markdown (variables already rendered) to sanitised HTML."""
    return sanitise(_markdown().render(body))


_LINK = re.compile(r"!?\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_EMPHASIS = re.compile(r"(\*\*|__|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*]))")
_HEADING = re.compile(r"^#{1,6}\s+", re.MULTILINE)
_TAG = re.compile(r"</?[A-Za-z][^>]*>")


def plain_text(markdown: str, restore: Callable[[str], str] = str) -> str:
    """The Markdown as a reader's plain text: "label (url)" links, no emphasis marks, headings or HTML tags.

    ``restore``: puts held values back into a link's URL (the rest is restored by the caller).
    """

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1).strip(), restore(match.group(2))
        if not url.lower().startswith((*_WEB, "mailto:")):
            return label
        return f"{label} ({url.removeprefix('mailto:')})" if label else url

    text = _LINK.sub(link, markdown)
    text = _EMPHASIS.sub("", text)
    text = _HEADING.sub("", text)
    return _TAG.sub("", text)


def render_copy(
    layout: jinja2.Environment, copy: EmailCopy, locale: str, variant: str, context: MessageContext
) -> Rendered:
    """Render one message of a copy in a locale (written in the copy) and subject variant, into the layout.

    ``layout``: the templates' environment (``make_environment``), for ``_layout/email.html.j2``.
    """
    words = copy.locales()[locale]
    values = context.model_dump()
    subject = " ".join(_render("text", copy.subject_source(locale, variant), values, f"{locale} subject").split())
    body = _render("markdown", words.body, values, f"{locale} body")
    fragment = Markup(markdown_html(body))  # sanitised just now
    footer, label = FOOTERS.get(locale, FOOTERS[FALLBACK_LOCALE])
    footer = footer.format(shop=context.shop_name)
    try:
        html = _layout(layout).render(
            values | {"subject": subject, "body": fragment, "footer": footer, "unsubscribe_label": label}
        )
    except jinja2.TemplateError as exc:
        raise RenderError(f"the email layout: {exc}") from None
    text = _plain_part(words.body, values, f"{locale} body")
    text += f"\n\n--\n{footer}\n{label}: {context.unsubscribe_url}\n"
    if context.preferences_url:
        text += f"{SETTINGS_LABELS.get(locale, SETTINGS_LABELS[FALLBACK_LOCALE])}: {context.preferences_url}\n"
    return Rendered(subject=subject, html=_INLINER.inline(html), text=text)


def _plain_part(body: str, values: Mapping[str, object], where: str) -> str:
    """The text part: the Markdown source with the values as they are and the Markdown marks taken out."""
    held: list[str] = []
    token = _HELD.set(held)
    try:
        source = _render("plain", body, values, where)
    finally:
        _HELD.reset(token)

    def restore(text: str) -> str:
        return _TOKEN.sub(lambda m: held[int(m.group(1))], text)

    return restore(plain_text(source, restore)).strip()


@lru_cache(maxsize=64)
def _compiled(kind: Literal["text", "plain", "markdown"], source: str) -> jinja2.Template:
    env = {"text": _text_env, "plain": _plain_env, "markdown": _markdown_env}[kind]()
    return env.from_string(source)


@lru_cache(maxsize=4)
def _layout(layout: jinja2.Environment) -> jinja2.Template:
    return layout.from_string(_LAYOUT)


def _render(kind: Literal["text", "plain", "markdown"], source: str, values: Mapping[str, object], where: str) -> str:
    try:
        return _compiled(kind, source).render(values)
    except jinja2.TemplateError as exc:
        raise RenderError(f"copy {where}: {exc}") from None
