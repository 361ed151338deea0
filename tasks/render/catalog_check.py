"""Campaigns as code: check the whole catalog before it runs, and the sample messages it is checked with.

``check_catalog`` validates every campaign file on its own (one bad file does not hide the others),
compiles every audience expression (and every segment of ``segments.yaml``) against the profile's columns, finds every template part in every
locale, and renders every step (every order status) for a sample customer in every locale and channel:
an SMS over ``sms_max_parts`` parts fails; it reads each locale's table of names in the vocative
(``tasks/render/names.py``) and every useful article (``tasks/render/articles.py``). Each problem names
the file, the field and the reason. ``sample_messages`` are the same renderings the golden files under
``tests/golden/`` pin; a template that shows an article shows the one a new customer would get first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import jinja2
import pandas as pd
from pydantic import BaseModel

from tasks.consent.tokens import MessageKeys
from tasks.kernel.enums import Channel
from tasks.kernel.errors import CatalogError
from tasks.kernel.settings import Settings
from tasks.plan.campaigns import (
    BackInStockTrigger,
    Campaign,
    CartTrigger,
    HolidayTrigger,
    IncidentTrigger,
    OrderStatusTrigger,
    OrderTrigger,
    PointsTrigger,
    ReplenishmentTrigger,
    SurveyTrigger,
    load_campaign,
)
from tasks.profile.expressions import ExpressionError, compile_expression
from tasks.profile.segments import SegmentError, check_segments
from tasks.render.articles import article_files, load_article, load_articles, next_article, shows_article
from tasks.render.compose import build_context, interest_group, message_products
from tasks.render.names import VOCATIVES_FILE, load_vocatives
from tasks.render.sms import sms_parts
from tasks.render.templating import (
    PARTS,
    SMS_PART,
    Article,
    RenderError,
    make_environment,
    render_message,
    render_sms,
    template_locale,
)

LOCALES = ("en", "ru", "pl")
SAMPLE_DAY = date(2026, 3, 5)
SAMPLE_KEYS = MessageKeys.from_secret(b"sample-signing-key-for-checks-and-goldens")

# A sample catalog: what product blocks show in checks and golden files (the last five: gift categories of
# the demo shop, for the holiday reminders' gift ideas).
SAMPLE_CATALOG = pd.DataFrame(
    {
        "product_id": ["P-SALMON", "P-WAND", "P-LITTER", "P-CREAM", "P-CANDLE", "P-NOVEL", "P-SPEAKER", "P-POWER"],
        "name": [
            "Purrfect Salmon Dry Food 2 kg",
            "Feather Wand Toy",
            "Clumping Cat Litter 10 l",
            "Miel Rose Hand Cream 75 ml",
            "Minimalist Scented Candle Amber",
            "The Winter Orchard by L. Kowal (Hardcover)",
            "Lumio Bluetooth Speaker X2",
            "Zentro Power Bank 10000 mAh",
        ],
        "category": ["cat_food", "cat_toys", "cat_care", "beauty", "home", "books", "electronics", "electronics"],
        "price": [12.5, 4.9, 1234.5, 9.9, 14.0, 18.5, 39.0, 25.0],
        "currency": ["EUR", "EUR", "RUB", "EUR", "EUR", "EUR", "EUR", "EUR"],
        "in_stock": [True] * 8,
        "url": [
            "https://shop.example.com/p/salmon",
            "https://shop.example.com/p/wand",
            None,
            "https://shop.example.com/p/cream",
            "https://shop.example.com/p/candle",
            "https://shop.example.com/p/novel",
            "https://shop.example.com/p/speaker",
            "https://shop.example.com/p/power",
        ],
        "image_url": [None] * 8,
        "created_at": pd.to_datetime(
            [
                "2026-03-01",
                "2026-02-28",
                "2025-01-01",
                "2025-11-20",
                "2025-10-02",
                "2025-12-01",
                "2026-01-15",
                "2025-09-01",
            ],
            utc=True,
        ),
    }
).set_index("product_id")

SAMPLE_PICKS: tuple[dict[str, object], ...] = (
    {
        "name": "Purrfect Salmon Dry Food 2 kg",
        "price": 12.5,
        "currency": "EUR",
        "url": "https://shop.example.com/p/salmon",
        "reason": "because_of",
        "because": "Catnap Tuna Pouches 12 x 85 g",
    },
    {"name": "Clumping Cat Litter 10 l", "price": 1234.5, "currency": "RUB", "reason": "due_again"},
    {"name": "Feather Wand Toy", "url": "https://shop.example.com/p/wand", "reason": "popular"},
)

_SAMPLE_DETAIL = {
    OrderTrigger: "100045",
    IncidentTrigger: "late_delivery",
    ReplenishmentTrigger: "P-LITTER",
    CartTrigger: "P-SALMON P-WAND",
    BackInStockTrigger: "P-WAND",
    SurveyTrigger: "100045",
}


@dataclass(frozen=True)
class SampleMessage:
    """One sample rendering of a campaign: a label (``step1``, ``shipped``, ``step1_earned``), the plan row and
    its products."""

    label: str
    row: dict[str, object]
    products: Sequence[Mapping[str, object]] = field(default_factory=tuple)


def sample_messages(campaign: Campaign, locale: str, channel: Channel) -> list[SampleMessage]:
    """The plan rows a campaign's templates are checked and pinned with: one per step (per status for orders; for
    points, with and without the shop's spending data)."""
    trigger = campaign.trigger
    base: dict[str, object] = {
        "idempotency_key": f"{campaign.name}/sample",
        "customer_id": "C-SAMPLE",
        "campaign": campaign.name,
        "channel": channel.value,
        "first_name": "Anna",
        "locale": locale,
        "days_since_last_order": 97,
        "top_category": "cat_food",
        "occurrence": _sample_occurrence(campaign, locale).isoformat(),
    }
    out = []
    if isinstance(trigger, OrderStatusTrigger):
        statuses = [s.value for s in trigger.statuses] + (["late"] if trigger.delay_notice else [])
        for status in statuses:
            row = base | {"step": campaign.steps[0].step, "detail": f"100045 {status}"}
            out.append(SampleMessage(status, row))
        return out
    detail: str | None = _SAMPLE_DETAIL.get(type(trigger))
    if isinstance(trigger, PointsTrigger):
        return _points_samples(campaign, base)
    for step in campaign.steps:
        row = base | {"step": step.step, "detail": detail}
        products = message_products(campaign, row, {"C-SAMPLE": SAMPLE_PICKS}, SAMPLE_CATALOG, _arrivals())
        out.append(SampleMessage(f"step{step.step}", row, products))
    return out


def _points_samples(campaign: Campaign, base: dict[str, object]) -> list[SampleMessage]:
    """Points messages of a shop with spending data (a balance, the points that really lapse: ``step1``) and of
    one without (what was earned, "if unused": ``step1_earned``)."""
    statement = isinstance(campaign.trigger, PointsTrigger) and campaign.trigger.event == "statement"
    details = {"": "1250 balance", "_earned": "120 earned"}
    if not statement:
        details = {"": "300 balance", "_earned": "300 earned"}
    out = []
    for step in campaign.steps:
        for suffix, detail in details.items():
            row = base | {"step": step.step, "detail": detail}
            products = message_products(campaign, row, {"C-SAMPLE": SAMPLE_PICKS}, SAMPLE_CATALOG, _arrivals())
            out.append(SampleMessage(f"step{step.step}{suffix}", row, products))
    return out


def _sample_occurrence(campaign: Campaign, locale: str) -> date:
    """The sample's trigger day: a holiday's own date in the locale's country, else the sample day."""
    trigger = campaign.trigger
    if not isinstance(trigger, HolidayTrigger):
        return SAMPLE_DAY
    country = {"ru": "RU", "pl": "PL"}.get(locale, "default")
    month_day = trigger.dates.get(country) or trigger.dates.get("default") or next(iter(trigger.dates.values()))
    month, day = (int(x) for x in month_day.split("-"))
    return date(SAMPLE_DAY.year, month, day)


def _arrivals() -> list[dict[str, object]]:
    from tasks.render.compose import new_arrivals

    return new_arrivals(SAMPLE_CATALOG, SAMPLE_DAY)


def render_sample(
    env: jinja2.Environment, campaign: Campaign, sample: SampleMessage, settings: Settings, as_of: date = SAMPLE_DAY
) -> dict[str, str]:
    """Render one sample: ``{"subject.txt": ..., "body.html": ..., "body.txt": ...}`` or ``{"sms.txt": ...}``."""
    locale = str(sample.row["locale"])
    article = _sample_article(env, campaign, sample, settings, as_of)
    context = build_context(sample.row, campaign, settings, SAMPLE_KEYS, as_of, locale, sample.products, article)
    if sample.row["channel"] == Channel.SMS.value:
        return {"sms.txt": render_sms(env, campaign.template, context) + "\n"}
    message = render_message(env, campaign.template, context)
    return {"subject.txt": message.subject + "\n", "body.html": message.html, "body.txt": message.text}


def _sample_article(
    env: jinja2.Environment, campaign: Campaign, sample: SampleMessage, settings: Settings, as_of: date
) -> Article | None:
    """The article a new customer like the sample's would be given first, if the template shows one."""
    locale = template_locale(env, campaign.template, str(sample.row["locale"]))
    if not shows_article(env, campaign.template, locale, str(sample.row["channel"])):
        return None
    groups = settings.picks_exclusive_groups
    top_category = sample.row.get("top_category")
    interest = interest_group(None if top_category is None else str(top_category), groups)
    article = next_article(load_articles(settings.templates_dir, groups), locale, interest, as_of, {}, "")
    return None if article is None else article.shown


class Problem(BaseModel):
    """One thing wrong with the catalog: the file, the field (or template part) and why."""

    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


def check_catalog(campaigns_dir: Path, templates_dir: Path, settings: Settings) -> tuple[list[str], list[Problem]]:
    """Check every campaign file; return the names of the campaigns that passed and every problem found."""
    problems: list[Problem] = []
    passed: list[str] = []
    env = make_environment(templates_dir)
    settings = settings.model_copy(update={"templates_dir": templates_dir})  # names and articles from there too
    names: dict[str, Path] = {}
    for path in sorted(campaigns_dir.glob("*.yaml")):
        if path.name == "segments.yaml":
            continue
        try:
            campaign = load_campaign(path)
        except CatalogError as exc:
            _, _, rest = str(exc).partition(": ")
            where, _, reason = rest.partition(": ")
            problems.append(Problem(file=str(path), field=where, reason=reason or rest))
            continue
        if campaign.name in names:
            problems.append(Problem(file=str(path), field="name", reason=f"also used by {names[campaign.name]}"))
            continue
        names[campaign.name] = path
        found = _check_campaign(path, campaign, env, templates_dir, settings)
        problems += found
        if not found:
            passed.append(campaign.name)
    return (
        passed,
        problems
        + _segment_problems(campaigns_dir / "segments.yaml")
        + _vocative_problems(templates_dir)
        + _article_problems(templates_dir, settings),
    )


def _segment_problems(path: Path) -> list[Problem]:
    """The named segments' file, checked as ``loyalty segments check`` does."""
    if not path.exists():
        return []
    try:
        checks = check_segments(path)
    except SegmentError as exc:
        return [Problem(file=str(path), field="segments", reason=str(exc))]
    return [Problem(file=str(path), field=f"segments.{c.name}", reason=c.error or "") for c in checks if c.error]


def _vocative_problems(templates_dir: Path) -> list[Problem]:
    """Each locale's table of names in the vocative (``templates/_locale/<locale>/vocatives.csv``), as rendering reads it."""
    problems = []
    for path in sorted(templates_dir.glob(f"_locale/*/{VOCATIVES_FILE}")):
        try:
            load_vocatives(path)
        except CatalogError as exc:
            _, _, rest = str(exc).partition(": ")
            where, _, reason = rest.partition(": ")
            problems.append(Problem(file=str(path), field=where, reason=reason or rest))
    return problems


def _article_problems(templates_dir: Path, settings: Settings) -> list[Problem]:
    """Every useful article (``templates/_articles/<locale>/<slug>.md``), each file on its own, as rendering reads it."""
    problems = []
    for path in article_files(templates_dir):
        try:
            load_article(path, settings.picks_exclusive_groups)
        except CatalogError as exc:
            _, _, rest = str(exc).partition(": ")
            where, _, reason = rest.partition(": ")
            problems.append(Problem(file=str(path), field=where, reason=reason or rest))
    return problems


def _check_campaign(
    path: Path, campaign: Campaign, env: jinja2.Environment, templates_dir: Path, settings: Settings
) -> list[Problem]:
    problems = []
    expressions = [("audience", campaign.audience)] + [
        (f"steps.{n}.audience", s.audience) for n, s in enumerate(campaign.steps)
    ]
    for where, expression in expressions:
        if expression is None:
            continue
        try:
            compile_expression(expression)
        except ExpressionError as exc:
            problems.append(Problem(file=str(path), field=where, reason=f"`{expression}`: {exc}"))
    for locale in LOCALES:
        parts = [*PARTS, *([SMS_PART] if Channel.SMS in campaign.channels else [])]
        missing = [p for p in parts if not (templates_dir / campaign.template / locale / p).is_file()]
        for part in missing:
            problems.append(
                Problem(file=str(path), field="template", reason=f"{campaign.template}/{locale}/{part} not found")
            )
        if missing:
            continue
        for channel in campaign.channels:
            for sample in sample_messages(campaign, locale, channel):
                problems += _render_problems(path, campaign, env, sample, settings)
    return problems


def _render_problems(
    path: Path, campaign: Campaign, env: jinja2.Environment, sample: SampleMessage, settings: Settings
) -> list[Problem]:
    where = f"template {campaign.template}/{sample.row['locale']} ({sample.label}, {sample.row['channel']})"
    try:
        rendered = render_sample(env, campaign, sample, settings)
    except (RenderError, CatalogError) as exc:  # CatalogError: an article file it would show is bad
        return [Problem(file=str(path), field=where, reason=str(exc))]
    sms = rendered.get("sms.txt")
    if sms is not None:
        cost = sms_parts(sms.strip())
        if cost.parts > settings.sms_max_parts:
            reason = (
                f"the SMS takes {cost.parts} parts ({cost.units} {cost.encoding} units), "
                f"over LOYALTY_SMS_MAX_PARTS={settings.sms_max_parts}"
            )
            return [Problem(file=str(path), field=where, reason=reason)]
    return []
